"""Each distillation loss, on its real RecBole model: gradients reach what produces the hooked tensor, and only that."""

import copy

import pytest
import torch

from models import losses
from utils import wrapper as wrap
from utils.errors import UserError

# model, loss, hooked layer, layers that produce the hooked tensor, a layer to freeze among them, a layer after it
CASES = [
    ("NeuMF", "NeumfUserRMSE", "mlp_layers.mlp_layers.1", ["mlp_layers.mlp_layers.1", "user_mlp_embedding"],
     "item_mlp_embedding", "predict_layer"),
    ("SimpleX", "SimpleXUserRMSE", "dropout", ["user_emb", "UI_map"], "UI_map", None),
    ("MultiVAE", "MultiVAEUserRMSE", "decoder.0", ["encoder.0", "encoder.2"], "encoder.2", "decoder.2"),
    ("NGCF", "NGCFUserRMSE", "GNNlayers.0", ["GNNlayers.0.linear", "user_embedding"],
     "GNNlayers.0.interActTransform", "GNNlayers.1.linear"),
    ("LightGCN", "LightGCNUserRMSE", 1, ["user_embedding"], "item_embedding", None),
    ("LightGCN", "LightGCNUserCosine", 1, ["user_embedding"], "item_embedding", None),
    ("AutoInt", "AutoIntUserRMSE", "mlp_layers.mlp_layers.2", ["mlp_layers.mlp_layers.1", "token_embedding_table"],
     "mlp_layers.mlp_layers.1", "deep_predict_layer"),
    ("SASRec", "SASRecUserRMSE", 1, ["item_embedding", "trm_encoder.layer.0.feed_forward.dense_1"],
     "position_embedding", None),
]


def module(model, path):
    (layer,) = wrap.resolve_layers(model, [path])
    return layer.module


def grads(model, path):
    return [p.grad for p in module(model, path).parameters()]


def distil_backward(model_name, loss_name, hooked, built, frozen=None, width=8):
    config, data, model = built(model_name)
    model = copy.deepcopy(model)
    if frozen:
        wrap.set_trainable(model, [frozen], False)
    torch.manual_seed(0)
    profiles = torch.randn(data.dataset.user_num, width)
    loss = getattr(losses, loss_name)(model, data.train_dataset, user_emb=profiles, particular=True)
    distiller = wrap.Distiller(model, loss, alpha=1.0)  # alpha 1: the model's own loss adds exactly zero gradient
    distiller.set_outputs([hooked])
    model.train()
    batch = next(iter(data.train_parts[0]))
    distil = distiller(batch)
    assert distil.numel() == 1 and torch.isfinite(distil) and distil > 0  # NGCF: its own loss has shape (1,)
    distil.backward()
    return model


@pytest.mark.parametrize("model_name,loss_name,hooked,producers,frozen,downstream", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_distillation_gradient_reaches_the_producers_only(built, model_name, loss_name, hooked, producers, frozen,
                                                          downstream):
    model = distil_backward(model_name, loss_name, hooked, built)
    for path in producers:
        assert any(g is not None and g.abs().sum() > 0 for g in grads(model, path)), f"no gradient for {path}"
    if downstream:
        assert all(g is None or g.abs().sum() == 0 for g in grads(model, downstream)), f"{downstream} got gradient"


@pytest.mark.parametrize("model_name,loss_name,hooked,producers,frozen,downstream", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_frozen_layers_get_no_gradient(built, model_name, loss_name, hooked, producers, frozen, downstream):
    model = distil_backward(model_name, loss_name, hooked, built, frozen=frozen)
    assert all(g is None for g in grads(model, frozen))
    others = [p for p in producers if p != frozen]
    assert any(g is not None for path in others for g in grads(model, path))


class Rows(losses.UserRowsLoss):
    pass


def fake_model_and_dataset(users=5, items=7):
    class Dataset:
        uid_field, iid_field, user_num, item_num = "user_id", "item_id", users, items

    return torch.nn.Linear(1, 1), Dataset()


def test_particular_compares_the_first_columns():
    model, dataset = fake_model_and_dataset()
    loss = Rows(model, dataset, user_emb=torch.ones(5, 2), particular=True)
    hidden = torch.tensor([[1.0, 1.0, 9.0], [1.0, 1.0, -9.0]])
    assert loss.mse(hidden, torch.ones(2, 2)) == 0


def test_width_mismatch_without_particular_names_both_shapes():
    model, dataset = fake_model_and_dataset()
    loss = Rows(model, dataset, user_emb=torch.ones(5, 2))
    with pytest.raises(UserError, match=r"hooked \(2, 3\) vs profiles \(2, 2\).*particular"):
        loss.mse(torch.zeros(2, 3), torch.ones(2, 2))


def test_a_hooked_tensor_narrower_than_the_profiles_is_refused():
    model, dataset = fake_model_and_dataset()
    loss = Rows(model, dataset, user_emb=torch.ones(5, 4), particular=True)
    with pytest.raises(UserError, match=r"narrower.*\(2, 3\) vs profiles \(2, 4\)"):
        loss.rmse(torch.zeros(2, 3), torch.ones(2, 4))


def test_distances():
    model, dataset = fake_model_and_dataset()
    loss = Rows(model, dataset, user_emb=torch.ones(5, 2))
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 4.0]])
    assert loss.mse(a, b) == pytest.approx(12.5)
    assert loss.rmse(a, b) == pytest.approx(12.5**0.5)
    assert loss.cosine_distance(a, b) == pytest.approx(1.0)
    assert loss.cosine_distance(a, 2 * a) == pytest.approx(0.0, abs=1e-6)


