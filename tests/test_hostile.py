"""Hostile input: every kind of malformed file, odd path or broken journal ends in one line naming the file and
the value, exit status 2 and no traceback; the journal's earlier bytes never change and nothing is written outside
the run's folders. Most cases fail at the check, before any data is loaded; all use a tiny slice of ml-100k."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from helpers import ROOT, Output, small_experiment

import make_profiles
import report
import run_exps
from utils.journal import ExperimentsJournal, JournalRecord

JOURNAL = "neumf_journal.csv"
QUICK = [{"command": "init_model"}, {"command": "info", "params": 0}]
TRAIN = [{"command": "init_model"}, {"command": "set_config", "params": {"epochs": 1}},
         {"command": "init_trainer"}, {"command": "train"}]
ALLOWED = ("run", "log", "log_tensorboard", "saved")  # where a run may write (cwd-relative RecBole folders too)


def experiment(root, scenario=QUICK, name="exp.yaml", seed_journal=True, **changes):
    """A small NeuMF experiment in ``root/run`` without profiles (nothing to build), its journal seeded with a row."""
    path = small_experiment(root, scenario, name, **changes)
    folder = path.parent
    journal = folder / changes.get("journal_name", JOURNAL)
    if seed_journal and not journal.exists():
        seed = JournalRecord(folder / "earlier.yaml", "run")
        seed.select_part(0)
        seed.finish("done")
        ExperimentsJournal(journal).append(seed.row())
    return path


def snapshot(root):
    """Every file under ``root`` with its size, time and mode."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_mode)
            for p in root.rglob("*") if p.is_file() or p.is_dir()}


def outside(root, before, after):
    """Paths created or changed under ``root`` outside the folders a run may write."""
    changed = {p for p in after if before.get(p) != after[p] and not p.endswith(".lock")}
    return sorted(p for p in changed if p.split(os.sep)[0] not in ALLOWED)


def journal_bytes(folder):
    return {p.name: p.read_bytes() for p in folder.glob("*.csv") if p.is_file()}


# --- the kinds: (setup(workdir) -> (argv, file named in the line, value named in the line)) ----------------------


def edit_yaml(path, text):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def yaml_not_utf8(root):
    path = experiment(root)
    edit_yaml(path, path.read_bytes().replace(b"model: NeuMF", b"model: NeuMF # caf\xe9"))
    return [str(path)], path.name, "byte 0xe9"


def yaml_nested_deep(root):
    path = experiment(root)
    edit_yaml(path, path.read_text() + "deep: " + "[" * 5000 + "]" * 5000 + "\n")
    return [str(path)], path.name, "nesting deeper than 64"


def yaml_alias_bomb(root):
    path = experiment(root)
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    edit_yaml(path, path.read_text() + "\n".join(lines) + "\n")
    return [str(path)], path.name, "aliases expand to more than"


def yaml_duplicate_key(root):
    path = experiment(root)
    edit_yaml(path, path.read_text() + "epochs: 1\nepochs: 2\n")
    return [str(path)], path.name, "duplicate key 'epochs'"


def setting(key, value, shown=None):
    def setup(root):
        path = experiment(root, **{key: value})
        return [str(path), "--check"], path.name, shown or repr(value)

    setup.__name__ = f"{key}={value!r}"
    return setup


def eval_split_two_ratios(root):
    raw = yaml.safe_load((ROOT / "experiments/neumf/neumf_ml100k.yaml").read_text())
    eval_args = dict(raw["eval_args"], split={"RS": [0.8, 0.2]})
    path = experiment(root, eval_args=eval_args)
    return [str(path), "--check"], path.name, "[0.8, 0.2]"


def step(command, params, shown):
    def setup(root):
        path = experiment(root, scenario=TRAIN + [{"command": command, "params": params}])
        return [str(path), "--check"], path.name, shown

    setup.__name__ = f"{command}:{params!r}"
    return setup


def set_config_valid_metric(root):
    scenario = [{"command": "init_model"}, {"command": "set_config", "params": {"valid_metric": "bogus@10"}},
                {"command": "init_trainer"}, {"command": "train"}]
    path = experiment(root, scenario=scenario)
    return [str(path)], path.name, "'bogus@10'"


def kar_profile_outside(root):
    path = experiment(root, model="AutoIntKar", user_profile_json="../../../outside/p.json")
    return [str(path), "--check"], path.name, "'../../../outside/p.json'"


def journal_named(name):
    def setup(root):
        path = experiment(root, journal_name=name, seed_journal=False)
        return [str(path)], path.name, repr(name)

    setup.__name__ = f"journal_name={name!r}"
    return setup


def journal_is_a_folder(root):
    path = experiment(root, journal_name="dir.csv", seed_journal=False)
    (path.parent / "dir.csv").mkdir()
    return [str(path)], "dir.csv", "is a folder"


def journal_not_utf8(root):
    path = experiment(root, journal_name="latin.csv", seed_journal=False)
    (path.parent / "latin.csv").write_bytes(b",config,status\n0,caf\xe9.yaml,done\n")
    return [str(path)], "latin.csv", "not UTF-8"


