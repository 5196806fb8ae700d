"""The original tool's experiment files run here: one file per pattern of its studies, in its long style
(``{'command': ..., 'params': ...}`` steps, indented top level), with ml-100k-sized data and one epoch per part.

Each file in ``tests/original_style/`` failed before (a traceback, a refusal with a wrong hint, a silently different
reduction, or columns missing from the journal) and runs to ``status: done`` now.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import recbole
import torch
from helpers import ROOT

import make_profiles
import run_exps
from models.losses import AutoIntUserCosine
from utils.data import build_dataset, prepare_data
from utils.experiment import check_experiment
from utils.registry import available_losses, get_loss_class

pytestmark = pytest.mark.e2e

FIXTURES = ROOT / "tests" / "original_style"
ML100K_INTER = Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.inter"
WIDTH = 48  # profile width of the JSON files the tests write


def place(name, workdir):
    """Copy an original-style file into the working directory, unchanged."""
    return Path(shutil.copy(FIXTURES / name, workdir / name))


def write_profiles(workdir, dataset, entity_ids, name="user_embs.json"):
    """A profile JSON in the original's layout (``id``, ``description``, ``embedding``) under
    ``./datasets/llm_embeddings/<dataset>/``; returns id -> embedding."""
    rng = np.random.default_rng(0)
    profiles = {int(i): rng.standard_normal(WIDTH).round(4).tolist() for i in entity_ids}
    folder = workdir / "datasets" / "llm_embeddings" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    entries = [{"id": i, "description": f"profile {i}", "embedding": e} for i, e in profiles.items()]
    (folder / name).write_text(json.dumps(entries))
    return profiles


def ml100k():
    return pd.read_csv(ML100K_INTER, sep="\t")


def journal_row(workdir):
    (row,) = pd.read_csv(workdir / "original_style.csv", index_col=0).to_dict("records")
    return row


def assert_done(workdir, path, capfd):
    assert run_exps.main([str(path)]) == 0
    printed = capfd.readouterr()
    assert "Traceback" not in printed.out + printed.err
    row = journal_row(workdir)
    assert row["status"] == "done", row["error"]
    return row, printed.out + printed.err


def test_reg_weight_written_1e_5_is_a_number_and_simplex_trains(workdir, capfd):
    write_profiles(workdir, "ml-100k", range(1, 944))
    path = place("01_simplex_literal_strings.yaml", workdir)
    config = check_experiment(path).config
    assert config["reg_weight"] == 1e-5 and config["learning_rate"] == 0.01 and config["gamma"] == 0.5
    assert config["user_inter_num_interval"] == "[20,40)"  # not a literal: stays a string
    row, _ = assert_done(workdir, path, capfd)
    assert json.loads(row["train_1:best_test_res"])["ndcg@10"] >= 0.0


def write_benchmark_dataset(workdir, name="ml-100k-parts", users=300):
    """``<name>.part1/2/3.inter`` from ml-100k's first users: each user's latest interaction is the test file,
    the one before it the validation file, the rest the training file."""
    frame = ml100k()
    frame = frame[frame["user_id:token"] <= users].sort_values(["user_id:token", "timestamp:float"], kind="stable")
    latest = frame.groupby("user_id:token").cumcount(ascending=False)
    folder = workdir / "datasets" / name
    folder.mkdir(parents=True)
    parts = {"part1": frame[latest >= 2], "part2": frame[latest == 1], "part3": frame[latest == 0]}
    for part, rows in parts.items():
        rows.to_csv(folder / f"{name}.{part}.inter", sep="\t", index=False)
    return parts


def test_benchmark_files_load_split_the_training_file_and_feed_make_profiles(workdir, capfd):
    parts = write_benchmark_dataset(workdir)
    write_profiles(workdir, "ml-100k-parts", range(1, 301))
    path = place("02_neumf_benchmark_files.yaml", workdir)
    row, out = assert_done(workdir, path, capfd)
    assert json.loads(row["eval_split"]) == {"benchmark_filename": ["part1", "part2", "part3"]}
    assert json.loads(row["train_split"]) == [0.5, 0.5]
    assert row["train_0:train_ds_ind"] == 0 and row["train_1:train_ds_ind"] == 1
    assert row["inter_num"] == sum(len(rows) for rows in parts.values())
    config = check_experiment(path).config
    data = prepare_data(config, build_dataset(config), [0.5, 0.5])
    sizes = [len(loader.dataset) for loader in data.train_parts]
    assert sizes[0] and sizes[1] and sizes[0] + sizes[1] == sizes[2] == len(parts["part1"])  # the training file

    assert make_profiles.main(["--config", str(path), "--encoder", "tfidf", "--dim", "16", "--out", "tmpl"]) == 0
    profiles = json.loads((workdir / "datasets" / "llm_embeddings" / "ml-100k-parts" / "tmpl.json").read_text())
    train = parts["part1"].groupby("user_id:token")["item_id:token"].apply(lambda s: set(map(str, s)))
    assert len(profiles) == len(train)
    for profile in profiles:
        assert set(map(str, profile["history"])) == train[int(profile["id"])]


def test_profiles_of_every_user_meet_a_filtered_dataset_rows_picked_by_id(workdir, capfd):
    profiles = write_profiles(workdir, "ml-100k", range(1, 944))
    path = place("03_neumf_profiles_of_all_users.yaml", workdir)
    row, out = assert_done(workdir, path, capfd)
    warnings = [line for line in out.splitlines() if "profiles are of ids the dataset does not keep" in line]
    assert len(warnings) == 1 and "645 of 943" in warnings[0] and "by: exp_2024_04_11" in warnings[0]
    matrix = torch.load(workdir / "datasets" / "llm_embeddings" / "ml-100k" / "user48.pt", weights_only=True)
    tokens = build_dataset(check_experiment(path).config).field2id_token["user_id"][1:]
    assert matrix.shape == (row["user_num"] - 1, WIDTH) == (len(tokens), WIDTH)
    expected = torch.tensor([profiles[int(token)] for token in tokens])
    assert torch.allclose(matrix, expected)


def test_kar_file_with_the_original_names_and_keys_trains(workdir, capfd):
    write_profiles(workdir, "ml-100k", range(1, 944))
    write_profiles(workdir, "ml-100k", range(1, 1683), name="item_embs.json")
    path = place("04_autointkar_original_keys.yaml", workdir)
    row, out = assert_done(workdir, path, capfd)
    assert row["model"] == "AutoIntKAR" and "AutoIntKar on ml-100k" in out  # the name in the file; the class found
    (note,) = [line for line in out.splitlines() if "the original tool's KAR keys" in line]
    assert "user_profile_json" in note and "output_kar_dim" in note


@pytest.mark.long
def test_reduce_dim_without_a_method_runs_umap_and_says_so(workdir, capfd):
    write_profiles(workdir, "ml-100k", range(1, 944))
    path = place("05_neumf_reduce_dim_default.yaml", workdir)
    row, out = assert_done(workdir, path, capfd)
    (reduction,) = json.loads(row["train_0:reduce_dim"])
    assert reduction["method"] == "umap" and reduction["dimension"] == 16
    assert "no method named: UMAP" in out and "-> umap ->" in out


def test_autoint_user_cos_sim_trains_and_base_classes_are_no_choice(workdir, capfd):
    assert get_loss_class("AutoIntUserCosSim", "AutoInt") is AutoIntUserCosine
    assert not {"DistilLoss", "UserRowsLoss", "GraphUserLoss"} & set(available_losses("AutoInt"))
    write_profiles(workdir, "ml-100k", range(1, 944))
    path = place("06_autoint_cossim.yaml", workdir)
    row, _ = assert_done(workdir, path, capfd)
    assert row["train_0:loss_name"] == "AutoIntUserCosSim"


def test_a_split_run_stopped_in_part_0_still_journals_the_train_1_group(workdir, capfd):
    write_profiles(workdir, "ml-100k", range(1, 944))
    path = place("07_neumf_split_stopped_after_part1.yaml", workdir)
    assert run_exps.main([str(path)]) == 0
    assert "Traceback" not in "".join(capfd.readouterr())
    journal = pd.read_csv(workdir / "original_style.csv", index_col=0)
    (row,) = journal.to_dict("records")
    assert row["status"] == "stopped" and json.loads(row["train_0:best_test_res"])
    train_1 = [column for column in journal.columns if column.startswith("train_1:")]
    assert {"train_1:loss_name", "train_1:best_test_res", "train_1:bestmodel_file"} <= set(train_1)
    assert all(pd.isna(row[column]) for column in train_1)