def test_a_loss_without_its_profiles_says_which_setting_is_missing():
    model, dataset = fake_model_and_dataset()
    with pytest.raises(UserError, match="use_user_emb"):
        Rows(model, dataset, user_emb=None)


# --- the generic loss --------------------------------------------------------------------------------------------

GENERIC = [  # model, hooked layer, options, producer that must get a gradient
    ("NeuMF", "user_mlp_embedding", {"rows": "batch", "distance": "cosine"}, "user_mlp_embedding"),
    ("NeuMF", "item_mlp_embedding", {"entity": "item", "rows": "batch"}, "item_mlp_embedding"),
    ("LightGCN", 1, {}, "user_embedding"),  # auto: the (all users, all items) pair, the batch users' rows
    ("LightGCN", 1, {"entity": "item"}, "item_embedding"),
    ("NGCF", "GNNlayers.0", {"rows": "ids"}, "GNNlayers.0.linear"),
    ("BPR", "user_embedding", {"rows": "batch"}, "user_embedding"),
    ("SASRec", 1, {"rows": "batch", "distance": "mse"}, "item_embedding"),
    ("MultiVAE", "decoder.0", {"source": "input"}, "encoder.0"),
]


@pytest.mark.parametrize("model_name,hooked,options,producer", GENERIC,
                         ids=[f"{g[0]}-{g[1]}-{g[2].get('entity', 'user')}" for g in GENERIC])
def test_the_generic_loss_distils_without_model_specific_code(built, model_name, hooked, options, producer):
    config, data, model = built(model_name)
    model = copy.deepcopy(model)
    torch.manual_seed(0)
    profiles = {"user_emb": torch.randn(data.dataset.user_num, 8), "item_emb": torch.randn(data.dataset.item_num, 8)}
    loss = losses.HiddenDistil(model, data.train_dataset, particular=True, **profiles, **options)
    distiller = wrap.Distiller(model, loss, alpha=1.0)
    distiller.set_outputs([hooked])
    distil = distiller(next(iter(data.train_parts[0])))
    assert distil > 0
    distil.backward()
    assert any(g is not None and g.abs().sum() > 0 for g in grads(model, producer))


def test_generic_loss_options_are_checked_with_suggestions():
    with pytest.raises(UserError, match="did you mean 'distance'"):
        losses.HiddenDistil.check_options({"distanse": "cosine"})
    with pytest.raises(UserError, match="HiddenDistil.rows must be one of auto, batch, ids, all"):
        losses.HiddenDistil.check_options({"rows": "every"})
    with pytest.raises(UserError, match="unknown key 'rows' in NeumfUserRMSE"):
        losses.NeumfUserRMSE.check_options({"rows": "batch"})


@pytest.mark.parametrize("entity", ["user", "item"])
def test_rows_all_pulls_every_row_of_the_embedding_table_in_every_batch(built, entity):
    config, data, model = built("NeuMF")
    model = copy.deepcopy(model)
    torch.manual_seed(0)
    count = data.dataset.user_num if entity == "user" else data.dataset.item_num
    profiles = {f"{entity}_emb": torch.randn(count, 8)}
    loss = losses.HiddenDistil(model, data.train_dataset, particular=True, entity=entity, rows="all",
                               distance="cosine", **profiles)
    distiller = wrap.Distiller(model, loss, alpha=1.0)
    table = getattr(model, f"{entity}_mf_embedding")
    distiller.set_outputs([f"{entity}_mf_embedding"])
    batch = next(iter(data.train_parts[0]))[:256]  # a part of a batch: rows outside it exist whatever the slice
    distil = distiller(batch)
    expected = loss.cosine_distance(table.weight[1:, :8], profiles[f"{entity}_emb"][1:])
    assert float(distil) == pytest.approx(float(expected), rel=1e-5)
    distil.backward()
    touched = table.weight.grad.abs().sum(dim=1) > 0
    in_batch = torch.zeros(count, dtype=torch.bool)
    in_batch[batch[model.USER_ID if entity == "user" else model.ITEM_ID]] = True
    assert touched[1:].all() and not touched[0]  # every row but padding, also those of no interaction in the batch
    assert (touched & ~in_batch).any()


