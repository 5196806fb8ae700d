"""End to end: the ready scenarios of experiments/ train real RecBole models on ml-100k (shrunk: one epoch per phase,
small models, users with 20-39 interactions) and journal their results."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import EXPERIMENTS, ROOT, load, shrink

import run_exps
from utils.device import choose_device, describe_device
from utils.settings import parse_steps
from utils.tmanager import check_scenario

pytestmark = pytest.mark.e2e

READY = [
    "neumf/neumf_ml100k.yaml",
    "simplex/simplex_ml100k.yaml",
    "multivae/multivae_ml100k.yaml",
    "ngcf/ngcf_ml100k.yaml",
    "lightgcn/lightgcn_ml100k.yaml",
    "autoint/autoint_ml100k.yaml",
    "sasrec/sasrec_ml100k.yaml",
    "twotowers/twotowers_ml100k.yaml",
    "bpr/bpr_ml100k.yaml",
    "dcn/dcn_ml100k.yaml",
    "deepfm/deepfm_ml100k.yaml",
    "widedeep/widedeep_ml100k.yaml",
    "gru4rec/gru4rec_ml100k.yaml",
]


def journal_of(path):
    raw = yaml.safe_load(Path(path).read_text())
    return pd.read_csv(Path(path).parent / raw["journal_name"], index_col=0)


def written_in_short_form(experiment):
    return not all(isinstance(step, dict) and "command" in step for step in load(EXPERIMENTS / experiment)["scenario"])


@pytest.mark.parametrize("experiment", READY, ids=[Path(e).parent.name for e in READY])
def test_ready_scenario_runs_and_journals_both_phases(workdir, experiment):
    """One real training run per ready scenario, its steps written as the file writes them (the other form is a
    parsing question: test_both_step_forms_of_a_ready_scenario_check_to_the_same_steps)."""
    path = shrink(experiment, workdir, short_form=written_in_short_form(experiment))
    assert run_exps.main([str(path)]) == 0
    (row,) = journal_of(path).to_dict("records")
    assert row["status"] == "done" and row["config"] == path.name
    assert row["train_0:loss_name"].endswith(("RMSE", "Distil")) and json.loads(row["train_0:set_outputs"])
    for part in (0, 1):
        test = json.loads(row[f"train_{part}:best_test_res"])
        assert 0.0 <= test["ndcg@10"] <= 1.0
        assert Path(row[f"train_{part}:bestmodel_file"]).is_file()
    assert_distillation_trained_part_0(path.parent, row)


def assert_distillation_trained_part_0(folder, row):
    """Part 0 trained on the mix the journal names: RecBole's own epoch loss (the sum of what the Distiller
    returned per batch) is (1 - w) * model loss + w * distillation loss with w = train_0:dist_loss_w > 0 and a
    distillation loss that is not the model's. Distillation switched off (no hooks, w ignored, nothing captured)
    fails here."""
    alpha = float(row["train_0:dist_loss_w"])
    assert alpha > 0
    history = json.loads((folder / row["history_file"]).read_text())
    for epoch in history["parts"]["0"]["trains"][-1]["epochs"]:
        assert epoch["distil_loss"] is not None and epoch["distil_loss"] > 0
        trained_on = epoch["loss"] / epoch["batches"]
        mixed = (1 - alpha) * epoch["model_loss"] + alpha * epoch["distil_loss"]
        assert trained_on == pytest.approx(mixed, rel=1e-3)
        # the control: a loss that left the distillation out (the model loss alone) is told apart at that tolerance
        assert trained_on != pytest.approx(epoch["model_loss"], rel=1e-3)


KAR_FOLDER = sorted(str(p.relative_to(EXPERIMENTS)) for p in (EXPERIMENTS / "autoint_kar_ml100k").glob("*.yaml"))


@pytest.mark.parametrize("experiment", READY + KAR_FOLDER, ids=[Path(e).stem for e in READY + KAR_FOLDER])
def test_both_step_forms_of_a_ready_scenario_check_to_the_same_steps(tmp_path, experiment):
    """Long ({command: x, params: p}) and short ({x: p}) forms of the same shrunk scenario parse and check to the
    same commands and params, without training; the form the file uses is the one trained above."""
    checked = {}
    for form in ("long", "short"):
        folder = tmp_path / form
        folder.mkdir()
        raw = load(shrink(experiment, folder, short_form=form == "short"))
        assert all(("command" in step) == (form == "long") for step in raw["scenario"])
        steps = check_scenario(parse_steps(raw["scenario"]), model_name=raw["model"])
        checked[form] = [(step.index, command.name, params) for step, command, params in steps]
    assert checked["long"] == checked["short"] and len(checked["long"]) == len(load(EXPERIMENTS / experiment)[
        "scenario"])


def test_two_phase_split_distils_on_part_0_and_fine_tunes_on_part_1(workdir, capsys):
    path = shrink("neumf/neumf_ml100k.yaml", workdir, extra={"add_train_split": [0.5, 0.5]})
    raw = yaml.safe_load(path.read_text())
    steps = raw["scenario"]
    train_at = [i for i, s in enumerate(steps) if s["command"] == "train"]
    steps.insert(train_at[1], {"command": "set_train_dataset", "params": 1})
    steps.insert(train_at[0], {"command": "set_train_dataset", "params": 0})
    path.write_text(yaml.safe_dump(raw, sort_keys=False))

    assert run_exps.main([str(path)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("== "))
    assert header.endswith(f"device {describe_device(choose_device())}")  # the ready file leaves use_gpu unset
    (row,) = journal_of(path).to_dict("records")
    assert json.loads(row["train_split"]) == [0.5, 0.5]
    assert (row["train_0:train_ds_ind"], row["train_1:train_ds_ind"]) == (0, 1)
    assert row["train_0:loss_name"] == "NeumfUserRMSE" and json.loads(row["train_0:set_outputs"]) == [9]
    assert pd.isna(row["train_1:set_outputs"])  # hooks removed for fine-tuning
    for part in (0, 1):
        assert row[f"train_{part}:best_val_score"] > 0
        assert "ndcg@10" in json.loads(row[f"train_{part}:best_val_res"])
        assert "ndcg@10" in json.loads(row[f"train_{part}:best_test_res"])
        assert Path(row[f"train_{part}:bestmodel_file"]).is_file()
    assert row["train_0:bestmodel_file"] != row["train_1:bestmodel_file"]
    sizes = [int(line.split(": ")[1].split()[0]) for line in out.splitlines() if "training on part" in line]
    assert len(sizes) == 2 and abs(sizes[0] - sizes[1]) < 0.1 * sizes[0]


def quick_folder(workdir, names):
    folder = workdir / "batch"
    folder.mkdir()
    for name in names:
        shrink("neumf/neumf_ml100k.yaml", folder, extra={
            "scenario": [{"print": f"running {name}"}, {"init_model": None}, {"info": 0}, {"break": None}],
        }).rename(folder / name)
    return folder


def test_a_folder_runs_in_name_order_and_start_with_skips(workdir, capsys):
    folder = quick_folder(workdir, ["b_second.yaml", "c_third.yaml", "a_first.yaml"])
    assert run_exps.main([str(folder)]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("running ")]
    assert printed == ["running a_first.yaml", "running b_second.yaml", "running c_third.yaml"]

    assert run_exps.main([str(folder), "--start_with=1"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("running ")]
    assert printed == ["running b_second.yaml", "running c_third.yaml"]
    journal = pd.read_csv(folder / "neumf_journal.csv", index_col=0)
    assert list(journal["config"]) == ["a_first.yaml", "b_second.yaml", "c_third.yaml", "b_second.yaml",
                                       "c_third.yaml"]
    assert set(journal["status"]) == {"stopped"}


def test_runner_flags_do_not_reach_recbole(workdir, capsys):
    folder = quick_folder(workdir, ["a.yaml", "b.yaml"])
    assert run_exps.main([str(folder), "--start_with=1"]) == 0
    assert "will not be used in RecBole" not in capsys.readouterr().err


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "run_exps.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_a_mistyped_command_fails_fast_with_one_line_and_no_training(workdir, capfd):
    """In this process (tests/test_reliability.py runs a mistake through the real command line)."""
    path = shrink("neumf/neumf_ml100k.yaml", workdir)
    raw = yaml.safe_load(path.read_text())
    raw["scenario"][8]["command"] = "init_trainr"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert run_exps.main([str(path)]) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert "step 9 (init_trainr): unknown command 'init_trainr'; did you mean 'init_trainer'?" in error_lines[0]
    assert not (workdir / "saved").exists()


@pytest.mark.long
def test_autoint_plain_llmkt_and_kar_in_one_folder_journal_auc_and_ndcg(workdir):
    folder = workdir / "kar"
    folder.mkdir()
    for source in sorted((ROOT / "experiments" / "autoint_kar_ml100k").glob("*.yaml")):
        shrink(source, folder)
    assert run_exps.main([str(folder)]) == 0
    journal = pd.read_csv(folder / "autoint_kar_journal.csv", index_col=0)
    assert list(journal["variant"]) == ["plain", "llmkt", "kar"]
    assert list(journal["model"]) == ["AutoInt", "AutoInt", "AutoIntKar"]
    for row in journal.to_dict("records"):
        test = json.loads(row["train_1:best_test_res"])
        assert 0.0 < test["auc"] < 1.0 and test["logloss"] > 0 and 0.0 <= test["uni100:ndcg@10"] <= 1.0
    assert journal.loc[1, "train_0:loss_name"] == "HiddenDistil"
    assert json.loads(journal.loc[1, "train_0:loss_params"]) == {"rows": "batch", "entity": "user"}
