"""One experiment, end to end: check the file, build config and data, prepare profiles, run the scenario, journal.

RecBole's canonical pipeline (``run_recbole``: Config -> seed -> logger -> dataset -> data preparation -> model ->
trainer -> fit -> evaluate) cut into the scenario's named steps.
"""

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from recbole.utils import init_logger, init_seed

from .allocator import keep_freed_memory
from .config_loading import ExperimentConfig, check_setting_names, load_yaml
from .data import (
    build_dataset,
    dataset_files_present,
    describe_eval_split,
    inter_files,
    prepare_data,
    quiet_recbole_warnings,
)
from .device import describe_device
from .embeddings import convert_profiles, embeddings_dir, random_matrix, save_tensor
from .errors import Interrupted, UserError
from .journal import MAX_ERROR_CHARS, ExperimentsJournal, JournalError, JournalRecord, check_journal_name, locked
from .params import check_valid_metric
from .paths import PROJECT_ROOT
from .profiles import ProfileSpec, ensure_profiles, mark_leaky, read_meta, refuse_unasked_leak
from .registry import get_model_class
from .settings import RECBOLE, parse_settings
from .steps import say
from .tmanager import ScenarioRun, TrainManager, check_scenario
from .trainer import check_checkpoint_dir

logger = logging.getLogger(__name__)



@dataclass
class Checked:
    """An experiment file that passed every check that needs no data."""

    file: Path
    raw: dict
    settings: object
    recbole: dict
    model_class: type
    steps: list  # (step, command, params)
    content_hash: str
    config: object  # RecBole Config