def journal_read_only(root):
    path = experiment(root)
    (path.parent / JOURNAL).chmod(0o444)
    return [str(path)], JOURNAL, "read-only"


def journal_foreign_csv(root):
    path = experiment(root, journal_name="prices.csv", seed_journal=False)
    (path.parent / "prices.csv").write_text("name,price\napple,3\n")
    return [str(path)], "prices.csv", "not an experiments journal"


def checkpoint_dir_read_only(root):
    locked = root / "run" / "locked"
    locked.mkdir(parents=True)
    locked.chmod(0o555)
    path = experiment(root, checkpoint_dir=str(locked / "saved"))
    return [str(path), "--check"], path.name, "cannot be written"


def checkpoint_dir_is_a_file(root):
    (root / "run").mkdir()
    (root / "run" / "file").write_text("x")
    path = experiment(root, checkpoint_dir=str(root / "run" / "file"))
    return [str(path), "--check"], path.name, "is a file, not a folder"


def load_other_shape(root):
    (root / "run").mkdir()
    torch.save({"state_dict": {"user_mf_embedding.weight": torch.zeros(3, 2)}}, root / "run" / "other.pth")
    path = experiment(root, scenario=[{"command": "init_model"}, {"command": "init_trainer"},
                                      {"command": "load_from_file", "params": str(root / "run" / "other.pth")}])
    return [str(path)], path.name, "does not fit this NeuMF"


def resume_best_with_equal_epochs(root):
    path = experiment(root, scenario=TRAIN + [{"command": "init_trainer"}, {"command": "load_from_file",
                                                                            "params": "best"}, {"command": "train"}])
    return [str(path)], path.name, "epochs is 1"


def emb_folder(root):
    folder = root / "run" / "emb" / "ml-100k"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def all_user_profiles(width=8):
    """Profiles of every ml-100k user (a superset of the users the small experiment keeps)."""
    return [{"id": str(u), "embedding": [float((u * (c + 3)) % 7) for c in range(width)]} for u in range(1, 944)]


def file_param(command, key, value):
    def setup(root):
        params = {"reduce_dim": {"file_in": "u.pt", "file_out": "v.pt", "dimension": 2, "method": "pca"},
                  "wrap_model": {"distil_loss": "NeumfUserRMSE", "users_emb_file": "u.pt"}}[command]
        scenario = [{"command": "init_model"}, {"command": command, "params": {**params, key: value}}]
        path = experiment(root, scenario=scenario)
        return [str(path), "--check"], path.name, repr(value)

    setup.__name__ = f"{command}.{key}={value!r}"
    return setup


def llm_file(key, value, section=None):
    def setup(root):
        llm = {"embeddings_path": str(root / "run" / "emb")}
        if section == "preprocess_from_json":
            llm[section] = {"from": "p.json", "to": "u.pt", key: value}
        elif section == "preprocess_random":
            llm[section] = {"random": True, "embedding_size": 4, key: value}
        else:
            llm[key] = value
        path = experiment(root)
        raw = yaml.safe_load(path.read_text())
        raw["llm_config"] = llm
        path.write_text(yaml.safe_dump(raw))
        return [str(path), "--check"], path.name, repr(value)

    setup.__name__ = f"llm_config.{section + '.' if section else ''}{key}={value!r}"
    return setup


def reduce_dim_of(name, content):
    def setup(root):
        folder = emb_folder(root)
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            torch.save(content, folder / name)
        scenario = [{"command": "reduce_dim", "params": {"file_in": name, "file_out": "small.pt", "dimension": 2,
                                                         "method": "pca"}}]
        path = experiment(root, scenario=scenario)
        return [str(path)], path.name, name

    setup.__name__ = f"reduce_dim of {name}"
    return setup


def width_0_profiles(root):
    (emb_folder(root) / "p.json").write_text(json.dumps([{"id": "1", "embedding": []}, {"id": "2", "embedding": []}]))
    path = llm_file("from", "p.json", "preprocess_from_json")(root)[0][0]
    return [path], "p.json", "width 0"


def width_0_matrix(root):
    torch.save(torch.zeros(943, 0), emb_folder(root) / "u0.pt")
    scenario = [{"command": "init_model"}, {"command": "wrap_model", "params": {"distil_loss": "NeumfUserRMSE",
                                                                                 "users_emb_file": "u0.pt"}}]
    path = experiment(root, scenario=scenario)
    return [str(path)], "u0.pt", "width 0"


def odd_profile_values(value, shown):
    def setup(root):
        profiles = all_user_profiles(2)
        profiles[5]["embedding"][1] = value
        (emb_folder(root) / "p.json").write_text(json.dumps(profiles))
        path = llm_file("from", "p.json", "preprocess_from_json")(root)[0][0]
        return [path], "p.json", shown

    setup.__name__ = f"profile value {value!r}"
    return setup


