"""Evaluation beyond RecBole's defaults: ``test_eval`` with another mode or metrics, per-user test metrics and
their summary by training activity, and the one-line form of a result.

RecBole's trainer evaluates; :class:`StructKeepingEvaluator` (the evaluator :func:`utils.trainer.build_trainer`
gives every trainer) keeps the last evaluation's data so that per-user metrics can be computed from it.
"""

import copy
import logging

import numpy as np
import torch
from recbole.data import create_samplers
from recbole.evaluator import Evaluator
from recbole.evaluator.metrics import NDCG, Hit, Recall
from recbole.utils import EvaluatorType

from .errors import UserError
from .params import EVAL_MODE, METRICS, TOPK, Param, Rule, Schema
from .ranking import eval_loader_class

logger = logging.getLogger(__name__)



def _value_metrics_labeled(params, context):
    """Value metrics (AUC, LogLoss, ...) are evaluated on labeled data only: the step's metrics (or the
    experiment's, ``context['metrics']``) with the step's mode (or the experiment's test mode)."""
    from recbole.evaluator import metric_types

    context = context or {}
    metrics, mode = params.get("metrics", context.get("metrics")), params.get("mode", context.get("test_mode"))
    mode = mode.get("test") if isinstance(mode, dict) else mode
    if metrics is None or mode is None:
        return True
    metrics = [metrics] if isinstance(metrics, str) else metrics
    return mode == "labeled" or not any(metric_types.get(str(m).lower()) == EvaluatorType.VALUE for m in metrics)


TEST_EVAL = Schema((
    Param("mode", EVAL_MODE, doc="RecBole's evaluation mode for the test split: full, labeled, uniN, popN"),
    Param("metrics", METRICS, doc="RecBole metric names, all ranking or all value metrics"),
    Param("topk", TOPK, doc="the cut-offs of ranking metrics"),
), rules=(Rule(_value_metrics_labeled, "value metrics (AUC, LogLoss, ...) need mode: labeled, got {value!r}",
               "add mode: labeled to this test_eval, or evaluate ranking metrics"),),
    summary="optional: evaluate with another mode, metrics or cut-offs")


def alternative_config(config, params):
    """A copy of the experiment's Config with another test mode / metrics / topk (RecBole's own checks applied)."""
    from recbole.evaluator import metric_types

    other = copy.copy(config)
    other.final_config_dict = copy.deepcopy(config.final_config_dict)
    if "mode" in params:
        other["eval_args"]["mode"]["test"] = params["mode"]
        try:
            other._set_eval_neg_sample_args("test")
        except ValueError as exc:
            raise UserError(f"test_eval: {exc}", "modes: full, labeled, uniN, popN (e.g. uni100)") from None
    if "metrics" in params:
        other["metrics"] = params["metrics"]
    if "topk" in params:
        other["topk"] = params["topk"] if isinstance(params["topk"], list) else [params["topk"]]
    # the metrics exist and are of one type, value metrics with mode: labeled: TEST_EVAL (checked with the scenario)
    other["eval_type"] = metric_types[other["metrics"][0].lower()]
    return other


def test_loader(config, data):
    """A loader of the experiment's test split (``data``: a ``DataBundle``) evaluated as ``config`` says."""
    built = [data.train_dataset, data.valid.dataset, data.test.dataset]
    _, _, test_sampler = create_samplers(config, data.dataset, built)
    return eval_loader_class(config, "test")(config, data.test.dataset, test_sampler, shuffle=False)


class StructKeepingEvaluator(Evaluator):
    """RecBole's evaluator that keeps the data of its last evaluation (``last_struct``): the ranked lists per
    user, from which :func:`per_user_metrics` computes each user's metrics."""

    last_struct = None

    def evaluate(self, dataobject):
        self.last_struct = dataobject
        return super().evaluate(dataobject)


def per_user_metrics(config, struct, users):
    """Each evaluated user's NDCG, Hit and Recall at the first ``topk`` (None for value-based evaluation).

    Returns:
        dict: ``{'user': internal ids, 'ndcg@K': [...], 'hit@K': [...], 'recall@K': [...]}``.
    """
    if struct is None or "rec.topk" not in struct or not users:
        return None
    k = config["topk"][0] if isinstance(config["topk"], list) else config["topk"]
    users = torch.cat(users).numpy()
    out = {"user": users.tolist()}
    pos_index, pos_len = NDCG(config).used_info(struct)
    per_metric = {
        "ndcg": NDCG(config).metric_info(pos_index, pos_len),
        "hit": Hit(config).metric_info(pos_index),
        "recall": Recall(config).metric_info(pos_index, pos_len),
    }
    for name, matrix in per_metric.items():
        values = matrix[:, k - 1]
        out[f"{name}@{k}"] = np.round(values.astype(float), 5).tolist()
    if len(users) != len(out[f"ndcg@{k}"]):
        logger.warning("per-user metrics: %d users for %d rows; left out", len(users), len(out[f"ndcg@{k}"]))
        return None
    return out


def protocol_keys(result, mode, main_mode):
    """Metrics of another evaluation protocol than the experiment's own, keyed ``<mode>:<metric>``
    (``uni100:ndcg@10``), so that they sit next to the main protocol's ``ndcg@10`` instead of overwriting it."""
    if mode == main_mode:
        return dict(result)
    return {f"{mode}:{name}": value for name, value in result.items()}


def with_activity(per_user, data):
    """Add each user's raw id and number of training interactions (and, with cold_start, whether the user is one
    of the cold ones) to per-user test metrics."""
    dataset = data.dataset
    counts = np.bincount(data.train_dataset.inter_feat[dataset.uid_field].numpy(), minlength=dataset.user_num)
    users = np.asarray(per_user["user"])
    cold = {"cold": [int(u) in data.cold_users for u in users]} if data.cold_users else {}
    return {**per_user, "user": dataset.id2token(dataset.uid_field, users).tolist(),
            "activity": counts[users].tolist(), **cold}


def activity_line(per_user, quarters=4):
    """Mean of the first per-user metric by quartile of training activity, e.g. 'Q1 (2-17): 0.123 | ...'."""
    metric = next(k for k in per_user if "@" in k)
    activity, values = np.asarray(per_user["activity"]), np.asarray(per_user[metric])
    edges = np.quantile(activity, np.linspace(0, 1, quarters + 1))
    bins = np.clip(np.searchsorted(edges, activity, side="right") - 1, 0, quarters - 1)
    parts = []
    for q in range(quarters):
        mask = bins == q
        if mask.any():
            parts.append(f"Q{q + 1} ({activity[mask].min()}-{activity[mask].max()}): {values[mask].mean():.4f}")
    return f"{metric} " + " | ".join(parts)


def metrics_line(result):
    """A result dict as one console line: ``ndcg@10=0.1234  hit@10=0.5678``."""
    if not result:
        return "none"
    return "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items())
