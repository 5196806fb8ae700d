"""Training time per epoch, this project against the original LLM-KT tool, on one experiment file both run unchanged.

    .venv/bin/python benchmarks/side_by_side.py PATH_TO_ORIGINAL [--repeats 3] [--batches 256 2048]
                                                [--modes plain distil] [--quick] [--ours PATH]

PATH_TO_ORIGINAL is a checkout of a250/LLMRecSys_with_KnowledgeDistilation (its root or its
``knowledge_transfer_framework/`` folder). ``benchmarks/side_by_side.yaml`` (NeuMF on ml-100k, mlp_embedding_size
512) gets its placeholders filled per configuration: the batch size and the scenario, plain (init_model,
init_trainer, train) or distilled (reduce_dim 384 -> 32 by PCA, wrap_model NeumfUserRMSE, set_outputs [9]).

Each tool runs in its own temporary working folder (never in the repository) holding ml-100k (copied from
RecBole's bundled example) and ``datasets/llm_embeddings/ml-100k/user_embs.json`` (943 users, string ids, 384
floats from a fixed seed). The two tools run one after the other, in alternation (which one goes first
alternates too), so that drift of a shared machine hits both alike. From RecBole's ``epoch N training [time:
...]`` lines, epochs 2-6 (the first is a warm-up) count; printed: each tool's median seconds per epoch over all
repeats and the median of the per-repeat ratios (this project / original). The original runs with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (its test step needs it on torch >= 2.6) and needs ``umap`` importable.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "side_by_side.yaml"
USERS, WIDTH = 943, 384
EPOCH_LINE = re.compile(r"epoch (\d+) training \[time: ([0-9.]+)s")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

PLAIN = [{"command": "init_model", "params": None},
         {"command": "init_trainer", "params": None},
         {"command": "train", "params": None}]
DISTIL = [{"command": "init_model", "params": None},
          {"command": "reduce_dim", "params": {"file_in": "user384.pt", "file_out": "user32.pt", "dimension": 32,
                                               "method": "pca", "overwrite": True}},
          {"command": "wrap_model", "params": {"distil_loss": "NeumfUserRMSE", "users_emb_file": "user32.pt",
                                               "particular": True}},
          {"command": "set_outputs", "params": [9]},
          {"command": "init_trainer", "params": None},
          {"command": "train", "params": None}]
SCENARIOS = {"plain": PLAIN, "distil": DISTIL}


def original_root(path):
    path = Path(path).resolve()
    for candidate in (path, path / "knowledge_transfer_framework"):
        if (candidate / "run_exps.py").is_file() and (candidate / "utils" / "tmanager.py").is_file():
            return candidate
    sys.exit(f"error: no run_exps.py of the original tool in {path} or {path / 'knowledge_transfer_framework'}")


def write_profiles(path, seed=0):
    """943 user profiles, ids '1'..'943', 384 floats each, the same for every call."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = np.round(rng.standard_normal((USERS, WIDTH)).astype(np.float32), 6)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"id": str(i + 1), "embedding": row.tolist()} for i, row in enumerate(rows)]))


def make_workdir(folder):
    """A working folder with ml-100k and the user profiles, as both tools expect them under ./datasets."""
    import recbole

    data = folder / "datasets" / "ml-100k"
    data.mkdir(parents=True)
    for name in ("ml-100k.inter", "ml-100k.user", "ml-100k.item"):
        shutil.copy(Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / name, data / name)
    write_profiles(folder / "datasets" / "llm_embeddings" / "ml-100k" / "user_embs.json")
    return folder


def experiment_file(folder, batch, mode, epochs):
    text = TEMPLATE.read_text().replace("@BATCH@", str(batch)).replace("@SCENARIO@", repr(SCENARIOS[mode]))
    text = re.sub(r"(?m)^(\s*epochs:) \d+", rf"\1 {epochs}", text)
    path = folder / "experiments" / f"sbs_{mode}_{batch}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def run_tool(tool, script, folder, batch, mode, epochs, timeout):
    """Run one experiment; returns the per-epoch training times logged by RecBole."""
    env = dict(os.environ)
    if tool == "original":
        env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    path = experiment_file(folder, batch, mode, epochs)
    done = subprocess.run([sys.executable, str(script), str(path.relative_to(folder))], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=timeout)
    output = ANSI.sub("", done.stdout + done.stderr)
    times = {int(n): float(t) for n, t in EPOCH_LINE.findall(output)}
    if done.returncode != 0 or len(times) < epochs:
        tail = "\n".join(output.splitlines()[-15:])
        raise RuntimeError(f"{tool} failed on batch {batch} {mode} (exit {done.returncode}):\n{tail}")
    return [times[n] for n in sorted(times)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("original", help="checkout of the original tool (root or knowledge_transfer_framework/)")
    parser.add_argument("--ours", default=str(ROOT), help="checkout of this project to time (default: this one)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating pairs of runs per configuration")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 2048])
    parser.add_argument("--modes", nargs="+", choices=sorted(SCENARIOS), default=["plain", "distil"])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run; the first is not counted")
    parser.add_argument("--quick", action="store_true", help="one repeat of 3 epochs, batch 2048 only")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds one run may take")
    parser.add_argument("--json", help="also write every epoch time to this file")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.epochs, args.batches = 1, 3, [2048]
    scripts = {"ours": Path(args.ours).resolve() / "run_exps.py",
               "original": original_root(args.original) / "run_exps.py"}
    started = time.time()
    results = {}
    with tempfile.TemporaryDirectory(prefix="side_by_side_") as tmp:
        folders = {tool: make_workdir(Path(tmp) / tool) for tool in scripts}
        configs = [(batch, mode) for batch in args.batches for mode in args.modes]
        for repeat in range(args.repeats):
            for index, (batch, mode) in enumerate(configs):
                order = list(scripts) if (repeat + index) % 2 == 0 else list(scripts)[::-1]
                for tool in order:
                    times = run_tool(tool, scripts[tool], folders[tool], batch, mode, args.epochs, args.timeout)
                    results.setdefault((batch, mode), {}).setdefault(tool, []).append(times)
                    print(f"repeat {repeat + 1} batch {batch:>4} {mode:>6} {tool:>8}: "
                          + " ".join(f"{t:.2f}" for t in times), flush=True)
    wall = time.time() - started
    print(f"\nseconds per training epoch, median of epochs 2-{args.epochs} over {args.repeats} run(s) per tool; "
          "ratio: median of the per-repeat ratios (this project / original)")
    print(f"{'batch':>6} {'mode':>7} {'original':>9} {'ours':>7} {'ratio':>6} {'ratios per repeat':>20}")
    for (batch, mode), by_tool in results.items():
        per_run = {tool: [statistics.median(times[1:]) for times in runs] for tool, runs in by_tool.items()}
        ratios = [o / g for o, g in zip(per_run["ours"], per_run["original"])]
        pooled = {tool: statistics.median([t for times in runs for t in times[1:]]) for tool, runs in by_tool.items()}
        print(f"{batch:>6} {mode:>7} {pooled['original']:>9.2f} {pooled['ours']:>7.2f} "
              f"{statistics.median(ratios):>6.3f} {' '.join(f'{r:.3f}' for r in ratios):>20}")
    print(f"wall time: {wall / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(json.dumps([{"batch": b, "mode": m, **runs} for (b, m), runs in results.items()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
