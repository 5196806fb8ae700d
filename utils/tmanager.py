"""TrainManager: the scenario's command table and the run state its steps act on.

``COMMANDS`` is the single source of truth: every scenario command with its handler, the params it takes (a
checker that normalizes them or raises ``UserError``), what must come before it and a one-line summary. The whole
scenario is checked against it (:func:`check_scenario`) before the first step runs, so a typo or a step out of
order costs seconds, not a night of training.
"""

import copy
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from recbole.data import create_samplers, get_dataloader
from recbole.utils import EvaluatorType, init_seed
from recbole.utils.argument_list import dataset_arguments

from . import wrapper as wrap
from .embeddings import describe, embeddings_dir, load_float_matrix, load_matrix, reduce_matrix, save_tensor
from .errors import UserError, suggest
from .paths import inside_name
from .registry import get_loss_class
from .settings import (
    check_alpha,
    check_eval_mode,
    check_metrics,
    check_recbole_values,
    check_topk,
    check_valid_metric,
)
from .trainer import build_trainer, safe_trainer_class

logger = logging.getLogger(__name__)

# Settings that shape the data: they are fixed once the data is prepared, so set_config cannot change them.
DATA_KEYS = set(dataset_arguments) | {"dataset", "data_path", "eval_args", "seed", "model", "repeatable"}
# Settings the dataloaders read when built: changing them re-configures the loaders.
LOADER_KEYS = {"train_batch_size", "eval_batch_size", "train_neg_sample_args", "shuffle"}


class StopScenario(Exception):
    """Raised by ``break``: the scenario ends here, and what ran is journaled."""


def say(text=""):
    print(text, flush=True)


# --- param checkers -----------------------------------------------------------------------------------------------


def no_params(value):
    if value not in (None, {}, []):
        raise UserError(f"takes no params, got {value!r}", "leave params out or set them to None")
    return None


def text(value):
    return "" if value is None else str(value)


def info_level(value):
    value = 0 if value is None else value
    if isinstance(value, bool) or value not in (0, 1, 2):
        raise UserError(f"params must be 0 (parameter counts), 1 (also the layer table) or 2 (with dotted paths), "
                        f"got {value!r}")
    return value


def part_index(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"params must be a training-part index (0, 1, ...), got {value!r}")
    return value


def _layer_ref(value):
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, int) and value < 1):
        raise UserError(f"{value!r} is not a layer: give a number from 'info' (1, 2, ...) or a dotted module path")
    return value


def layer_refs(value):
    values = value if isinstance(value, list) else [value]
    if not values or value is None:
        raise UserError("params must be a list of layer numbers (see 'info' with params 1)", "e.g. [9]")
    return [_layer_ref(v) for v in values]


def trainable(value):
    if not isinstance(value, list) or len(value) != 2:
        raise UserError(f"params must be [[layers], true|false], got {value!r}",
                        "e.g. [['*'], false] or [[4, 5], true]")
    refs, flag = value
    if not isinstance(flag, bool):
        raise UserError(f"the second item must be true or false, got {flag!r}", "write True or False, not 'Train'")
    refs = refs if isinstance(refs, list) else [refs]
    if refs == ["*"]:
        return [["*"], flag]
    if "*" in refs:
        raise UserError("'*' (all layers) cannot be mixed with layer numbers")
    return [layer_refs(refs), flag]


def checkpoint_ref(value):
    if isinstance(value, str) and value:
        return {"file": value, "resume": True}
    if isinstance(value, dict):
        value = mapping(required={"file": str}, optional={"resume": bool})(value)
        return {"file": value["file"], "resume": value.get("resume", True)}
    raise UserError(f"params must be a checkpoint path (or {{file: path, resume: false}}), got {value!r}")


def any_mapping(value):
    if not isinstance(value, dict) or not value:
        raise UserError(f"params must be a non-empty mapping, got {value!r}")
    return value


def set_vars(value):
    value = any_mapping(value)
    if "train_part" in value:
        part_index(value["train_part"])
    return value


WRAP_KEYS = ("distil_loss", "users_emb_file", "items_emb_file", "particular")


