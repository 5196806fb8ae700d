"""Layer numbering, the info table, hooks and trainable flags, on real RecBole models."""

import copy

import pytest
import torch
from helpers import build

from models.losses import DistilLoss
from utils import wrapper as wrap
from utils.errors import UserError
from utils.trainer import build_trainer
from utils.wrapper import Read

SEED_ROWS = """\
    1 |  | root | NeuMF ()
    2 | ---- | user_mf_embedding | Embedding (944, 64)
    3 | ---- | item_mf_embedding | Embedding (1683, 64)
    4 | ---- | user_mlp_embedding | Embedding (944, 512)
    5 | ---- | item_mlp_embedding | Embedding (1683, 512)
    6 | ---- | mlp_layers | MLPLayers ()
    7 | -------- | mlp_layers | Sequential ()
    8 | ------------ | 0 | Dropout (p=0.1, inplace=False)
    9 | ------------ | 1 | Linear (in_features=1024, out_features=256, bias=True)
   10 | ------------ | 2 | ReLU ()
   11 | ------------ | 3 | Dropout (p=0.1, inplace=False)
   12 | ------------ | 4 | Linear (in_features=256, out_features=128, bias=True)
   13 | ------------ | 5 | ReLU ()
   14 | ------------ | 6 | Dropout (p=0.1, inplace=False)
   15 | ------------ | 7 | Linear (in_features=128, out_features=64, bias=True)
   16 | ------------ | 8 | ReLU ()
   17 | ---- | predict_layer | Linear (in_features=128, out_features=1, bias=True)
   18 | ---- | sigmoid | Sigmoid ()
   19 | ---- | loss | BCEWithLogitsLoss ()"""


class Capture(DistilLoss):
    """A loss that records what it was given and returns the mean of the first thing it reads (so it has a
    gradient). ``wanted``: its reads (default: the one hooked layer's output, first call)."""

    needs = frozenset()
    wanted = None

    def reads(self):
        return self.wanted or super().reads()

    def forward(self, hooked, interaction):
        self.seen = hooked
        read = self.reads()[0]
        call = 0 if read.calls is None else read.calls[0]
        return self.hooked_tensor(hooked, read.side, read.layer, call).float().mean()


def capture(model, data, *wanted, layer=None):
    loss = Capture(model, data.train_dataset)
    loss.wanted, loss.layer = list(wanted), layer
    return loss


@pytest.fixture(scope="module")
def seed_neumf():
    return build("NeuMF", mf_embedding_size=64, mlp_embedding_size=512, mlp_hidden_size=[256, 128, 64],
                 dropout_prob=0.1, user_inter_num_interval=None)


def batch_of(data):
    return next(iter(data.train_parts[0]))


def test_info_table_of_the_seed_neumf_is_the_seeds_19_rows(seed_neumf):
    _, _, model = seed_neumf
    assert wrap.layer_table(model) == SEED_ROWS


def test_layers_are_numbered_depth_first_with_dotted_paths(seed_neumf):
    layers = wrap.enumerate_layers(seed_neumf[2])
    assert [layer.number for layer in layers] == list(range(1, 20))
    assert layers[8].path == "mlp_layers.mlp_layers.1"
    assert layers[0].path == "" and layers[0].name == "root"


def test_count_params_follows_requires_grad(built):
    model = copy.deepcopy(built("NeuMF")[2])
    before = wrap.count_params(model)
    assert before["total_params"] == before["train_params"] > 0
    wrap.set_trainable(model, [2], False)
    after = wrap.count_params(model)
    assert after["train_params"] == before["train_params"] - model.user_mf_embedding.weight.numel()


def test_set_trainable_star_freezes_everything_and_lists_every_layer(built):
    model = copy.deepcopy(built("NeuMF")[2])
    lines = wrap.set_trainable(model, ["*"], False)
    assert len(lines) == len(wrap.enumerate_layers(model))
    assert not any(p.requires_grad for p in model.parameters())
    wrap.set_trainable(model, [9], True)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"mlp_layers.mlp_layers.1.weight", "mlp_layers.mlp_layers.1.bias"}


def test_a_layer_outside_the_model_names_the_count_and_info():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    with pytest.raises(UserError, match=r"layer 42 is outside the model: Sequential has 3 layers.*info"):
        wrap.resolve_layers(model, [42])


def test_an_unknown_path_names_the_nearest():
    model = torch.nn.ModuleDict({"encoder": torch.nn.Linear(2, 2), "decoder": torch.nn.Linear(2, 2)})
    with pytest.raises(UserError, match="nearest: encoder"):
        wrap.resolve_layers(model, ["encodr"])


