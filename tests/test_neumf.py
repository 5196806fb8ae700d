"""models/neumf.py: RecBole's NeuMF with the opt-in factorised full-ranking scorer (``neumf_full_sort: parts``)."""

import copy

import pytest
import torch
from recbole.data.interaction import Interaction
from recbole.model.general_recommender.neumf import NeuMF as RecBoleNeuMF
from recbole.trainer import Trainer

from utils.errors import UserError
from utils.registry import get_model_class


@pytest.fixture(scope="module")
def trained_like():
    """(config, data, NeuMF) on the small ml-100k slice, its weights drawn wide (as after training: well-separated
    scores, saturated sigmoids), in eval mode."""
    from helpers import build

    config, data, model = build("NeuMF", neumf_full_sort="parts")
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * (0.5 if parameter.dim() > 1 else 0.2))
    return config, data, model.eval()


def pair_scores(model, users, n_items):
    """RecBole's way: ``predict`` on every (user, item) pair."""
    pairs = Interaction({model.USER_ID: users.repeat_interleave(n_items), model.ITEM_ID: torch.arange(n_items).repeat(
        len(users))})
    return model.predict(pairs).view(len(users), n_items)


def test_model_name_finds_this_class_which_is_recboles_neumf():
    cls = get_model_class("NeuMF")
    assert cls.__module__ == "models.neumf" and issubclass(cls, RecBoleNeuMF)


@pytest.mark.parametrize("halves", [(True, True), (True, False), (False, True)], ids=["neumf", "gmf", "mlp"])
def test_parts_scores_equal_pair_scores_and_rank_alike(trained_like, halves):
    config, data, model = trained_like
    model = copy.deepcopy(model)
    model.mf_train, model.mlp_train = halves
    if halves != (True, True):  # RecBole sizes the predict layer for the halves it trains
        width = model.mf_embedding_size if halves[0] else model.mlp_hidden_size[-1]
        model.predict_layer = torch.nn.Linear(width, 1)
    users = torch.arange(1, model.n_users)
    with torch.no_grad():
        expected = pair_scores(model, users, model.n_items)
        got = model.full_sort_predict(Interaction({model.USER_ID: users})).view(len(users), model.n_items)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
    assert torch.equal(got.topk(10).indices, expected.topk(10).indices)


def test_full_ranking_metrics_are_the_same_with_either_scorer(trained_like, workdir):
    config, data, model = trained_like
    results = {}
    for scorer in ("pairs", "parts"):
        model.full_sort_scorer = scorer
        results[scorer] = Trainer(config, model).evaluate(data.valid, load_best_model=False, show_progress=False)
    model.full_sort_scorer = "parts"
    assert results["pairs"] == results["parts"]
    assert results["parts"]["ndcg@10"] > 0


def test_default_keeps_recboles_pair_scorer():
    from helpers import build

    config, data, model = build("NeuMF")
    assert config["neumf_full_sort"] == "pairs"
    with pytest.raises(NotImplementedError):  # RecBole's trainer then scores every pair through predict()
        model.full_sort_predict(Interaction({model.USER_ID: torch.arange(1, 3)}))


def test_a_bad_scorer_is_one_line_naming_the_value():
    from helpers import build

    with pytest.raises(UserError) as caught:
        build("NeuMF", neumf_full_sort="fast")
    assert "neumf_full_sort must be pairs or parts, got 'fast'" in str(caught.value) and "\n" not in str(caught.value)


def test_a_near_miss_of_the_key_is_refused():
    from utils.config_loading import known_setting_names
    from utils.settings import RECBOLE

    with pytest.raises(UserError, match="unknown key 'neumf_full_sorts'; did you mean 'neumf_full_sort'"):
        known = known_setting_names(get_model_class("NeuMF"))
        RECBOLE.check({"neumf_full_sorts": "parts"}, context={"settings": known})