def mapping(required=None, optional=None, open_=False):
    """A checker for a mapping with these keys; values are checked against the given types.

    With ``open_``, other keys pass through (``wrap_model``: the loss checks its own options).
    """
    required, optional = required or {}, optional or {}
    known = list(required) + list(optional)

    def check(value):
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            raise UserError(f"params must be a mapping with {', '.join(known)}, got {value!r}")
        for key in value:
            if key not in known and not open_:
                raise UserError(
                    f"unknown param '{key}'" + suggest(key, known),
                    f"params: {', '.join(known)}",
                )
        for key in required:
            if key not in value:
                raise UserError(f"missing param '{key}'", f"required: {', '.join(required)}")
        for key, expected in {**required, **optional}.items():
            if key in value and value[key] is not None and not _is(value[key], expected):
                raise UserError(f"param '{key}' must be {_describe(expected)}, got {value[key]!r}")
        return dict(value)

    return check


def _is(value, expected):
    if expected is bool:
        return isinstance(value, bool)
    if expected in (int, float) and isinstance(value, bool):
        return False
    if expected is float:
        return isinstance(value, (int, float))
    if isinstance(expected, tuple) and expected and expected[0] == "one of":
        return value in expected[1:]
    return isinstance(value, expected)


def _describe(expected):
    if isinstance(expected, tuple) and expected and expected[0] == "one of":
        return "one of " + ", ".join(map(str, expected[1:]))
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}.get(
        expected, getattr(expected, "__name__", str(expected))
    )


# --- the command table --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    name: str
    handler: Callable
    params: Callable
    summary: str
    needs: frozenset = frozenset()
    gives: frozenset = frozenset()
    clears: frozenset = frozenset()


# Which command provides each fact the order check tracks.
PROVIDERS = {"model": "init_model", "wrapped": "wrap_model", "trainer": "init_trainer"}
ALIASES = {"set_output": "set_outputs"}


def _f(*names):
    return frozenset(names)


# --- run state ----------------------------------------------------------------------------------------------------


@dataclass
class ScenarioRun:
    """What the steps of one experiment act on."""

    file: Path
    config: Any  # RecBole Config
    settings: Any  # settings.Settings
    data: Any  # data.DataBundle
    record: Any  # journal.JournalRecord
    model_class: type
    model: Any = None  # the RecBole model
    distiller: Any = None  # wrapper.Distiller of that model (hooks, loss, alpha), after wrap_model
    trainer: Any = None
    train_ds: int = 0
    trained_file: str | None = None  # best-model file of the last train, when saved
    variables: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)  # train part -> {'trains': [...epochs...], 'test_per_user': ...}

    @property
    def dataset_name(self):
        return self.config["dataset"]

    def embedding_path(self, name):
        """``<embeddings_path>/<dataset>/<name>``; a name that would leave that folder is refused."""
        return embeddings_dir(self.settings.llm_config.embeddings_path, self.dataset_name) / inside_name(name, "file")


# --- handlers -----------------------------------------------------------------------------------------------------


def _print(run, params):
    say(params)


def _set(run, params):
    for key, value in params.items():
        run.variables[key] = value
        if key == "train_part":
            run.record.select_part(value)
        say(f"    {key} = {value!r}")


def _init_model(run, params):
    init_seed(run.config["seed"], run.config["reproducibility"])
    run.model = run.model_class(run.config, run.data.train_dataset).to(run.config["device"])
    run.distiller = None
    run.trainer = None
    counts = wrap.count_params(run.model)
    say(f"    {type(run.model).__name__} on {run.config['device']}: {counts['total_params']:,} parameters")


def _load_profiles(run, entity, file_name):
    llm = run.settings.llm_config
    expected = run.data.dataset.user_num if entity == "user" else run.data.dataset.item_num
    start_with_1 = llm.users_start_with_1 if entity == "user" else llm.items_start_with_1
    matrix = load_matrix(run.embedding_path(file_name), expected_rows=expected, start_with_1=start_with_1,
                         entity=entity)
    say(f"    {entity} profiles: {file_name} {describe(matrix)}")
    return matrix