def file_hash(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def check_experiment(path, overrides=None, outputs=True):
    """Everything that can be checked without data: YAML, settings, model, losses, scenario, dataset location, and
    (with ``outputs``) that the journal and ``checkpoint_dir`` can be written.

    Raises:
        UserError: with ``file`` set.
    """
    path = Path(path)
    try:
        raw = load_yaml(path)
        settings, recbole = parse_settings(raw)
        if "model" not in recbole:
            raise UserError("no model: set model: (e.g. NeuMF)")
        if "dataset" not in recbole:
            raise UserError("no dataset: set dataset: (e.g. ml-100k)")
        model_class = get_model_class(recbole["model"])
        recbole = translate_kar_keys(recbole, settings, model_class)
        check_setting_names(recbole, model_class)
        RECBOLE.check(recbole, context={"embeddings_dir": embeddings_dir(settings.llm_config.embeddings_path,
                                                                         str(recbole["dataset"]))})
        for key in ("dataset_save_path", "dataloaders_save_path", "save_dataloaders"):
            if recbole.get(key):
                raise UserError(f"'{key}' makes RecBole save and load pickles, which this tool does not load",
                                "remove it: datasets are loaded once per run and reused between experiments")
        config = build_config(settings, recbole, model_class, overrides)
        steps = check_scenario(settings.scenario, model_name=recbole["model"], context=scenario_context(config))
        check_valid_metric(config)
        check_dataset_location(config)
        if outputs:
            check_checkpoint_dir(config["checkpoint_dir"])
            journal_for(path, settings).check()
    except UserError as exc:
        raise exc.locate(file=path) from None
    return Checked(path, raw, settings, recbole, model_class, steps, file_hash(path), config)


def scenario_context(config, data=None):
    """What the scenario's declarations may read besides the params: the model, the experiment's setting names
    (``set_config``) and, once the data is prepared, the training parts and the item count (``set_train_dataset``,
    ``test_eval``'s uniN)."""
    context = {"model": config["model"], "settings": set(config.final_config_dict)}
    if data is not None:
        context.update(parts=len(data.train_parts), items=data.dataset.item_num - 1)
    return context


def translate_kar_keys(recbole, settings, model_class):
    """For a KAR model, the original tool's KAR keys read as this project's, announced in one line."""
    from models._kar import KarMixin, translate_original_keys

    if not issubclass(model_class, KarMixin):
        return recbole
    recbole, found = translate_original_keys(recbole, settings.llm_config.embeddings_path)
    if found:
        say(f"{recbole['model']}: the original tool's KAR keys ({', '.join(found)}) are read as "
            f"{model_class.__name__}'s; its adapter differs from the original's (see README, KAR)")
    return recbole


def build_config(settings, recbole, model_class, overrides=None):
    """RecBole's Config for the experiment (never reading sys.argv), with our logging level; ``overrides`` win over
    the file (e.g. the GPUs a Ray worker was given)."""
    try:
        config = ExperimentConfig(model=model_class, dataset=recbole["dataset"], config_dict=recbole,
                                  overrides=overrides)
    except (ValueError, KeyError, TypeError, NotImplementedError, AssertionError) as exc:
        raise UserError(f"RecBole refuses the settings: {exc}", "check the RecBole part of the file") from None
    config["state"] = settings.logger_level
    return config


def check_dataset_location(config):
    """Fail at once, before any training, when the dataset is neither on disk nor known to RecBole's downloads."""
    if dataset_files_present(config):
        return
    import recbole
    import yaml

    urls = Path(recbole.__file__).parent / "properties" / "dataset" / "url.yaml"
    known = yaml.safe_load(urls.read_text()) or {}
    absent = [Path(path).name for path in inter_files(config) if not Path(path).is_file()]
    if config["benchmark_filename"]:
        raise UserError(
            f"dataset '{config['dataset']}' not found: benchmark_filename names {', '.join(absent)}, "
            f"which {'is' if len(absent) == 1 else 'are'} not in {Path(config['data_path']).resolve()}",
            "put <dataset>.<part>.inter there for every part, or fix benchmark_filename / dataset / data_path",
        )
    if config["dataset"] not in known:
        raise UserError(
            f"dataset '{config['dataset']}' not found: no {absent[0]} in {Path(config['data_path']).resolve()}, "
            "and RecBole knows no download for that name",
            "put the RecBole atomic files there, or fix dataset / data_path",
        )


def setup_logging(config):
    """RecBole's logger (console + ``log/<model>/...log``), re-initialized for each experiment of a folder."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    init_logger(config)
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


def subdir_of(path):
    """The journal's ``subdir``: the folder relative to ``experiments/`` when inside it, else its name."""
    parent = Path(path).resolve().parent
    try:
        return str(parent.relative_to(PROJECT_ROOT / "experiments"))
    except ValueError:
        return parent.name


def prepare_llm_files(settings, config, data, record):
    """``llm_config`` preprocessing: random matrices; or profiles built when asked, then JSON -> matrices in
    RecBole id order (shuffled among users for the shuffled control). The journal's ``profiles`` says which."""
    llm = settings.llm_config
    folder = embeddings_dir(llm.embeddings_path, config["dataset"])
    random_spec = llm.preprocess_random or {}
    if random_spec.get("random"):
        write_random_matrices(random_spec, llm, data.dataset, folder, config["seed"], record)
        return
    specs = [ProfileSpec.from_config(raw) for raw in llm.build_profiles]
    notes = [build_when_needed(spec, config, data, folder) for spec in specs]
    for spec in llm.preprocess_from_json:
        refuse_unasked_leak(folder / spec["from"], spec["from"], specs)
        notes.append(convert_one(spec, llm, data.dataset, folder, shuffle_seed(spec, config)))
    notes = [note for note in notes if note]
    if notes:
        record.set("profiles", "; ".join(notes))


def write_random_matrices(random_spec, llm, dataset, folder, seed, record):
    fields = {"user": dataset.uid_field, "item": dataset.iid_field}
    for entity, key in (("user", "random_users_emb_file"), ("item", "random_items_emb_file")):
        name = random_spec.get(key)
        if not name:
            continue
        start_with_1 = llm.users_start_with_1 if entity == "user" else llm.items_start_with_1
        rows = dataset.num(fields[entity]) - int(start_with_1)
        entity_seed = seed + (0 if entity == "user" else 1)
        save_tensor(random_matrix(rows, random_spec["embedding_size"], entity_seed), folder / name)
        record.set("profiles", f"random {random_spec['embedding_size']}-d")
        say(f"llm_config: random {entity} matrix {rows}x{random_spec['embedding_size']} -> {folder / name}")


def build_when_needed(spec, config, data, folder):
    """Build, rebuild or reuse one ``build_profiles`` entry; returns its journal note."""
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder / spec.to):  # experiments of a sweep (--workers) may build the same profiles at once
        state = ensure_profiles(spec, config, data, folder, say=say)
    return f"{spec.to}: {spec.label()} ({state})"


