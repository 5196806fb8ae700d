"""Profile files to matrices: alignment with RecBole's ids, checks, loading, reduction."""

import json

import pytest
import torch

from utils.embeddings import load_matrix, profiles_to_matrix, random_matrix, read_profiles, reduce_matrix, save_tensor
from utils.errors import UserError


def profiles(ids, width=3):
    return [{"id": raw, "description": f"user {raw}", "embedding": [float(raw)] * width} for raw in ids]


def test_rows_follow_recbole_internal_ids_not_the_file_order():
    tokens = ["196", "186", "22"]  # RecBole's order of first appearance, not sorted
    matrix = profiles_to_matrix(profiles([22, 186, 196]), tokens)
    assert matrix[:, 0].tolist() == [196.0, 186.0, 22.0]


def test_int_and_string_ids_both_match_recbole_tokens():
    assert profiles_to_matrix(profiles(["7", 8]), ["8", "7"])[:, 0].tolist() == [8.0, 7.0]


def test_legacy_names_select_the_alignment():
    shuffled = profiles([10, 9, 100])
    assert profiles_to_matrix(shuffled, ["100", "9", "10"], by="exp_2024_05_18_AVC_users")[:, 0].tolist() == [
        100.0, 9.0, 10.0]
    # rows sorted by raw id, numerically
    assert profiles_to_matrix(shuffled, ["9", "10", "100"], by="exp_2024_04_11")[:, 0].tolist() == [9.0, 10.0, 100.0]


def test_profiles_for_ids_outside_the_dataset_are_left_out():
    assert profiles_to_matrix(profiles([1, 2, 3]), ["3", "1"]).shape == (2, 3)


def test_missing_profiles_are_counted_and_refused():
    with pytest.raises(UserError, match=r"miss 10 of 12 ids.*missing_profiles: zero"):
        profiles_to_matrix(profiles([1, 2]), [str(i) for i in range(1, 13)])


def test_missing_profiles_zero_gives_zero_rows():
    matrix = profiles_to_matrix(profiles([2]), ["1", "2"], missing="zero")
    assert matrix.tolist() == [[0.0] * 3, [2.0] * 3]


def test_nan_in_a_profile_is_refused_with_the_word_nan():
    bad = profiles([1, 2])
    bad[1]["embedding"][0] = float("nan")
    with pytest.raises(UserError, match=r"1 NaN"):
        profiles_to_matrix(bad, ["1", "2"])


def test_ragged_embeddings_are_refused():
    bad = profiles([1, 2])
    bad[1]["embedding"] = [1.0]
    with pytest.raises(UserError, match="one length"):
        profiles_to_matrix(bad, ["1", "2"])


def test_duplicate_ids_are_refused():
    with pytest.raises(UserError, match="appears twice"):
        profiles_to_matrix(profiles([1, 1]), ["1"])


def test_read_profiles_reports_the_json_line(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('[\n{"id": 1, "embedding": [1]},\n{"id": 2 "embedding": [2]}\n]')
    with pytest.raises(UserError, match="line 3"):
        read_profiles(path)
    path.write_text(json.dumps([{"id": 1}]))
    with pytest.raises(UserError, match="'id' and 'embedding'"):
        read_profiles(path)


def test_load_matrix_prepends_the_zero_row_for_padding(tmp_path):
    save_tensor(torch.ones(4, 2), tmp_path / "m.pt")
    matrix = load_matrix(tmp_path / "m.pt", expected_rows=5, start_with_1=True, entity="user")
    assert matrix.shape == (5, 2) and matrix[0].abs().sum() == 0 and matrix[1:].eq(1).all()


def test_load_matrix_row_mismatch_gives_both_counts_and_the_flag(tmp_path):
    save_tensor(torch.ones(4, 2), tmp_path / "m.pt")
    with pytest.raises(UserError, match=r"4 rows .* 9 users .*users_start_with_1"):
        load_matrix(tmp_path / "m.pt", expected_rows=10, start_with_1=False, entity="user")


def test_load_matrix_missing_file_gives_the_full_path(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path / "nope.pt")):
        load_matrix(tmp_path / "nope.pt", expected_rows=3, start_with_1=True, entity="user")


