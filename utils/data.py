"""Dataset and data preparation: RecBole's own pipeline, plus the optional extra split of the training set.

With ``add_train_split: [r0, r1, ...]`` the training set is split into parts 0, 1, ... (per user when evaluation
groups by user) and the full training set comes last; without it there is one part, 0.
"""

import copy
import glob
import importlib
import json
import logging
import os
import urllib.error
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from recbole.data import create_samplers, get_dataloader
from recbole.data.interaction import Interaction
from recbole.data.utils import KGSampler
from recbole.utils import ModelType
from recbole.utils.argument_list import dataset_arguments

from .errors import UserError
from .ranking import eval_loader_class

logger = logging.getLogger(__name__)


def quiet_recbole_warnings():
    """Silence two warnings about RecBole's own code, for the experiments of this process: RecBole 1.2.1 on pandas
    2.x warns about its in-place fillna on every dataset build, and graph models about a deprecated sparse
    constructor; both concern versions we pin away from. Called when an experiment starts, never at import."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
    warnings.filterwarnings("ignore", message=r".*torch\.sparse\.SparseTensor.*", category=UserWarning)


@dataclass
class DataBundle:
    """Everything a scenario trains and evaluates on."""

    dataset: object  # the filtered RecBole Dataset (all interactions)
    train_parts: list  # dataloaders, indexed by set_train_dataset; the last one is the whole training set
    valid: object
    test: object
    cold_users: frozenset = frozenset()  # internal ids whose training history cold_start cut to k interactions
    cold_items: frozenset = frozenset()  # the same, for item-side cold start

    @property
    def train_dataset(self):
        """The whole training set (models are built on it, so graph models see every training edge)."""
        return self.train_parts[-1].dataset


def benchmark_parts(config):
    """The ``benchmark_filename`` parts (train, valid, test files), or None for one ``<dataset>.inter``."""
    parts = config["benchmark_filename"]
    return list(parts) if parts else None


def inter_files(config):
    """The interaction files RecBole reads: ``<dataset>.inter``, or ``<dataset>.<part>.inter`` per benchmark part
    (the first part is the training set)."""
    path, name = config["data_path"], config["dataset"]
    parts = benchmark_parts(config)
    if parts is None:
        return [os.path.join(path, f"{name}.inter")]
    return [os.path.join(path, f"{name}.{part}.inter") for part in parts]


def dataset_files_present(config):
    """Whether RecBole will find the dataset's atomic files without downloading."""
    return all(os.path.isfile(path) for path in inter_files(config))


def describe_eval_split(config):
    """The journal's ``eval_split``: RecBole's split setting, or the benchmark files the split came from."""
    parts = benchmark_parts(config)
    return {"benchmark_filename": parts} if parts else config["eval_args"]["split"]


def download_url(dataset):
    """The URL RecBole downloads ``dataset`` from when its files are missing (its ``url.yaml``), or None."""
    import recbole
    import yaml

    urls = Path(recbole.__file__).parent / "properties" / "dataset" / "url.yaml"
    return (yaml.safe_load(urls.read_text()) or {}).get(dataset)


def download_note(config):
    """One line for ``--check`` when RecBole will download the dataset on the first run, else None."""
    if dataset_files_present(config):
        return None
    url = download_url(config["dataset"])
    if url is None:
        return None
    return (f"dataset '{config['dataset']}' is not in {os.path.abspath(config['data_path'])}: RecBole will "
            f"download it from {url} on the first run")


def dataset_class_for(config):
    """The Dataset class RecBole's ``create_dataset`` would pick for this model."""
    module = importlib.import_module("recbole.data.dataset")
    specific = getattr(module, f"{config['model']}Dataset", None)
    if specific is not None:
        return specific
    by_type = {ModelType.SEQUENTIAL: "SequentialDataset", ModelType.KNOWLEDGE: "KnowledgeBasedDataset"}
    return getattr(module, by_type.get(config["MODEL_TYPE"], "Dataset"))


def dataset_key(config):
    """What the loaded and filtered dataset depends on: RecBole's dataset settings, the dataset class, and the
    identity (name, size, modification time) of every atomic file. Equal keys give equal datasets."""
    path = Path(config["data_path"])
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                   for p in path.glob(f"{config['dataset']}.*") if p.is_file()) if path.is_dir() else []
    settings = {name: config[name] for name in dataset_arguments}
    settings.update(dataset=config["dataset"], data_path=str(path.resolve()), model_type=str(config["MODEL_TYPE"]))
    return json.dumps([dataset_class_for(config).__name__, settings, files], sort_keys=True, default=str)


