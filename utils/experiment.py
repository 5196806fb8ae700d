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
from .config_loading import ExperimentConfig, known_setting_names, load_yaml
from .data import (
    build_dataset,
    check_split_outputs,
    dataset_files_present,
    describe_eval_split,
    inter_files,
    prepare_data,
    quiet_recbole_warnings,
)
from .device import describe_device
from .embeddings import embeddings_dir
from .errors import Interrupted, UserError
from .journal import MAX_ERROR_CHARS, ExperimentsJournal, JournalError, JournalRecord, check_journal_name
from .params import check_model_settings, check_valid_metric
from .paths import PROJECT_ROOT, real_inside
from .profiles import prepare_profiles
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
    journal: object = None  # the ExperimentsJournal it appends to, when checked (outputs)


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
        RECBOLE.check(recbole, context={"settings": known_setting_names(model_class), "embeddings_dir": embeddings_dir(
            settings.llm_config.embeddings_path, str(recbole["dataset"]))})
        for key in ("dataset_save_path", "dataloaders_save_path", "save_dataloaders"):
            if recbole.get(key):
                raise UserError(f"'{key}' makes RecBole save and load pickles, which this tool does not load",
                                "remove it: datasets are loaded once per run and reused between experiments")
        config = build_config(settings, recbole, model_class, overrides)
        check_model_settings(model_class, config)  # a model of models/ declares its own (NeuMF's scorer, ...)
        steps = check_scenario(settings.scenario, model_name=recbole["model"], context=scenario_context(config))
        check_valid_metric(config)
        check_dataset_location(config)
        journal = None
        if outputs:
            check_checkpoint_dir(config["checkpoint_dir"])
            if any(command.name == "save_datasets" for _, command, _ in steps):
                check_split_outputs(path)
            journal = journal_for(path, settings)
            journal.check()
    except UserError as exc:
        raise exc.locate(file=path) from None
    return Checked(path, raw, settings, recbole, model_class, steps, file_hash(path), config, journal)


def scenario_context(config, data=None):
    """What the scenario's declarations may read besides the params: the model, the experiment's setting names
    (``set_config``), its metrics and test mode (``test_eval``'s labeled rule) and, once the data is prepared, the
    training parts and the item count (``set_train_dataset``, ``test_eval``'s uniN)."""
    context = {"model": config["model"], "settings": set(config.final_config_dict), "metrics": config["metrics"],
               "test_mode": (config["eval_args"] or {}).get("mode")}
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
    """Fail at once, before any training, when the dataset is neither on disk nor known to RecBole's downloads, or
    when a file RecBole would read from the dataset folder is a symlink out of it (or a loop)."""
    from .own_data import LINK_HINT

    folder = Path(config["data_path"])
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.startswith(f"{config['dataset']}.") and path.is_symlink():
                real_inside(folder, path, "dataset file", LINK_HINT)
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


def describe_experiment(record, config, settings, data):
    """The row's description of the experiment: data, split, evaluation and the file's distillation weight (a train
    that distils overwrites ``dist_loss_w`` with the weight it used)."""
    dataset, eval_args = data.dataset, config["eval_args"]
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
    })
    if settings.cold_start:
        cold_start = settings.cold_start
        entity = "users" if "users" in cold_start else "items"
        cut = len(data.cold_users if entity == "users" else data.cold_items)
        record.set("cold_start", {**cold_start, f"cut_{entity}": cut})
        say(f"cold_start: {cut} {entity} keep {cold_start['k']} training interactions each")
    say(f"== {record.values['config']}: {config['model']} on {config['dataset']} ({dataset.user_num - 1} users, "
        f"{dataset.item_num - 1} items, {dataset.inter_num} interactions; {len(data.train_parts)} training part(s)); "
        f"device {describe_device(config['device'], config['use_gpu'])}")


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
    """Run one experiment file and append its journal row (and write its per-epoch history): RecBole's
    ``run_recbole`` (config -> seed -> logger -> dataset -> data preparation -> model -> trainer -> fit -> evaluate),
    with the check first, the profiles before the model, and the scenario's steps for model, trainer, fit, evaluate.

    ``journal_values`` (column -> value) go into the row as they are (a Ray sweep's ``node`` and ``run_id``).

    Returns:
        (status, record): status is 'done' or 'stopped'.

    Raises:
        UserError: the experiment failed because of its input (its row is journaled as failed first).
    """
    path = Path(path)
    keep_freed_memory()  # else every training step page-faults its tensors back in (see utils/allocator.py)
    quiet_recbole_warnings()
    with Journaling(path, journal, journal_values) as entry:
        checked = entry.checked = check_experiment(path, overrides)
        settings, config = checked.settings, checked.config
        entry.started_with(checked)
        init_seed(config["seed"], config["reproducibility"])
        entry.record.set("log_file", setup_logging(config))
        dataset = build_dataset(config)
        RECBOLE.check(checked.recbole, context={"items": dataset.item_num - 1})  # uniN against the item count
        data = prepare_data(config, dataset, settings.add_train_split, settings.add_train_shuffle, settings.cold_start)
        steps = check_scenario(settings.scenario, context=scenario_context(config, data))  # part indexes, uniN
        describe_experiment(entry.record, config, settings, data)
        prepare_profiles(settings.llm_config, config, data, entry.record, say)
        entry.run = ScenarioRun(file=path, config=config, settings=settings, data=data, record=entry.record,
                                model_class=checked.model_class)
        entry.status = TrainManager(entry.run, steps).execute()
    entry.report()
    return entry.status, entry.record


