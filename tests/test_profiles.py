"""Profiles from the training split: their text, no leakage, alignment with RecBole ids, reuse and refusal, the
LLM source against a local server, the offline encoders and make_profiles.py."""

import json
import socket
import sys

import numpy as np
import pytest
import torch
from helpers import build, shrink

import make_profiles
from utils.embeddings import profiles_to_matrix, read_profiles
from utils.errors import UserError
from utils.profiles import (
    ProfileSpec,
    build_profiles,
    ensure_profiles,
    item_table,
    meta_path,
    training_history,
    with_ratings,
)


@pytest.fixture(scope="module")
def neumf():
    config, data, model = build("NeuMF")
    return config, data


def tokens(data, split, field):
    dataset = data.dataset
    inter = split.dataset.inter_feat
    return dataset.id2token(field, inter[field].numpy())


def held_out_pairs(data):
    dataset = data.dataset
    pairs = set()
    for loader in (data.valid, data.test):
        users = tokens(data, loader, dataset.uid_field)
        items = tokens(data, loader, dataset.iid_field)
        pairs |= set(zip(users, items, strict=True))
    return pairs


@pytest.fixture(scope="module")
def user_profiles(neumf, tmp_path_factory):
    config, data = neumf
    folder = tmp_path_factory.mktemp("profiles")
    spec = ProfileSpec(to="users.json", encoder="tfidf", dim=16)
    meta = build_profiles(spec, config, data, folder, progress=False)
    return folder, meta, read_profiles(folder / "users.json")


def test_no_validation_or_test_interaction_appears_in_any_profile_history(neumf, user_profiles):
    config, data = neumf
    _, _, profiles = user_profiles
    held_out = held_out_pairs(data)
    assert held_out
    used = {(p["id"], item) for p in profiles for item in p["history"]}
    assert not used & held_out
    train = training_history(data)
    assert used == set(zip(train["user"], train["item"], strict=True))


def test_a_profile_never_names_a_title_seen_only_in_its_users_held_out_items(neumf, user_profiles):
    config, data = neumf
    _, _, profiles = user_profiles
    items = item_table(config, ProfileSpec(to="x.json").fields)
    held = {}
    for user, item in held_out_pairs(data):
        held.setdefault(user, set()).add(item)
    for profile in profiles:
        seen = {items[i]["title"] for i in profile["history"]}
        for item in held.get(profile["id"], ()):
            title = items[item]["title"]
            listed = f"{title} ({items[item]['year']})"
            if title not in seen:  # titles are listed after ': ' or '; '
                assert f": {listed}" not in profile["description"], (profile["id"], title)
                assert f"; {listed}" not in profile["description"], (profile["id"], title)


def test_profile_text_states_demographics_genres_decades_and_rated_titles(neumf, user_profiles):
    config, data = neumf
    _, _, profiles = user_profiles
    profile = profiles[0]
    text = profile["description"]
    assert text.startswith(f"User {profile['id']}: a ") and "-year-old" in text and "occupation:" in text
    for part in ("Rated ", "stars on average", "Favourite genres:", "Preferred release decades:", "Top-rated movies:"):
        assert part in text
    rated = with_ratings(training_history(data), config, ProfileSpec(to="x.json").fields)
    mine = rated[rated["user"] == profile["id"]]
    assert f"Rated {len(mine)} movies" in text
    assert f"{mine['rating'].mean():.1f} stars on average" in text
    items = item_table(config, ProfileSpec(to="x.json").fields)
    top = mine.sort_values(["rating", "time"], ascending=[False, False]).iloc[0]
    assert items[top["item"]]["title"] in text
    assert profile["prompt"].startswith("Write a profile of this user's movie tastes")


def test_profiles_follow_recbole_ids_and_convert_to_an_aligned_matrix(neumf, user_profiles):
    config, data = neumf
    _, meta, profiles = user_profiles
    order = list(data.dataset.field2id_token[data.dataset.uid_field][1:])
    assert [p["id"] for p in profiles] == order
    shuffled = profiles[::-1]
    matrix = profiles_to_matrix(shuffled, order)
    user = order[5]
    internal = data.dataset.token2id(data.dataset.uid_field, user)
    expected = next(p["embedding"] for p in profiles if p["id"] == user)
    assert np.allclose(matrix[internal - 1].numpy(), expected)
    assert meta["count"] == len(order) and meta["dim"] == 16 and meta["source"] == "template"