def _wrap_model(run, params):
    llm = run.settings.llm_config
    loss_class = get_loss_class(params["distil_loss"], run.config["model"])
    users_file = params.get("users_emb_file") or llm.default_users_emb_file
    items_file = params.get("items_emb_file") or llm.default_items_emb_file
    matrices = {}
    for entity, use, name in (("user", llm.use_user_emb, users_file), ("item", llm.use_item_emb, items_file)):
        if not use:
            continue
        if not name:
            raise UserError(
                f"no {entity} embedding file: wrap_model gives no {entity}s_emb_file and "
                f"llm_config.default_{entity}s_emb_file is not set",
                f"name the file, or set llm_config.use_{entity}_emb: False",
            )
        matrices[entity] = _load_profiles(run, entity, name)
    if run.distiller is not None:
        run.distiller.remove_outputs()
    options = {k: v for k, v in params.items() if k not in WRAP_KEYS}
    loss = loss_class(run.model, run.data.train_dataset, user_emb=matrices.get("user"), item_emb=matrices.get("item"),
                      particular=params.get("particular", False), **options).to(run.config["device"])
    run.distiller = wrap.Distiller(run.model, loss, run.settings.distil_loss_weight)
    run.trainer = None
    run.record.set_part("loss_name", params["distil_loss"])  # as written: an alias stays the name journaled
    run.record.set_part("users_emb", users_file if "user" in matrices else None)
    run.record.set_part("items_emb", items_file if "item" in matrices else None)
    run.record.set_part("particular", bool(params.get("particular", False)))
    if options:
        run.record.set_part("loss_params", options)
    say(f"    {run.distiller}")


def _reduce_dim(run, params):
    source, target = run.embedding_path(params["file_in"]), run.embedding_path(params["file_out"])
    method = params.get("method", "umap")  # the original tool's reduction when no method is named
    if target.exists() and not params.get("overwrite", True):
        say(f"    kept {target}: it exists and overwrite is false")
        run.record.add_part("reduce_dim", {"file_out": params["file_out"], "method": "kept"})
        return
    if not source.is_file():
        raise UserError(f"reduce_dim input not found: {source.resolve()}",
                        "create it first (preprocess_from_json, preprocess_random or make_profiles.py)")
    matrix = load_float_matrix(source)
    if "method" not in params:
        say("    no method named: UMAP, as in the original tool (method: pca for PCA)")
    if method == "umap" and "umap" not in sys.modules:
        say("    importing umap-learn: the first import in a process compiles with numba (about 30-60 s)")
    reduced, used = reduce_matrix(matrix, params["dimension"], method, seed=run.config["seed"],
                                   device=run.config["device"])
    save_tensor(reduced, target)
    run.record.add_part("reduce_dim", {"file_in": params["file_in"], "file_out": params["file_out"],
                                       "dimension": params["dimension"], "method": used})
    say(f"    {params['file_in']} {tuple(matrix.shape)} -> {used} -> {params['file_out']} {tuple(reduced.shape)}")


def _set_config(run, params):
    for key, value in params.items():
        if key == "distil_loss_weight":
            run.settings.distil_loss_weight = check_alpha(value)
            if run.distiller is not None:
                run.distiller.alpha = run.settings.distil_loss_weight
        elif key in DATA_KEYS:
            raise UserError(f"set_config cannot change '{key}' after the data is prepared",
                            "set it in the RecBole part of the file instead")
        elif key not in run.config:
            raise UserError(f"set_config: '{key}' is not a setting of this experiment"
                            + suggest(key, run.config.final_config_dict),
                            "set_config changes existing RecBole settings (e.g. epochs, learning_rate)")
        before = run.config[key] if key in run.config else run.settings.distil_loss_weight
        if key != "distil_loss_weight":
            run.config[key] = value
        say(f"    config[{key}]: {before!r} -> {value!r}")
    if {"valid_metric", "metrics", "topk"} & set(params):
        check_valid_metric(run.config)  # before training, not after its first epoch
    if LOADER_KEYS & set(params):
        for loader in run.data.train_parts + [run.data.valid, run.data.test]:
            loader.update_config(run.config)
    run.record.add_part("config", params)


def _init_trainer(run, params):
    part = run.record.train_part
    run.trainer = build_trainer(run.config, run.model, f"{run.file.stem}-part{part}", distiller=run.distiller)
    say(f"    {type(run.trainer).__name__}: epochs={run.config['epochs']}, "
        f"learning_rate={run.config['learning_rate']}, train_batch_size={run.config['train_batch_size']}")


def _info(run, params):
    say(f"    {wrap.count_params(run.model)}")
    if params >= 1:
        say(wrap.layer_table(run.model, paths=params >= 2))