KINDS = [
    yaml_not_utf8, yaml_nested_deep, yaml_alias_bomb, yaml_duplicate_key,
    setting("epochs", -1), setting("epochs", 0), setting("epochs", "five"), setting("train_batch_size", 0),
    setting("eval_batch_size", -5), setting("learning_rate", -1), setting("seed", "abc"),
    setting("valid_metric", "bogus@10"), setting("valid_metric", "NDCG@20", "'NDCG@20'"),
    setting("metrics", ["Recall", "Bogus"], "'Bogus'"), setting("topk", [0]), eval_split_two_ratios,
    step("test_eval", {"metrics": []}, "[]"), step("test_eval", {"topk": [0]}, "[0]"),
    step("test_eval", {"mode": "uni-5"}, "'uni-5'"), step("set_config", {"epochs": -1}, "-1"),
    step("set_config", {"train_batch_size": 0}, "0"), set_config_valid_metric,
    journal_named("exp.yaml"), journal_named("other.yaml"), journal_named("../up.csv"), journal_named("/tmp/x.csv"),
    journal_named("journal"), journal_is_a_folder, journal_not_utf8, journal_read_only, journal_foreign_csv,
    checkpoint_dir_read_only, checkpoint_dir_is_a_file, load_other_shape, resume_best_with_equal_epochs,
    file_param("reduce_dim", "file_out", "../../../outside/x.pt"), file_param("reduce_dim", "file_out", "/tmp/x.pt"),
    file_param("reduce_dim", "file_in", "../../../outside/keep.txt"),
    file_param("wrap_model", "users_emb_file", "../../outside/u.pt"),
    file_param("wrap_model", "items_emb_file", "/etc/passwd"),
    llm_file("to", "../../../outside/u.pt", "preprocess_from_json"), llm_file("from", "/etc/passwd",
                                                                             "preprocess_from_json"),
    llm_file("random_users_emb_file", "../r.pt", "preprocess_random"), llm_file("default_users_emb_file", "/x/u.pt"),
    reduce_dim_of("ints.pt", torch.arange(12).reshape(4, 3)), reduce_dim_of("vector.pt", torch.ones(5)),
    reduce_dim_of("dict.pt", {"w": torch.ones(2, 2)}), reduce_dim_of("text.pt", b"not a tensor at all\n"),
    width_0_profiles, width_0_matrix,
    odd_profile_values("0.1", '"0.1"'), odd_profile_values(True, "true"), odd_profile_values([0.5], "[0.5]"),
    setting("seed", -1), setting("add_train_split", [float("inf"), 1.0], "[inf, 1.0]"),
    setting("epochs", "-1", "-1"), setting("learning_rate", "-1e-3", "-0.001"), kar_profile_outside,
    llm_file("embedding_size", 10**9, "preprocess_random"), setting("distil_loss_weight", float("nan"), "nan"),
]  # fmt: skip


# --- values the checks once missed (issue 24): each one refused before training, in one line ---------------------


def top_level_key(text, shown):
    def setup(root):
        path = experiment(root)
        edit_yaml(path, path.read_text() + text)
        return [str(path), "--check"], path.name, shown

    setup.__name__ = f"top-level key {text.strip()!r}"
    return setup


def kar_setting(key, value, shown=None, link=False):
    def setup(root):
        if link:  # a name inside the embedding folder that is a symlink to a file outside it
            (emb_folder(root) / value).symlink_to(root / "outside" / "keep.txt")
        path = experiment(root, model="AutoIntKar", **{key: value})
        return [str(path), "--check"], path.name, shown or repr(value)

    setup.__name__ = f"AutoIntKar {key}={value!r}" + (" (symlink out)" if link else "")
    return setup


def run_step(scenario, shown, **changes):
    """A scenario that passes --check but must stop before training, with the data (a full run)."""
    def setup(root):
        path = experiment(root, scenario=scenario, **changes)
        return [str(path)], path.name, shown

    setup.__name__ = f"run {[next(iter(step.values())) for step in scenario][-1]!r} {changes or ''}"
    return setup


def llm_option(key, value):
    def setup(root):
        spec = {"to": "u.json", "source": "llm", "llm": {"base_url": "http://127.0.0.1:9/v1", key: value}}
        path = llm_file("build_profiles", spec)(root)[0][0]
        return [path, "--check"], Path(path).name, repr(value)

    setup.__name__ = f"build_profiles.llm.{key}={value!r}"
    return setup


MISSED = [
    setting("learning_rate", 1e308, "1e+308"), setting("weight_decay", 1e308, "1e+308"),
    setting("embedding_size", 0), setting("mf_embedding_size", -8), setting("dropout_prob", 2.0),
    setting("mlp_hidden_size", []), setting("log_wandb", True), setting("learner", "sgdx"),
    kar_setting("kar_fields", 0),
    kar_setting("kar_experts", 0), kar_setting("kar_user_emb_file", "../../outside/keep.txt"),
    kar_setting("kar_user_emb_file", "/etc/passwd"), kar_setting("kar_item_emb_file", "linked.pt", "linked.pt", True),
    top_level_key("1: one\n", "1"), top_level_key("~: nothing\n", "None"),
    llm_option("timeout", "abc"), llm_option("max_retries", -1), llm_option("concurrency", 0),
    run_step(TRAIN[:1], "uni99999", eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO",
                                               "mode": {"valid": "uni100", "test": "uni99999"}}),
    run_step(TRAIN + [{"test_eval": {"mode": "pop5000"}}], "pop5000"),
    run_step([{"init_model": None}, {"set_trainable": [["*"], False]}, {"init_trainer": None}, {"train": None}],
             "frozen"),
    run_step([{"init_model": None}, {"set_train_dataset": 1}], "got 1: there are 1"),
]  # fmt: skip
if importlib.util.find_spec("wandb") is not None:  # log_wandb: True is fine where wandb is installed
    MISSED.remove(next(kind for kind in MISSED if kind.__name__ == "log_wandb=True"))