class Journaling:
    """The one journaling context of an experiment: whatever happens inside, one row is appended to the one
    journal found for the file (a failure or an interruption is journaled, then goes on)."""

    def __init__(self, path, journal=None, journal_values=None):
        self.path, self.journal, self.started = path, journal, time.time()
        self.record = JournalRecord(path, subdir_of(path))
        for column, value in (journal_values or {}).items():
            self.record.set(column, value)
        self.checked, self.run, self.status = None, None, None

    def started_with(self, checked):
        """The checked file's columns: model, content hash, the file's weight and the declared parts."""
        self.journal = self.journal or checked.journal
        self.record.set("model", checked.recbole["model"])
        self.record.set("config_hash", checked.content_hash)
        self.record.set("dist_loss_w", checked.settings.distil_loss_weight)
        if checked.settings.add_train_split:
            self.record.declare_parts((0, 1))

    def __enter__(self):
        return self

    def __exit__(self, kind, failure, traceback):
        if failure is None:
            self._append(self.status, None, None)
            return False
        if isinstance(failure, UserError):
            failure.locate(file=self.path)
        if not isinstance(failure, JournalError):  # a journal that cannot be used is not appended to
            self._append_failure(failure)
        return False  # the failure goes on

    def _append_failure(self, failure):
        """Journal a failed or interrupted experiment. Whatever goes wrong while journaling, ``failure`` is what
        goes on: the journal's trouble is added to its line (a UserError) or logged, never put in its place."""
        if isinstance(failure, UserError):
            status, error = "failed", failure.line()
        elif isinstance(failure, KeyboardInterrupt):
            status = "interrupted"
            error = (f"interrupted ({failure})" if isinstance(failure, Interrupted)
                     else "interrupted by the user (Ctrl-C)")
        elif isinstance(failure, SystemExit):  # a Ray worker stopped by its driver (SIGTERM/SIGINT to the sweep)
            status, error = "interrupted", "interrupted (its worker was stopped: the sweep was ended)"
        else:
            status, error = "failed", f"internal error: {type(failure).__name__}: {failure}"
        try:
            self._append(status, error, failure)
        except Exception as exc:  # noqa: BLE001 - reported, and the experiment's own error goes on
            logger.error("the failed experiment could not be journaled: %s: %s", type(exc).__name__, exc)
            if isinstance(failure, UserError):
                failure.message += f" (not journaled: {type(exc).__name__}: {exc})"

    def _append(self, status, error, failure):
        """Append the row. When the append itself fails while another error is on its way, that error says so (one
        line) instead of being replaced by the journal's."""
        self.journal = self.journal or journal_for(self.path, self.checked.settings if self.checked else None)
        if error and len(error) > MAX_ERROR_CHARS and self.record.values.get("log_file"):
            logger.error("%s", error)  # the whole line, in this run's log; the journal cell is cut
        self.record.finish(status, error)
        if self.journal is None:
            return
        try:
            write_history(self.run, self.record, self.journal)
            self.journal.append(self.record.row())
        except (UserError, OSError) as exc:
            problem = exc.line() if isinstance(exc, UserError) else f"cannot write the history: {exc}"
            if isinstance(failure, UserError):
                failure.message += f" (not journaled: {problem})"
            elif failure is None:
                raise (exc if isinstance(exc, JournalError) else JournalError(problem)) from None

    def report(self):
        """The console's closing lines: each part's test result and where the row went."""
        for part in sorted(self.record.parts):
            result = self.record.part_value("best_test_res", part)
            if result:
                say(f"result: train_{part} test " + "  ".join(f"{k}={v:.4f}" for k, v in result.items()))
        say(f"journal: {self.journal.path} ({self.status}, {time.time() - self.started:.1f}s)")


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
