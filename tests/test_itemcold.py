"""The fair item cold start and the budget arm (issue 25): text into both item towers, reference rows, generators."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import EXPERIMENTS, ROOT, load, shrink

from models.hybridneumf import TextItemEmbedding, ridge_map


def test_ridge_map_recovers_a_linear_map():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(200, 5, generator=generator)
    weights, bias = torch.randn(5, 3, generator=generator), torch.randn(3, generator=generator)
    w = ridge_map(features, features @ weights + bias, alpha=1e-8)
    assert w[:5] == pytest.approx(weights.numpy(), abs=1e-4) and w[5] == pytest.approx(bias.numpy(), abs=1e-4)


def _tower(mode, id_dropout=0.0):
    torch.manual_seed(0)
    text = torch.randn(6, 4)
    sparse = torch.tensor([False, False, False, False, True, True])  # items 4 and 5: no (or few) interactions
    fit = ~sparse
    return TextItemEmbedding(torch.nn.Embedding(6, 3), text, mode, sparse, fit, id_dropout=id_dropout), text


def test_hybrid_tower_scores_sparse_items_from_text_only_and_drops_ids_in_training():
    tower, text = _tower("hybrid", id_dropout=1.0)
    tower.eval()
    items = torch.tensor([1, 4])
    out = tower(items)
    assert torch.allclose(out[1], tower.project(text[4]))  # a sparse item: the text path alone
    assert torch.allclose(out[0], tower.ids(items)[0] + tower.project(text[1]))
    tower.train()  # id dropout 1.0: every id dropped while training
    assert torch.allclose(tower(items), tower.project(text[items]))
    out.sum().backward()
    assert tower.project.weight.grad is not None and tower.project.weight.grad.abs().sum() > 0


def test_ridge_tower_maps_sparse_items_at_evaluation_and_refits_after_an_update():
    tower, text = _tower("ridge")
    tower.train()
    assert torch.equal(tower(torch.tensor([4])), tower.ids(torch.tensor([4])))  # training: ids only
    tower.eval()
    weight = tower.ids.weight.detach()
    w = ridge_map(text[:4], weight[:4], 1.0)
    expected = torch.cat([text[4], torch.ones(1)]) @ w
    assert torch.allclose(tower(torch.tensor([4]))[0], expected, atol=1e-5)
    assert torch.equal(tower(torch.tensor([2])), weight[2:3])  # a warm item keeps its own embedding
    with torch.no_grad():
        tower.ids.weight[1] += 1.0  # an optimizer step changes the weights: the map is fitted again
    refit = torch.cat([text[4], torch.ones(1)]) @ ridge_map(text[:4], tower.ids.weight.detach()[:4], 1.0)
    assert torch.allclose(tower(torch.tensor([4]))[0], refit, atol=1e-5)


@pytest.fixture(scope="module")
def itemcold(tmp_path_factory):
    root = tmp_path_factory.mktemp("itemcold")
    subprocess.run([sys.executable, str(EXPERIMENTS / "itemcold_ml100k" / "generate.py"), "--seeds", "1", "--out",
                    str(root)], check=True, capture_output=True, timeout=120)
    return root


def test_itemcold_generator_writes_four_folders_with_every_variant(itemcold):
    folders = sorted(p.name for p in itemcold.iterdir())
    assert folders == ["itemcold_k0_all_ml100k", "itemcold_k0_sparse_ml100k", "itemcold_k2_all_ml100k",
                       "itemcold_k2_sparse_ml100k"]
    hybrid = load(itemcold / "itemcold_k2_sparse_ml100k" / "s1_hybrid.yaml")
    assert hybrid["model"] == "HybridNeuMF" and hybrid["cold_start"] == {"items": 0.2, "k": 2}
    assert hybrid["text_min_count"] == 3 and hybrid["candidate_max_count"] == 2
    assert hybrid["candidate_items"] == "sparse" and hybrid["neumf_full_sort"] == "parts"
    manifest = json.loads((itemcold / "itemcold_k0_all_ml100k" / "ladder_targets.json").read_text())
    assert list(manifest.values()) == [{"kind": "item_text", "to": "ladder_item_text.pt", "split": "items"}]


@pytest.mark.long
def test_itemcold_and_budget_scenarios_pass_the_check(itemcold, tmp_path, monkeypatch, capsys):
    """--check in this process (one dataset load per configuration instead of a process per folder)."""
    import run_exps

    subprocess.run([sys.executable, str(EXPERIMENTS / "budget_ml100k" / "generate.py"), "--seeds", "1", "--out",
                    str(tmp_path)], check=True, capture_output=True, timeout=120)
    monkeypatch.chdir(ROOT)
    for folder in [*itemcold.iterdir(), *tmp_path.iterdir()]:
        assert run_exps.main([str(folder), "--check"]) == 0, capsys.readouterr().err[-2000:]
        assert "ok: " in capsys.readouterr().out
    orig = load(tmp_path / "budget_orig_ml100k" / "neumf_s1_llmkt.yaml")
    epochs = [s["set_config"]["epochs"] for s in orig["scenario"] if "set_config" in s]
    assert epochs == [2, 2] and orig["learning_rate"] == 0.01 and orig["train_batch_size"] == 64
    assert orig["eval_args"]["mode"] == {"valid": "pop20", "test": "full"}
    converged = load(tmp_path / "budget_converged_ml100k" / "multivae_s1_shuffled.yaml")
    assert [s["set_config"]["epochs"] for s in converged["scenario"] if "set_config" in s] == [200, 200]
    assert converged["llm_config"]["preprocess_from_json"]["shuffle"] is True


@pytest.mark.e2e
@pytest.mark.long
def test_item_text_reaches_cold_items_never_seen_in_training(itemcold, tmp_path, monkeypatch):
    """k = 0, cold items ranked among themselves: a real (shrunk) run of each model; the cold items' test
    interactions are scored, and the text models rank them better than chance would."""
    import run_exps

    sys.path.insert(0, str(ROOT / "tools"))
    import ladder_targets

    generated = itemcold / "itemcold_k0_sparse_ml100k"
    folder = tmp_path / "run"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "datasets/llm_embeddings/ml-100k").mkdir(parents=True)
    for name in ("s1_baseline", "s1_hybrid", "s1_ridge", "s1_content_knn", "s1_pop"):
        path = shrink(generated / f"{name}.yaml", folder)
        raw = load(path)
        raw.pop("llm_config")  # the item text file is read from the working directory, as in a real run
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
    (folder / "ladder_targets.json").write_text((generated / "ladder_targets.json").read_text())
    assert ladder_targets.main([str(folder)]) == 0
    assert run_exps.main([str(folder)]) == 0
    journal = pd.read_csv(folder / "itemcold_k0_sparse_journal.csv", index_col=0)
    assert (journal["status"] == "done").all() and len(journal) == 5
    cold = {row["variant"]: json.loads(row["train_0:best_test_res"]) for _, row in journal.iterrows()}
    assert all("cold_items:recall@100" in r for r in cold.values())
    # ~330 candidates: a random ranking puts a test item in the top 100 about 30 % of the time
    assert np.mean([cold[v]["cold_items:recall@100"] for v in ("hybrid", "ridge", "content_knn")]) > 0.2