# dataset_key -> a loaded, filtered, never built Dataset (this process only), least recently used first. Bounded to
# MAX_CACHED_DATASETS: a folder that cycles through many (large) datasets keeps only the last two in memory; a
# sweep over one dataset (models x variants x seeds) still loads it once.
_DATASETS = OrderedDict()
MAX_CACHED_DATASETS = 2


def build_dataset(config, reuse=True):
    """The experiment's RecBole dataset, loaded once per process for identical data settings.

    Unlike RecBole's ``create_dataset`` this never unpickles a saved dataset from ``checkpoint_dir`` (loading a
    pickle can run code). A missing, undownloadable dataset becomes one clear line.
    """
    key = dataset_key(config) if reuse else None
    if key in _DATASETS:
        _DATASETS.move_to_end(key)
        cached = _DATASETS[key]
        logger.info("dataset %s: reusing the one loaded for an earlier experiment", config["dataset"])
        # a fresh copy (build() changes a dataset) that refers to this experiment's config
        return copy.deepcopy(cached, memo={id(cached.config): config})
    dataset = _load_dataset(config)
    if reuse:
        _DATASETS[key] = copy.deepcopy(dataset, memo={id(dataset.config): dataset.config})
        while len(_DATASETS) > MAX_CACHED_DATASETS:
            _DATASETS.popitem(last=False)
    return dataset


def _load_dataset(config):
    where = os.path.abspath(config["data_path"])
    url = None if dataset_files_present(config) else download_url(config["dataset"])
    if url and os.path.isdir(where):  # RecBole downloads only when the dataset's folder does not exist
        if os.listdir(where):
            raise UserError(f"{where} exists without {config['dataset']}.inter, so RecBole will not download "
                            f"{config['dataset']} into it", "move its files away, run once to download, then put "
                            "them back (e.g. an item file you added)")
        os.rmdir(where)  # left empty by a failed download
    try:
        return dataset_class_for(config)(config)
    except (urllib.error.URLError, OSError) as exc:
        if dataset_files_present(config):
            raise
        reason = getattr(exc, "reason", None) or exc
        if url:
            raise UserError(
                f"dataset '{config['dataset']}' is not in {where} and RecBole could not download it from {url} "
                f"({reason})",
                f"run once with network access, or unzip that file into {where} and name its files "
                f"{config['dataset']}.inter, ...",
            ) from None
        raise UserError(
            f"dataset '{config['dataset']}' is not in {where} and could not be downloaded ({reason})",
            f"put the atomic files ({config['dataset']}.inter, .user, .item) in {where} or set data_path",
        ) from None
    except ValueError as exc:
        if "a known dataset name" in str(exc):
            raise UserError(
                f"dataset '{config['dataset']}' is not in {where}, and RecBole knows no download for that name",
                f"put {config['dataset']}.inter (and .user / .item) in {where} or fix dataset / data_path",
            ) from None
        raise UserError(f"RecBole could not build the dataset: {exc}", "check load_col, filters and field names",
                        ) from None
    except (KeyError, AssertionError) as exc:
        raise UserError(f"RecBole could not build the dataset: {type(exc).__name__} {exc}",
                        "check load_col, filters and field names (USER_ID_FIELD, ITEM_ID_FIELD, ...)") from None


def split_training(train_dataset, ratios, *, shuffle, group_by):
    """Split a built training dataset into parts by ratios (per ``group_by`` field when given)."""
    source = train_dataset
    if shuffle:
        order = torch.randperm(len(train_dataset))
        source = train_dataset.copy(train_dataset.inter_feat[order])
    return source.split_by_ratio(ratios, group_by=group_by)


class TensorIndexed(Interaction):
    """A dataset table indexed by index tensors as they are. RecBole's ``Interaction.__getitem__`` turns an index
    array into a Python list first, and torch indexes by a list element by element: about a third of a sparse
    NeuMF training step at 10^6 interactions went there (the loaders index the interactions, then the user and item
    tables, every batch). The same rows come out either way (tests/test_data_indexing.py)."""

    def __getitem__(self, index):
        if isinstance(index, np.ndarray) and index.ndim == 1 and index.dtype.kind in "iu":
            index = torch.from_numpy(index.astype(np.int64, copy=False))
        if isinstance(index, torch.Tensor) and index.ndim == 1 and not index.is_floating_point() and \
                index.dtype != torch.bool:
            return Interaction({name: column[index] for name, column in self.interaction.items()})
        return super().__getitem__(index)


def index_by_tensors(*datasets):
    """Make the interaction, user and item tables of ``datasets`` :class:`TensorIndexed` (in place)."""
    for dataset in datasets:
        for table in (dataset.inter_feat, dataset.user_feat, dataset.item_feat):
            if type(table) is Interaction:
                table.__class__ = TensorIndexed


