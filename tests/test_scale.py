"""What keeps big datasets affordable (benchmarks/scale.py measures it): UMAP fitted on a sample of the rows, and
synthetic datasets shaped like real ones."""

import numpy as np
import pytest
import torch

import utils.embeddings as embeddings
from benchmarks.scale import interactions


def test_umap_on_more_rows_than_it_fits_is_fitted_on_a_sample_and_says_so(monkeypatch):
    pytest.importorskip("umap")
    monkeypatch.setattr(embeddings, "UMAP_FIT_ROWS", 40)
    matrix = torch.randn(100, 12)
    reduced, method = embeddings.reduce_matrix(matrix, 4, "umap", seed=3)
    assert reduced.shape == (100, 4) and bool(torch.isfinite(reduced).all())
    assert method == "umap fitted on a sample of 40 of 100 rows, the others transformed"
    again, _ = embeddings.reduce_matrix(matrix, 4, "umap", seed=3)
    assert torch.equal(reduced, again)  # the sample is seeded
    small, method = embeddings.reduce_matrix(matrix[:40], 4, "umap", seed=3)
    assert method == "umap" and small.shape == (40, 4)


def test_synthetic_interactions_are_distinct_pairs_with_skewed_popularity():
    users, items = interactions(20_000, 200, 500, np.random.default_rng(0))
    assert len(users) == 20_000 and len(set(zip(users.tolist(), items.tolist()))) == 20_000
    per_user, per_item = np.bincount(users, minlength=200), np.bincount(items, minlength=500)
    assert per_user.min() >= 5
    assert np.sort(per_item)[-5:].sum() > 5 * np.sort(per_item)[:5].sum()  # a long tail, as in real data
