"""The knowledge ladder (issue 25): its targets built from the right split only, its generator's scenarios valid."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import EXPERIMENTS, ROOT

sys.path.insert(0, str(ROOT / "tools"))
import ladder_targets  # noqa: E402

from utils.errors import UserError  # noqa: E402

GENERATOR = EXPERIMENTS / "ladder_ml100k" / "generate.py"


def hashed_encoder(texts):
    """A deterministic stand-in for MiniLM: each text's vector is drawn from a generator seeded by its hash (the
    same text, the same vector), so that which texts went in can be checked exactly."""
    rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=8) for t in texts]
    return np.asarray(rows, dtype=np.float32)


# --- pure pieces --------------------------------------------------------------------------------------------------


def test_remapping_is_a_derangement_fixed_by_seed():
    items = {str(i): {"title": f"T{i}", "year": str(1900 + i), "genres": [f"g{i}"]} for i in range(1, 50)}
    remapped, donor = ladder_targets.remap_items(items, seed=3)
    assert all(donor[i] != i for i in items)  # nobody keeps their own text
    assert sorted(donor.values()) == sorted(items)  # every text is given exactly once
    assert all(remapped[i] == items[donor[i]] for i in items)  # title, year and genres travel together
    assert ladder_targets.remap_items(items, seed=3)[1] == donor
    assert ladder_targets.remap_items(items, seed=4)[1] != donor


def test_oracle_reads_validation_items_only():
    """Test items' vectors are NaN: an oracle that touched one would not be finite."""
    vectors = np.arange(6 * 2, dtype=np.float32).reshape(6, 2)
    test_items = [4, 5]
    vectors[test_items] = np.nan
    valid_users, valid_items = [1, 1, 2], [1, 2, 3]
    oracle = ladder_targets.oracle_target(valid_users, valid_items, vectors, user_num=3)
    assert np.isfinite(oracle).all()
    assert oracle == pytest.approx(np.array([(vectors[1] + vectors[2]) / 2, vectors[3]]))


def test_oracle_refuses_a_user_without_validation_items():
    with pytest.raises(UserError, match="no validation interaction"):
        ladder_targets.oracle_target([1], [1], np.ones((3, 2), np.float32), user_num=3)


def test_svd_target_rows_are_the_training_rows_only():
    users, items = np.array([1, 1, 2, 3, 3, 3]), np.array([1, 2, 2, 1, 3, 4])
    target = ladder_targets.svd_target(users, items, (4, 5), components=2)
    matrix = ladder_targets.rows_matrix(users, items, (4, 5)).toarray()
    assert target.shape == (3, 2)
    # U * S of the SVD: its rows' Gram matrix is the training matrix's projected onto the top components
    u, s, vt = np.linalg.svd(matrix)
    assert np.abs(target @ target.T) == pytest.approx(np.abs((u[1:, :2] * s[:2]) @ (u[1:, :2] * s[:2]).T), abs=1e-4)