KINDS += MISSED


# --- issue 24, second round: symlinks out of the run's folders, overwrites, broken journals and locks -------------


def linked_emb_file(param, value, link, target):
    """reduce_dim with ``param: value`` where ``link`` inside the embedding folder is a symlink to ``target``
    (relative to the work folder; ``link`` itself for a loop)."""
    def setup(root):
        folder = emb_folder(root)
        torch.save(torch.rand(943, 4), folder / "u.pt")
        (folder / link).symlink_to(folder / link if target == "loop" else root / target)
        params = {"file_in": "u.pt", "file_out": "r.pt", "dimension": 2, "method": "pca", param: value}
        path = experiment(root, scenario=[{"command": "reduce_dim", "params": params}])
        return [str(path)], path.name, value

    setup.__name__ = f"reduce_dim.{param}={value!r} through a symlink to {target}"
    return setup


def save_datasets_onto(name, how):
    """save_datasets where ``name`` next to the experiment already exists: a user's file, or a link out."""
    def setup(root):
        path = experiment(root, scenario=[{"command": "save_datasets"}])
        if how == "link":
            (path.parent / name).symlink_to(root / "outside" / "keep.txt")
        else:
            (path.parent / name).write_text("user_id\titem_id\nmine\tmine\n")
        return [str(path)], path.name, name

    setup.__name__ = f"save_datasets onto {how} {name}"
    return setup


def journal_lock(kind):
    def setup(root):
        path = experiment(root)
        lock = path.parent / f"{JOURNAL}.lock"
        lock.unlink(missing_ok=True)
        if kind == "fifo":
            os.mkfifo(lock)
        else:  # a dangling link: opening it for append would create the file it points to, outside
            lock.symlink_to(root / "outside" / "created.lock")
        return [str(path)], f"{JOURNAL}.lock", "not a regular file"

    setup.__name__ = f"journal lock is a {kind}"
    return setup


def journal_link(kind):
    def setup(root):
        path = experiment(root, journal_name="linked.csv", seed_journal=False)
        link = path.parent / "linked.csv"
        if kind == "loop":
            link.symlink_to(link)
            return [str(path)], "linked.csv", "symlink loop"
        link.symlink_to(root / "outside" / "shared.csv")
        return [str(path)], "linked.csv", "does not exist"

    setup.__name__ = f"journal is a {kind} symlink"
    return setup


def journal_unclosed_quote(root):
    path = experiment(root)
    with open(path.parent / JOURNAL, "a", encoding="utf-8") as fh:
        fh.write('1,run,"hand edited.yaml,,,\n')
    return [str(path)], JOURNAL, "row 2 (line 3) has an unclosed quote"


KINDS += [
    linked_emb_file("file_out", "sub/r.pt", "sub", "outside"), linked_emb_file("file_out", "linked.pt", "linked.pt",
                                                                             "outside/keep.txt"),
    linked_emb_file("file_in", "linked.pt", "linked.pt", "outside/keep.txt"),
    linked_emb_file("file_out", "loop/r.pt", "loop", "loop"),
    save_datasets_onto("exp.test.tsv", "link"), save_datasets_onto("exp.train.tsv", "user"),
    journal_lock("fifo"), journal_lock("dangling link"), journal_link("loop"), journal_link("dangling"),
    journal_unclosed_quote,
]  # fmt: skip


@pytest.mark.parametrize("setup", KINDS, ids=[kind.__name__ for kind in KINDS])
def test_hostile_input_is_one_line_exit_2_and_changes_nothing_earlier(workdir, capsys, setup):
    (workdir / "outside").mkdir()
    (workdir / "outside" / "keep.txt").write_text("untouched")
    argv, named_file, value = setup(workdir)
    experiment_file = Path(argv[0])
    yaml_before, journals_before = experiment_file.read_bytes(), journal_bytes(workdir / "run")
    before = snapshot(workdir)
    capsys.readouterr()
    try:
        code = run_exps.main(argv)
    finally:
        for folder in (workdir / "run").rglob("*"):
            if folder.is_dir():
                folder.chmod(0o755)
        for journal in (workdir / "run").glob("*.csv"):
            if not journal.is_symlink():
                journal.chmod(0o644)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(errors) == 1, err
    assert named_file in errors[0] and value in errors[0], errors[0]
    assert "Traceback" not in err
    assert experiment_file.read_bytes() == yaml_before
    for name, content in journals_before.items():
        assert (workdir / "run" / name).read_bytes().startswith(content), name  # rows may follow, never change
    assert outside(workdir, before, snapshot(workdir)) == []
    assert not list(workdir.rglob("*.tmp"))


# --- kinds that must run correctly (or keep everything) instead --------------------------------------------------