def test_hooks_leave_model_outputs_unchanged(built):
    config, data, model = built("NeuMF")
    model = copy.deepcopy(model).eval()
    batch = batch_of(data)
    plain = model.predict(batch)
    distiller = wrap.Distiller(model, capture(model, data, layer=9), alpha=0.5)
    distiller.set_outputs([6, 9])
    assert torch.equal(model.predict(batch), plain)


def test_hooked_tensor_equals_the_layers_own_output(built):
    config, data, model = built("NeuMF")
    model = copy.deepcopy(model).eval()  # eval: dropout off, so the recomputation matches
    loss = capture(model, data, Read(9, "output"), Read(9, "input"))
    distiller = wrap.Distiller(model, loss, alpha=0.5)
    distiller.set_outputs([9])
    batch = batch_of(data)
    distiller(batch)
    (hooked_output,) = loss.seen[9]["output"]
    (hooked_input,) = loss.seen[9]["input"]
    layer = model.mlp_layers.mlp_layers[1]
    assert torch.equal(hooked_output, layer(hooked_input[0]))
    user_e = model.user_mlp_embedding(batch[model.USER_ID])
    item_e = model.item_mlp_embedding(batch[model.ITEM_ID])
    assert torch.equal(hooked_input[0], torch.cat((user_e, item_e), -1))


def test_a_loss_that_reads_only_outputs_gets_no_inputs(built):
    config, data, model = built("NeuMF")
    model = copy.deepcopy(model)
    loss = capture(model, data)  # the default: the hooked layer's output, first call
    distiller = wrap.Distiller(model, loss, alpha=0.5)
    distiller.set_outputs(["mlp_layers.mlp_layers.1"])
    distiller(batch_of(data))
    assert loss.seen[9]["input"] == [] and len(loss.seen[9]["output"]) == 1
    with pytest.raises(UserError, match=r"call 0 of layer 9 \(input\) was not captured"):
        loss.hooked_value(loss.seen, "input", 9)


def test_only_the_declared_calls_are_kept(built):
    config, data, model = built("BPR")  # BPR embeds the positive items, then the negative ones
    model = copy.deepcopy(model)
    loss = capture(model, data, Read("item_embedding", "output", (1,)))
    distiller = wrap.Distiller(model, loss, alpha=0.5)
    distiller.set_outputs(["item_embedding"])
    batch = batch_of(data)
    distiller(batch)
    first, second = loss.seen["item_embedding"]["output"]
    assert first is None and torch.equal(second, model.item_embedding(batch[model.NEG_ITEM_ID]))


def test_the_same_module_hooked_twice_is_hooked_and_captured_once(built):
    config, data, model = built("NeuMF")
    model = copy.deepcopy(model)
    loss = capture(model, data, Read("user_mf_embedding", "output", None))  # every call
    distiller = wrap.Distiller(model, loss, alpha=0.5)
    layers = distiller.set_outputs([2, "user_mf_embedding"])
    assert [layer.number for layer in layers] == [2]
    assert len(model.user_mf_embedding._forward_hooks) == 1
    distiller(batch_of(data))
    assert loss.seen[2]["calls"] == 1 and len(loss.seen["user_mf_embedding"]["output"]) == 1
    assert list(loss.seen) == [2] and "user_mf_embedding" in loss.seen and 3 not in loss.seen
    with pytest.raises(UserError, match="call 1 does not exist"):
        loss.hooked_value(loss.seen, "output", 2, call=1)


def test_a_loss_reading_the_hooked_layer_needs_exactly_one(built):
    config, data, model = built("NeuMF")
    distiller = wrap.Distiller(copy.deepcopy(model), capture(model, data), alpha=0.5)
    with pytest.raises(UserError, match=r"Capture reads one layer but 2 are hooked \(6, 9\)"):
        distiller.set_outputs([6, 9])


