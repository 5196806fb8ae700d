"""The protocol audit (issue 15): leaky profiles on purpose and labelled, the shuffled control, two evaluation
protocols from one training run, the audit generator, and the cold-start cut."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import ROOT, build, run_generated, shrink
from recbole.utils import init_seed

import report
import run_exps
from utils.data import build_dataset, prepare_data
from utils.embeddings import derangement
from utils.errors import UserError
from utils.journal import JournalRecord
from utils.profiles import ProfileSpec, build_profiles, ensure_profiles, meta_path, prepare_profiles, read_meta
from utils.settings import parse_settings


@pytest.fixture(scope="module")
def neumf():
    config, data, _ = build("NeuMF")
    return config, data


def pairs(data, loader):
    dataset = data.dataset
    inter = loader.dataset.inter_feat
    users = dataset.id2token(dataset.uid_field, inter[dataset.uid_field].numpy())
    items = dataset.id2token(dataset.iid_field, inter[dataset.iid_field].numpy())
    return set(zip(users, items, strict=True))


# --- 1. leaky profiles --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_histories(neumf, tmp_path_factory):
    config, data = neumf
    folder = tmp_path_factory.mktemp("leaky")
    for name, history in (("train.json", "train"), ("leaky.json", "all")):
        build_profiles(ProfileSpec(to=name, encoder="tfidf", dim=8, history=history), config, data, folder,
                       progress=False)
    return folder


def test_a_leaky_profile_includes_test_items_the_train_only_profile_does_not(neumf, two_histories):
    config, data = neumf
    train = {p["id"]: set(p["history"]) for p in json.loads((two_histories / "train.json").read_text())}
    leaky = {p["id"]: set(p["history"]) for p in json.loads((two_histories / "leaky.json").read_text())}
    test = pairs(data, data.test)
    leaked = {(u, i) for u, items in leaky.items() for i in items if (u, i) in test}
    assert leaked == test  # every test interaction is in some leaky profile's history ...
    assert not {(u, i) for u, items in train.items() for i in items} & test  # ... and in no train-only one
    meta = read_meta(two_histories / "leaky.json")
    assert meta["history"] == "all" and meta["leaky"] is True
    assert meta["profile_interactions"] > meta["split"]["train_interactions"]
    assert read_meta(two_histories / "train.json")["leaky"] is False


def test_leaky_profiles_are_rebuilt_for_a_scenario_that_asks_for_train_only(neumf, two_histories, tmp_path):
    config, data = neumf
    for suffix in ("", ".meta"):
        (tmp_path / f"u{suffix}.json").write_bytes((two_histories / f"leaky{suffix}.json").read_bytes())
    said = []
    state = ensure_profiles(ProfileSpec(to="u.json", encoder="tfidf", dim=8), config, data, tmp_path, say=said.append)
    assert state == "rebuilt" and "all interactions (leaky)" in said[-1]
    assert read_meta(tmp_path / "u.json")["history"] == "train"


def test_a_matrix_made_from_leaky_profiles_is_read_only_when_asked_for(tmp_path):
    from utils.profiles import mark_leaky, refuse_unasked_leaky_matrix

    matrix = tmp_path / "user8.pt"
    torch.save(torch.zeros(3, 8), matrix)
    train_only = parse_settings({"llm_config": {"build_profiles": {"to": "u.json"}}})[0].llm_config
    asking = parse_settings({"llm_config": {"build_profiles": {"to": "u.json", "history": "all"}}})[0].llm_config
    refuse_unasked_leaky_matrix(matrix, train_only)
    mark_leaky(matrix, True)
    with pytest.raises(UserError, match="user8.pt was made from leaky profiles"):
        refuse_unasked_leaky_matrix(matrix, train_only)
    refuse_unasked_leaky_matrix(matrix, asking)
    mark_leaky(matrix, False)
    refuse_unasked_leaky_matrix(matrix, train_only)


def test_a_bad_history_is_one_line():
    with pytest.raises(UserError, match="history must be train or all, got 'test'"):
        ProfileSpec.from_config({"to": "u.json", "history": "test"})


def test_a_scenario_reading_leaky_profiles_without_asking_for_them_fails_in_one_line(workdir, two_histories, capfd):
    path = shrink("neumf/neumf_ml100k.yaml", workdir)
    raw = yaml.safe_load(path.read_text())
    llm = raw["llm_config"]
    llm.pop("build_profiles")
    folder = workdir / "emb" / "ml-100k"
    folder.mkdir(parents=True)
    name = llm["preprocess_from_json"]["from"]
    (folder / name).write_bytes((two_histories / "leaky.json").read_bytes())
    meta_path(folder / name).write_bytes(meta_path(two_histories / "leaky.json").read_bytes())
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert run_exps.main([str(path)]) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert f"{name} holds leaky profiles" in line and "history: all" in line


# --- 2. the shuffled control --------------------------------------------------------------------------------------


def test_derangement_moves_every_row_and_is_reproducible_by_seed():
    order = derangement(500, seed=3)
    assert sorted(order) == list(range(500)) and not (order == np.arange(500)).any()
    assert (order == derangement(500, seed=3)).all() and not (order == derangement(500, seed=4)).all()


def test_shuffled_matrix_is_a_row_permutation_of_the_real_one_without_fixed_rows(neumf, two_histories, tmp_path):
    config, data = neumf
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "p.json").write_bytes((two_histories / "train.json").read_bytes())
    meta_path(folder / "p.json").write_bytes(meta_path(two_histories / "train.json").read_bytes())
    convert = [{"from": "p.json", "to": "real.pt"}, {"from": "p.json", "to": "shuffled.pt", "shuffle": True},
               {"from": "p.json", "to": "again.pt", "shuffle": True},
               {"from": "p.json", "to": "other.pt", "shuffle": 5}]
    settings, _ = parse_settings({"llm_config": {"embeddings_path": str(tmp_path), "preprocess_from_json": convert}})
    record = JournalRecord("x.yaml", "x")
    prepare_profiles(settings.llm_config, config, data, record)
    real, shuffled, again, other = (torch.load(folder / f"{n}.pt") for n in ("real", "shuffled", "again", "other"))
    matches = (shuffled[:, None, :] == real[None, :, :]).all(-1)  # [shuffled row, real row]
    assert (matches.sum(1) >= 1).all()  # every shuffled row is some user's real profile
    order = matches.float().argmax(1)
    assert sorted(order.tolist()) == list(range(len(real)))  # a permutation of the rows
    assert (order != torch.arange(len(real))).float().mean() > 0.99  # (almost) nobody keeps their own
    assert torch.equal(shuffled, again) and not torch.equal(shuffled, other)  # seeded: the experiment's, or its own
    assert "shuffled among users (seed 7)" in record.values["profiles"]


def test_a_bad_shuffle_value_is_one_line():
    with pytest.raises(UserError, match="shuffle must be true, false or a seed"):
        parse_settings({"llm_config": {"preprocess_from_json": {"from": "a.json", "to": "a.pt", "shuffle": "yes"}}})


# --- 3 and 4. the audit folder, both protocols, report ------------------------------------------------------------


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    """NeuMF's four audit variants (seed 1), one epoch per phase, run for real."""
    names = [f"neumf_{variant}_s1" for variant in ("baseline", "llmkt", "leaky", "shuffled")]
    return run_generated("audit_ml100k/generate.py", names, tmp_path_factory.mktemp("audit"))


