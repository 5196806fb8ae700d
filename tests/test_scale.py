"""The synthetic datasets benchmarks/scale.py measures cost on are shaped like real ones."""

import numpy as np

from benchmarks.scale import interactions


def test_synthetic_interactions_are_distinct_pairs_with_skewed_popularity():
    users, items = interactions(20_000, 200, 500, np.random.default_rng(0))
    assert len(users) == 20_000 and len(set(zip(users.tolist(), items.tolist()))) == 20_000
    per_user, per_item = np.bincount(users, minlength=200), np.bincount(items, minlength=500)
    assert per_user.min() >= 5
    assert np.sort(per_item)[-5:].sum() > 5 * np.sort(per_item)[:5].sum()  # a long tail, as in real data
