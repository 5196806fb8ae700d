"""One experiment, end to end: check the file, build config and data, prepare profiles, run the scenario, journal.

RecBole's canonical pipeline (``run_recbole``: Config -> seed -> logger -> dataset -> data preparation -> model ->
trainer -> fit -> evaluate) cut into the scenario's named steps.
"""

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from recbole.utils import init_logger, init_seed

from .data import build_dataset, dataset_files_present, prepare_data
from .embeddings import embeddings_dir, profiles_to_matrix, random_matrix, read_profiles, save_tensor
from .errors import UserError
from .journal import ExperimentsJournal, JournalRecord
from .profiles import ProfileSpec, ensure_profiles
from .settings import parse_settings
from .tmanager import ScenarioRun, TrainManager, check_scenario, say
from .utils import PROJECT_ROOT, ExperimentConfig, check_setting_names, get_model_class, load_yaml

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


def check_experiment(path):
    """Everything that can be checked without data: YAML, settings, model, losses, scenario, dataset location.

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
        check_setting_names(recbole, model_class)
        steps = check_scenario(settings.scenario, model_name=recbole["model"])
        config = build_config(settings, recbole, model_class)
        check_dataset_location(config)
    except UserError as exc:
        raise exc.locate(file=path) from None
    return Checked(path, raw, settings, recbole, model_class, steps, file_hash(path), config)


def build_config(settings, recbole, model_class):
    """RecBole's Config for the experiment (never reading sys.argv), with our logging level."""
    try:
        config = ExperimentConfig(model=model_class, dataset=recbole["dataset"], config_dict=recbole)
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
    if config["dataset"] not in known:
        raise UserError(
            f"dataset '{config['dataset']}' not found: no {config['dataset']}.inter in "
            f"{Path(config['data_path']).resolve()}, "
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
    RecBole id order."""
    llm = settings.llm_config
    dataset = data.dataset
    folder = embeddings_dir(llm.embeddings_path, config["dataset"])
    fields = {"user": dataset.uid_field, "item": dataset.iid_field}
    random_spec = llm.preprocess_random or {}
    if random_spec.get("random"):
        for entity, key in (("user", "random_users_emb_file"), ("item", "random_items_emb_file")):
            name = random_spec.get(key)
            if not name:
                continue
            start_with_1 = llm.users_start_with_1 if entity == "user" else llm.items_start_with_1
            rows = dataset.num(fields[entity]) - int(start_with_1)
            seed = config["seed"] + (0 if entity == "user" else 1)
            save_tensor(random_matrix(rows, random_spec["embedding_size"], seed), folder / name)
            record.set("profiles", f"random {random_spec['embedding_size']}-d")
            say(f"llm_config: random {entity} matrix {rows}x{random_spec['embedding_size']} -> {folder / name}")
        return
    if llm.build_profiles:
        spec = ProfileSpec.from_config(llm.build_profiles)
        state = ensure_profiles(spec, config, data, folder, say=say)
        record.set("profiles", f"{spec.to}: {spec.source}+{spec.encoder} ({state})")
    spec = llm.preprocess_from_json
    if spec:
        entity = spec.get("entity", "user")
        source = folder / spec["from"]
        tokens = list(dataset.field2id_token[fields[entity]][1:])
        matrix = profiles_to_matrix(read_profiles(source), tokens, by=spec.get("by", "recbole"),
                                    missing=llm.missing_profiles, source=str(source))
        start_with_1 = llm.users_start_with_1 if entity == "user" else llm.items_start_with_1
        if not start_with_1:
            matrix = _with_zero_row(matrix)
        save_tensor(matrix, folder / spec["to"])
        by = spec.get("by", "recbole")
        say(f"llm_config: {spec['from']} -> {spec['to']} {tuple(matrix.shape)} ({entity}s, by {by})")


def _with_zero_row(matrix):
    import torch

    return torch.vstack((torch.zeros(1, matrix.shape[1]), matrix))


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
        "eval_split": eval_args["split"],
        "eval_valid_mode": eval_args["mode"]["valid"],
        "eval_test_mode": eval_args["mode"]["test"],
        "eval_valid_metric": config["valid_metric"],
        "dist_loss_w": settings.distil_loss_weight,
    })


def journal_for(path, settings=None):
    """The journal an experiment file writes to: its ``journal_name``, next to it.

    For a file that failed its checks, the name is read from the YAML when it parses at all, else 'journal.csv'.
    """
    if settings is not None:
        name = settings.journal_name
    else:
        try:
            name = load_yaml(path).get("journal_name")
        except UserError:
            name = None
        if not isinstance(name, str) or not name or "/" in name:
            name = "journal.csv"
    return ExperimentsJournal(Path(path).parent / name)


def already_done(path):
    """Whether the file's journal has a ``done`` row for this file name with this exact content."""
    path = Path(path)
    try:
        journal = journal_for(path, parse_settings(load_yaml(path))[0])
    except UserError:
        return False
    content = file_hash(path)
    return any(
        row.get("config") == path.name and row.get("config_hash") == content and row.get("status") == "done"
        for row in journal.rows()
    )


def run_experiment(path, journal=None):
    """Run one experiment file and append its journal row.

    Returns:
        (status, record): status is 'done' or 'stopped'.

    Raises:
        UserError: the experiment failed because of its input (its row is journaled as failed first).
    """
    path = Path(path)
    started = time.time()
    record = JournalRecord(path, subdir_of(path))
    checked = None
    try:
        checked = check_experiment(path)
        journal = journal or journal_for(path, checked.settings)
        record.set("model", checked.recbole["model"])
        record.set("config_hash", checked.content_hash)
        record.set("dist_loss_w", checked.settings.distil_loss_weight)
        status = _run_checked(checked, record)
    except UserError as exc:
        exc.locate(file=path)
        record.finish("failed", exc.line())
        (journal or journal_for(path, checked.settings if checked else None)).append(record.row())
        raise
    except KeyboardInterrupt:
        record.finish("interrupted", "interrupted by the user (Ctrl-C)")
        (journal or journal_for(path, checked.settings if checked else None)).append(record.row())
        raise
    except BaseException as exc:
        record.finish("failed", f"internal error: {type(exc).__name__}: {exc}")
        (journal or journal_for(path, checked.settings if checked else None)).append(record.row())
        raise
    record.finish(status)
    journal.append(record.row())
    for part in sorted(record.parts):
        result = record.part_value("best_test_res", part)
        if result:
            say(f"result: train_{part} test " + "  ".join(f"{k}={v:.4f}" for k, v in result.items()))
    say(f"journal: {journal.path} ({status}, {time.time() - started:.1f}s)")
    return status, record


def _run_checked(checked, record):
    settings, config = checked.settings, checked.config
    init_seed(config["seed"], config["reproducibility"])
    record.set("log_file", setup_logging(config))
    dataset = build_dataset(config)
    data = prepare_data(config, dataset, settings.add_train_split, settings.add_train_shuffle)
    describe_experiment(record, config, settings, dataset, checked)
    say(f"== {checked.file}: {config['model']} on {config['dataset']} ({dataset.user_num - 1} users, "
        f"{dataset.item_num - 1} items, {dataset.inter_num} interactions; {len(data.train_parts)} training part(s))")
    prepare_llm_files(settings, config, data, record)
    run = ScenarioRun(file=checked.file, config=config, settings=settings, data=data, record=record,
                      model_class=checked.model_class)
    return TrainManager(run, checked.steps).execute()
