"""``sparse_embeddings: true``: real models on ml-100k get sparse table gradients and SparseAdam, distillation still
works, and checkpoints resume; a model that uses its tables whole keeps the dense update, and says so."""

import copy
import json

import pandas as pd
import pytest
import torch
import yaml
from helpers import build, shrink

import models.losses as losses
import run_exps
from utils.errors import UserError
from utils.settings import RECBOLE
from utils.trainer import build_trainer
from utils.wrapper import Distiller

NEUMF_TABLES = ["user_mf_embedding", "item_mf_embedding", "user_mlp_embedding", "item_mlp_embedding"]


@pytest.fixture(scope="module")
def neumf():
    return build("NeuMF", sparse_embeddings=True)


def sparse_trainer(neumf, workdir, model=None, distiller=None, **settings):
    config, data, built_model = neumf
    config = copy.deepcopy(config)
    config["checkpoint_dir"] = str(workdir / "saved")
    for key, value in settings.items():
        config[key] = value
    return build_trainer(config, model or copy.deepcopy(built_model), "sparse", distiller=distiller)


def first_batch(data):
    return next(iter(data.train_parts[0]))


def test_the_tables_get_sparse_gradients_and_the_rest_dense(neumf, workdir):
    trainer = sparse_trainer(neumf, workdir)
    trainer._train_epoch([first_batch(neumf[1])], 0)
    model = trainer.model
    assert trainer.optimizer.sparse_names == NEUMF_TABLES
    assert all(getattr(model, name).weight.grad.is_sparse for name in NEUMF_TABLES)
    assert not model.predict_layer.weight.grad.is_sparse
    assert set(trainer.optimizer.sparse.param_groups[0]["params"]) == {getattr(model, n).weight for n in NEUMF_TABLES}


def test_only_the_rows_of_the_batch_change_and_hold_optimizer_state(neumf, workdir):
    trainer = sparse_trainer(neumf, workdir)
    before = {name: getattr(trainer.model, name).weight.detach().clone() for name in NEUMF_TABLES}
    batch = first_batch(neumf[1])
    trainer._train_epoch([batch], 0)
    users = torch.unique(batch["user_id"])
    items = torch.unique(batch["item_id"])
    for name, ids in (("user_mf_embedding", users), ("item_mlp_embedding", items)):
        assert torch.equal(trainer.optimizer.touched_rows(name), ids)
        changed = torch.nonzero((getattr(trainer.model, name).weight.detach() != before[name]).any(dim=1)).flatten()
        assert torch.equal(changed, ids)
        assert len(ids) < getattr(trainer.model, name).num_embeddings  # some rows stayed as they were


def test_distillation_still_lowers_its_loss_with_sparse_tables(neumf, workdir):
    config, data, model = neumf
    model = copy.deepcopy(model)
    profiles = torch.randn(data.dataset.user_num, 8, generator=torch.Generator().manual_seed(0))
    loss = losses.NeumfUserRMSE(model, data.train_dataset, user_emb=profiles, particular=True)
    distiller = Distiller(model, loss, alpha=0.5)
    distiller.set_outputs(["mlp_layers.mlp_layers.1"])
    trainer = sparse_trainer(neumf, workdir, model=model, distiller=distiller, learning_rate=0.01)
    trainer.history = []
    for epoch in range(4):
        trainer._train_epoch(data.train_parts[0], epoch)
    distil = [entry["distil_loss"] for entry in trainer.history]
    assert trainer.optimizer.sparse_names == NEUMF_TABLES
    assert all(later < earlier for earlier, later in zip(distil, distil[1:])), distil
    assert distil[-1] < distil[0] * 0.95, distil


def test_a_sparse_checkpoint_resumes_to_the_same_weights_and_optimizer_state(neumf, workdir):
    config, data, model = neumf
    batches = list(data.train_parts[0])[:3]
    first = sparse_trainer(neumf, workdir)
    first._train_epoch(batches[:2], 0)
    first._save_checkpoint(0, verbose=False)
    second = sparse_trainer(neumf, workdir)
    second.resume_checkpoint(first.saved_model_file)
    assert second.optimizer.sparse_names == NEUMF_TABLES
    for name in NEUMF_TABLES:
        assert torch.equal(second.optimizer.touched_rows(name), first.optimizer.touched_rows(name))
    torch.manual_seed(1)
    first._train_epoch(batches[2:], 1)
    torch.manual_seed(1)
    second._train_epoch(batches[2:], 1)
    for name, value in first.model.state_dict().items():
        assert torch.allclose(value, second.model.state_dict()[name]), name


def test_a_dense_checkpoint_does_not_resume_into_a_sparse_trainer(neumf, workdir):
    config, data, model = neumf
    dense_config = copy.deepcopy(config)
    dense_config["sparse_embeddings"] = False
    dense_config["checkpoint_dir"] = str(workdir / "saved")
    dense = build_trainer(dense_config, copy.deepcopy(model), "dense")
    dense._save_checkpoint(0, verbose=False)
    with pytest.raises(UserError, match="optimizer state does not fit.*sparse_embeddings"):
        sparse_trainer(neumf, workdir).resume_checkpoint(dense.saved_model_file)


def test_lightgcn_uses_its_tables_whole_and_keeps_the_dense_update(workdir, capsys):
    config, data, model = build("LightGCN", sparse_embeddings=True, checkpoint_dir=str(workdir / "saved"))
    trainer = build_trainer(config, model, "sparse")
    trainer._train_epoch([first_batch(data)], 0)
    assert trainer.optimizer.sparse_names == [] and trainer.optimizer.dense_groups == [["user_embedding",
                                                                                        "item_embedding"]]
    assert not model.user_embedding.sparse
    assert "LightGCN uses user_embedding, item_embedding as whole tables" in capsys.readouterr().out


def test_multivae_has_no_tables_and_says_so(workdir, capsys):
    config, data, model = build("MultiVAE", sparse_embeddings=True, checkpoint_dir=str(workdir / "saved"))
    trainer = build_trainer(config, model, "sparse")
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    assert "MultiVAE has no nn.Embedding tables" in capsys.readouterr().out


def test_sparse_embeddings_must_be_a_boolean():
    with pytest.raises(UserError, match="sparse_embeddings must be true or false"):
        RECBOLE.check({"sparse_embeddings": "yes"})


def test_clip_grad_norm_with_sparse_tables_is_refused(workdir):
    config, data, model = build("BPR", sparse_embeddings=True, clip_grad_norm={"max_norm": 5},
                                checkpoint_dir=str(workdir / "saved"))
    with pytest.raises(UserError, match="cannot be combined with clip_grad_norm"):
        build_trainer(config, model, "sparse")


@pytest.mark.e2e
def test_a_ready_scenario_runs_with_sparse_embeddings(workdir, capsys):
    path = shrink("neumf/neumf_ml100k.yaml", workdir, extra={"sparse_embeddings": True})
    assert run_exps.main([str(path)]) == 0
    assert "sparse_embeddings: 4 tables of NeuMF" in capsys.readouterr().out
    raw = yaml.safe_load(path.read_text())
    (row,) = pd.read_csv(path.parent / raw["journal_name"], index_col=0).to_dict("records")
    assert row["status"] == "done" and 0.0 < json.loads(row["train_1:best_test_res"])["ndcg@10"] <= 1.0
