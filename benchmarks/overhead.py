"""What the transfer costs: training time and peak memory with and without the wrapper, hooks and loss.

    .venv/bin/python benchmarks/overhead.py [--epochs 10] [--profiles 100000] [--skip-training] [--time-only]
                                            [--models NeuMF LightGCN SASRec]

For NeuMF, LightGCN and SASRec (a heavier step: self-attention and a softmax over all items) at batch sizes 256 and
2048, the same model, data and seed train plain and wrapped (wrapper + a hooked layer + the distillation loss on
64-d profiles). Both apply the allocator setting real runs get from ``run_experiment``
(``utils.allocator.keep_freed_memory``).

Time: both models live in one process and train epoch by epoch in alternation (which goes first alternates
too), after one warm-up epoch each, so that drift of the machine hits both alike; the ratio is the median of the
per-epoch ratios. Memory: each variant trains in its own process (peak RSS is a per-process high-water mark),
once with glibc's default allocator settings and once with ``MALLOC_MMAP_THRESHOLD_=65536``, under which freed
tensor buffers go back to the system at once, so the peak shows live memory rather than what glibc's heap kept.

Targets: ratio <= 1.03 at batch 2048 and <= 1.05 at 256; memory overhead <= the profile matrices + 5% of the
plain peak. Then times the conversion of ``--profiles`` JSON profiles x 1536 floats into the aligned matrix
(target: <= 10 s).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = {
    "NeuMF": {"layer": "mlp_layers.mlp_layers.1", "loss": "NeumfUserRMSE", "settings": {}},
    "LightGCN": {"layer": 1, "loss": "LightGCNUserRMSE", "settings": {}},
    # the sequence representation (the model's own output, one row per batch user), read by the generic loss
    "SASRec": {"layer": 1, "loss": "HiddenDistil", "settings": {
        "n_layers": 1, "MAX_ITEM_LIST_LENGTH": 20,  # RecBole: 2 layers, 50 items; smaller so a CPU epoch fits
        "train_neg_sample_args": None,
        "eval_args": {"split": {"LS": "valid_and_test"}, "group_by": "user", "order": "TO", "mode": "full"}}},
}
TARGETS = {256: 1.05, 2048: 1.03}
WIDTH = 64
LIVE_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def build(model_name, batch, epochs, modes):
    """Data once, then one (model, trainer, profile bytes) per mode, each model from the same seed."""
    import torch
    from recbole.utils import init_seed

    import models.losses as losses
    from utils.allocator import keep_freed_memory
    from utils.config_loading import ExperimentConfig
    from utils.data import build_dataset, prepare_data
    from utils.registry import get_model_class
    from utils.trainer import build_trainer
    from utils.wrapper import Distiller

    keep_freed_memory()  # as run_experiment does; a no-op under LIVE_MEMORY_ENV (a MALLOC_* tunable is set)
    settings = {"use_gpu": False, "state": "ERROR", "seed": 2020, "reproducibility": True, "epochs": epochs + 1,
                "train_batch_size": batch, "checkpoint_dir": tempfile.mkdtemp(), "show_progress": False,
                "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
                **CASES[model_name]["settings"]}
    model_class = get_model_class(model_name)
    config = ExperimentConfig(model=model_class, dataset="ml-100k", config_dict=settings)
    init_seed(config["seed"], True)
    data = prepare_data(config, build_dataset(config))
    built = {}
    for mode in modes:
        init_seed(config["seed"], True)
        model = model_class(config, data.train_dataset)
        profile_bytes, distiller = 0, None
        if mode == "wrapped":
            profiles = torch.randn(data.dataset.user_num, WIDTH)
            profile_bytes = profiles.numel() * profiles.element_size()
            loss = getattr(losses, CASES[model_name]["loss"])(model, data.train_dataset, user_emb=profiles,
                                                               particular=True)
            distiller = Distiller(model, loss, alpha=0.5)
            distiller.set_outputs([CASES[model_name]["layer"]])
        built[mode] = (build_trainer(config, model, f"overhead-{mode}", distiller=distiller), profile_bytes)
    return data.train_parts[0], built


def timed_epoch(trainer, loader, epoch):
    started = time.perf_counter()
    trainer._train_epoch(loader, epoch)
    return time.perf_counter() - started


def pair(model_name, batch, epochs):
    """Plain and wrapped in this process, alternating epochs; print a JSON line with both lists of times."""
    loader, built = build(model_name, batch, epochs, ("plain", "wrapped"))
    times = {"plain": [], "wrapped": []}
    for epoch in range(epochs + 1):
        order = ("plain", "wrapped") if epoch % 2 == 0 else ("wrapped", "plain")
        for mode in order:
            seconds = timed_epoch(built[mode][0], loader, epoch)
            if epoch:  # epoch 0 warms up
                times[mode].append(seconds)
    print(json.dumps(times))


def one(model_name, batch, mode, epochs):
    """One variant alone in this process; print a JSON line with its peak memory."""
    loader, built = build(model_name, batch, epochs, (mode,))
    trainer, profile_bytes = built[mode]
    before = rss_mb()
    for epoch in range(epochs + 1):
        timed_epoch(trainer, loader, epoch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rss_before_mb": before, "peak_mb": peak, "profile_mb": profile_bytes / 2**20}))


def child(*args, env=None):
    done = subprocess.run([sys.executable, __file__, *map(str, args)], capture_output=True, text=True, check=True,
                          cwd=tempfile.gettempdir(), env={**os.environ, **(env or {})})
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_overhead(model_name, batch):
    """Peak RSS of each variant alone, glibc's defaults and live memory: (plain MB, extra MB, extra live, allowed)."""
    memory = {(mode, live): child("--one", model_name, batch, mode, "--epochs", 1,
                                  env=LIVE_MEMORY_ENV if live else None)
              for live in (False, True) for mode in ("plain", "wrapped")}
    plain_mb = memory["plain", False]["peak_mb"]
    extra = memory["wrapped", False]["peak_mb"] - plain_mb
    extra_live = memory["wrapped", True]["peak_mb"] - memory["plain", True]["peak_mb"]
    return plain_mb, extra, extra_live, memory["wrapped", False]["profile_mb"] + 0.05 * plain_mb