def test_generated_audit_trains_every_variant_alike_and_evaluates_under_both_protocols(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "experiments/audit_ml100k/generate.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=120)
    assert len(list(tmp_path.glob("*.yaml"))) == 3 * 4 * 5
    runs = {v: yaml.safe_load((tmp_path / f"simplex_{v}_s2.yaml").read_text())
            for v in ("baseline", "llmkt", "leaky", "shuffled")}
    epochs = {v: [s["set_config"]["epochs"] for s in r["scenario"] if "set_config" in s] for v, r in runs.items()}
    assert len({tuple(e) for e in epochs.values()}) == 1 and epochs["baseline"] == [100, 100]
    assert {r["stopping_step"] for r in runs.values()} == {10}
    for raw in runs.values():
        assert raw["scenario"][-1] == {"test_eval": {"mode": "uni100"}}
    assert runs["leaky"]["llm_config"]["build_profiles"]["history"] == "all"
    assert runs["shuffled"]["llm_config"]["preprocess_from_json"]["shuffle"] is True
    assert runs["shuffled"]["llm_config"]["build_profiles"] == runs["llmkt"]["llm_config"]["build_profiles"]
    assert "llm_config" not in runs["baseline"]


def test_the_tuning_sweep_gives_the_baseline_the_budget_llmkt_had(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "experiments/audit_ml100k/generate.py"), "--tuning", "--out",
                    str(tmp_path)], check=True, capture_output=True, timeout=120)
    names = sorted(p.name for p in tmp_path.glob("*.yaml"))
    for model, budget in (("neumf", 10), ("simplex", 3), ("multivae", 3)):
        assert len([n for n in names if n.startswith(model)]) == (budget + 1) * 3
    for path in tmp_path.glob("*.yaml"):
        raw = yaml.safe_load(path.read_text())
        assert raw["seed"] in (11, 12, 13) and not any("test_eval" in s for s in raw["scenario"])


