"""Safe to leave running overnight: mistakes are one line before training, failures stay isolated, the journal
never loses a row, and --resume finishes a killed batch."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from helpers import ROOT, Output, shrink
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import run_exps
from utils.errors import UserError
from utils.journal import ExperimentsJournal
from utils.settings import parse_settings, parse_steps
from utils.tmanager import COMMANDS, check_scenario


def edit(path, change):
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def step_index(raw, command):
    return next(i for i, s in enumerate(raw["scenario"]) if s["command"] == command)


def set_params(command, params):
    def change(raw):
        raw["scenario"][step_index(raw, command)]["params"] = params

    return change


def drop(command):
    def change(raw):
        raw["scenario"] = [s for s in raw["scenario"] if s["command"] != command]

    return change


MISTAKES = {
    "yaml syntax": ("neumf", None, "YAML syntax error at line 4, column 9"),
    "layer 42 on SimpleX": ("simplex", set_params("set_outputs", [42]),
                            "step 7 (set_outputs): layer 42 is outside the model: SimpleX has 6 layers"),
    "missing users_emb_file": ("neumf", set_params("wrap_model", {"distil_loss": "NeumfUserRMSE",
                                                                  "users_emb_file": "nope.pt"}),
                               "step 5 (wrap_model): user embedding file not found: "),
    "misspelled loss": ("neumf", set_params("wrap_model", {"distil_loss": "NeumfUserRMS"}),
                        "unknown distillation loss 'NeumfUserRMS'; did you mean 'NeumfUserRMSE'?"),
    "misspelled model": ("neumf", lambda raw: raw.update(model="NeuMFF"), "unknown model 'NeuMFF'; did you mean neumf"),
    "train without init_trainer": ("neumf", drop("init_trainer"), "step 9 (train): needs init_trainer before it"),
    "set_trainable Train": ("neumf", lambda raw: raw["scenario"].insert(3, {"command": "set_trainable",
                                                                             "params": [[4], "Train"]}),
                            "step 4 (set_trainable): params must be [[layers] or ['*'], true or false], got [[4], "
                            "'Train']: the second item must be true or false, got 'Train'"),
    "alpha 1.7": ("neumf", lambda raw: raw.update(distil_loss_weight=1.7),
                  "distil_loss_weight must be a number in [0, 1], got 1.7"),
    "no such dataset": ("neumf", lambda raw: raw.update(dataset="ml-2x", data_path="nowhere"),
                        "dataset 'ml-2x' not found: no ml-2x.inter in"),
    "dataset not downloadable": ("neumf", lambda raw: raw.update(dataset="ml-1m", data_path="nowhere"),
                                 "dataset 'ml-1m' is not in"),
}


def mistake_file(workdir, name):
    model, change, _ = MISTAKES[name]
    path = shrink(f"{model}/{model}_ml100k.yaml", workdir)
    if change is None:
        path.write_text("model: NeuMF\ndataset: ml-100k\nepochs: [1, 2\nscenario: []\n")
    else:
        edit(path, change)
    return path


@pytest.mark.parametrize("name", list(MISTAKES))
def test_each_mistake_is_one_line_exit_2_no_traceback_no_training(workdir, capsys, name):
    path = mistake_file(workdir, name)
    assert run_exps.main([str(path)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1  # one line per failure: no "1 of 1 experiment(s) failed" after it
    assert MISTAKES[name][2] in errors[0], errors[0]
    assert "Traceback" not in err and "training [time" not in err
    assert not (workdir / "saved").exists()


def test_a_mistake_from_the_command_line_is_one_line_on_stderr(workdir):
    path = mistake_file(workdir, "layer 42 on SimpleX")
    done = subprocess.run([sys.executable, str(ROOT / "run_exps.py"), str(path)], cwd=workdir, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("error:") == 1 and "layer 42 is outside the model" in done.stderr


def test_check_trains_nothing_and_reports_every_broken_file(workdir, capsys):
    for name in ("misspelled loss", "alpha 1.7"):
        mistake_file(workdir, name).rename(workdir / f"{name.replace(' ', '_')}.yaml")
    shrink("neumf/neumf_ml100k.yaml", workdir)
    assert run_exps.main([str(workdir), "--check"]) == 2
    out, err = capsys.readouterr()
    assert err.count("error:") == 2 and out.count("ok: ") == 1
    assert not (workdir / "saved").exists() and not (workdir / "log").exists()


def profile_file(workdir, profiles):
    path = shrink("neumf/neumf_ml100k.yaml", workdir)

    def change(raw):
        llm = raw["llm_config"]
        llm.pop("build_profiles")
        llm["preprocess_from_json"]["from"] = "given.json"

    edit(path, change)
    folder = workdir / "emb" / "ml-100k"
    folder.mkdir(parents=True)
    (folder / "given.json").write_text(json.dumps(profiles))
    return path


def real_users():
    from helpers import build

    config, data, _ = build("NeuMF", seed=42)
    return list(data.dataset.field2id_token[data.dataset.uid_field][1:])


def test_profiles_missing_10_users_are_refused_with_the_count(workdir, capsys):
    users = real_users()
    path = profile_file(workdir, [{"id": u, "embedding": [1.0, 2.0]} for u in users[10:]])
    assert run_exps.main([str(path)]) == 2
    assert f"profiles miss 10 of {len(users)} ids in the dataset" in capsys.readouterr().err


def test_profiles_with_one_nan_are_refused(workdir, capsys):
    users = real_users()
    profiles = [{"id": u, "embedding": [1.0, 2.0]} for u in users]
    profiles[3]["embedding"][1] = float("nan")
    path = profile_file(workdir, profiles)
    path.parent.joinpath("emb/ml-100k/given.json").write_text(json.dumps(profiles))  # json writes NaN
    assert run_exps.main([str(path)]) == 2
    assert "1 NaN" in capsys.readouterr().err


def quick(folder, name, broken=False):
    scenario = [{"command": "init_model"}, {"command": "info", "params": 0}]
    if broken:
        scenario.append({"command": "set_outputs", "params": [9]})  # before wrap_model: refused
    path = shrink("neumf/neumf_ml100k.yaml", folder, extra={"scenario": scenario})
    return path.rename(folder / name)


def test_a_broken_experiment_in_a_folder_does_not_stop_the_others(workdir, capsys):
    folder = workdir / "batch"
    folder.mkdir()
    quick(folder, "a.yaml"), quick(folder, "b.yaml", broken=True), quick(folder, "c.yaml")
    assert run_exps.main([str(folder)]) == 2
    out, err = capsys.readouterr()
    journal = pd.read_csv(folder / "neumf_journal.csv", index_col=0)
    assert list(zip(journal["config"], journal["status"], strict=True)) == [
        ("a.yaml", "done"), ("b.yaml", "failed"), ("c.yaml", "done")]
    assert "needs wrap_model before it" in journal.loc[1, "error"]
    assert "1 of 3 experiment(s) failed" in err and "b.yaml" in err.splitlines()[-1]
    summary = out[out.index("===== summary"):]
    assert "done" in summary and "failed" in summary and "c.yaml" in summary


def test_fail_fast_stops_at_the_first_failure(workdir, capsys):
    folder = workdir / "batch"
    folder.mkdir()
    quick(folder, "a.yaml", broken=True), quick(folder, "b.yaml")
    assert run_exps.main([str(folder), "--fail-fast"]) == 2
    assert list(pd.read_csv(folder / "neumf_journal.csv", index_col=0)["config"]) == ["a.yaml"]


def test_resume_skips_done_and_unchanged_and_reruns_edited(workdir, capsys):
    folder = workdir / "batch"
    folder.mkdir()
    quick(folder, "a.yaml"), quick(folder, "b.yaml")
    assert run_exps.main([str(folder)]) == 0
    with open(folder / "b.yaml", "a") as fh:
        fh.write("\n# edited\n")
    assert run_exps.main([str(folder), "--resume"]) == 0
    journal = pd.read_csv(folder / "neumf_journal.csv", index_col=0)
    assert list(journal["config"]) == ["a.yaml", "b.yaml", "b.yaml"]
    assert "a.yaml: done before, unchanged: skipped" in capsys.readouterr().out


def trained(folder, name, epochs=2):
    path = shrink("neumf/neumf_ml100k.yaml", folder, extra={"scenario": [
        {"command": "init_model"}, {"command": "set_config", "params": {"epochs": epochs}},
        {"command": "init_trainer"}, {"command": "train"}]})
    return path.rename(folder / name)


@pytest.mark.long
def test_kill_9_then_resume_journals_each_experiment_done_exactly_once(workdir):
    folder = workdir / "batch"
    folder.mkdir()
    names = [f"{i}.yaml" for i in range(3)]
    for index, name in enumerate(names):
        # the second is killed as its train step starts; its 8 epochs (not 1) leave no chance to finish first
        trained(folder, name, epochs=8 if index == 1 else 1)
    journal_path = folder / "neumf_journal.csv"
    process = subprocess.Popen([sys.executable, "-u", str(ROOT / "run_exps.py"), str(folder)], cwd=workdir,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # kill when the third experiment starts training: its output says so (no sleeping, no race with a fast run)
    output = Output(process)
    try:
        output.wait_for(lambda line: line.startswith("##### experiment 2/3"), timeout=300)
        output.wait_for(lambda line: "] train" in line, timeout=300)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        output.finish(timeout=60)
        process.stdout.close()
    killed = pd.read_csv(journal_path, index_col=0)
    assert list(killed["config"]) == names[:1] and set(killed["status"]) == {"done"}

    trained(folder, names[1], epochs=1)  # it never finished: resumed, it need not train 8 epochs to show that
    assert run_exps.main([str(folder), "--resume"]) == 0  # here: the killed process was the separate one
    journal = pd.read_csv(journal_path, index_col=0)
    assert sorted(journal[journal["status"] == "done"]["config"]) == names
    assert len(journal) == 3


def _append_rows(path, worker, count):
    journal = ExperimentsJournal(path)
    for index in range(count):
        journal.append({"config": f"w{worker}-{index}", "status": "done"})


def test_concurrent_appends_lose_nothing(tmp_path):
    path = tmp_path / "j.csv"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_rows, args=(path, w, 25)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    frame = pd.read_csv(path, index_col=0)
    assert sorted(frame["config"]) == sorted(f"w{w}-{i}" for w in range(4) for i in range(25))


# --- fuzzing: whatever structure comes in, a clean UserError or a valid check ---------------------------------

names = st.sampled_from(list(COMMANDS) + ["set_output", "trian", "", "None", "command"])
values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 50) | st.floats(allow_nan=True) | st.text(max_size=8) | names,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | names, inner, max_size=4),
    max_leaves=12,
)
steps = st.one_of(
    st.fixed_dictionaries({"command": names, "params": values}),
    st.dictionaries(names, values, min_size=1, max_size=2),
    names,
    values,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, max_size=8) | values)
def test_any_scenario_structure_is_a_clean_error_or_a_valid_check(scenario):
    try:
        check_scenario(parse_steps(scenario), model_name="NeuMF")
    except UserError as exc:
        assert "\n" not in exc.line()


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["distil_loss_weight", "add_train_split", "add_train_shuffle", "llm_config",
                                        "logger_level", "journal_name", "scenario"]), values, max_size=5))
def test_any_distillation_settings_are_a_clean_error_or_settings(raw):
    try:
        parse_settings(raw)
    except UserError as exc:
        assert "\n" not in exc.line()