def test_screening_ranks_by_cosine_and_skips_training_items():
    users = np.array([[0, 0], [1, 0], [0, 1]], dtype=np.float32)
    items = np.array([[0, 0], [1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    train = (np.array([1]), np.array([1]))  # user 1 trained on item 1: it may not be ranked
    held = (np.array([1, 2]), np.array([2, 3]))
    hit, ndcg, n = ladder_targets.screen_ranking(users, items, train, held, k=1)
    assert (hit, ndcg, n) == (1.0, 1.0, 2)
    hit, ndcg, _ = ladder_targets.screen_ranking(users, items, train, (np.array([1]), np.array([3])), k=2)
    assert hit == 0.0 and ndcg == 0.0


# --- on the real ml-100k split of a generated experiment ----------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ladder")
    subprocess.run([sys.executable, str(GENERATOR), "--models", "NeuMF", "SimpleX", "--seeds", "1", "--out",
                    str(folder)], check=True, capture_output=True, timeout=120)
    return folder


@pytest.fixture(scope="module")
def cold_split(generated):
    return ladder_targets.experiment_data(generated / "neumf_cold2_s01_svd_train.yaml")


@pytest.mark.e2e
@pytest.mark.long
def test_svd_target_of_an_experiment_uses_its_training_split(cold_split):
    config, _, data = cold_split
    targets = ladder_targets.build_targets(config, data, {"svd_train"}, hashed_encoder)
    dataset = data.dataset
    train = ladder_targets.interactions(data.train_dataset)
    expected = ladder_targets.svd_target(*train, (dataset.user_num, dataset.item_num), seed=config["seed"])
    assert targets["svd_train"] == pytest.approx(expected)
    everything = ladder_targets.interactions(dataset)  # validation and test too: a different target
    leaky = ladder_targets.svd_target(*everything, (dataset.user_num, dataset.item_num), seed=config["seed"])
    assert not np.allclose(np.abs(leaky), np.abs(expected), atol=1e-3)
    matrix = ladder_targets.rows_matrix(*train, (dataset.user_num, dataset.item_num))
    cold = sorted(data.cold_users)
    assert len(cold) > 100 and set(np.diff(matrix.indptr)[cold]) == {2}  # the cut users keep k = 2 rows


@pytest.mark.e2e
@pytest.mark.long
def test_oracle_of_an_experiment_is_its_users_validation_items(cold_split):
    config, _, data = cold_split
    targets = ladder_targets.build_targets(config, data, {"oracle_valid"}, hashed_encoder)
    real, _ = ladder_targets.item_tables(config, config["seed"])
    vectors = ladder_targets.item_vectors_for(config, data, real, hashed_encoder)
    valid_users, valid_items = ladder_targets.interactions(data.valid.dataset)
    test_users, test_items = ladder_targets.interactions(data.test.dataset)
    for user in (1, 50, 500, sorted(data.cold_users)[0]):
        mine = valid_items[valid_users == user]
        assert not set(mine) & set(test_items[test_users == user])
        assert targets["oracle_valid"][user - 1] == pytest.approx(vectors[mine].mean(axis=0), abs=1e-6)


@pytest.mark.e2e
@pytest.mark.long
def test_remapped_template_differs_only_in_the_item_texts(cold_split):
    config, _, data = cold_split
    real, remapped = ladder_targets.item_tables(config, config["seed"])
    texts = ladder_targets.user_template_texts(config, data, real)
    moved = ladder_targets.user_template_texts(config, data, remapped)
    assert len(texts) == len(moved) == data.dataset.user_num - 1
    assert sum(a != b for a, b in zip(texts, moved, strict=True)) > 0.95 * len(texts)
    same_start = [a.split(".")[0] == b.split(".")[0] for a, b in zip(texts, moved, strict=True)]
    assert all(same_start)  # 'User 196: a 49-year-old man, ...': the person stays, their items' texts move


# --- the generator ------------------------------------------------------------------------------------------------


def test_generator_writes_every_variant_and_a_manifest(generated):
    names = sorted(p.name for p in generated.glob("*.yaml"))
    assert len(names) == 2 * 2 * 5  # models x settings x variants, one seed
    manifest = json.loads((generated / "ladder_targets.json").read_text())
    assert len(manifest) == 2 * 2 * 4 and all("baseline" not in name for name in manifest)
    oracle = (generated / "simplex_cold2_s01_oracle_valid.yaml").read_text()
    assert "ORACLE" in oracle.splitlines()[0] and "cold_start: {users: 0.2, k: 2}" in oracle
    assert manifest["simplex_cold2_s01_oracle_valid.yaml"]["to"] in oracle


@pytest.mark.long
def test_generated_scenarios_pass_the_check(generated, monkeypatch, capsys):
    """--check in this process: the 20 files share one dataset load per configuration."""
    import run_exps

    monkeypatch.chdir(ROOT)
    assert run_exps.main([str(generated), "--check"]) == 0, capsys.readouterr().err[-2000:]
    assert capsys.readouterr().out.count("ok: ") == 20
