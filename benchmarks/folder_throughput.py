"""Folder sweeps: the fixed cost per experiment, and what --workers 2 buys over one experiment at a time.

    .venv/bin/python benchmarks/folder_throughput.py [--experiments 6] [--workers 2]

Writes a folder of one-epoch NeuMF experiments on ml-100k (different seeds; profiles distilled from one JSON file
made beforehand, outside the timing), runs it with ``run_exps.py`` one at a time and then with ``--workers``,
and prints: wall time, the sum of RecBole's own training and evaluation times (from the journal and the
per-epoch history), the fixed cost per experiment (wall minus that sum, amortized: interpreter start, imports,
config, data, profiles, model and trainer set-up, journaling), the speed-up, and whether both runs journaled
the same test metrics to 3 decimals.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def experiment(seed, embeddings):
    return {
        "logger_level": "WARNING", "journal_name": "journal.csv", "dataset": "ml-100k", "seed": seed,
        "use_gpu": False, "show_progress": False, "model": "NeuMF", "epochs": 1, "train_batch_size": 2048,
        "eval_batch_size": 409600, "learning_rate": 0.001,
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
        "metrics": ["Recall", "NDCG", "Hit"], "topk": [10], "valid_metric": "NDCG@10",
        "llm_config": {"embeddings_path": str(embeddings),
                       "preprocess_from_json": {"from": "throughput_users.json", "to": "throughput384.pt"}},
        "distil_loss_weight": 0.5,
        "scenario": [
            {"init_model": None},
            {"reduce_dim": {"file_in": "throughput384.pt", "file_out": "throughput32.pt", "dimension": 32,
                            "method": "pca"}},
            {"wrap_model": {"distil_loss": "NeumfUserCosine", "users_emb_file": "throughput32.pt",
                            "particular": True}},
            {"set_outputs": ["user_mlp_embedding"]},
            {"init_trainer": None}, {"train": None}, {"test_eval": None},
        ],
    }


def make_folder(root, count):
    """The experiment folder, and the profile JSON they share (made once, not timed)."""
    embeddings = root / "emb"
    folder = root / "folder"
    folder.mkdir(parents=True)
    first = folder / "exp_00.yaml"
    first.write_text(yaml.safe_dump(experiment(1, embeddings), sort_keys=False))
    subprocess.run([sys.executable, str(ROOT / "make_profiles.py"), "--config", str(first), "--encoder", "tfidf",
                    "--out", "throughput_users"], cwd=root, check=True, capture_output=True)
    for index in range(1, count):
        (folder / f"exp_{index:02d}.yaml").write_text(yaml.safe_dump(experiment(index + 1, embeddings),
                                                                      sort_keys=False))
    return folder


def recbole_seconds(folder):
    """Training + validation + test time RecBole spent, summed over the journal's experiments."""
    journal = pd.read_csv(folder / "journal.csv", index_col=0)
    total = 0.0
    for row in journal.to_dict("records"):
        history = json.loads((folder / row["history_file"]).read_text())
        for part in history["parts"].values():
            for train in part.get("trains", []):
                total += sum(e["train_time_s"] + e.get("valid_time_s", 0.0) for e in train["epochs"])
        total += float(row.get("train_0:test_time_s") or 0.0)
    return total, journal


def timed_run(root, folder, extra):
    for stale in folder.glob("journal.csv*"):
        stale.unlink()
    started = time.time()
    subprocess.run([sys.executable, str(ROOT / "run_exps.py"), str(folder), *extra], cwd=root, check=True,
                   capture_output=True, text=True)
    return time.time() - started


def metrics(journal):
    return {row["config"]: {k: round(v, 3) for k, v in json.loads(row["train_0:best_test_res"]).items()}
            for row in journal.to_dict("records")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = make_folder(root, args.experiments)
        results = {}
        for label, extra in (("--workers 1", []), (f"--workers {args.workers}", ["--workers", str(args.workers)])):
            wall = timed_run(root, folder, extra)
            inside, journal = recbole_seconds(folder)
            results[label] = (wall, inside, metrics(journal))
            line = (f"{label:>12}: {args.experiments} experiments in {wall:6.1f}s wall; RecBole training + "
                    f"evaluation {inside:6.1f}s")
            if not extra:  # one at a time: what is not RecBole's own work is the fixed cost
                line += f"; fixed cost {(wall - inside) / args.experiments:5.2f}s per experiment (amortized)"
            print(line, flush=True)
    (wall1, _, metrics1), (wall2, _, metrics2) = results.values()
    print(f"speed-up of --workers {args.workers} over --workers 1: {wall1 / wall2:.2f}x")
    same = metrics1 == metrics2
    print(f"same test metrics to 3 decimals: {'yes' if same else 'no'}")
    if not same:
        for name in sorted(metrics1):
            if metrics1[name] != metrics2.get(name):
                print(f"  {name}: {metrics1[name]} vs {metrics2.get(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
