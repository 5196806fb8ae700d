"""Sampled evaluation: a batch built at once (utils/ranking.py ``collate_users``) against RecBole's user-by-user
collate, on a synthetic dataset of benchmarks/scale.py, in alternation in one process (CPU seconds, medians).

    .venv/bin/python benchmarks/eval_collate.py --size 1000000 [--batches 5] [--rounds 5]

Both build the same tensors from the same random state (tests/test_ranking.py checks it on ml-100k); this times
them. One torch thread, as in benchmarks/scale.py.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def timed(action):
    started = time.process_time()
    action()
    return time.process_time() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="interactions of the synthetic dataset")
    parser.add_argument("--batches", type=int, default=5, help="test batches built per round and way")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import scale
    import torch
    from recbole.data.dataloader import NegSampleEvalDataLoader
    from recbole.utils import init_seed

    from utils.data import build_dataset, prepare_data

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        name = f"synth{args.size}"
        users, items, count = scale.write_dataset(Path(work), name, args.size)
        config = scale.make_config(Path(work), name, "NeuMF")
        loader = prepare_data(config, build_dataset(config)).test
        packs = loader.packs[:args.batches]
        ways = {
            "RecBole, user by user": lambda: [NegSampleEvalDataLoader.collate_fn(loader, list(range(*pack)))
                                              for pack in packs],
            "at once (collate_users)": lambda: [loader.collate_users(loader.uid_list[slice(*pack)])
                                                for pack in packs],
        }
        times = {way: [] for way in ways}
        for _ in range(args.rounds):
            for way, action in ways.items():
                init_seed(2020, True)
                times[way].append(timed(action) / len(packs))
    print(f"{count:,} interactions ({users:,} users, {items:,} items), {len(loader.packs)} test batches of up to "
          f"{config['eval_batch_size']:,} rows; {len(packs)} batches x {args.rounds} rounds, in alternation")
    medians = {way: statistics.median(values) for way, values in times.items()}
    for way, value in medians.items():
        print(f"{way}: median {value:.3f} CPU s a batch (rounds: {', '.join(f'{t:.3f}' for t in times[way])})")
    slow, fast = medians.values()
    print(f"ratio {slow / fast:.1f}x; the whole test split: {slow * len(loader.packs):.1f} -> "
          f"{fast * len(loader.packs):.1f} CPU s of batch making")


if __name__ == "__main__":
    main()