def test_an_old_journal_with_a_huge_error_cell_still_journals_the_next_run(workdir, capsys):
    path = experiment(workdir)
    journal = path.parent / JOURNAL
    with open(journal, "a", encoding="utf-8") as fh:
        fh.write("1,run,huge.yaml" + "," * 5 + "v" * 200_000 + "\n")
    before = journal.read_bytes()
    assert run_exps.main([str(path)]) == 0
    assert journal.read_bytes().startswith(before)
    assert list(pd.read_csv(journal, index_col=0)["config"])[-1] == "exp.yaml"


def test_a_huge_value_is_journaled_cut_and_the_next_append_works(workdir, capsys):
    path = experiment(workdir, epochs="x" * 200_000)
    assert run_exps.main([str(path)]) == 2
    good = experiment(workdir, name="good.yaml")
    assert run_exps.main([str(good)]) == 0
    frame = pd.read_csv(path.parent / JOURNAL, index_col=0)
    assert list(frame["status"])[-2:] == ["failed", "done"] and len(frame["error"].iloc[-2]) < 1000


def test_save_datasets_on_the_neumf_scenario_writes_the_splits_next_to_it(workdir, capsys):
    path = experiment(workdir, scenario=[{"command": "save_datasets"}])
    assert run_exps.main([str(path)]) == 0
    written = sorted(p.name for p in path.parent.glob("*.tsv"))
    assert written == ["exp.test.tsv", "exp.train.tsv", "exp.valid.tsv"]
    train = pd.read_csv(path.parent / "exp.train.tsv", sep="\t")
    assert list(train.columns) == ["user_id", "item_id", "rating", "timestamp"] and len(train) > 1000


def test_resume_best_then_train_keeps_the_earlier_parts_best_model(workdir, capsys):
    scenario = TRAIN + [{"command": "set", "params": {"train_part": 1}},
                        {"command": "set_config", "params": {"epochs": 3}}, {"command": "init_trainer"},
                        {"command": "load_from_file", "params": "best"}, {"command": "train"}]
    path = experiment(workdir, scenario=scenario)
    assert run_exps.main([str(path)]) == 0
    row = pd.read_csv(path.parent / JOURNAL, index_col=0).iloc[-1]
    first, second = row["train_0:bestmodel_file"], row["train_1:bestmodel_file"]
    assert first != second and Path(first).is_file() and Path(second).is_file()
    assert torch.load(first, weights_only=True)["epoch"] == 0
    assert row["train_1:epochs_run"] >= 1