def _set_train_dataset(run, params):
    parts = len(run.data.train_parts)
    if params >= parts:
        raise UserError(
            f"training part {params} does not exist: there are {parts} (0-{parts - 1})",
            "add_train_split: [r0, r1] makes parts 0 and 1, and 2 is the whole training set"
            if parts == 1 else "the last part is the whole training set",
        )
    run.train_ds = params
    run.record.set_part("train_ds_ind", params)
    say(f"    training on part {params}: {len(run.data.train_parts[params].dataset)} interactions")


def _set_outputs(run, params):
    layers = run.distiller.set_outputs(params)
    run.record.set_part("set_outputs", params)
    for layer in layers:
        say(f"    hooked {wrap.format_layer(layer).strip()}")


def _remove_outputs(run, params):
    run.distiller.remove_outputs()
    say("    all hooks removed: training uses the model loss only")


def _set_trainable(run, params):
    refs, flag = params
    for line in wrap.set_trainable(run.model, refs, flag):
        say(f"    {line}")
    run.record.add_part("set_trainable", params)


def _train(run, params):
    config = run.config
    saved = config["save"] is not False
    loader = run.data.train_parts[run.train_ds]
    start, epochs = run.trainer.start_epoch, run.trainer.epochs
    if start >= epochs:
        raise UserError(
            f"train would run no epoch: the checkpoint loaded by load_from_file ends at epoch {start - 1} and "
            f"epochs is {epochs} (a resumed training counts its epochs from the checkpoint's start)",
            f"set_config epochs above {start} before init_trainer, or load_from_file {{file: ..., resume: false}} "
            "to load only the weights and train afresh",
        )
    started = time.time()
    best_score, best_result = run.trainer.fit(
        loader, run.data.valid, saved=saved, show_progress=bool(config["show_progress"])
    )
    run.trained_file = run.trainer.saved_model_file if saved else None
    part = run.history.setdefault(run.record.train_part, {})
    part.setdefault("trains", []).append({"train_ds": run.train_ds, "epochs": run.trainer.history})
    record = run.record
    record.set_part("train_ds_ind", run.train_ds)
    record.set_part("best_val_score", best_score)
    record.set_part("best_val_res", dict(best_result) if best_result else None)
    record.set_part("bestmodel_file", run.trained_file)
    record.set_part("train_time_s", round(time.time() - started, 1))
    record.set_part("epochs_run", len(run.trainer.history or []))
    say(f"    best valid {config['valid_metric']}: {best_score}")
    say(f"    best valid result: {_metrics_line(best_result)}")
    if run.trained_file:
        say(f"    best model saved in {run.trained_file}")


def _test_eval(run, params):
    if params:
        return _test_eval_as(run, params)
    load_best = run.trained_file is not None
    run.trainer.collect_per_user = True
    started = time.time()
    try:
        result = run.trainer.evaluate(run.data.test, load_best_model=load_best, model_file=run.trained_file,
                                      show_progress=bool(run.config["show_progress"]))
    finally:
        run.trainer.collect_per_user = False
    run.record.set_part("test_time_s", round(time.time() - started, 2))
    run.record.set_part("best_test_res", dict(result))
    say(f"    test result ({'best model' if load_best else 'current weights'}): {_metrics_line(result)}")
    per_user = run.trainer.last_per_user
    if per_user:
        per_user = with_activity(per_user, run.data)
        run.history.setdefault(run.record.train_part, {})["test_per_user"] = per_user
        say(f"    by training activity: {activity_line(per_user)}")


def _test_eval_as(run, params):
    """Evaluate on the test split with another evaluation mode and/or metrics; results join best_test_res."""
    config = alternative_config(run.config, params)
    built = [run.data.train_dataset, run.data.valid.dataset, run.data.test.dataset]
    _, _, test_sampler = create_samplers(config, run.data.dataset, built)
    loader = get_dataloader(config, "test")(config, run.data.test.dataset, test_sampler, shuffle=False)
    trainer = safe_trainer_class(config["MODEL_TYPE"], config["model"])(config, run.model)
    load_best = run.trained_file is not None
    result = trainer.evaluate(loader, load_best_model=load_best, model_file=run.trained_file,
                              show_progress=bool(config["show_progress"]))
    merged = dict(run.record.part_value("best_test_res") or {})
    merged.update(result)
    run.record.set_part("best_test_res", merged)
    say(f"    test result ({config['eval_args']['mode']['test']}): {_metrics_line(result)}")


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
    types = set()
    for metric in other["metrics"]:
        if metric.lower() not in metric_types:
            raise UserError(f"test_eval: RecBole has no metric '{metric}'")
        types.add(metric_types[metric.lower()])
    if len(types) > 1:
        raise UserError("test_eval: ranking and value metrics cannot be evaluated together",
                        "add a second test_eval step for the other kind")
    other["eval_type"] = types.pop()
    if other["eval_type"] == EvaluatorType.VALUE and other["eval_args"]["mode"]["test"] != "labeled":
        raise UserError(f"test_eval: value metrics ({', '.join(other['metrics'])}) need mode: labeled")
    return other


