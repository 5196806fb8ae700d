"""Template profiles' cost per row at growing sizes, apart from RecBole: is it the algorithm or the memory?

    .venv/bin/python benchmarks/profile_rows.py [--sizes 1000000 10000000]

A synthetic history (users = items = size / 100, Zipf-like activity and popularity, ratings and times) goes
through ``utils.profiles.group_rows`` and then the facts, text and prompt of every user, as ``profile_texts`` does;
each size once with Python's garbage collector on and once off, CPU seconds printed. ``group_rows`` is a plain loop
appending each row to its user's lists: a per-row cost that grows with size there comes from memory, not from an
algorithmic term (docs/RESULTS.md, "How cost grows with the data").
"""

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "War"]


def history(size, rng):
    n = size // 100
    weights = 1.0 / np.arange(1, n + 1) ** 0.8
    weights /= weights.sum()
    users, items = rng.choice(n, size=size, p=weights), rng.choice(n, size=size, p=weights)
    frame = pd.DataFrame({"user": users.astype(str), "item": items.astype(str),
                          "rating": rng.integers(1, 6, size).astype(float), "time": rng.random(size) * 1e9})
    item_table = {str(i): {"title": f"Film {i}", "year": str(1950 + i % 70), "genres": [GENRES[i % 7],
                                                                                      GENRES[i * 3 % 7]]}
                  for i in range(n)}
    user_table = {str(u): {"age": 30, "gender": "M", "occupation": "other"} for u in range(n)}
    return frame, user_table, item_table


def run(size, collector):
    from utils.profiles import ProfileFields, group_rows, user_facts, user_prompt, user_text

    fields = ProfileFields()
    frame, users, items = history(size, np.random.default_rng(0))
    if not collector:
        gc.disable()
    try:
        started = time.process_time()
        groups = group_rows(frame, "user")
        grouped = time.process_time()
        facts = {u: user_facts(u, rows, users, items, fields) for u, rows in groups.items()}
        for u, rows in groups.items():
            user_text(facts[u], fields), user_prompt(facts[u], rows, items, fields)
        done = time.process_time()
    finally:
        gc.enable()
    print(f"{size:>10,} rows  gc {'on ' if collector else 'off'}  group_rows {grouped - started:7.2f} CPU s "
          f"({(grouped - started) / size * 1e6:.2f} us/row)  facts+texts+prompts {done - grouped:7.2f} CPU s",
          flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    for size in parser.parse_args(argv).sizes:
        for collector in (True, False):
            run(size, collector)


if __name__ == "__main__":
    main()