@pytest.mark.long
def test_sigterm_journals_the_running_experiment_as_interrupted(workdir):
    path = experiment(workdir, scenario=[{"command": "init_model"}, {"command": "set_config", "params": {"epochs": 50}},
                                         {"command": "init_trainer"}, {"command": "train"}])
    before = (path.parent / JOURNAL).read_bytes()
    process = subprocess.Popen([sys.executable, "-u", str(ROOT / "run_exps.py"), str(path)], cwd=workdir,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output = Output(process)
    try:
        output.wait_for(lambda line: "] train" in line, timeout=300)
        process.send_signal(signal.SIGTERM)
        _, err = output.finish(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert "Traceback" not in err and err.count("error:") == 1 and "SIGTERM" in err
    after = (path.parent / JOURNAL).read_bytes()
    assert after.startswith(before)
    row = pd.read_csv(path.parent / JOURNAL, index_col=0).iloc[-1]
    assert row["config"] == "exp.yaml" and row["status"] == "interrupted" and "SIGTERM" in row["error"]


@pytest.mark.parametrize("rating", ["inf", "-inf", "1e309", "nan"])
def test_make_dataset_refuses_a_rating_that_is_not_finite(tmp_path, capsys, rating):
    import make_dataset

    (tmp_path / "r.csv").write_text(f"user,item,rating\nu1,i1,4\nu1,i2,{rating}\n")
    args = ["--name", "x", "--out", str(tmp_path), "--inter", str(tmp_path / "r.csv"), "--user-col", "user",
            "--item-col", "item", "--rating-col", "rating"]
    assert make_dataset.main(args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"row 3: '{rating}' is not a finite number" in errors[0] and "r.csv" in errors[0]
    assert "Traceback" not in err and not (tmp_path / "x").exists()


def test_make_profiles_tfidf_dim_0_is_one_line(workdir, capsys):
    path = experiment(workdir)  # in this process: test_profiles runs the script itself for its exit and output
    assert make_profiles.main(["--config", str(path), "--encoder", "tfidf", "--dim", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "dim must be an integer of 1 or more, got 0" in err


# --- report.py ----------------------------------------------------------------------------------------------------


def report_case(name):
    def setup(folder):
        journal = folder / "j.csv"
        if name == "missing path":
            return folder / "nowhere", "nowhere"
        if name == "empty journal":
            journal.write_text("")
            return journal, "is empty"
        if name == "foreign csv":
            journal.write_text("name,price\napple,3\n")
            return journal, "not an experiments journal"
        if name == "binary journal":
            journal.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
            return journal, "j.csv"
        if name == "folder without journals":
            return folder, "no journal"
        row = {"config": "a.yaml", "status": "done", "model": "NeuMF", "seed": "1",
               "train_0:best_test_res": json.dumps({"ndcg@10": 0.3}), "history_file": "../../etc/passwd"}
        ExperimentsJournal(journal).append(row)
        return journal, "'../../etc/passwd'"

    return setup


REPORT_KINDS = ["missing path", "empty journal", "foreign csv", "binary journal", "folder without journals",
                "history outside the folder"]


@pytest.mark.parametrize("name", REPORT_KINDS)
def test_report_on_a_broken_journal_is_one_line_and_exit_2(tmp_path, capsys, name):
    path, shown = report_case(name)(tmp_path)
    assert report.main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and shown in err and "Traceback" not in err, err


def test_a_non_utf8_file_in_a_folder_stops_neither_check_nor_resume(workdir, capsys):
    good = experiment(workdir, name="b_good.yaml")
    bad = experiment(workdir, name="a_bad.yaml")
    bad.write_bytes(bad.read_bytes().replace(b"model: NeuMF", b"model: NeuMF # caf\xe9"))
    assert run_exps.main([str(good.parent), "--check"]) == 2
    out, err = capsys.readouterr()
    assert err.count("error:") == 1 and "a_bad.yaml" in err and "ok: " + str(good) in out
    assert run_exps.main([str(good.parent), "--resume"]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "b_good.yaml" in out
    frame = pd.read_csv(good.parent / JOURNAL, index_col=0)
    assert list(zip(frame["config"], frame["status"]))[-1] == ("b_good.yaml", "done")
    unread = pd.read_csv(good.parent / "journal.csv", index_col=0)  # its journal_name could not be read
    assert list(zip(unread["config"], unread["status"])) == [("a_bad.yaml", "failed")]


def test_the_conversion_cache_notices_a_matrix_replaced_under_its_name(workdir, capsys):
    (emb_folder(workdir) / "p.json").write_text(json.dumps(all_user_profiles(8)))
    path = llm_file("from", "p.json", "preprocess_from_json")(workdir)[0][0]
    raw = yaml.safe_load(Path(path).read_text())
    raw["scenario"] = [{"command": "reduce_dim", "params": {"file_in": "u.pt", "file_out": "u.pt", "dimension": 2,
                                                            "method": "pca"}}]  # over the conversion's own output
    Path(path).write_text(yaml.safe_dump(raw))
    assert run_exps.main([path]) == 0
    assert "p.json -> u.pt" in capsys.readouterr().out
    raw["scenario"] = [{"command": "init_model"}]
    Path(path).write_text(yaml.safe_dump(raw))
    assert run_exps.main([path]) == 0
    out = capsys.readouterr().out
    assert "p.json -> u.pt" in out and "up to date" not in out  # converted again: the 2-d matrix is not trusted
    (emb_folder(workdir) / "p.json").write_text(json.dumps(all_user_profiles(8)))  # same content, new date
    assert run_exps.main([path]) == 0
    assert "u.pt is up to date with p.json" in capsys.readouterr().out


# --- issue 24: what must still work around those refusals ---------------------------------------------------------


def test_a_journal_that_is_a_symlink_gets_the_row_in_its_target_and_stays_a_link(workdir, capsys):
    shared = workdir / "shared" / "all.csv"
    shared.parent.mkdir()
    path = experiment(workdir, journal_name="linked.csv", seed_journal=False)
    seed = JournalRecord(path.parent / "earlier.yaml", "run")
    seed.finish("done")
    ExperimentsJournal(shared).append(seed.row())
    before = shared.read_bytes()
    (path.parent / "linked.csv").symlink_to(shared)
    assert run_exps.main([str(path)]) == 0
    assert (path.parent / "linked.csv").is_symlink() and shared.read_bytes().startswith(before)
    assert list(pd.read_csv(shared, index_col=0)["config"]) == ["earlier.yaml", "exp.yaml"]


def test_save_datasets_replaces_its_own_splits_but_not_another_files_of_the_same_stem(workdir, capsys):
    path = experiment(workdir, scenario=[{"command": "save_datasets"}], name="a.yaml")
    assert run_exps.main([str(path)]) == 0
    assert run_exps.main([str(path)]) == 0  # its own, unchanged output: replaced
    twin = experiment(workdir, scenario=[{"command": "save_datasets"}], name="a.yml")
    written = (path.parent / "a.train.tsv").read_bytes()
    capsys.readouterr()
    assert run_exps.main([str(twin)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "a.test.tsv" in err and "not this experiment's own" in err
    assert (path.parent / "a.train.tsv").read_bytes() == written


def test_sigterm_while_the_libraries_load_still_journals_the_experiment_as_interrupted(workdir):
    path = experiment(workdir)
    before = (path.parent / JOURNAL).read_bytes()
    script = ("import os, signal, sys, threading, run_exps\n"
              "threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()\n"  # during 'import recbole'
              f"sys.exit(run_exps.main([{str(path)!r}]))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 143 and "Traceback" not in done.stderr and done.stderr.count("error:") == 1
    assert (path.parent / JOURNAL).read_bytes().startswith(before)
    row = pd.read_csv(path.parent / JOURNAL, index_col=0).iloc[-1]
    assert row["config"] == "exp.yaml" and row["status"] == "interrupted" and "SIGTERM" in row["error"]


def test_a_worker_stopped_by_its_driver_is_journaled_as_interrupted_not_failed(workdir, capsys):
    from utils.experiment import Journaling

    path = experiment(workdir)
    with pytest.raises(SystemExit), Journaling(path):
        raise SystemExit(1)  # what Ray raises in a worker when the driver ends the sweep
    row = pd.read_csv(path.parent / JOURNAL, index_col=0).iloc[-1]
    assert row["status"] == "interrupted" and "SystemExit" not in row["error"]


SECRET = "sk-proj-Zq8SECRETvalue0123456789abcdef"


def secret_in_api_key_env(root):
    spec = {"to": "u.json", "source": "llm", "llm": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": SECRET}}
    return Path(llm_file("build_profiles", spec)(root)[0][0]), "api_key_env"


def secret_setting(key):
    def setup(root):
        return experiment(root, **{key: SECRET}), repr(key)

    setup.__name__ = f"top-level {key}"
    return setup


@pytest.mark.parametrize("setup", [secret_in_api_key_env, secret_setting("openai_api_key"),
                                   secret_setting("HF_TOKEN"), secret_setting("db_password")],
                         ids=["api_key_env holds the key", "openai_api_key", "HF_TOKEN", "db_password"])
def test_a_key_in_the_file_is_refused_and_never_written_or_shown(workdir, capsys, setup):
    path, shown = setup(workdir)
    assert run_exps.main([str(path)]) == 2
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and shown in errors[0] and "Traceback" not in err
    assert SECRET not in out + err
    written = [p for p in workdir.rglob("*") if p.is_file() and p != path and SECRET.encode() in p.read_bytes()]
    assert written == []
    assert list(pd.read_csv(path.parent / JOURNAL, index_col=0)["status"])[-1] == "failed"


def test_an_llm_server_that_accepts_and_never_answers_fails_at_the_deadline_in_one_line(workdir, capsys):
    import socket

    with socket.socket() as silent:  # listens (connections complete in the backlog) and never reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        llm = {"base_url": f"http://127.0.0.1:{silent.getsockname()[1]}/v1", "model": "m", "timeout": 600,
               "deadline": 1}
        path = llm_file("build_profiles", {"to": "u.json", "source": "llm", "llm": llm})(workdir)[0][0]
        assert run_exps.main([path]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no answer within the deadline of 1 s" in errors[0] and "Traceback" not in err


# --- make_dataset.py (issue 24) -----------------------------------------------------------------------------------


def make_dataset_case(name):
    """(extra arguments, what the error names) for a hostile make_dataset call in ``folder``."""
    def setup(folder):
        (folder / "r.csv").write_text("user,item,rating\nu1,i1,4\nu2,i2,5\n")
        (folder / "items.csv").write_text("item,title\ni1,A b\ni2,C d\n")
        if name == "out is a file":
            (folder / "file").write_text("x")
            return ["--out", str(folder / "file")], "is a file, not a folder"
        if name == "carriage return in a token":
            (folder / "items.csv").write_bytes(b'item,title\ni1,"A\rphantom"\ni2,C\n')
            return ["--items", str(folder / "items.csv"), "--item-cols", "title:token"], "holds a tab or a line break"
        if name == "empty list-sep":
            return ["--items", str(folder / "items.csv"), "--item-cols", "title:token_seq", "--list-sep", ""], \
                "--list-sep ''"
        if name == "user-cols without users":
            return ["--user-cols", "age"], "--user-cols 'age' without --users"
        if name in ("force through a linked .inter", "a dangling link at the .inter"):
            (folder / "outside").mkdir()
            (folder / "data" / "x").mkdir(parents=True)
            target = folder / "outside" / ("keep.txt" if "force" in name else "new.inter")
            if "force" in name:
                target.write_text("not yours\n")
            (folder / "data" / "x" / "x.inter").symlink_to(target)
            return (["--force"] if "force" in name else []), "leads outside"
        # --force with a new .inter beside the old .item
        from make_dataset import main

        assert main(base(folder) + ["--items", str(folder / "items.csv"), "--item-cols", "title"]) == 0
        return ["--force"], "x.item would stay beside the new x.inter"

    return setup


def base(folder):
    return ["--name", "x", "--out", str(folder / "data"), "--inter", str(folder / "r.csv"), "--user-col", "user",
            "--item-col", "item", "--rating-col", "rating"]


@pytest.mark.parametrize("name", ["out is a file", "carriage return in a token", "empty list-sep",
                                  "user-cols without users", "force leaves the old item table",
                                  "force through a linked .inter", "a dangling link at the .inter"])
def test_make_dataset_hostile_input_is_one_line_and_writes_nothing(tmp_path, capsys, name):
    import make_dataset

    extra, shown = make_dataset_case(name)(tmp_path)
    before = snapshot(tmp_path)
    args = base(tmp_path)
    if extra[:1] == ["--out"]:
        args = args[:2] + extra + args[4:]
        extra = []
    capsys.readouterr()
    assert make_dataset.main(args + extra) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and shown in err and "Traceback" not in err, err
    assert snapshot(tmp_path) == before


def test_a_dataset_file_linked_out_of_its_folder_is_refused_before_anything_is_read(workdir, capsys):
    """RecBole reads <data_path>/<dataset>/<dataset>.inter: a link there to a file elsewhere was read through
    (issue 24); the whole folder may be a link (data_path may point anywhere), a file inside it may not."""
    import make_dataset

    (workdir / "r.csv").write_text("user,item,rating\n" + "".join(f"u{u},i{i},4\n" for u in range(9) for i in range(9)))
    assert make_dataset.main(["--name", "x", "--out", str(workdir / "data"), "--inter", str(workdir / "r.csv"),
                              "--user-col", "user", "--item-col", "item", "--rating-col", "rating"]) == 0
    (workdir / "elsewhere").mkdir()
    inter = workdir / "data" / "x" / "x.inter"
    inter.rename(workdir / "elsewhere" / "x.inter")
    inter.symlink_to(workdir / "elsewhere" / "x.inter")
    path = experiment(workdir, dataset="x", data_path=str(workdir / "data"))
    capsys.readouterr()
    assert run_exps.main([str(path), "--check"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "dataset file" in errors[0] and "leads outside" in errors[0], err
    inter.unlink()
    (workdir / "data" / "x").rename(workdir / "elsewhere" / "x")
    (workdir / "data" / "x").symlink_to(workdir / "elsewhere" / "x")  # the folder linked: fine
    (workdir / "elsewhere" / "x.inter").rename(workdir / "elsewhere" / "x" / "x.inter")
    assert run_exps.main([str(path), "--check"]) == 0, capsys.readouterr().err


# --- report.py on odd journals (issue 24) -------------------------------------------------------------------------


def journal_with(folder, results, config="a.yaml", name="j.csv", seeds=(1, 2)):
    journal = folder / name
    for seed in seeds:
        ExperimentsJournal(journal).append({"config": config, "status": "done", "model": "NeuMF", "seed": str(seed),
                                            "train_0:best_test_res": results})
    return journal


@pytest.mark.parametrize("results,shown", [('{"ndcg@10": NaN}', "nan"), ('{"ndcg@10": Infinity}', "inf"),
                                           ('{"ndcg@10": "n/a"}', "'n/a'"), ('{"ndcg@10": [0.1, 0.2]}', "[0.1, 0.2]")])
def test_report_refuses_a_metric_that_is_not_a_finite_number_in_one_line(tmp_path, capsys, results, shown):
    journal = journal_with(tmp_path, results)
    assert report.main([str(journal), "--out", str(tmp_path / "out"), "--curves", "none"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and shown in err and "j.csv" in err and "Traceback" not in err, err


def test_report_reads_python_repr_dicts_escapes_names_and_counts_a_journal_given_twice_once(tmp_path, capsys):
    journal = journal_with(tmp_path, "{'ndcg@10': 0.25, 'hit@10': 0.5}", config="a|b\nc.yaml")
    table, *_ = report.build_report([journal, tmp_path / "." / "j.csv"], tmp_path / "out", curves="none",
                                    metrics=["ndcg@10"])
    assert list(table["n"]) == [2]
    text = (tmp_path / "out" / "report.md").read_text()
    assert "a\\|b c.yaml" in text or "a|b" not in text


def test_report_out_onto_its_own_input_is_refused(tmp_path, capsys):
    journal = journal_with(tmp_path, '{"ndcg@10": 0.25}', name="runs.csv")
    before = journal.read_bytes()
    assert report.main([str(journal), "--out", str(tmp_path), "--curves", "none"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "would overwrite the input" in err and journal.read_bytes() == before


def test_a_profile_json_larger_than_memory_allows_is_refused_before_it_is_read(tmp_path):
    from utils.embeddings import refuse_beyond_memory
    from utils.errors import UserError

    profiles = tmp_path / "p.json"
    profiles.write_text(json.dumps(all_user_profiles(8)))
    refuse_beyond_memory(profiles, available=10**12)  # plenty: read as before
    with pytest.raises(UserError, match=r"p.json: 0.0 GB of JSON needs about 0.0 GB of memory to read, and 0.0 GB"):
        refuse_beyond_memory(profiles, available=profiles.stat().st_size)


def test_a_checkpoint_trained_on_another_seeds_split_is_loaded_with_a_warning_and_journaled(workdir, capsys):
    trained = experiment(workdir, scenario=TRAIN, name="a.yaml", seed=1)
    assert run_exps.main([str(trained)]) == 0
    checkpoint = pd.read_csv(trained.parent / JOURNAL, index_col=0).iloc[-1]["train_0:bestmodel_file"]
    load = [{"command": "init_model"}, {"command": "init_trainer"},
            {"command": "load_from_file", "params": {"file": checkpoint, "resume": False}}]
    for name, seed, verdict in (("same.yaml", 1, "same"), ("other.yaml", 2, "other")):
        path = experiment(workdir, scenario=load, name=name, seed=seed)
        capsys.readouterr()
        assert run_exps.main([str(path)]) == 0
        out = capsys.readouterr().out
        assert ("trained on another split" in out) == (verdict == "other")
        row = pd.read_csv(path.parent / JOURNAL, index_col=0).iloc[-1]
        assert row["config"] == name and row["checkpoint_split"].startswith(verdict)
