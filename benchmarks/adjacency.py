"""LightGCN's normalised adjacency matrix: RecBole's dictionary-of-keys build against models/lightgcn.py's index
arrays, each in a process of its own (peak resident memory is per process), on random interactions shaped like
benchmarks/scale.py's (users = items = size / 100).

    .venv/bin/python benchmarks/adjacency.py --sizes 1000000 10000000 [--skip-recbole-above 3000000]

Prints CPU seconds and the peak resident set (ru_maxrss) of each build, less that of the process before it. Both
give the same tensor, entry for entry (tests/test_ranking.py); this measures what each costs.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(size, which):
    """In this process: build the matrix ``which`` ('recbole' or 'arrays') of ``size`` interactions."""
    import numpy as np
    import scipy.sparse as sp

    sys.path.insert(0, str(ROOT))
    from recbole.model.general_recommender.lightgcn import LightGCN as RecBoleLightGCN

    from models.lightgcn import normalized_adjacency

    n_users = n_items = max(size // 100, 10)
    rng = np.random.default_rng(0)
    pairs = (rng.integers(1, n_users, size), rng.integers(1, n_items, size))
    matrix = sp.coo_matrix((np.ones(size, dtype=np.float32), pairs), shape=(n_users, n_items))
    holder = type("Holder", (), {})()
    holder.n_users, holder.n_items, holder.interaction_matrix = n_users, n_items, matrix
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    if which == "recbole":
        result = RecBoleLightGCN.get_norm_adj_mat(holder)
    else:
        result = normalized_adjacency(n_users, n_items, matrix)
    seconds = time.process_time() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"cpu_s": round(seconds, 2), "peak_mb": round((peak - before) / 1024), "nnz": result._nnz()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--skip-recbole-above", type=int, default=3_000_000,
                        help="RecBole's build is not run above this size (about 0.8 GB per 10^6 interactions)")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # SIZE WHICH: the child process
    args = parser.parse_args()
    if args.one:
        build(int(args.one[0]), args.one[1])
        return
    print("| interactions | build | CPU s | peak MB above the process |")
    print("|---|---|---|---|")
    for size in args.sizes:
        for which in ("recbole", "arrays"):
            if which == "recbole" and size > args.skip_recbole_above:
                print(f"| {size:,} | {which} | not run | not run |")
                continue
            out = subprocess.run([sys.executable, __file__, "--one", str(size), which], capture_output=True,
                                 text=True, check=True).stdout.strip().splitlines()[-1]
            figures = json.loads(out)
            print(f"| {size:,} | {which} | {figures['cpu_s']} | {figures['peak_mb']:,} |", flush=True)


if __name__ == "__main__":
    main()