def convert_one(spec, llm, dataset, folder, shuffle=None):
    """One ``preprocess_from_json`` entry (:func:`utils.embeddings.convert_profiles`), with ``shuffle`` the rows given
    to other users. Returns the journal note of a shuffle, else None."""
    entity, by = spec.get("entity", "user"), spec.get("by", "recbole")
    note = None if shuffle is None else f"{spec['to']}: {spec['from']} shuffled among {entity}s (seed {shuffle})"
    tokens = list(dataset.field2id_token[dataset.uid_field if entity == "user" else dataset.iid_field][1:])
    start_with_1 = llm.users_start_with_1 if entity == "user" else llm.items_start_with_1
    mark_leaky(folder / spec["to"], (read_meta(folder / spec["from"]) or {}).get("history") == "all")
    matrix = convert_profiles(folder / spec["from"], folder / spec["to"], tokens, by=by, missing=llm.missing_profiles,
                              start_with_1=start_with_1, shuffle=shuffle)
    if matrix is None:
        say(f"llm_config: {spec['to']} is up to date with {spec['from']} (same content, ids and alignment)")
        return note
    if shuffle is not None:
        say(f"llm_config: {spec['to']}: rows shuffled among {entity}s (seed {shuffle}): the shuffled control")
    say(f"llm_config: {spec['from']} -> {spec['to']} {tuple(matrix.shape)} ({entity}s, by {by})")
    return note


def shuffle_seed(spec, config):
    """The seed of ``preprocess_from_json.shuffle`` (true: the experiment's seed), or None when not shuffled."""
    shuffle = spec.get("shuffle", False)
    if shuffle is False:
        return None
    return config["seed"] if shuffle is True else shuffle


def describe_experiment(record, config, settings, dataset, checked):
    eval_args = config["eval_args"]
    record.values.update({
        "dataset": config["dataset"],
        "user_num": dataset.user_num,
        "item_num": dataset.item_num,
        "inter_num": dataset.inter_num,
        "seed": config["seed"],
        "user_filter": config["user_inter_num_interval"],
        "item_filter": config["item_inter_num_interval"],
        "threshold": config["threshold"],
        "model_type": str(config["MODEL_INPUT_TYPE"]),
        "train_split": settings.add_train_split,
        "eval_split": describe_eval_split(config),
        "eval_valid_mode": eval_args["mode"]["valid"],
        "eval_test_mode": eval_args["mode"]["test"],
        "eval_valid_metric": config["valid_metric"],
        "dist_loss_w": settings.distil_loss_weight,
    })


def journal_for(path, settings=None):
    """The journal an experiment file writes to: its ``journal_name``, next to it.

    For a file that failed its checks, the name is read from the YAML when it parses at all, else 'journal.csv';
    None when the YAML names a journal that is not a valid one (that is the error being reported).
    """
    if settings is not None:
        name = settings.journal_name
    else:
        try:
            name = load_yaml(path).get("journal_name", "journal.csv")
        except UserError:
            name = "journal.csv"
        try:
            check_journal_name(name)
        except UserError:
            return None
    return ExperimentsJournal(Path(path).parent / name)


def already_done(path):
    """Whether the file's journal has a ``done`` row for this file name with this exact content."""
    path = Path(path)
    try:
        journal = journal_for(path, parse_settings(load_yaml(path))[0])
        journal.check()
    except UserError:
        return False  # the run reports what is wrong
    content = file_hash(path)
    return any(
        row.get("config") == path.name and row.get("config_hash") == content and row.get("status") == "done"
        for row in journal.rows()
    )


def run_experiment(path, journal=None, overrides=None, journal_values=None):
    """Run one experiment file and append its journal row (and write its per-epoch history).

    ``journal_values`` (column -> value) go into the row as they are (a Ray sweep's ``node`` and ``run_id``).

    Returns:
        (status, record): status is 'done' or 'stopped'.

    Raises:
        UserError: the experiment failed because of its input (its row is journaled as failed first).
    """
    path = Path(path)
    started = time.time()
    keep_freed_memory()  # else every training step page-faults its tensors back in (see utils/allocator.py)
    quiet_recbole_warnings()
    record = JournalRecord(path, subdir_of(path))
    for column, value in (journal_values or {}).items():
        record.set(column, value)
    checked, state = None, {}
    try:
        checked = check_experiment(path, overrides)
        journal = journal or journal_for(path, checked.settings)
        record.set("model", checked.recbole["model"])
        record.set("config_hash", checked.content_hash)
        record.set("dist_loss_w", checked.settings.distil_loss_weight)
        if checked.settings.add_train_split:
            record.declare_parts((0, 1))
        status = _run_checked(checked, record, state)
    except BaseException as exc:
        if isinstance(exc, UserError):
            exc.locate(file=path)
        if not isinstance(exc, JournalError):  # a journal that cannot be used is not appended to
            _journal_failure(path, journal, checked, state, record, exc)
        raise
    _journal_outcome(path, journal, checked, state, record, status, None, None)
    for part in sorted(record.parts):
        result = record.part_value("best_test_res", part)
        if result:
            say(f"result: train_{part} test " + "  ".join(f"{k}={v:.4f}" for k, v in result.items()))
    say(f"journal: {journal.path} ({status}, {time.time() - started:.1f}s)")
    return status, record