def test_item_profiles_state_title_genres_and_training_ratings(neumf, tmp_path):
    config, data = neumf
    build_profiles(ProfileSpec(to="items.json", entity="item", encoder="tfidf", dim=8), config, data, tmp_path,
                   progress=False)
    profiles = read_profiles(tmp_path / "items.json")
    assert [p["id"] for p in profiles] == list(data.dataset.field2id_token[data.dataset.iid_field][1:])
    toy_story = next(p for p in profiles if p["id"] == "1")
    assert toy_story["description"].startswith("Movie 1: Toy Story (1995). Genres: Animation, Children's, Comedy.")
    assert "users in the training period" in toy_story["description"]


def test_profiles_from_another_split_are_rebuilt_or_refused(neumf, user_profiles, tmp_path):
    config, data = neumf
    folder, meta, _ = user_profiles
    spec = ProfileSpec(to="users.json", encoder="tfidf", dim=16)
    assert ensure_profiles(spec, config, data, folder, say=lambda *_: None) == "reused"

    other_config, other_data, _ = build("NeuMF", seed=8)
    (tmp_path / "users.json").write_bytes((folder / "users.json").read_bytes())
    meta_path(tmp_path / "users.json").write_bytes(meta_path(folder / "users.json").read_bytes())
    refuse = ProfileSpec(to="users.json", encoder="tfidf", dim=16, on_other_split="refuse")
    with pytest.raises(UserError, match="built from another split"):
        ensure_profiles(refuse, other_config, other_data, tmp_path, say=lambda *_: None)
    assert ensure_profiles(spec, other_config, other_data, tmp_path, say=lambda *_: None) == "rebuilt"
    rebuilt = json.loads(meta_path(tmp_path / "users.json").read_text())
    assert rebuilt["split"]["fingerprint"] != meta["split"]["fingerprint"] and rebuilt["split"]["seed"] == 8


def test_other_encoder_settings_rebuild(neumf, user_profiles, tmp_path):
    config, data = neumf
    spec = ProfileSpec(to="u.json", encoder="tfidf", dim=8)
    assert ensure_profiles(spec, config, data, tmp_path, say=lambda *_: None) == "built"
    assert ensure_profiles(ProfileSpec(to="u.json", encoder="tfidf", dim=12), config, data, tmp_path,
                           say=lambda *_: None) == "rebuilt"


def test_llm_profiles_come_from_the_endpoint_and_resume_after_an_interruption(neumf, api, tmp_path):
    config, data = neumf
    llm = {"base_url": api.base_url, "model": "chat-m", "max_retries": 1, "concurrency": 2}
    spec = ProfileSpec(to="llm.json", source="llm", encoder="tfidf", dim=8, llm=llm)
    users = data.dataset.user_num - 1
    api.fail_after = 40
    with pytest.raises(UserError, match="HTTP 500"):
        build_profiles(spec, config, data, tmp_path, progress=False)
    assert not (tmp_path / "llm.json").exists()
    first_run = api.counts["/v1/chat/completions"]
    api.fail_after = None
    build_profiles(spec, config, data, tmp_path, progress=False)
    second_run = api.counts["/v1/chat/completions"] - first_run
    assert second_run <= users - 40
    profiles = read_profiles(tmp_path / "llm.json")
    assert len(profiles) == users and all(p["description"].startswith("profile of: Write a profile") for p in profiles)
    prompt = next(p["content"] for p in api.payloads[-1]["messages"] if p["role"] == "user")
    assert "Rated movies (best first" in prompt


def test_minilm_encodes_offline_with_the_bundled_model(monkeypatch):
    from utils.encoders import encode

    def no_network(address, *args, **kwargs):
        raise AssertionError(f"network access to {address}")

    monkeypatch.setattr(socket, "create_connection", no_network)
    vectors = encode(["likes noir films", "likes cartoons", "likes noir movies"], "minilm", progress=False)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    cosine = vectors @ vectors.T / np.outer(np.linalg.norm(vectors, axis=1), np.linalg.norm(vectors, axis=1))
    assert cosine[0, 2] > cosine[0, 1]


def test_umap_missing_is_refused_clearly(monkeypatch):
    # with umap-learn installed, test_original_files runs reduce_dim's default method (umap) for real
    from utils.embeddings import reduce_matrix

    monkeypatch.setitem(sys.modules, "umap", None)  # as if not installed: ``import umap`` raises ImportError
    with pytest.raises(UserError, match="umap-learn.*method: pca"):
        reduce_matrix(torch.randn(60, 12), 4, "umap")


