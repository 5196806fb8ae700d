"""What each scenario command does: its handler.

A handler gets the run (``utils.tmanager.ScenarioRun``) and the params as its declaration checked them (the
declarations are in ``utils/tmanager.py``'s command table, in the language of ``utils/params.py``) and acts on the
run.
"""

import sys
import time

from recbole.utils import EvaluatorType, init_seed

from . import wrapper as wrap
from .data import cold_items_test_loader
from .embeddings import describe, load_float_matrix, load_matrix, reduce_matrix, save_tensor
from .errors import UserError
from .evaluation import activity_line, alternative_config, metrics_line, protocol_keys, test_loader, with_activity
from .params import check_valid_metric
from .profiles import is_leaky_matrix, mark_leaky, refuse_unasked_leaky_matrix
from .registry import get_loss_class
from .trainer import build_trainer, safe_trainer_class

# Settings the dataloaders read when built: changing them re-configures the loaders.
LOADER_KEYS = {"train_batch_size", "eval_batch_size", "train_neg_sample_args", "shuffle"}


class StopScenario(Exception):
    """Raised by ``break``: the scenario ends here, and what ran is journaled."""


def say(text=""):
    """One line of the run's console output, flushed (a sweep's worker logs are read while they grow)."""
    print(text, flush=True)


# --- handlers -----------------------------------------------------------------------------------------------------


def print_text(run, params):
    """``print``: the text, as it is."""
    say(params)


def set_variables(run, params):
    """``set``: store run variables; ``train_part`` selects the journal columns that follow."""
    for key, value in params.items():
        run.variables[key] = value
        if key == "train_part":
            run.record.select_part(value)
        say(f"    {key} = {value!r}")


def init_model(run, params):
    """``init_model``: a fresh model (seeded), dropping any wrapper and trainer of the previous one."""
    init_seed(run.config["seed"], run.config["reproducibility"])
    run.model = run.model_class(run.config, run.data.train_dataset).to(run.config["device"])
    run.distiller = None
    run.trainer = None
    counts = wrap.count_params(run.model)
    say(f"    {type(run.model).__name__} on {run.config['device']}: {counts['total_params']:,} parameters")


def _load_profiles(run, entity, file_name):
    """One profile matrix of the embedding folder, checked against the dataset's id count."""
    llm = run.settings.llm_config
    expected = run.data.dataset.user_num if entity == "user" else run.data.dataset.item_num
    start_with_1 = llm.users_start_with_1 if entity == "user" else llm.items_start_with_1
    refuse_unasked_leaky_matrix(run.embedding_path(file_name), llm)
    matrix = load_matrix(run.embedding_path(file_name), expected_rows=expected, start_with_1=start_with_1,
                         entity=entity)
    say(f"    {entity} profiles: {file_name} {describe(matrix)}")
    return matrix


def wrap_model(run, params):
    """``wrap_model``: load the profile matrices, build the loss and the Distiller around the model.

    The Distiller's weight is that of the Distiller it replaces (a ``set_config`` of ``distil_loss_weight`` holds
    until the next ``init_model``), else the file's ``distil_loss_weight``."""
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
    alpha = run.settings.distil_loss_weight
    if run.distiller is not None:
        alpha = run.distiller.alpha
        run.distiller.remove_outputs()
    own = {param.name for param in loss_class.options}
    options = {key: value for key, value in params.items() if key in own}
    loss = loss_class(run.model, run.data.train_dataset, user_emb=matrices.get("user"), item_emb=matrices.get("item"),
                      particular=params.get("particular", False), **options).to(run.config["device"])
    run.distiller = wrap.Distiller(run.model, loss, alpha)
    run.trainer = None
    run.record.set_part("loss_name", params["distil_loss"])  # as written: an alias stays the name journaled
    run.record.set_part("users_emb", users_file if "user" in matrices else None)
    run.record.set_part("items_emb", items_file if "item" in matrices else None)
    run.record.set_part("particular", bool(params.get("particular", False)))
    if options:
        run.record.set_part("loss_params", options)
    say(f"    {run.distiller}")


def reduce_dim(run, params):
    """``reduce_dim``: reduce a matrix of the embedding folder to ``dimension`` columns."""
    source, target = run.embedding_path(params["file_in"]), run.embedding_path(params["file_out"])
    method = params.get("method", "umap")  # the original tool's reduction when no method is named
    if target.exists() and not params.get("overwrite", True):
        say(f"    kept {target}: it exists and overwrite is false")
        run.record.add_part("reduce_dim", {"file_out": params["file_out"], "method": "kept"})
        return
    if not source.is_file():
        raise UserError(f"reduce_dim input not found: {source.resolve()}",
                        "create it first (preprocess_from_json, preprocess_random or make_profiles.py)")
    refuse_unasked_leaky_matrix(source, run.settings.llm_config)
    matrix = load_float_matrix(source)
    if "method" not in params:
        say("    no method named: UMAP, as in the original tool (method: pca for PCA)")
    if method == "umap" and "umap" not in sys.modules:
        say("    importing umap-learn: the first import in a process compiles with numba (about 30-60 s)")
    reduced, used = reduce_matrix(matrix, params["dimension"], method, seed=run.config["seed"],
                                   device=run.config["device"])
    save_tensor(reduced, target)
    mark_leaky(target, is_leaky_matrix(source))
    run.record.add_part("reduce_dim", {"file_in": params["file_in"], "file_out": params["file_out"],
                                       "dimension": params["dimension"], "method": used})
    say(f"    {params['file_in']} {tuple(matrix.shape)} -> {used} -> {params['file_out']} {tuple(reduced.shape)}")