def test_rows_all_on_a_layer_that_is_no_embedding_table_is_one_line(built):
    config, data, model = built("NeuMF")
    model = copy.deepcopy(model)
    loss = losses.HiddenDistil(model, data.train_dataset, user_emb=torch.randn(data.dataset.user_num, 4),
                               particular=True, rows="all")
    distiller = wrap.Distiller(model, loss, alpha=1.0)
    distiller.set_outputs(["predict_layer"])
    with pytest.raises(UserError, match="rows: all reads the hooked layer's table, but predict_layer is Linear") as e:
        distiller(next(iter(data.train_parts[0])))
    assert "\n" not in str(e.value)


def test_generic_loss_names_a_layer_that_is_not_hooked(built):
    config, data, model = built("NeuMF")
    loss = losses.HiddenDistil(model, data.train_dataset, user_emb=torch.randn(data.dataset.user_num, 4),
                               layer="predict_layer")
    with pytest.raises(UserError, match="not among the hooked layers"):
        wrap.Distiller(copy.deepcopy(model), loss, alpha=0.5).set_outputs([9])


def test_item_side_distillation_needs_item_profiles(built):
    config, data, model = built("NeuMF")
    with pytest.raises(UserError, match="use_item_emb"):
        losses.HiddenDistil(model, data.train_dataset, user_emb=torch.randn(data.dataset.user_num, 4), entity="item")


# --- the registry ------------------------------------------------------------------------------------------------


def test_a_legacy_name_is_an_alias_of_its_loss():
    from utils.registry import get_loss_class

    assert get_loss_class("AutoIntUserCosSim", "AutoInt") is losses.AutoIntUserCosine
    assert get_loss_class("LightGCNUserCosSim", "LightGCN") is losses.LightGCNUserCosine


def test_base_classes_are_neither_found_nor_offered():
    from utils.registry import available_losses, get_loss_class

    names = available_losses("NeuMF")
    assert {"NeumfUserRMSE", "HiddenDistil"} <= set(names)
    assert not {"DistilLoss", "UserRowsLoss", "GraphUserLoss", "AutoIntUserCosSim"} & set(names)
    with pytest.raises(UserError, match="unknown distillation loss 'UserRowsLoss'"):
        get_loss_class("UserRowsLoss", "NeuMF")


def test_an_unknown_loss_is_one_line_with_a_suggestion():
    from utils.registry import get_loss_class

    with pytest.raises(UserError) as err:
        get_loss_class("NeumfUserRMS", "NeuMF")
    line = str(err.value)
    assert "\n" not in line and "did you mean 'NeumfUserRMSE'?" in line and "available: AutoIntUserCosine, " in line


def test_a_loss_registered_in_a_models_file_serves_that_model_only(monkeypatch):
    from utils.registry import get_loss_class

    monkeypatch.setattr(losses, "_LOSSES", dict(losses._LOSSES))
    monkeypatch.setattr(losses, "_CANONICAL", set(losses._CANONICAL))
    custom = type("TwoTowersUserRMSE", (losses.UserRowsLoss,), {"__module__": "models.twotowers"})
    losses.register_loss(custom)
    assert get_loss_class("TwoTowersUserRMSE", "TwoTowers") is custom
    with pytest.raises(UserError, match="unknown distillation loss"):
        get_loss_class("TwoTowersUserRMSE", "NeuMF")


class OneHooked:
    """What a loss receives for one hooked layer whose output (first call) is ``tensor``."""

    def __init__(self, tensor):
        self.tensor = tensor

    def value(self, layer=None, side="output", call=0):
        return self.tensor


def test_hidden_distil_rows_are_decided_once_at_wrap_time_not_from_a_batchs_row_count():
    model, dataset = fake_model_and_dataset(users=5)
    torch.manual_seed(0)
    profiles = torch.randn(5, 3)
    loss = losses.HiddenDistil(model, dataset, user_emb=profiles)  # rows left out: not a graph model -> batch
    assert loss.rows == "batch"
    ids = torch.tensor([4, 4, 1, 2, 3])  # a batch of exactly user_num rows, in batch order (not by id)
    hooked = torch.randn(5, 3)
    got = loss(OneHooked(hooked), {"user_id": ids})
    assert got == pytest.approx(float(loss.rmse(hooked, profiles[ids])))
    assert got != pytest.approx(float(loss.rmse(hooked[ids], profiles[ids])))  # the id-table reading of old 'auto'


def test_hidden_distil_rows_of_a_graph_model_are_ids_and_a_wrong_table_is_refused():
    model, dataset = fake_model_and_dataset(users=5)
    model.norm_adj_matrix = torch.zeros(1)  # what marks RecBole's graph models (LightGCN, NGCF)
    loss = losses.HiddenDistil(model, dataset, user_emb=torch.randn(5, 3))
    assert loss.rows == "ids"
    with pytest.raises(UserError, match="rows: ids reads a table of every user, but the hooked tensor has 3 rows"):
        loss(OneHooked(torch.randn(3, 3)), {"user_id": torch.tensor([1, 2, 3])})