def test_eval_params(value):
    if value is None:
        return None
    value = mapping(optional={"mode": str, "metrics": (str, list), "topk": (int, list)})(value)
    if "mode" in value:
        check_eval_mode(value["mode"], "test_eval mode")
    if "metrics" in value:
        value["metrics"] = check_metrics(value["metrics"], "test_eval metrics")
    if "topk" in value:
        value["topk"] = check_topk(value["topk"], "test_eval topk")
    return value or None


def set_config_params(value):
    """A non-empty mapping; the common RecBole settings in it are checked as in the experiment file."""
    value = any_mapping(value)
    check_recbole_values(value, "set_config ")
    if "distil_loss_weight" in value:
        check_alpha(value["distil_loss_weight"])
    return value


def with_activity(per_user, data):
    """Add each user's raw id and number of training interactions to per-user test metrics."""
    dataset = data.dataset
    counts = np.bincount(data.train_dataset.inter_feat[dataset.uid_field].numpy(), minlength=dataset.user_num)
    users = np.asarray(per_user["user"])
    return {**per_user, "user": dataset.id2token(dataset.uid_field, users).tolist(),
            "activity": counts[users].tolist()}


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


def _load_from_file(run, params):
    path = params["file"]
    if path == "best":
        if not run.trained_file:
            raise UserError("load_from_file 'best': no train step has saved a best model yet")
        path = run.trained_file
    if params["resume"]:
        run.trainer.resume_checkpoint(path)
        say(f"    resumed {path} from epoch {run.trainer.start_epoch}")
    else:
        run.trainer.load_weights(path)
        say(f"    loaded the weights of {path}")


def _save_datasets(run, params):
    from .data import write_splits

    for path in write_splits(run.data, run.file):
        say(f"    wrote {path}")


def _debug_model(run, params):
    (layer,) = wrap.resolve_layers(run.model, [params])
    say(f"    parameters of {layer.label}:")
    for name, param in layer.module.named_parameters():
        values = param.detach().float()
        say(f"    {name}: {tuple(param.shape)} requires_grad={param.requires_grad} "
            f"mean={values.mean():.4g} std={values.std() if values.numel() > 1 else 0:.4g} norm={values.norm():.4g}")


def _break(run, params):
    raise StopScenario()


def _metrics_line(result):
    if not result:
        return "none"
    return "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items())


COMMANDS = {
    command.name: command
    for command in [
        Command("print", _print, text, "print a text in the step's output"),
        Command("set", _set, set_vars, "set run variables; train_part: k selects the journal's train_k columns"),
        Command("init_model", _init_model, no_params, "build the configured model on the configured device",
                gives=_f("model"), clears=_f("wrapped", "trainer")),
        Command("reduce_dim", _reduce_dim,
                mapping(required={"file_in": str, "file_out": str, "dimension": int},
                        optional={"overwrite": bool, "method": ("one of", "pca", "umap")}),
                "reduce an embedding matrix (UMAP by default, as the original tool; or PCA)"),
        Command("wrap_model", _wrap_model,
                mapping(required={"distil_loss": str},
                        optional={"users_emb_file": str, "items_emb_file": str, "particular": bool}, open_=True),
                "wrap the model: hooks and the combined loss", needs=_f("model"), gives=_f("wrapped"),
                clears=_f("trainer")),
        Command("set_config", _set_config, set_config_params, "change config values for the next init_trainer / train"),
        Command("init_trainer", _init_trainer, no_params, "build a RecBole trainer (fresh optimizer)",
                needs=_f("model"), gives=_f("trainer")),
        Command("info", _info, info_level,
                "parameter counts; 1: also the numbered layer table; 2: with each layer's dotted path",
                needs=_f("model")),
        Command("break", _break, no_params, "stop the scenario here (what ran is journaled)"),
        Command("set_train_dataset", _set_train_dataset, part_index, "select the training part used by train"),
        Command("set_outputs", _set_outputs, layer_refs, "hook layers: their tensors feed the distillation loss",
                needs=_f("wrapped")),
        Command("set_trainable", _set_trainable, trainable, "freeze or unfreeze layers ([[layers] or ['*'], bool])",
                needs=_f("model")),
        Command("train", _train, no_params, "fit with validation; the best model is saved under saved/",
                needs=_f("trainer")),
        Command("test_eval", _test_eval, test_eval_params,
                "evaluate the best model of the last train on the test split (optionally {mode, metrics, topk})",
                needs=_f("trainer")),
        Command("remove_outputs", _remove_outputs, no_params, "remove every hook: back to the plain model loss",
                needs=_f("wrapped")),
        Command("load_from_file", _load_from_file, checkpoint_ref,
                "resume a checkpoint (path, or 'best' for the last train's best model)", needs=_f("trainer")),
        Command("save_datasets", _save_datasets, no_params,
                "write the train/valid/test splits as TSV next to the YAML"),
        Command("debug_model", _debug_model, _layer_ref, "print a layer's parameters with statistics",
                needs=_f("model")),
    ]
}