def test_umap_leaves_torchs_thread_count_as_it_found_it(monkeypatch):
    """UMAP's fit resets numba's threads, which (numba's OpenMP layer) changes torch's too: 1 became 2 in a training
    after reduce_dim. Whatever the fit does to it, reduce_matrix gives training back the count it had."""
    import umap

    from utils.embeddings import reduce_matrix

    fit = umap.UMAP.fit_transform

    def fit_changing_threads(self, *args, **kwargs):
        torch.set_num_threads(torch.get_num_threads() + 1)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(umap.UMAP, "fit_transform", fit_changing_threads)
    before = torch.get_num_threads()
    try:
        reduced, method = reduce_matrix(torch.randn(60, 12), 4, "umap")
        assert torch.get_num_threads() == before and method == "umap" and reduced.shape == (60, 4)
    finally:
        torch.set_num_threads(before)


def test_make_profiles_cli_writes_profiles_and_metadata(workdir, capsys):
    path = shrink("neumf/neumf_ml100k.yaml", workdir)
    assert make_profiles.main(["--config", str(path), "--encoder", "tfidf", "--out", "cli_users"]) == 0
    out = capsys.readouterr().out
    assert "wrote 298 user profiles (template + tfidf" in out and "example (user " in out
    out = workdir / "emb" / "ml-100k" / "cli_users.json"
    meta = json.loads(meta_path(out).read_text())
    assert meta["encoder"] == "tfidf" and meta["split"]["seed"] == 42 and len(read_profiles(out)) == 298


def test_make_profiles_cli_reports_a_bad_config_in_one_line(workdir, capsys):
    bad = workdir / "bad.yaml"
    bad.write_text("model: NeuMF\ndataset: ml-100k\nscenario: [{'trian': None}]\n")
    assert make_profiles.main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "did you mean 'train'" in err


def test_an_unknown_llm_option_is_one_line_naming_the_known_ones():
    with pytest.raises(UserError, match=r"unknown key 'backoff' in llm_config.build_profiles.llm.*max_retries"):
        ProfileSpec.from_config({"to": "u.json", "source": "llm", "llm": {"base_url": "http://x/v1", "backoff": 1}})


def test_umaps_compiled_functions_are_kept_on_disk_after_a_fit():
    """umap-learn compiles its neighbour and membership functions without numba's cache: every process that fitted a
    UMAP compiled them again (about 10 s). After reduce_matrix, every numba function of umap's core modules has a
    cache, so the next process loads them."""
    import numba
    import umap.umap_
    import umap.utils

    from utils.embeddings import reduce_matrix

    reduce_matrix(torch.randn(60, 12), 4, "umap")
    compiled = [f for module in (umap.umap_, umap.utils) for f in vars(module).values()
                if isinstance(f, numba.core.dispatcher.Dispatcher)]
    assert {"fast_knn_indices", "smooth_knn_dist", "compute_membership_strengths"} <= {f.__name__ for f in compiled}
    assert all(type(f._cache).__name__ != "NullCache" for f in compiled)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_profiles_are_written_entry_by_entry_as_json_dump_writes_the_list(tmp_path, count):
    """write_profiles streams the entries (100,000 users' embeddings as Python floats were about 1.2 GB at once):
    the bytes are those json.dump wrote for the whole list, non-ASCII text and 7-decimal rounding included."""
    from utils.profiles import profile_entries, write_profiles

    ids = [str(k) for k in range(1, count + 1)]
    descriptions = [f"Zoë's profile {k}: «films» ✓" for k in range(count)]
    prompts = {i: f"prompt {i}" for i in ids}
    vectors = np.random.default_rng(0).standard_normal((count, 5)).astype(np.float32)
    extras = {i: {"history": [i, "7"]} for i in ids}
    write_profiles(tmp_path / "p.json", ids, descriptions, prompts, vectors, extras)
    entries = list(profile_entries(ids, descriptions, prompts, vectors, extras))
    expected = tmp_path / "expected.json"
    with open(expected, "w", encoding="utf-8") as fh:
        json.dump(entries, fh, ensure_ascii=False)
    assert (tmp_path / "p.json").read_bytes() == expected.read_bytes()
    assert [e["id"] for e in json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))] == ids