def set_config(run, params):
    """``set_config``: change RecBole settings (not those that shape the data: the declaration refuses them) and the
    Distiller's weight. Each change is said as ``before -> after``."""
    for key, value in params.items():
        if key == "distil_loss_weight":
            before = run.distiller.alpha
            run.distiller.alpha = float(value)
        else:
            before = run.config[key]
            run.config[key] = value
        say(f"    config[{key}]: {before!r} -> {value!r}")
    if {"valid_metric", "metrics", "topk"} & set(params):
        check_valid_metric(run.config)  # before training, not after its first epoch
    if LOADER_KEYS & set(params):
        for loader in run.data.train_parts + [run.data.valid, run.data.test]:
            loader.update_config(run.config)
    run.record.add_part("config", params)


def refuse_all_frozen(model):
    """A model none of whose parameters is trainable cannot be trained (RecBole's optimizer gets an empty list)."""
    if not any(param.requires_grad for param in model.parameters()):
        raise UserError(f"nothing to train: every parameter of {type(model).__name__} is frozen",
                        "unfreeze some layers with set_trainable [[layers], true] before init_trainer / train")


def init_trainer(run, params):
    """``init_trainer``: a trainer (fresh optimizer) for the model, with the distiller as its loss."""
    refuse_all_frozen(run.model)
    part = run.record.train_part
    run.trainer = build_trainer(run.config, run.model, f"{run.file.stem}-part{part}", distiller=run.distiller)
    say(f"    {type(run.trainer).__name__}: epochs={run.config['epochs']}, "
        f"learning_rate={run.config['learning_rate']}, train_batch_size={run.config['train_batch_size']}")


def info(run, params):
    """``info``: parameter counts, and with params 1 or 2 the numbered layer table."""
    say(f"    {wrap.count_params(run.model)}")
    if params >= 1:
        say(wrap.layer_table(run.model, paths=params >= 2))


def set_train_dataset(run, params):
    """``set_train_dataset``: the training part the next ``train`` fits on."""
    run.train_ds = params
    run.record.set_part("train_ds_ind", params)
    say(f"    training on part {params}: {len(run.data.train_parts[params].dataset)} interactions")


def set_outputs(run, params):
    """``set_outputs``: hook the referenced layers for the distillation loss."""
    layers = run.distiller.set_outputs(params)
    run.record.set_part("set_outputs", params)
    for layer in layers:
        say(f"    hooked {wrap.format_layer(layer).strip()}")


def remove_outputs(run, params):
    """``remove_outputs``: remove every hook; training uses the model loss alone."""
    run.distiller.remove_outputs()
    say("    all hooks removed: training uses the model loss only")


def set_trainable(run, params):
    """``set_trainable``: freeze or unfreeze the referenced layers."""
    refs, flag = params
    for line in wrap.set_trainable(run.model, refs, flag):
        say(f"    {line}")
    run.record.add_part("set_trainable", params)


def train(run, params):
    """``train``: fit with validation; journal the best validation result and where the best model went."""
    refuse_all_frozen(run.model)
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
    record.set_part("best_epoch", best_epoch(run.trainer.history, run.trainer.valid_metric_bigger))
    distiller = run.trainer.distiller
    if distiller is not None and distiller.hooked:  # the weight this train used; the row's: the last one used
        record.set_part("dist_loss_w", distiller.alpha)
        record.set("dist_loss_w", distiller.alpha)
    say(f"    best valid {config['valid_metric']}: {best_score}")
    say(f"    best valid result: {metrics_line(best_result)}")
    if run.trained_file:
        say(f"    best model saved in {run.trained_file}")


def best_epoch(history, bigger=True):
    """The epoch whose validation score was the best (the model kept), or None without validation: with
    ``epochs_run`` it tells a converged training (early stopping after the best) from one cut by ``epochs``."""
    scored = [e for e in history or [] if "valid_score" in e]
    if not scored:
        return None
    pick = max if bigger else min
    return pick(scored, key=lambda e: e["valid_score"])["epoch"]