def prepare_data(config, dataset, train_split=None, train_shuffle=False, cold_start=None):
    """Split ``dataset`` as RecBole's ``data_preparation`` does, with the extra training parts; with
    ``cold_start`` (settings.check_cold_start), chosen users' (items') training history is first cut to k
    interactions.

    Returns:
        DataBundle
    """
    built = dataset.build()
    train_dataset, valid_dataset, test_dataset = built
    cold = frozenset()
    if cold_start:
        train_dataset, cold = cut_training(train_dataset, cold_start, config["seed"], config["MODEL_TYPE"])
        built = [train_dataset, valid_dataset, test_dataset]
    cold_users, cold_items = (cold, frozenset()) if "users" in (cold_start or {}) else (frozenset(), cold)
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    parts = [train_dataset]
    if train_split:
        group_by = dataset.uid_field if str(config["eval_args"]["group_by"]).lower() == "user" else None
        parts = split_training(train_dataset, train_split, shuffle=train_shuffle, group_by=group_by) + [train_dataset]
        for index, part in enumerate(parts):
            logger.info("training part %d: %d interactions", index, len(part))

    index_by_tensors(dataset, *parts, valid_dataset, test_dataset)
    train_loader_class = get_dataloader(config, "train")
    if config["MODEL_TYPE"] == ModelType.KNOWLEDGE:
        kg_sampler = KGSampler(
            dataset, config["train_neg_sample_args"]["distribution"], config["train_neg_sample_args"]["alpha"]
        )
        train_parts = [train_loader_class(config, part, train_sampler, kg_sampler, shuffle=True) for part in parts]
    else:
        train_parts = [train_loader_class(config, part, train_sampler, shuffle=config["shuffle"]) for part in parts]
    valid = eval_loader_class(config, "valid")(config, valid_dataset, valid_sampler, shuffle=False)
    test = eval_loader_class(config, "test")(config, test_dataset, test_sampler, shuffle=False)
    return DataBundle(dataset, train_parts, valid, test, cold_users, cold_items)


def cut_training(train_dataset, cold_start, seed, model_type=None):
    """The cold-start setting: chosen users (or items) keep k of their training interactions (drawn at random),
    everything else (the others, validation, test) is untouched. The removed interactions are gone, as if never
    made: they are neither trained on nor masked in evaluation. Reproducible: ``cold_start.seed`` (default: the
    experiment's seed) fixes the users (items) and the interactions kept.

    Returns:
        (the cut training dataset, frozenset of the cold users' (items') internal ids)
    """
    if model_type == ModelType.SEQUENTIAL:
        raise UserError("cold_start does not apply to sequential models (their training set is built from "
                        "sequences, not single interactions)", "remove cold_start, or use a general model")
    entity = "users" if "users" in cold_start else "items"
    field = train_dataset.uid_field if entity == "users" else train_dataset.iid_field
    rng = np.random.default_rng(cold_start.get("seed", seed))
    ids = train_dataset.inter_feat[field].numpy()
    counts = np.bincount(ids, minlength=train_dataset.num(field))
    chosen = choose_cold(train_dataset, field, counts, cold_start[entity], cold_start["k"], rng)
    keep = np.ones(len(ids), dtype=bool)
    k = cold_start["k"]
    for one in chosen:
        rows = np.flatnonzero(ids == one)
        keep[rng.choice(rows, size=len(rows) - k, replace=False)] = False
    kept = train_dataset.inter_feat[torch.as_tensor(np.flatnonzero(keep))]
    logger.info("cold_start: %d %s cut to %d training interactions (%d removed)", len(chosen), entity, k,
                int((~keep).sum()))
    return train_dataset.copy(kept), frozenset(int(one) for one in chosen)


def choose_cold(train_dataset, field, counts, wanted, k, rng):
    """The users (items) to cut, sorted internal ids: a fraction of them (drawn among those with more than k
    training interactions) or the listed raw ids (each with at least k)."""
    entity = "users" if field == train_dataset.uid_field else "items"
    if isinstance(wanted, list):
        return np.array(sorted(_listed_id(train_dataset, field, counts, token, k, entity) for token in wanted),
                        dtype=np.int64)
    present = np.flatnonzero(counts)
    eligible = np.flatnonzero(counts > k)
    size = max(1, round(wanted * len(present)))
    if size > len(eligible):
        raise UserError(f"cold_start: {entity} {wanted} asks for {size} {entity}, but only {len(eligible)} have "
                        f"more than k={k} training interactions", "choose a smaller fraction or a smaller k")
    return np.sort(rng.choice(eligible, size=size, replace=False))


