"""tools/oracle_ceiling.py: a target's text score added to a trained baseline's scores, ranked as RecBole ranks."""

import hashlib
import json
import shutil
import sys

import numpy as np
import pytest
import torch
from helpers import ROOT, run_generated

sys.path.insert(0, str(ROOT / "tools"))
import ladder_targets  # noqa: E402
import oracle_ceiling  # noqa: E402

# --- pure pieces --------------------------------------------------------------------------------------------------


def test_ndcg_is_recboles_definition_and_skips_rows_without_relevant_items():
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.5, 0.2]])
    relevant = np.zeros((3, 4), dtype=bool)
    relevant[0, [1, 3]] = relevant[1, 3] = True
    got = oracle_ceiling.ndcg_at_k(scores, relevant, k=2)
    # row 0: top-2 = items 0, 1; item 1 relevant at rank 2; ideal = 1 + 1/log2(3)
    assert got[0] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert got[1] == pytest.approx(1.0) and np.isnan(got[2])


def test_excluded_items_are_never_ranked_and_lambda_zero_keeps_the_models_order():
    rng = np.random.default_rng(0)
    model, content = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    mask = np.zeros((3, 6), dtype=bool)
    mask[:, 0] = True
    mask[1, 2] = True
    z, content_z = oracle_ceiling.standardise(model, mask), oracle_ceiling.standardise(content, mask)
    alone = oracle_ceiling.fused(z, content_z, mask, 0.0)
    assert np.isneginf(alone[mask]).all()
    for row in range(3):
        keep = ~mask[row]
        assert list(np.argsort(-alone[row][keep])) == list(np.argsort(-model[row][keep]))
    mixed = oracle_ceiling.fused(z, content_z, mask, 1.0)
    assert np.isneginf(mixed[mask]).all() and np.isfinite(mixed[~mask]).all()
    for row in range(3):  # standardised over the candidates only
        assert z[row][~mask[row]].mean() == pytest.approx(0, abs=1e-12)
        assert z[row][~mask[row]].std() == pytest.approx(1)


def test_cosine_is_scale_free():
    users, items = np.array([[1.0, 0.0], [2.0, 2.0]]), np.array([[3.0, 0.0], [0.0, 1.0]])
    assert oracle_ceiling.cosine(users, items) == pytest.approx(np.array([[1, 0], [2 ** -0.5, 2 ** -0.5]]))


# --- end to end: a real baseline run, re-scored ------------------------------------------------------------------


class HashedEncoder:
    """A deterministic stand-in for MiniLM (the same text, the same vector), so the test needs no model load."""

    def __call__(self, texts):
        rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=16)
                for t in texts]
        return np.asarray(rows, dtype=np.float32)


@pytest.mark.e2e
@pytest.mark.long
def test_a_trained_baseline_is_re_scored_to_its_journaled_number_and_a_test_oracle_lifts_it(tmp_path, monkeypatch):
    folder = run_generated("ladder_ml100k/generate.py", ["neumf_all_s01_baseline"], tmp_path,
                           args=["--models", "NeuMF", "--seeds", "1", "--settings", "all", "--epochs", "1", "1"])
    baseline = folder / "neumf_all_s01_baseline.yaml"
    shutil.copy(tmp_path / "generated" / "ladder_targets.json", folder)
    manifest = json.loads((folder / "ladder_targets.json").read_text())
    # targets: for this test only, the "oracle" is made from the TEST items (a leak on purpose, so that adding its
    # score must lift test NDCG); the template targets are noise
    monkeypatch.setattr(ladder_targets, "Encoder", HashedEncoder)
    config, _, data = ladder_targets.experiment_data(baseline)
    real, _ = ladder_targets.item_tables(config, config["seed"])
    vectors = ladder_targets.item_vectors_for(config, data, real, HashedEncoder())
    users, items = ladder_targets.interactions(data.test.dataset)
    leak = np.zeros((data.dataset.user_num - 1, vectors.shape[1]), np.float32)
    np.add.at(leak, users - 1, vectors[items])
    where = folder / "emb" / "ml-100k"
    where.mkdir(parents=True, exist_ok=True)
    for entry in manifest.values():
        matrix = leak if entry["kind"] == "oracle_valid" else np.random.default_rng(1).normal(size=leak.shape)
        torch.save(torch.from_numpy(np.asarray(matrix, np.float32)), where / entry["to"])
    rows = oracle_ceiling.ceiling(folder, say=lambda line: None)
    by = {(r["target"], r["lam"]): r for r in rows}
    journal = next(r for r in rows if r["target"] == "distilled:baseline")
    assert round(by[("model", 0.0)]["test"], 4) == round(journal["test"], 4)
    assert round(by[("model", 0.0)]["valid"], 4) == round(journal["valid"], 4)
    assert by[("oracle_valid", 1.0)]["test"] > by[("model", 0.0)]["test"] + 0.05
    frame, stats = oracle_ceiling.summarise(rows)
    assert set(stats["target"]) == {"oracle_valid", "template", "template_remapped"}
    assert "| seed | re-scored | journal |" in "\n".join(oracle_ceiling.render(frame, stats))