# Params naming a file in the dataset's embedding folder: they must stay inside it (no absolute path, no '..').
FILE_PARAMS = {"reduce_dim": ("file_in", "file_out"), "wrap_model": ("users_emb_file", "items_emb_file")}


def resolve_command(name, index):
    """The :class:`Command` for a step name (aliases included), or a one-line error with a suggestion."""
    name = ALIASES.get(name, name)
    if name in COMMANDS:
        return COMMANDS[name]
    raise UserError(
        f"unknown command '{name}'" + suggest(name, list(COMMANDS) + list(ALIASES)),
        f"commands: {', '.join(COMMANDS)}",
        step=index,
        command=name,
    )


def check_scenario(steps, model_name=None):
    """Check every step against the table before anything runs.

    Returns:
        list of (step, Command, normalized params).

    Raises:
        UserError: naming the step number and command (unknown command, bad params, or a step out of order).
    """
    checked, facts = [], set()
    for step in steps:
        command = resolve_command(step.command, step.index)
        try:
            params = command.params(step.params)
            for key in FILE_PARAMS.get(command.name, ()):
                if isinstance(params, dict) and params.get(key) is not None:
                    inside_name(params[key], f"param '{key}'")
            if command.name == "wrap_model" and model_name:
                loss_class = get_loss_class(params["distil_loss"], model_name)
                loss_class.check_options({k: v for k, v in params.items() if k not in WRAP_KEYS})
        except UserError as exc:
            raise exc.locate(step=step.index, command=step.command) from None
        missing = command.needs - facts
        if missing:
            fact = sorted(missing)[0]
            raise UserError(
                f"needs {PROVIDERS[fact]} before it (no {fact.replace('wrapped', 'wrapped model')} yet)",
                f"add an {PROVIDERS[fact]} step before step {step.index}",
                step=step.index,
                command=step.command,
            )
        facts = (facts - command.clears) | command.gives
        checked.append((step, command, params))
        if command.name == "break":
            break
    return checked


def command_reference():
    """The table as Markdown rows, one per command, in the shape of the README's command table."""
    lines = []
    for command in COMMANDS.values():
        needs = ", ".join(PROVIDERS[f] for f in sorted(command.needs))
        lines.append(f"| `{command.name}` | {command.summary} | {needs or '-'} |")
    return "\n".join(lines)


class TrainManager:
    """Runs a checked scenario, step by step, on a :class:`ScenarioRun`."""

    def __init__(self, run, checked_steps):
        self.run = run
        self.steps = checked_steps

    def execute(self):
        """Run every step; returns 'done', or 'stopped' when a ``break`` ended the scenario."""
        total = len(self.steps)
        for step, command, params in self.steps:
            shown = "" if params is None else f" {params}"
            say(f"[{step.index}/{total}] {command.name}{shown}")
            try:
                command.handler(self.run, params)
            except StopScenario:
                say("    scenario stopped here by 'break'")
                return "stopped"
            except UserError as exc:
                raise exc.locate(step=step.index, command=command.name) from None
        return "done"