def _journal_failure(path, journal, checked, state, record, failure):
    """Journal a failed or interrupted experiment. Whatever goes wrong while journaling, ``failure`` is what the
    caller re-raises: the journal's trouble is added to its line (a UserError) or logged, never put in its place."""
    if isinstance(failure, UserError):
        status, error = "failed", failure.line()
    elif isinstance(failure, KeyboardInterrupt):
        status = "interrupted"
        error = f"interrupted ({failure})" if isinstance(failure, Interrupted) else "interrupted by the user (Ctrl-C)"
    else:
        status, error = "failed", f"internal error: {type(failure).__name__}: {failure}"
    try:
        _journal_outcome(path, journal, checked, state, record, status, error, failure)
    except Exception as exc:  # noqa: BLE001 - reported, and the experiment's own error goes on
        logger.error("the failed experiment could not be journaled: %s: %s", type(exc).__name__, exc)
        if isinstance(failure, UserError):
            failure.message += f" (not journaled: {type(exc).__name__}: {exc})"


def _journal_outcome(path, journal, checked, state, record, status, error, failure):
    """Append the experiment's row. When the append itself fails while another error is on its way, that error
    says so (one line) instead of being replaced by the journal's."""
    journal = journal or journal_for(path, checked.settings if checked else None)
    if error and len(error) > MAX_ERROR_CHARS and record.values.get("log_file"):
        logger.error("%s", error)  # the whole line, in this run's log; the journal cell is cut
    record.finish(status, error)
    if journal is None:
        return
    try:
        write_history(state.get("run"), record, journal)
        journal.append(record.row())
    except (UserError, OSError) as exc:
        problem = exc.line() if isinstance(exc, UserError) else f"cannot write the history: {exc}"
        if isinstance(failure, UserError):
            failure.message += f" (not journaled: {problem})"
        elif failure is None:
            raise (exc if isinstance(exc, JournalError) else JournalError(problem)) from None


def write_history(run, record, journal):
    """Write the run's per-epoch history and per-user test metrics next to the journal; name it in the row."""
    if run is None:
        return
    record.set("variant", run.variables.get("variant"))
    if not run.history:
        return
    folder = journal.path.parent / "history"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = f"{record.values['start date']}_{record.values['start time'].replace(':', '-')}"
    path = folder / f"{Path(record.values['config']).stem}-{stamp}-{uuid.uuid4().hex[:4]}.json"
    history = {"config": record.values["config"], "model": record.values.get("model"),
               "seed": record.values.get("seed"), "variant": run.variables.get("variant"),
               "parts": {str(part): value for part, value in sorted(run.history.items())}}
    path.write_text(json.dumps(history))
    record.set("history_file", str(path.relative_to(journal.path.parent)))


def describe_cold_start(cold_start, data, record):
    entity = "users" if "users" in cold_start else "items"
    cut = len(data.cold_users if entity == "users" else data.cold_items)
    record.set("cold_start", {**cold_start, f"cut_{entity}": cut})
    say(f"cold_start: {cut} {entity} keep {cold_start['k']} training interactions each")


def _run_checked(checked, record, state):
    settings, config = checked.settings, checked.config
    init_seed(config["seed"], config["reproducibility"])
    record.set("log_file", setup_logging(config))
    dataset = build_dataset(config)
    data = prepare_data(config, dataset, settings.add_train_split, settings.add_train_shuffle, settings.cold_start)
    describe_experiment(record, config, settings, dataset, checked)
    if settings.cold_start:
        describe_cold_start(settings.cold_start, data, record)
    say(f"== {checked.file}: {config['model']} on {config['dataset']} ({dataset.user_num - 1} users, "
        f"{dataset.item_num - 1} items, {dataset.inter_num} interactions; {len(data.train_parts)} training part(s)); "
        f"device {describe_device(config['device'], config['use_gpu'])}")
    prepare_llm_files(settings, config, data, record)
    run = ScenarioRun(file=checked.file, config=config, settings=settings, data=data, record=record,
                      model_class=checked.model_class)
    state["run"] = run
    return TrainManager(run, checked.steps).execute()
