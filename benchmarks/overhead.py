"""What the transfer costs: training time and peak memory with and without the wrapper, hooks and loss.

    .venv/bin/python benchmarks/overhead.py [--epochs 3] [--repeats 2] [--profiles 100000]

For NeuMF and LightGCN at batch sizes 256 and 2048, the same model, data and seed train plain and then wrapped
(wrapper + a hooked layer + the distillation loss on 64-d profiles); each configuration runs in its own process
(peak memory is a per-process high-water mark) after one warm-up epoch. Prints the per-epoch training-time
ratio (median over repeats) and the peak resident memory of both, against the targets: ratio <= 1.03 at batch
2048 and <= 1.08 at 256; memory overhead <= the profile matrices + 5%. Then times the conversion of
``--profiles`` JSON profiles x 1536 floats into the aligned matrix (target: <= 10 s).
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
}
WIDTH = 64


def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one(model_name, batch, mode, epochs):
    """Train in this process; print a JSON line with epoch times and memory."""
    import torch
    from recbole.utils import init_seed

    import models.losses as losses
    from utils.data import build_dataset, prepare_data
    from utils.trainer import build_trainer
    from utils.utils import ExperimentConfig, get_model_class
    from utils.wrapper import ModelWrapper

    settings = {"use_gpu": False, "state": "ERROR", "seed": 2020, "reproducibility": True, "epochs": epochs + 1,
                "train_batch_size": batch, "checkpoint_dir": tempfile.mkdtemp(), "show_progress": False,
                "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
                **CASES[model_name]["settings"]}
    model_class = get_model_class(model_name)
    config = ExperimentConfig(model=model_class, dataset="ml-100k", config_dict=settings)
    init_seed(config["seed"], True)
    data = prepare_data(config, build_dataset(config))
    init_seed(config["seed"], True)
    model = model_class(config, data.train_dataset)
    profile_bytes = 0
    if mode == "wrapped":
        profiles = torch.randn(data.dataset.user_num, WIDTH)
        profile_bytes = profiles.numel() * profiles.element_size()
        loss = getattr(losses, CASES[model_name]["loss"])(model, data.train_dataset, user_emb=profiles,
                                                           particular=True)
        model = ModelWrapper(model, loss, alpha=0.5)
        model.set_outputs([CASES[model_name]["layer"]])
    trainer = build_trainer(config, model, "overhead")
    before = rss_mb()
    times = []
    for epoch in range(epochs + 1):
        started = time.perf_counter()
        trainer._train_epoch(data.train_parts[0], epoch)
        times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"epoch_s": times[1:], "rss_before_mb": before, "peak_mb": peak,
                      "profile_mb": profile_bytes / 2**20, "threads": torch.get_num_threads()}))


def run_child(model_name, batch, mode, epochs):
    done = subprocess.run([sys.executable, __file__, "--one", model_name, str(batch), mode, "--epochs", str(epochs)],
                          capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    return json.loads(done.stdout.strip().splitlines()[-1])


def training_overhead(epochs, repeats):
    print(f"per-epoch training time and peak memory, median of {repeats} runs x {epochs} epochs after a warm-up")
    print(f"{'model':>9} {'batch':>6} {'plain s':>9} {'wrapped s':>10} {'ratio':>7} {'target':>7} "
          f"{'plain MB':>9} {'wrapped MB':>11} {'extra MB':>9} {'allowed MB':>11}")
    rows = []
    for model_name in CASES:
        for batch in (256, 2048):
            runs = {"plain": [], "wrapped": []}
            for _ in range(repeats):
                for mode in ("plain", "wrapped"):  # interleaved, so drift hits both alike
                    runs[mode].append(run_child(model_name, batch, mode, epochs))
            plain = statistics.median(t for r in runs["plain"] for t in r["epoch_s"])
            wrapped = statistics.median(t for r in runs["wrapped"] for t in r["epoch_s"])
            plain_mb = statistics.median(r["peak_mb"] for r in runs["plain"])
            wrapped_mb = statistics.median(r["peak_mb"] for r in runs["wrapped"])
            allowed = runs["wrapped"][0]["profile_mb"] + 0.05 * plain_mb
            target = 1.03 if batch == 2048 else 1.08
            ratio = wrapped / plain
            rows.append((model_name, batch, ratio, target, wrapped_mb - plain_mb, allowed))
            print(f"{model_name:>9} {batch:>6} {plain:>9.3f} {wrapped:>10.3f} {ratio:>7.3f} {target:>7.2f} "
                  f"{plain_mb:>9.0f} {wrapped_mb:>11.0f} {wrapped_mb - plain_mb:>9.1f} {allowed:>11.1f}", flush=True)
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
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profiles", type=int, default=100_000, help="0 skips the conversion benchmark")
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "BATCH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one[0], int(args.one[1]), args.one[2], args.epochs)
        return 0
    rows = training_overhead(args.epochs, args.repeats)
    missed = [r for r in rows if r[2] > r[3] or r[4] > r[5]]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} configurations within the time and memory targets")
    if args.profiles:
        conversion_time(args.profiles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