def test_eval(run, params):
    """``test_eval``: the test metrics (and per-user ones) of the last train's best model."""
    if params:
        return _test_eval_as(run, params)
    load_best = run.trained_file is not None
    started = time.time()
    result, per_user = run.trainer.evaluate_per_user(run.data.test, load_best_model=load_best,
                                                     model_file=run.trained_file,
                                                     show_progress=bool(run.config["show_progress"]))
    run.record.set_part("test_time_s", round(time.time() - started, 2))
    run.record.set_part("best_test_res", dict(result))
    say(f"    test result ({'best model' if load_best else 'current weights'}): {metrics_line(result)}")
    if per_user:
        per_user = with_activity(per_user, run.data)
        run.history.setdefault(run.record.train_part, {})["test_per_user"] = per_user
        say(f"    by training activity: {activity_line(per_user)}")
    if run.data.cold_items:
        _cold_items_eval(run)


COLD_ITEMS_DEEP_TOPK = 100  # an item with a few training interactions rarely reaches a top 10 of all items


def _cold_items_eval(run):
    """Item-side cold start: the same evaluation on the cold items' test interactions only, journaled next to the
    others as ``cold_items:<metric>``; under full ranking also at a cut-off of COLD_ITEMS_DEEP_TOPK
    (``cold_items:recall@100``, ...), where a cold item that ranks low but not last still counts."""
    loader = cold_items_test_loader(run.config, run.data)
    if loader is None:
        say("    cold items: none of them is in the test split")
        return
    config, trainer = run.config, run.trainer
    if config["eval_args"]["mode"]["test"] == "full" and config["eval_type"] == EvaluatorType.RANKING:
        config = alternative_config(run.config, {"topk": sorted(set(run.config["topk"]) | {COLD_ITEMS_DEEP_TOPK})})
        trainer = safe_trainer_class(config["MODEL_TYPE"], config["model"])(config, run.model)
    result = trainer.evaluate(loader, load_best_model=run.trained_file is not None, model_file=run.trained_file,
                              show_progress=False)
    result = {f"cold_items:{name}": value for name, value in result.items()}
    run.record.set_part("best_test_res", {**run.record.part_value("best_test_res"), **result})
    say(f"    test result (cold items' interactions only): {metrics_line(result)}")


def _test_eval_as(run, params):
    """Evaluate on the test split with another evaluation mode and/or metrics; results join best_test_res, keyed
    by the mode when it is not the experiment's (see :func:`utils.evaluation.protocol_keys`)."""
    config = alternative_config(run.config, params)
    loader = test_loader(config, run.data)
    trainer = safe_trainer_class(config["MODEL_TYPE"], config["model"])(config, run.model)
    load_best = run.trained_file is not None
    result = trainer.evaluate(loader, load_best_model=load_best, model_file=run.trained_file,
                              show_progress=bool(config["show_progress"]))
    result = protocol_keys(result, config["eval_args"]["mode"]["test"], run.config["eval_args"]["mode"]["test"])
    merged = dict(run.record.part_value("best_test_res") or {})
    merged.update(result)
    run.record.set_part("best_test_res", merged)
    say(f"    test result ({config['eval_args']['mode']['test']}): {metrics_line(result)}")


def load_from_file(run, params):
    """``load_from_file``: resume a checkpoint, or load only its weights."""
    path = params["file"]
    if path == "best":
        if not run.trained_file:
            raise UserError("load_from_file 'best': no train step has saved a best model yet")
        path = run.trained_file
    if params["resume"]:
        run.trainer.resume_checkpoint(path)
        say(f"    resumed {path} from epoch {run.trainer.start_epoch}")
    else:
        checkpoint = run.trainer.load_weights(path)
        say(f"    loaded the weights of {path}")
        compare_split(run, path, checkpoint)


def compare_split(run, path, checkpoint):
    """Journal whether a loaded checkpoint was trained on this run's split (``checkpoint_split``: same, other or
    unknown) and warn when it was not: its training may have seen this run's test items."""
    from .trainer import split_identity

    stored = (checkpoint.get("config") or {}).get("split") if isinstance(checkpoint, dict) else None
    here = split_identity(run.config)
    verdict = "unknown" if stored is None else "same" if stored == here else "other"
    run.record.set("checkpoint_split", f"{verdict} ({stored or '-'} / {here})")
    if verdict != "same":
        say(f"    warning: {path} was trained on {'another' if stored else 'an unrecorded'} split (dataset, seed or "
            "split settings differ): its training may have seen this run's test items; journaled as "
            f"checkpoint_split: {verdict}")


def save_datasets(run, params):
    """``save_datasets``: write the splits as TSV next to the experiment file."""
    from .data import write_splits

    for path in write_splits(run.data, run.file):
        say(f"    wrote {path}")


def debug_model(run, params):
    """``debug_model``: print a layer's parameters with statistics."""
    (layer,) = wrap.resolve_layers(run.model, [params])
    say(f"    parameters of {layer.label}:")
    for name, param in layer.module.named_parameters():
        values = param.detach().float()
        say(f"    {name}: {tuple(param.shape)} requires_grad={param.requires_grad} "
            f"mean={values.mean():.4g} std={values.std() if values.numel() > 1 else 0:.4g} norm={values.norm():.4g}")


def stop(run, params):
    """``break``: end the scenario here."""
    raise StopScenario()