def test_nothing_is_captured_during_a_real_evaluation(built, workdir):
    config, data, model = built("NeuMF")
    model = copy.deepcopy(model)
    loss = capture(model, data)
    distiller = wrap.Distiller(model, loss, alpha=0.5)
    distiller.set_outputs([9])
    held_when_ran = []  # added after the distiller's hook: sees what it has just captured
    model.mlp_layers.mlp_layers[1].register_forward_hook(lambda *_: held_when_ran.append(distiller.hooks.held()))
    trainer = build_trainer(config, model, "capture", distiller=distiller)
    assert trainer.model is model  # the trainer holds the plain model; the distiller is only its loss
    result = trainer.evaluate(data.valid, load_best_model=False)
    assert result and held_when_ran and set(held_when_ran) == {0}
    assert not hasattr(loss, "seen")
    # the probe can fail: with the hooks armed by hand, the same real evaluation is seen capturing
    held_when_ran.clear()
    with distiller.hooks.capture():
        trainer.evaluate(data.valid, load_best_model=False)
    assert held_when_ran and set(held_when_ran) != {0}
    held_when_ran.clear()
    distiller(batch_of(data))  # the training loss does capture, and lets go when it returns
    assert held_when_ran[-1] == 1 and distiller.hooks.held() == 0


def test_root_hook_sees_forward_called_directly_and_is_removed(built):
    config, data, model = built("LightGCN")
    model = copy.deepcopy(model)
    loss = capture(model, data)
    distiller = wrap.Distiller(model, loss, alpha=0.5)
    distiller.set_outputs([1])
    distiller(batch_of(data))
    users, items = loss.seen[1]["output"][0]
    assert users.shape[0] == data.dataset.user_num and items.shape[0] == data.dataset.item_num
    distiller.remove_outputs()
    assert "forward" not in vars(model)


def test_combined_loss_weights_model_and_distillation_parts(built):
    config, data, model = built("NeuMF")
    model = copy.deepcopy(model).eval()
    batch = batch_of(data)
    plain = model.calculate_loss(batch)
    loss = capture(model, data)
    distiller = wrap.Distiller(model, loss, alpha=0.25)
    distiller.set_outputs([9])
    combined = distiller(batch)
    distil = loss.hooked_tensor(loss.seen).mean()
    assert torch.allclose(combined, 0.75 * plain + 0.25 * distil)
    parts = distiller.pop_epoch_losses()
    assert parts["model_loss"] == pytest.approx(plain.item(), rel=1e-5)
    assert parts["distil_loss"] == pytest.approx(distil.item(), rel=1e-5)
    assert parts["combined_loss"] == pytest.approx(combined.item(), rel=1e-5)
    assert distiller.pop_epoch_losses() is None
    distiller(batch)  # a batch of an epoch that never finished
    distiller.start_epoch()
    assert distiller.pop_epoch_losses() is None  # the next epoch counts only its own batches
    distiller.remove_outputs()
    assert torch.allclose(distiller(batch), plain)


def test_a_layer_that_does_not_run_in_training_is_a_clear_error(built):
    config, data, model = built("NeuMF")
    distiller = wrap.Distiller(copy.deepcopy(model), capture(model, data), alpha=0.5)
    distiller.set_outputs(["sigmoid"])  # sigmoid: NeuMF uses it to predict, not to train (it trains on logits)
    with pytest.raises(UserError, match="did not run"):
        distiller(batch_of(data))


def test_a_layer_by_dotted_path_and_by_number_hook_identical_tensors(built):
    config, data, model = built("NeuMF")
    batch = batch_of(data)
    seen = []
    for ref in (9, "mlp_layers.mlp_layers.1"):
        torch.manual_seed(0)
        copy_ = copy.deepcopy(model)
        loss = capture(copy_, data)
        distiller = wrap.Distiller(copy_, loss, alpha=0.5)
        (layer,) = distiller.set_outputs([ref])
        torch.manual_seed(1)  # same dropout masks in both runs
        distiller(batch)
        seen.append((layer.number, loss.seen[ref]["output"][0]))
    assert seen[0][0] == seen[1][0] == 9
    assert torch.equal(seen[0][1], seen[1][1])


def test_info_2_shows_numbers_and_dotted_paths(seed_neumf):
    table = wrap.layer_table(seed_neumf[2], paths=True).splitlines()
    assert table[0] == "    1 |  | root | NeuMF () | (root)"
    assert table[8] == SEED_ROWS.splitlines()[8] + " | mlp_layers.mlp_layers.1"


def test_loss_stats_fold_long_epochs_and_sum_exactly():
    stats = wrap.LossStats()
    stats.FOLD = 4
    for i in range(10):
        stats.add(torch.tensor(float(i)), torch.tensor([0.5]))  # 0-d and (1,)-shaped losses both occur
        assert len(stats.model_losses) < 4
    assert stats.pop() == {"model_loss": 45.0, "distil_loss": 5.0, "batches": 10}
    assert stats.pop() is None