@pytest.mark.parametrize("side", ["users", "items"])
def test_the_cold_start_study_compares_baseline_and_train_only_llmkt_on_one_side(tmp_path, side):
    subprocess.run([sys.executable, str(ROOT / "experiments/audit_ml100k/generate.py"), "--cold-start", "2",
                    *(["--items"] if side == "items" else []), "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=120)
    names = sorted(p.name for p in tmp_path.glob("*.yaml"))
    models = ("neumf", "simplex") if side == "users" else ("neumf",)
    expected = [f"{m}_s{s}_{v}.yaml" for m in models for v in ("baseline", "llmkt") for s in range(1, 6)]
    expected += [f"neumf_s{s}_llmkt_allrows.yaml" for s in range(1, 6)]  # NeuMF (its layer is a table), k = 2 only
    assert names == sorted(expected)
    assert names[:3] == ["neumf_s1_baseline.yaml", "neumf_s1_llmkt.yaml", "neumf_s1_llmkt_allrows.yaml"]  # seed first
    base, llmkt = (yaml.safe_load((tmp_path / f"neumf_s3_{v}.yaml").read_text()) for v in ("baseline", "llmkt"))
    assert base["cold_start"] == llmkt["cold_start"] == {side: 0.2, "k": 2}
    assert "llm_config" not in base and llmkt["stopping_step"] == 10
    llm = llmkt["llm_config"]
    assert "history" not in llm["build_profiles"]  # train-only: what remains of the cut training split
    assert llm["build_profiles"]["to"].endswith("_cold2.json")
    assert llm["preprocess_from_json"]["to"].endswith("_cold2.pt")
    (wrap,) = [s["wrap_model"] for s in llmkt["scenario"] if "wrap_model" in s]
    (reduce,) = [s["reduce_dim"] for s in llmkt["scenario"] if "reduce_dim" in s]
    assert reduce["file_in"] == llm["preprocess_from_json"]["to"]
    entity = side[:-1]
    assert wrap[f"{entity}s_emb_file"] == reduce["file_out"] and len([k for k in wrap if k.endswith("_emb_file")]) == 1
    assert llm["build_profiles"].get("entity", "user") == llm["preprocess_from_json"].get("entity", "user") == entity
    assert llm[f"use_{entity}_emb"] is True and llm["use_item_emb" if side == "users" else "use_user_emb"] is False
    if side == "items":
        assert wrap["entity"] == "item" and wrap["rows"] == "batch"
        assert [s["set_outputs"] for s in llmkt["scenario"] if "set_outputs" in s] == [["item_mf_embedding"]]
    allrows = yaml.safe_load((tmp_path / "neumf_s3_llmkt_allrows.yaml").read_text())
    (wrap_all,) = [s["wrap_model"] for s in allrows["scenario"] if "wrap_model" in s]
    assert wrap_all["distil_loss"] == "HiddenDistil" and wrap_all["rows"] == "all" and wrap_all["entity"] == entity
    assert [s["set_outputs"] for s in allrows["scenario"] if "set_outputs" in s] == [[f"{entity}_mf_embedding"]]
    assert allrows["llm_config"]["build_profiles"] == llm["build_profiles"]  # the same profiles ...
    assert allrows["llm_config"]["preprocess_from_json"]["to"] != llm["preprocess_from_json"]["to"]  # own matrix
    assert allrows["cold_start"] == llmkt["cold_start"] and allrows["seed"] == llmkt["seed"] == 3
    assert run_exps.main(["--check", str(tmp_path)]) == 0
    other = tmp_path / "k5"
    subprocess.run([sys.executable, str(ROOT / "experiments/audit_ml100k/generate.py"), "--cold-start", "5",
                    *(["--items"] if side == "items" else []), "--out", str(other)],
                   check=True, capture_output=True, timeout=120)
    assert len(list(other.glob("*.yaml"))) == len(names) - 5 and not list(other.glob("*allrows*"))


@pytest.mark.long
@pytest.mark.xdist_group("audit")  # one worker builds the module fixture once
def test_both_protocols_are_journaled_side_by_side_with_epochs_and_labels(audit):
    journal = pd.read_csv(audit / "audit_journal.csv", index_col=0)
    assert len(journal) == 4 and set(journal["status"]) == {"done"}
    for row in journal.to_dict("records"):
        test = json.loads(row["train_1:best_test_res"])
        assert {"ndcg@10", "uni100:ndcg@10", "hit@10", "uni100:hit@10"} <= set(test)
        assert test["uni100:ndcg@10"] != test["ndcg@10"]  # no longer one overwriting the other
        assert row["train_1:epochs_run"] == 1 and row["train_1:best_epoch"] == 0
    profiles = dict(zip(journal["variant"], journal["profiles"].fillna(""), strict=False))
    assert "leaky (history: all)" in profiles["leaky"] and "leaky" not in profiles["llmkt"]
    assert "shuffled among users" in profiles["shuffled"] and profiles["baseline"] == ""
    folder = audit / "emb" / "ml-100k"
    assert (folder / "user_tfidf256_leaky_rs_s1.pt.leaky").is_file()  # the leak travels with the vectors ...
    assert not (folder / "user_tfidf256_rs_s1.pt.leaky").exists()
    assert not (folder / "user8.pt.leaky").exists()  # ... and leaves a reduced matrix rewritten from real profiles


@pytest.mark.long
@pytest.mark.xdist_group("audit")  # one worker builds the module fixture once
def test_report_compares_variants_under_each_protocol_and_marks_leaky_ones(audit, tmp_path, capsys):
    assert report.main([str(audit), "--out", str(tmp_path), "--curves", "none"]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "## Protocol full (the experiments' own)" in text and "## Protocol uni100" in text
    assert "**Leaky variants**" in text
    (line,) = [x for x in text.splitlines() if x.startswith("- NeuMF (ndcg@10): ")]
    assert ("same ordering" in line) != ("ordering CHANGES" in line) and "full: " in line and "uni100: " in line
    assert (tmp_path / "bars_uni100.png").is_file()
    table = pd.read_csv(tmp_path / "runs.csv")
    assert len(table) == 4 and {"experiment", "variant", "ndcg@10", "uni100:ndcg@10"} <= set(table.columns)
    check = subprocess.run([sys.executable, str(ROOT / "tools/compare_journals.py"), str(tmp_path / "runs.csv"),
                            str(audit / "audit_journal.csv")], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "4 of 4 experiments reproduce to 4 decimals" in check.stdout
    runs = report.load_runs(report.find_journals(audit))
    uni = report.by_protocol(runs)["uni100"]
    values = uni[uni["variant"] == "llmkt"].sort_values("seed")["metrics"].map(lambda m: m["ndcg@10"])
    journal = pd.read_csv(audit / "audit_journal.csv", index_col=0)
    expected = [json.loads(c)["uni100:ndcg@10"] for c in journal[journal["variant"] == "llmkt"].sort_values("seed")[
        "train_1:best_test_res"]]
    assert list(values) == pytest.approx(expected)
    assert "does the protocol change the ordering" in capsys.readouterr().out


def test_split_protocols_keeps_the_main_protocol_apart():
    metrics = {"ndcg@10": 0.3, "uni100:ndcg@10": 0.6, "auc": 0.7}
    assert report.split_protocols(metrics, "full") == {"full": {"ndcg@10": 0.3, "auc": 0.7},
                                                       "uni100": {"ndcg@10": 0.6}}


def fake_runs(values, cold=None):
    """load_runs' rows from {(variant, seed): (full ndcg@10, uni100 ndcg@10)}."""
    return pd.DataFrame([{"model": "NeuMF" + (f" [{cold}]" if cold else ""), "variant": variant, "seed": seed,
                          "protocol": "full", "leaky": variant == "leaky",
                          "protocols": {"full": {"ndcg@10": full}, "uni100": {"ndcg@10": uni}}}
                         for (variant, seed), (full, uni) in values.items()])


def test_the_gain_table_puts_each_variants_change_under_every_protocol_side_by_side():
    values = {("baseline", 1): (0.20, 0.40), ("baseline", 2): (0.22, 0.42), ("baseline", 3): (0.21, 0.41),
              ("leaky", 1): (0.23, 0.48), ("leaky", 2): (0.24, 0.50), ("leaky", 3): (0.24, 0.49),
              ("llmkt", 1): (0.20, 0.41), ("llmkt", 2): (0.22, 0.43), ("llmkt", 3): (0.21, 0.41)}
    protocols = report.by_protocol(fake_runs(values))
    summaries = {name: report.summarize(runs, ["ndcg@10"]) for name, runs in protocols.items()}
    table = report.gain_table(summaries, "ndcg@10").set_index("variant")
    assert list(table.columns) == ["model", "full", "uni100"] and list(table.index) == ["leaky", "llmkt"]
    leaky_full = (0.71 / 3) / 0.21 - 1
    assert table.loc["leaky", "full"].startswith(f"{leaky_full:+.1%} (p=0.0")
    assert table.loc["leaky", "uni100"].startswith("+19.5% (p=0.0")
    assert table.loc["llmkt", "full"].startswith("+0.0% (p=")
    (line,) = report.decomposition_lines(summaries, "ndcg@10")
    assert line.startswith("- NeuMF: the paper-style gain (leaky profiles, uni100) is +19.5%; with train-only profiles "
                           "under uni100 it is +1.6%, so leakage accounts for +17.9 points; under full ranking it is "
                           "+0.0%, so the sampled protocol accounts for +1.6 points; what survives: +0.0% (p=")


def test_an_ordering_that_changes_only_within_noise_says_so():
    noisy = {("baseline", 1): (0.20, 0.40), ("baseline", 2): (0.22, 0.41), ("baseline", 3): (0.21, 0.43),
             ("llmkt", 1): (0.21, 0.39), ("llmkt", 2): (0.21, 0.42), ("llmkt", 3): (0.22, 0.41)}
    summaries = {name: report.summarize(runs, ["ndcg@10"]) for name, runs in report.by_protocol(
        fake_runs(noisy)).items()}
    (line,) = report.ordering_lines(summaries, "ndcg@10")
    assert "the ordering CHANGES (within noise: no variant differs from the baseline with p < 0.05" in line
    clear = {**noisy, ("llmkt", 1): (0.25, 0.39), ("llmkt", 2): (0.27, 0.40), ("llmkt", 3): (0.26, 0.42)}
    summaries = {name: report.summarize(runs, ["ndcg@10"]) for name, runs in report.by_protocol(
        fake_runs(clear)).items()}
    (line,) = report.ordering_lines(summaries, "ndcg@10")
    assert "the ordering CHANGES under full, uni100" in line and "within noise" not in line


def test_the_epochs_table_gives_mean_range_and_best_epoch_per_part():
    row = pd.Series({"train_0:epochs_run": "30", "train_0:best_epoch": "18", "train_1:epochs_run": "12",
                     "train_1:best_epoch": "", "train_0:best_test_res": "{}", "train_1:best_test_res": "{}"})
    assert report.epochs_of(row) == {0: (30, 18), 1: (12, None)}
    runs = pd.DataFrame([{"model": "NeuMF", "variant": "llmkt", "epochs": {0: (30, 18), 1: (12, 2)}},
                         {"model": "NeuMF", "variant": "llmkt", "epochs": {0: (40, 28), 1: (14, 4)}}])
    (row,) = report.epochs_table(runs).to_dict("records")
    assert row["train_0: epochs run (range), best"] == "35 (30-40), best 23"
    assert row["train_1: epochs run (range), best"] == "13 (12-14), best 3"
    assert report.epochs_table(runs.assign(epochs=[{}, {}])) is None


def test_a_cold_start_runs_model_is_named_with_its_setting():
    assert report.setting_label({"cold_start": '{"users": 0.2, "k": 2, "cut_users": 189}'}) == "cold users k=2"
    assert report.setting_label({"cold_start": '{"items": 0.2, "k": 10, "cut_items": 336}'}) == "cold items k=10"
    assert report.setting_label({"cold_start": ""}) == report.setting_label({}) == ""


def cold_runs(tmp_path, user_values, item_values):
    """load_runs' rows for cold-start runs: user side from per-user histories {(variant, seed, k): [cold users'
    ndcg@10]} (two other users at 0.3 each), item side from {(variant, seed, k): cold_items:ndcg@10}."""
    rows = []
    for (variant, seed, k), cold in user_values.items():
        path = tmp_path / f"users_{variant}_{seed}_{k}.json"
        path.write_text(json.dumps({"parts": {"1": {"test_per_user": {
            "user": list(range(len(cold) + 2)), "ndcg@10": list(cold) + [0.3, 0.3],
            "cold": [True] * len(cold) + [False, False]}}}}))
        rows.append({"base_model": "NeuMF", "cold": ("users", k), "variant": variant, "seed": seed, "part": 1,
                     "history": str(path), "metrics": {"ndcg@10": 0.3}, "protocols": {}})
    for (variant, seed, k), value in item_values.items():
        rows.append({"base_model": "NeuMF", "cold": ("items", k), "variant": variant, "seed": seed, "part": 1,
                     "history": None, "metrics": {"ndcg@10": 0.25},
                     "protocols": {"full": {"ndcg@10": 0.25},
                                   "cold_items": {"ndcg@10": value, "recall@100": 5 * value}}})
    rows.append({"base_model": "NeuMF", "cold": None, "variant": "llmkt", "seed": 1, "part": 1, "history": None,
                 "metrics": {"ndcg@10": 0.9}, "protocols": {}})  # not a cold-start run: left out
    return pd.DataFrame(rows)


def test_the_cold_start_gain_against_k_pairs_seeds_and_pools_users(tmp_path):
    users = {("baseline", s, k): [0.10, 0.12, 0.08] for s in (1, 2, 3) for k in (2, 5)}
    users.update({("llmkt", s, 2): [0.12 + 0.001 * s, 0.13, 0.09] for s in (1, 2, 3)})  # +~12 % on every seed
    users.update({("llmkt", s, 5): [0.10, 0.12, 0.08 + 0.002 * (s - 2)] for s in (1, 2, 3)})  # no change on average
    items = {("baseline", 1, 2): 0.05, ("baseline", 2, 2): 0.06, ("llmkt", 1, 2): 0.05, ("llmkt", 2, 2): 0.061}
    gains = report.cold_gain(cold_runs(tmp_path, users, items))
    assert [(r.side, r.k, r.n) for r in gains.itertuples()] == [("items", 2, 2), ("users", 2, 3), ("users", 5, 3)]
    row = gains.set_index(["side", "k"]).loc[("users", 2)]
    base, var = np.mean([0.10, 0.12, 0.08]), np.mean([[0.12 + 0.001 * s, 0.13, 0.09] for s in (1, 2, 3)])
    assert row["baseline"] == pytest.approx(base) and row["value"] == pytest.approx(var)
    assert row["change"] == pytest.approx(var / base - 1) and row["p"] < 0.05 and row["ci"] > 0
    assert row["rest_change"] == pytest.approx(0.0)  # the other users did not move
    t_p, wilcoxon_p = row["user_p"]
    assert 0 < t_p < 1 and 0 < wilcoxon_p < 1
    assert gains.set_index(["side", "k"]).loc[("users", 5), "change"] == pytest.approx(0.0)
    items_row = gains.set_index(["side", "k"]).loc[("items", 2)]
    assert items_row["change"] == pytest.approx(0.111 / 0.11 - 1) and items_row["user_p"] is None
    deep = report.cold_gain(cold_runs(tmp_path, users, items), "recall@100")  # per-user values have no recall@100
    assert list(deep["side"]) == ["items"] and deep["change"].iloc[0] == pytest.approx(0.111 / 0.11 - 1)
    assert report.cold_gain_table(deep)["rest: change (p)"].iloc[0] == "n/a"  # the whole test split has no @100
    (line,) = report.cold_verdict(gains)
    assert line.startswith("- Reaches the target (+10% ndcg@10 on the cold users, p < 0.05): llmkt on NeuMF, "
                           "cold users k=2, +")
    table = report.cold_gain_table(gains)
    assert list(table["seeds up"]) == ["1 of 2", "3 of 3", "1 of 3"]
    assert list(table["change (p over seeds)"])[1].startswith(f"{var / base - 1:+.1%} (p=0.0")
    assert report.cold_verdict(gains[gains["k"] == 5])[0].startswith(
        "- No setting reaches the target (+10% ndcg@10 on the cold users or items with p < 0.05 over seeds) in the "
        "1 tried; the largest relative change is +0.0%")
    assert report.plot_cold_gain(gains, tmp_path / "cold_gain.png").stat().st_size > 0


def test_cold_items_that_no_run_ranks_have_no_relative_change(tmp_path):
    items = {(v, s, k): 0.0 for v in ("baseline", "llmkt") for s in (1, 2, 3) for k in (2, 5)}
    items.update({("llmkt", s, 5): 0.01 * s for s in (1, 2, 3)})
    gains = report.cold_gain(cold_runs(tmp_path, {}, items)).set_index("k")
    table = report.cold_gain_table(gains.reset_index()).set_index("k")
    assert table.loc[2, "change (p over seeds)"] == "n/a (both under 0.0005) (p=1.000)"
    assert table.loc[5, "change (p over seeds)"].startswith("up from 0 (p=")
    assert table.loc[2, "95% interval of the per-seed change"] == "n/a"
    (line,) = report.cold_verdict(gains.reset_index())  # p is 0.07: no target met; and 'up from 0' is no ratio
    assert line == "- No setting reaches the target: no relative change could be computed (ndcg@10 under 0.0005)."
    assert report.plot_cold_gain(gains.reset_index(), tmp_path / "cold_gain.png").is_file()


def test_no_cold_start_runs_means_no_cold_start_section():
    assert report.cold_gain(pd.DataFrame([{"cold": None, "base_model": "NeuMF", "variant": "llmkt", "seed": 1}])) \
        is None


# --- 5. cold start ------------------------------------------------------------------------------------------------


def prepared(config, cold_start):
    init_seed(config["seed"], True)
    return prepare_data(config, build_dataset(config), cold_start=cold_start)


def train_counts(data):
    users = data.train_dataset.inter_feat[data.dataset.uid_field].numpy()
    return np.bincount(users, minlength=data.dataset.user_num)


def test_cold_start_cuts_exactly_k_training_interactions_of_the_chosen_users_only(neumf):
    config, _ = neumf
    whole = prepared(config, None)
    cut = prepared(config, {"users": 0.2, "k": 5})
    cold = sorted(cut.cold_users)
    present = np.flatnonzero(train_counts(whole))
    assert len(cold) == round(0.2 * len(present))
    assert (train_counts(cut)[cold] == 5).all()
    others = np.setdiff1d(present, cold)
    assert (train_counts(cut)[others] == train_counts(whole)[others]).all()
    whole_train, cut_train = pairs(whole, whole.train_parts[-1]), pairs(cut, cut.train_parts[-1])
    assert cut_train < whole_train
    tokens = set(whole.dataset.id2token(whole.dataset.uid_field, np.array(cold)))
    assert {u for u, _ in whole_train - cut_train} <= tokens  # only the cold users lost interactions
    assert pairs(cut, cut.valid) == pairs(whole, whole.valid) and pairs(cut, cut.test) == pairs(whole, whole.test)


def test_cold_start_is_reproducible_by_seed_and_takes_a_list_of_users(neumf):
    config, _ = neumf
    first, again = prepared(config, {"users": 0.1, "k": 2}), prepared(config, {"users": 0.1, "k": 2})
    assert first.cold_users == again.cold_users
    assert pairs(first, first.train_parts[-1]) == pairs(again, again.train_parts[-1])
    assert prepared(config, {"users": 0.1, "k": 2, "seed": 99}).cold_users != first.cold_users
    user = first.dataset.id2token(first.dataset.uid_field, np.array([1]))[0]
    listed = prepared(config, {"users": [user], "k": 10})
    assert listed.cold_users == {1} and train_counts(listed)[1] == 10


def test_item_side_cold_start_cuts_exactly_k_training_interactions_of_the_chosen_items_only(neumf):
    config, _ = neumf
    whole = prepared(config, None)
    cut = prepared(config, {"items": 0.1, "k": 2})
    field = whole.dataset.iid_field
    counts = [np.bincount(d.train_dataset.inter_feat[field].numpy(), minlength=d.dataset.item_num) for d in (whole,
                                                                                                              cut)]
    cold = sorted(cut.cold_items)
    assert cold and not cut.cold_users and (counts[1][cold] == 2).all() and (counts[0][cold] > 2).all()
    others = np.setdiff1d(np.arange(whole.dataset.item_num), cold)
    assert (counts[1][others] == counts[0][others]).all()
    assert pairs(cut, cut.valid) == pairs(whole, whole.valid) and pairs(cut, cut.test) == pairs(whole, whole.test)


@pytest.mark.parametrize("value, message", [
    ({"users": 0, "k": 5}, "users must be a fraction in"), ({"users": 1.5, "k": 5}, "users must be a fraction in"),
    ({"users": [], "k": 5}, "users must be a fraction in"), ({"users": 0.2, "k": -1}, "k must be an integer"),
    ({"users": 0.2, "k": "5"}, "k must be an integer"), ({"users": 0.2}, "missing key 'k' in cold_start"),
    ({"users": 0.2, "k": 5, "sead": 1}, "unknown key 'sead' in cold_start; did you mean 'seed'"),
    ({"users": ["1", "1"], "k": 5}, "lists a user twice"), ("0.2", "cold_start must be a mapping"),
    ({"users": 0.2, "items": 0.1, "k": 5}, "cold_start takes users or items"), ({"k": 5}, "users or items"),
    ({"items": 2, "k": 5}, "items must be a fraction in"),
])
def test_bad_cold_start_values_are_one_line(value, message):
    with pytest.raises(UserError, match=message) as caught:
        parse_settings({"cold_start": value})
    assert "\n" not in caught.value.line()


def test_a_listed_user_that_cannot_be_cut_is_one_line(neumf):
    config, data = neumf
    with pytest.raises(UserError, match="user 'nobody' is not in the dataset"):
        prepared(config, {"users": ["nobody"], "k": 2})
    user = data.dataset.id2token(data.dataset.uid_field, np.array([1]))[0]
    with pytest.raises(UserError, match="fewer than k=500"):
        prepared(config, {"users": [user], "k": 500})


def test_cold_users_are_journaled_and_reported_apart(workdir, tmp_path):
    path = shrink("neumf/neumf_ml100k.yaml", workdir, extra={"cold_start": {"users": 0.3, "k": 2, "seed": 4}})
    assert run_exps.main([str(path)]) == 0
    (row,) = pd.read_csv(path.parent / "neumf_journal.csv", index_col=0).to_dict("records")
    cold = json.loads(row["cold_start"])
    assert cold["k"] == 2 and cold["cut_users"] > 50
    history = json.loads((path.parent / row["history_file"]).read_text())
    per_user = history["parts"]["1"]["test_per_user"]
    flagged = [a for a, c in zip(per_user["activity"], per_user["cold"], strict=True) if c]
    assert len(flagged) == cold["cut_users"] and set(flagged) == {2}
    assert report.main([str(path.parent / "neumf_journal.csv"), "--out", str(tmp_path), "--curves", "none"]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "## Test NDCG@10 of the cold-start users" in text and "## Cold start: the gain against k" not in text


def test_cold_items_are_evaluated_apart_in_the_same_journal_cell(workdir):
    path = shrink("neumf/neumf_ml100k.yaml", workdir, extra={"cold_start": {"items": 0.2, "k": 1}})
    assert run_exps.main([str(path)]) == 0
    (row,) = pd.read_csv(path.parent / "neumf_journal.csv", index_col=0).to_dict("records")
    assert json.loads(row["cold_start"])["cut_items"] > 50
    test = json.loads(row["train_1:best_test_res"])
    assert 0.0 <= test["cold_items:recall@10"] <= 1.0 and test["cold_items:ndcg@10"] != test["ndcg@10"]
    assert "cold_items:recall@100" not in test  # sampled (uni100) test: its own cut-offs only


def test_cold_items_under_full_ranking_are_also_evaluated_at_100(workdir):
    full = {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"}
    path = shrink("neumf/neumf_ml100k.yaml", workdir, extra={"cold_start": {"items": 0.2, "k": 1}, "eval_args": full})
    assert run_exps.main([str(path)]) == 0
    (row,) = pd.read_csv(path.parent / "neumf_journal.csv", index_col=0).to_dict("records")
    test = json.loads(row["train_1:best_test_res"])
    assert test["cold_items:recall@100"] >= test["cold_items:recall@10"] and "cold_items:ndcg@100" in test
    assert "recall@100" not in test  # the deeper cut-off is the cold items' only
