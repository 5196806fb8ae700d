"""A sweep of hostile inputs (issue 24), each case in a fresh temporary folder, classified by what happened.

    python benchmarks/hostile_sweep.py [--out docs/results/hostile.md] [--jobs 2] [--only WORD]

Each case writes a small experiment (a tiny slice of ml-100k, NeuMF, one epoch) or a small journal / table into its
own folder next to a sentinel folder ``outside/`` (a file the run must never touch), runs one entry point
(run_exps.py, make_dataset.py or report.py) as a separate process with a time limit, and is classified:

- ``clean error``: exit 2, exactly one ``error:`` line holding the expected words, no traceback;
- ``ok``: exit 0 where the input is valid (and the run's own check of its output holds);
- ``traceback``, ``silent-wrong`` (exit 0 where an error was due, or a refusal where the input was valid, or an
  error line without the expected words), ``outside write`` (anything created, changed or deleted outside the
  run's folders, the sentinel included), ``secret leaked`` (the secret string in any file the run wrote or on its
  output), ``hang`` (past the time limit), ``setup failed``.

The cases are not those of tests/test_hostile.py: other values, other files, other entry points of each class.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from helpers import small_experiment  # noqa: E402

LIMIT_S = 240
ALLOWED = ("run", "log", "log_tensorboard", "saved", "out", "data")  # where a case's run may write
SECRET = "sk-live-9Fq2SWEEPsecretXYZ0123456789"
QUICK = [{"command": "init_model"}]
TRAIN = [{"command": "init_model"}, {"command": "set_config", "params": {"epochs": 1}},
         {"command": "init_trainer"}, {"command": "train"}]


# --- building a case ----------------------------------------------------------------------------------------------


def experiment(root, scenario=QUICK, name="exp.yaml", **changes):
    return small_experiment(root, scenario, name, **changes)


def emb(root):
    folder = root / "run" / "emb" / "ml-100k"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_matrix(path, rows=943, width=6):
    import torch

    torch.save(torch.rand(rows, width), path)


def run_exps(*args):
    return [sys.executable, str(ROOT / "run_exps.py"), *map(str, args)]


def tool(name, *args):
    return [sys.executable, str(ROOT / name), *map(str, args)]


def setting(key, value, words=None):
    def setup(root):
        return run_exps(experiment(root, **{key: value}), "--check"), "error", words or key
    return f"{key}={value!r}", setup


def step(params, words, command="test_eval", check=True):
    def setup(root):
        path = experiment(root, scenario=TRAIN + [{"command": command, "params": params}])
        return run_exps(path, *(["--check"] if check else [])), "error", words
    return f"{command} {params!r}", setup


def reduce_dim_linked(param, value, link, target, words):
    def setup(root):
        folder = emb(root)
        save_matrix(folder / "m.pt")
        (folder / link).symlink_to(target(root, folder))
        params = {"file_in": "m.pt", "file_out": "r.pt", "dimension": 2, "method": "pca", param: value}
        return run_exps(experiment(root, scenario=[{"command": "reduce_dim", "params": params}])), "error", words
    return f"reduce_dim {param}={value} via link", setup


def save_datasets_case(name, how):
    def setup(root):
        path = experiment(root, scenario=[{"command": "save_datasets"}])
        target = path.parent / name
        if how == "link":
            target.symlink_to(root / "outside" / "keep.txt")
        elif how == "dir":
            target.mkdir()
        else:
            target.write_text("mine\n")
        return run_exps(path), "error", name
    return f"save_datasets onto {how} {name}", setup


def journal_case(name):
    def setup(root):
        path = experiment(root, journal_name="j.csv")
        journal = path.parent / "j.csv"
        row = "0,run,earlier.yaml,,,,,,,,,done\n"
        header = ",subdir,config,a,b,c,d,e,f,g,h,status\n"
        if name == "lock links to an existing outside file":
            journal.write_text(header + row)
            (path.parent / "j.csv.lock").symlink_to(root / "outside" / "keep.txt")
            return run_exps(path), "error", "not a regular file"
        if name == "lock is a folder":
            journal.write_text(header + row)
            (path.parent / "j.csv.lock").mkdir()
            return run_exps(path), "error", "not a regular file"
        if name == "unclosed quote in the header line":
            journal.write_text(',subdir,"config,status\n' + row)
            return run_exps(path), "error", "unclosed quote"
        if name == "unclosed quote in the last row":
            journal.write_text(header + row + '1,run,"x.yaml,,,,,,,,,done\n')
            return run_exps(path), "error", "unclosed quote"
        if name == "link to a journal in another folder":
            (root / "run" / "shared").mkdir()
            (root / "run" / "shared" / "all.csv").write_text(header + row)
            journal.symlink_to(root / "run" / "shared" / "all.csv")
            return run_exps(path), "ok", lambda: "exp.yaml" in (root / "run" / "shared" / "all.csv").read_text() \
                and journal.is_symlink()
        if name == "link to a missing journal outside":
            journal.symlink_to(root / "outside" / "new.csv")
            return run_exps(path), "error", "does not exist"
        if name == "journal links to itself through two links":
            journal.symlink_to(path.parent / "k.csv")
            (path.parent / "k.csv").symlink_to(journal)
            return run_exps(path), "error", "symlink loop"
        raise ValueError(name)
    return f"journal: {name}", setup


def secret_case(key, value, where="top"):
    def setup(root):
        if where == "top":
            path = experiment(root, **{key: value})
        else:
            llm = {"base_url": "http://127.0.0.1:9/v1", "model": "m", key: value}
            path = experiment(root)
            raw = yaml.safe_load(path.read_text())
            raw["llm_config"]["build_profiles"] = {"to": "u.json", "source": "llm", "llm": llm}
            path.write_text(yaml.safe_dump(raw))
        return run_exps(path), "error", key
    return f"secret in {key}" + ("" if where == "top" else " (llm)"), setup


def silent_llm(root):
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    SERVERS.append(server)  # lives until the sweep ends
    llm = {"base_url": f"http://127.0.0.1:{server.getsockname()[1]}/v1", "model": "m", "deadline": 3}
    path = experiment(root)
    raw = yaml.safe_load(path.read_text())
    raw["llm_config"]["build_profiles"] = {"to": "u.json", "source": "llm", "llm": llm}
    path.write_text(yaml.safe_dump(raw))
    return run_exps(path), "error", "deadline of 3 s"


SERVERS = []


def make_dataset_case(name):
    def setup(root):
        (root / "r.csv").write_text("user,item,rating\nu1,i1,4\nu2,i2,5\nu1,i2,3\n")
        (root / "users.csv").write_text("user,age\nu1,20\nu2,30\n")
        base = ["--name", "x", "--out", root / "data", "--inter", root / "r.csv", "--user-col", "user",
                "--item-col", "item", "--rating-col", "rating"]
        if name == "newline in a user token":
            (root / "users.csv").write_bytes(b'user,city\nu1,"Pa\nris"\nu2,Rome\n')
            return tool("make_dataset.py", *base, "--users", root / "users.csv", "--user-cols", "city:token"), \
                "error", "line break"
        if name == "tab in an item title (a list column: split)":
            (root / "items.csv").write_text('item,title\ni1,"A\tB"\ni2,C\n')
            return tool("make_dataset.py", *base, "--items", root / "items.csv", "--item-cols", "title"), "ok", \
                lambda: all(line.count("\t") == 1 for line in (root / "data" / "x" / "x.item").read_text().splitlines())
        if name == "--item-cols without --items":
            return tool("make_dataset.py", *base, "--item-cols", "title"), "error", "--item-cols"
        if name == "--list-sep '' with a list column":
            return tool("make_dataset.py", *base, "--users", root / "users.csv", "--user-cols", "age:token_seq",
                        "--list-sep", ""), "error", "--list-sep"
        if name == "--out under a file":
            (root / "data").write_text("a file")
            return tool("make_dataset.py", *base), "error", "is a file"
        if name == "valid small table":
            return tool("make_dataset.py", *base, "--users", root / "users.csv", "--user-cols", "age"), "ok", \
                lambda: (root / "data" / "x" / "x.user").is_file()
        if name == "--force with the old .user left":
            first = subprocess.run(tool("make_dataset.py", *base, "--users", root / "users.csv", "--user-cols", "age"),
                                   capture_output=True, timeout=LIMIT_S, cwd=root)
            assert first.returncode == 0, first.stderr
            return tool("make_dataset.py", *base, "--force"), "error", "would stay beside"
        raise ValueError(name)
    return f"make_dataset: {name}", setup


def report_case(name):
    def setup(root):
        from utils.journal import ExperimentsJournal

        journal = root / "run" / "j.csv"
        journal.parent.mkdir(exist_ok=True)

        def add(results, config="a.yaml", seed="1"):
            ExperimentsJournal(journal).append({"config": config, "status": "done", "model": "NeuMF", "seed": seed,
                                                "train_0:best_test_res": results})

        cells = {"-Infinity metric": '{"ndcg@10": -Infinity}', "null metric": '{"ndcg@10": null}',
                 "true as a metric": '{"ndcg@10": true}', "repr dict with nan": "{'ndcg@10': nan}",
                 "string metric": '{"ndcg@10": "0.3"}'}
        if name in cells:
            add(cells[name])
            add('{"ndcg@10": 0.2}', seed="2")
            words = "ndcg@10" if name != "repr dict with nan" else "cannot be read"
            return tool("report.py", journal, "--out", root / "out", "--curves", "none"), "error", words
        if name == "pipe and newline in a config name":
            add('{"ndcg@10": 0.2}', config="x|y\nz.yaml")
            add('{"ndcg@10": 0.3}', config="x|y\nz.yaml", seed="2")
            return tool("report.py", journal, "--out", root / "out", "--curves", "none"), "ok", \
                lambda: "x|y" not in (root / "out" / "report.md").read_text()
        if name == "the same journal three times":
            add('{"ndcg@10": 0.2}')
            add('{"ndcg@10": 0.3}', seed="2")
            return tool("report.py", journal, root / "run" / "." / "j.csv", root / "run", "--out", root / "out",
                        "--curves", "none"), "ok", \
                lambda: len((root / "out" / "runs.csv").read_text().splitlines()) == 3
        if name == "--out onto the folder of a journal named runs.csv":
            journal = root / "run" / "runs.csv"
            ExperimentsJournal(journal).append({"config": "a.yaml", "status": "done", "model": "NeuMF", "seed": "1",
                                                "train_0:best_test_res": '{"ndcg@10": 0.2}'})
            return tool("report.py", journal, "--out", root / "run", "--curves", "none"), "error", "overwrite"
        raise ValueError(name)
    return f"report: {name}", setup


def ok_case(name, scenario, check, **changes):
    def setup(root):
        path = experiment(root, scenario=scenario, **changes)
        return run_exps(path), "ok", lambda: check(path)
    return f"ok: {name}", setup


def journal_status(path, status="done"):
    import pandas as pd

    return list(pd.read_csv(path.parent / "neumf_journal.csv", index_col=0)["status"])[-1] == status


def outside_dir(root, folder):
    return root / "outside"


CASES = [
    # values the checks miss
    setting("learning_rate", 1e300, "learning_rate"), setting("weight_decay", -1e-3, "weight_decay"),
    setting("embedding_size", -1, "embedding_size"), setting("dropout_prob", -0.5, "dropout_prob"),
    setting("mlp_hidden_size", [0], "mlp_hidden_size"), setting("train_batch_size", 2.5, "train_batch_size"),
    setting("stopping_step", -1, "stopping_step"), setting("seed", 2**40, "seed"), setting("topk", [], "topk"),
    setting("eval_batch_size", 0, "eval_batch_size"), setting("learner", "sgdx", "learner"),
    step({"mode": "uni100000"}, "uni100000", check=False), step({"mode": "pop0"}, "pop0"),
    step([["*"], "no"], "set_trainable", command="set_trainable"),
    # symlinks out of the folders
    reduce_dim_linked("file_out", "linked/r.pt", "linked", outside_dir, "linked/r.pt"),
    reduce_dim_linked("file_in", "outer.pt", "outer.pt", lambda root, folder: root / "outside" / "keep.txt",
                      "outer.pt"),
    reduce_dim_linked("file_out", "back/r.pt", "back", lambda root, folder: folder / "back", "symlink loop"),
    reduce_dim_linked("file_out", "dangling.pt", "dangling.pt", lambda root, folder: root / "outside" / "new.pt",
                      "dangling.pt"),
    save_datasets_case("exp.valid.tsv", "link"), save_datasets_case("exp.train.tsv", "dir"),
    save_datasets_case("exp.test.tsv", "user file"),
    # journals
    journal_case("lock links to an existing outside file"), journal_case("lock is a folder"),
    journal_case("unclosed quote in the header line"), journal_case("unclosed quote in the last row"),
    journal_case("link to a journal in another folder"), journal_case("link to a missing journal outside"),
    journal_case("journal links to itself through two links"),
    # secrets
    secret_case("openai_api_key", SECRET), secret_case("access_token", SECRET), secret_case("AWS_SECRET", SECRET),
    secret_case("api_key_env", SECRET, where="llm"), secret_case("api_key_env", "MY KEY " + SECRET, where="llm"),
    # hangs
    ("LLM server that never answers (deadline 3 s)", silent_llm),
    # make_dataset.py
    make_dataset_case("newline in a user token"), make_dataset_case("tab in an item title (a list column: split)"),
    make_dataset_case("--item-cols without --items"), make_dataset_case("--list-sep '' with a list column"),
    make_dataset_case("--out under a file"), make_dataset_case("--force with the old .user left"),
    make_dataset_case("valid small table"),
    # report.py
    report_case("-Infinity metric"), report_case("null metric"), report_case("true as a metric"),
    report_case("string metric"), report_case("repr dict with nan"), report_case("pipe and newline in a config name"),
    report_case("the same journal three times"),
    report_case("--out onto the folder of a journal named runs.csv"),
    # valid inputs that must run
    ok_case("quick init", QUICK, journal_status), ok_case("one epoch", TRAIN, journal_status),
    ok_case("save_datasets twice is its own", [{"command": "save_datasets"}],
            lambda path: journal_status(path) and (path.parent / "exp.train.tsv").is_file()),
    ok_case("a.yml beside nothing", QUICK, journal_status),
    ok_case("reduce_dim inside a real sub-folder", [{"command": "reduce_dim", "params": {
        "file_in": "m.pt", "file_out": "sub/r.pt", "dimension": 2, "method": "pca"}}],
            lambda path: (path.parent / "emb" / "ml-100k" / "sub" / "r.pt").is_file()),
    ok_case("journal_name k.csv", QUICK, journal_status, journal_name="k.csv"),
    ok_case("learning_rate 10", QUICK, journal_status, learning_rate=10),
    ok_case("dropout_prob 0", QUICK, journal_status, dropout_prob=0.0),
    ok_case("eval_batch_size 4096", QUICK, journal_status, eval_batch_size=4096),
    ok_case("one epoch at learning_rate 0.5", TRAIN, journal_status, learning_rate=0.5),
    ok_case("test_eval uni50", TRAIN + [{"command": "test_eval", "params": {"mode": "uni50"}}], journal_status),
]  # fmt: skip


def _prepare(name, setup, root):
    if name.startswith("ok: save_datasets twice"):
        argv, expect, check = setup(root)
        subprocess.run(argv, capture_output=True, timeout=LIMIT_S, cwd=root)  # the first run owns the files
        return argv, expect, check
    if name.startswith("ok: reduce_dim inside"):
        argv, expect, check = setup(root)
        folder = emb(root)
        save_matrix(folder / "m.pt")
        (folder / "sub").mkdir()
        return argv, expect, check
    if name.startswith("ok: a.yml"):
        argv, expect, check = setup(root)
        path = Path(argv[2])
        path.rename(path.with_suffix(".yml"))
        argv[2] = str(path.with_suffix(".yml"))
        return argv, expect, lambda: journal_status(path)
    if name.startswith("ok: journal_name k.csv"):
        argv, expect, check = setup(root)
        return argv, expect, lambda: (Path(argv[2]).parent / "k.csv").is_file()
    return setup(root)


def snapshot(root):
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in root.rglob("*") if not p.is_dir() or p.is_symlink()}


def classify(name, setup):
    """(class, seconds, detail) of one case, run in a fresh folder."""
    root = Path(tempfile.mkdtemp(prefix="hostile-"))
    try:
        (root / "outside").mkdir()
        (root / "outside" / "keep.txt").write_text("untouched")
        try:
            argv, expect, what = _prepare(name, setup, root)
        except Exception as exc:  # noqa: BLE001 - a case that cannot be built is reported, not fatal
            return "setup failed", 0.0, f"{type(exc).__name__}: {exc}"
        before = snapshot(root)
        started = time.monotonic()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=LIMIT_S, cwd=root,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
        except subprocess.TimeoutExpired:
            return "hang", time.monotonic() - started, f"no exit within {LIMIT_S} s"
        seconds = time.monotonic() - started
        after = snapshot(root)
        changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p)
                         and p.split(os.sep)[0] not in ALLOWED and not p.endswith(".lock"))
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        leaked = SECRET in done.stdout + done.stderr or any(
            SECRET.encode() in p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.is_symlink() and p.suffix not in (".yaml", ".yml"))
        if "Traceback" in done.stderr:
            return "traceback", seconds, done.stderr.strip().splitlines()[-1][:150]
        if changed:
            return "outside write", seconds, ", ".join(changed)[:150]
        if leaked:
            return "secret leaked", seconds, "the secret is in the output or a written file"
        if expect == "error":
            if done.returncode == 2 and len(errors) == 1 and what in errors[0]:
                return "clean error", seconds, errors[0][errors[0].find(what):][:110]
            return "silent-wrong", seconds, f"exit {done.returncode}: {(errors or [''])[0][:150]}"
        if done.returncode == 0 and what():
            return "ok", seconds, "ran and its output checks out"
        return "silent-wrong", seconds, f"exit {done.returncode}: {(errors or [''])[0][:150]}"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hostile_sweep.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the markdown table here")
    parser.add_argument("--jobs", type=int, default=2, help="cases at a time (default 2)")
    parser.add_argument("--only", help="run only the cases whose name holds this word")
    args = parser.parse_args(argv)
    cases = [(name, setup) for name, setup in CASES if not args.only or args.only in name]
    started = time.monotonic()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda case: (case[0], *classify(*case)), cases))
    wall = time.monotonic() - started
    counts = {}
    for _, kind, *_ in results:
        counts[kind] = counts.get(kind, 0) + 1
    lines = [f"{len(results)} cases in {wall:.0f} s wall: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
             "", "| case | outcome | s | detail |", "|---|---|---|---|"]
    for name, kind, seconds, detail in results:
        cell = " ".join(str(detail).split()).replace("|", "\\|")
        lines.append(f"| {name.replace('|', chr(92) + '|')} | {kind} | {seconds:.1f} | {cell} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    bad = {"traceback", "silent-wrong", "outside write", "secret leaked", "hang", "setup failed"}
    return 1 if bad & set(counts) else 0


if __name__ == "__main__":
    sys.exit(main())