def _listed_id(train_dataset, field, counts, token, k, entity):
    if str(token) not in train_dataset.field2token_id[field]:
        raise UserError(f"cold_start.{entity}: {entity[:-1]} {token!r} is not in the dataset (after its filters)",
                        f"list raw {entity[:-1]} ids as in the .inter file")
    one = train_dataset.token2id(field, str(token))
    if counts[one] < k:
        raise UserError(f"cold_start.{entity}: {entity[:-1]} {token!r} has {counts[one]} training interactions, "
                        f"fewer than k={k}", f"choose a smaller k or other {entity}")
    return int(one)


def cold_items_test_loader(config, data):
    """The test loader restricted to the interactions of the cold-start items (item-side ``cold_start``): the
    other test items of a user are then not relevant, and users without a cold test item drop out."""
    test = data.test.dataset
    items = test.inter_feat[test.iid_field].numpy()
    rows = np.flatnonzero(np.isin(items, np.fromiter(data.cold_items, dtype=np.int64)))
    if not len(rows):
        return None
    subset = test.copy(test.inter_feat[torch.as_tensor(rows)])
    return eval_loader_class(config, "test")(config, subset, data.test._sampler, shuffle=False)


def write_splits(data, experiment_file):
    """Write every training part, the validation and the test split as TSV next to the experiment file.

    Ids are written as the dataset's raw tokens; other numeric interaction fields (rating, timestamp, label)
    follow as they are. Returns the written paths.
    """
    experiment_file = Path(experiment_file)
    dataset = data.dataset
    named = [(f"train{i}" if i < len(data.train_parts) - 1 else "train", loader.dataset)
             for i, loader in enumerate(data.train_parts)]
    named += [("valid", data.valid.dataset), ("test", data.test.dataset)]
    paths = []
    for name, split in named:
        inter = split.inter_feat
        columns = {}
        for field in (dataset.uid_field, dataset.iid_field):
            columns[field] = dataset.id2token(field, inter[field].numpy())
        config = dataset.config  # a Dataset has uid_field/iid_field/time_field/label_field, but no rating_field
        for field in (config["RATING_FIELD"], config["TIME_FIELD"], config["LABEL_FIELD"]):
            if field and field in inter and field not in columns and inter[field].dim() == 1:
                columns[field] = inter[field].numpy()
        path = experiment_file.with_name(f"{experiment_file.stem}.{name}.tsv")
        check_split_output(experiment_file, path)
        pd.DataFrame(columns).to_csv(path, sep="\t", index=False)
        _own_split(experiment_file, path)
        paths.append(path)
    return paths


def _owner_record(experiment_file):
    """``.<experiment file name>.splits.json`` next to it: the split files this experiment wrote (name -> [size,
    mtime_ns]), so that a rerun replaces its own files and never a user's file of the same name."""
    return experiment_file.with_name(f".{experiment_file.name}.splits.json")


def _owned(experiment_file):
    try:
        owned = json.loads(_owner_record(experiment_file).read_text())
        return owned if isinstance(owned, dict) else {}
    except (OSError, ValueError):
        return {}


def _own_split(experiment_file, path):
    owned = _owned(experiment_file)
    stat = path.stat()
    owned[path.name] = [stat.st_size, stat.st_mtime_ns]
    record = _owner_record(experiment_file)
    tmp = record.with_name(record.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(owned))
    os.replace(tmp, record)


def check_split_output(experiment_file, path):
    """Refuse a split file that leads out of the experiment's folder (a symlink) or that exists and is not this
    experiment's own, unchanged output (a user's file, or another experiment's: ``a.yaml`` and ``a.yml``).

    Raises:
        UserError: naming the file, before anything is written.
    """
    from .paths import real_inside

    experiment_file = Path(experiment_file)
    path = Path(path)
    real_inside(experiment_file.parent, path, "save_datasets output",
                "save_datasets writes real files next to the experiment: remove the link")
    if path.is_symlink() or path.exists() and not path.is_file():
        raise UserError(f"save_datasets output {path} is not a regular file", "remove it or rename the experiment")
    if not path.exists():
        return
    stat = path.stat()
    if _owned(experiment_file).get(path.name) != [stat.st_size, stat.st_mtime_ns]:
        raise UserError(f"save_datasets output {path} exists and is not this experiment's own unchanged output: it is "
                        "left as it is", "move or delete it, or rename the experiment file")


def check_split_outputs(experiment_file):
    """:func:`check_split_output` for the files ``save_datasets`` of this experiment may write, before it runs."""
    experiment_file = Path(experiment_file)
    stem = experiment_file.stem
    names = {f"{stem}.{name}.tsv" for name in ("train", "valid", "test")}
    names |= {p.name for p in experiment_file.parent.glob(f"{glob.escape(stem)}.train*.tsv")
              if p.name[len(stem) + 6:-4].isdigit()}  # train0, train1, ...: the parts before the last
    for name in sorted(names):
        check_split_output(experiment_file, experiment_file.with_name(name))