def training_overhead(epochs, models, time_only=False):
    print(f"per-epoch training time: median of {epochs} alternating epoch pairs after a warm-up, in one process;"
          " peak RSS: each variant alone, default glibc / MALLOC_MMAP_THRESHOLD_=65536 (live memory)")
    print(f"{'model':>9} {'batch':>6} {'plain s':>8} {'wrapped s':>10} {'ratio':>6} {'target':>7} {'plain MB':>9} "
          f"{'extra MB':>9} {'extra MB live':>14} {'allowed MB':>11}")
    rows = []
    for model_name in models:
        for batch in TARGETS:
            times = child("--pair", model_name, batch, "--epochs", epochs)
            ratio = statistics.median(w / p for p, w in zip(times["plain"], times["wrapped"]))
            nan = float("nan")
            plain_mb, extra, extra_live, allowed = (nan,) * 4 if time_only else memory_overhead(model_name, batch)
            rows.append({"model": model_name, "batch": batch, "ratio": ratio, "target": TARGETS[batch],
                         "extra": extra, "extra_live": extra_live, "allowed": allowed})
            print(f"{model_name:>9} {batch:>6} {statistics.median(times['plain']):>8.3f} "
                  f"{statistics.median(times['wrapped']):>10.3f} {ratio:>6.3f} {TARGETS[batch]:>7.2f} {plain_mb:>9.0f} "
                  f"{extra:>9.1f} {extra_live:>14.1f} {allowed:>11.1f}", flush=True)
    return rows


def conversion_time(count, width=1536):
    """Write ``count`` profiles x ``width`` floats as JSON, then time JSON -> aligned matrix."""
    import numpy as np

    from utils.embeddings import align_rows, read_profile_matrix

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "profiles.json"
        started = time.perf_counter()
        with open(path, "w") as fh:
            fh.write("[")
            for start in range(0, count, 1000):
                block = np.round(rng.standard_normal((min(1000, count - start), width)), 7)
                fh.write(",".join(
                    json.dumps({"id": start + i, "description": f"profile of user {start + i}", "prompt": "...",
                                "embedding": row.tolist()})
                    for i, row in enumerate(block)) + ("," if start + 1000 < count else ""))
            fh.write("]")
            fh.flush()
            os.fsync(fh.fileno())  # the kernel's writeback of 1.6 GiB must not run during the timed read
        size = path.stat().st_size / 2**30
        print(f"\nwrote {count:,} profiles x {width} floats ({size:.2f} GiB) in {time.perf_counter() - started:.0f}s")
        tokens = [str(i) for i in rng.permutation(count)]  # RecBole's order differs from the file's
        started = time.perf_counter()
        ids, matrix = read_profile_matrix(path)
        parsed = time.perf_counter() - started
        aligned = align_rows(ids, matrix, tokens)
        total = time.perf_counter() - started
    print(f"JSON -> aligned matrix {tuple(aligned.shape)}: {total:.1f}s (parse {parsed:.1f}s, align "
          f"{total - parsed:.1f}s); target <= 10s")
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs per variant (after one warm-up)")
    parser.add_argument("--profiles", type=int, default=100_000, help="0 skips the conversion benchmark")
    parser.add_argument("--skip-training", action="store_true", help="only the conversion benchmark")
    parser.add_argument("--time-only", action="store_true", help="training time without the memory runs")
    parser.add_argument("--models", nargs="+", choices=list(CASES), default=list(CASES), help="which models")
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "BATCH", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--pair", nargs=2, metavar=("MODEL", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one[0], int(args.one[1]), args.one[2], args.epochs)
        return 0
    if args.pair:
        pair(args.pair[0], int(args.pair[1]), args.epochs)
        return 0
    if not args.skip_training:
        rows = training_overhead(args.epochs, args.models, args.time_only)
        checks = [("time", lambda r: r["ratio"] <= r["target"])]
        if not args.time_only:
            checks += [("memory", lambda r: r["extra"] <= r["allowed"]),
                       ("live memory", lambda r: r["extra_live"] <= r["allowed"])]
        for name, ok in checks:
            print(f"{name}: {sum(map(ok, rows))} of {len(rows)} configurations within target")
    if args.profiles:
        conversion_time(args.profiles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