def test_load_matrix_refuses_inf(tmp_path):
    matrix = torch.ones(2, 2)
    matrix[1, 1] = float("inf")
    save_tensor(matrix, tmp_path / "m.pt")
    with pytest.raises(UserError, match="1 inf"):
        load_matrix(tmp_path / "m.pt", expected_rows=3, start_with_1=True, entity="user")


def test_random_matrices_are_reproducible():
    assert torch.equal(random_matrix(3, 4, seed=1), random_matrix(3, 4, seed=1))
    assert not torch.equal(random_matrix(3, 4, seed=1), random_matrix(3, 4, seed=2))


def test_pca_reduces_and_reports_the_method():
    reduced, method = reduce_matrix(torch.randn(50, 10), 4, "pca")
    assert reduced.shape == (50, 4) and reduced.dtype == torch.float32 and method == "pca"


def test_reduce_to_more_columns_than_there_are_is_refused():
    with pytest.raises(UserError, match=r"dimension 12 must be an integer in \[1, 10\]"):
        reduce_matrix(torch.randn(50, 10), 12, "pca")


@pytest.mark.parametrize("descriptions", [
    ["short"] * 60,
    ["a long first description " * 20] * 5 + ["x"] * 55,  # the row estimate from the first chunk falls short
    ["likes {braces}, {commas}"] + ["ok"] * 59,  # '}, {' inside a string: the chunked parse falls back
])
@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "forked-workers"])
def test_chunked_fast_reader_matches_the_careful_reader(tmp_path, monkeypatch, descriptions, workers):
    pytest.importorskip("simdjson")
    from utils import embeddings

    monkeypatch.setattr(embeddings, "CHUNK_BYTES", 300)
    monkeypatch.setattr(embeddings, "_parse_workers", lambda size: workers)
    careful = embeddings.stack_embeddings
    monkeypatch.setattr(embeddings, "stack_embeddings", lambda *a: pytest.fail("fell back to the careful reader"))
    parallel, results = embeddings._read_in_processes, []
    monkeypatch.setattr(embeddings, "_read_in_processes", lambda *a: results.append(parallel(*a)) or results[-1])
    braces = "{braces}" in descriptions[0]
    if braces:
        monkeypatch.setattr(embeddings, "stack_embeddings", careful)  # the expected fallback
    entries = [{"id": f"u{i}" if i % 2 else i, "description": text, "prompt": "p",
                "embedding": [i + 0.25, -i / 7, 1e-3 * i, 2.0]} for i, text in enumerate(descriptions)]
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(entries, indent=1))
    ids, matrix = embeddings.read_profile_matrix(path)
    expected_ids, expected = careful(read_profiles(path))
    assert ids == expected_ids == [str(e["id"]) for e in entries]
    assert matrix.shape == (60, 4) and (matrix == expected).all()
    if workers > 1 and not braces:
        assert len(results) == 1 and results[0] is not None  # the forked workers did the parsing


@pytest.mark.parametrize("by", ["exp_2024_04_11", "sorted", "recbole"])
def test_a_superset_of_profiles_is_picked_by_id_in_recbole_order_whatever_by_says(by, caplog):
    matrix = profiles_to_matrix(profiles([1, 2, 3, 4, 5]), ["4", "2"], by=by, source="u.json")
    assert matrix[:, 0].tolist() == [4.0, 2.0]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "3 of 5 profiles are of ids the dataset does not keep" in warning


def test_a_superset_still_refuses_a_kept_id_without_profile_unless_missing_is_zero():
    with pytest.raises(UserError, match=r"miss 1 of 2 ids in the dataset \(e\.g\. 9\)"):
        profiles_to_matrix(profiles([1, 2, 3]), ["2", "9"], by="exp_2024_04_11")
    matrix = profiles_to_matrix(profiles([1, 2, 3]), ["2", "9"], by="exp_2024_04_11", missing="zero")
    assert matrix[:, 0].tolist() == [2.0, 0.0]
