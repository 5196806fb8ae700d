"""The distillation part of an experiment file: parsed, typed and checked before anything heavy runs.

An experiment file is one mapping. The keys below belong to this tool; every other key is a RecBole setting and
goes to RecBole's ``Config`` unchanged.
"""

import ast
import re
from dataclasses import dataclass
from typing import Any

from .embeddings import ALIGNMENTS
from .errors import UserError, suggest
from .journal import check_journal_name
from .params import ANY, BOOL, INT, MAPPING, MAPPINGS, NUMBER, TEXT, Kind, Param, Schema, maybe, one_of
from .paths import inside_name

MAX_RANDOM_WIDTH = 65536  # columns of a random debugging matrix (a larger one only exhausts memory)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _ratios(value):
    return isinstance(value, list) and len(value) >= 2 and all(NUMBER.test(r) and 0 < r < float("inf") for r in value)


ALPHA = Kind(lambda v: NUMBER.test(v) and 0.0 <= v <= 1.0, "a number in [0, 1]",
             "total loss = (1 - w) * model loss + w * distillation loss")
# The top level's own keys; every other key is a RecBole setting (open_), checked by check_recbole_values.
SETTINGS = Schema((
    Param("logger_level", Kind(lambda v: isinstance(v, str) and v.upper() in LOG_LEVELS,
                               f"one of {', '.join(LOG_LEVELS)}"), default="INFO", doc="RecBole's logging level"),
    Param("journal_name", ANY, default="journal.csv", doc="the journal, a .csv next to the file"),
    Param("distil_loss_weight", ALPHA, default=0.5, doc="w in (1 - w) * model loss + w * distillation loss"),
    Param("add_train_split", maybe(Kind(_ratios, "a list of two or more positive ratios", "e.g. add_train_split: "
                                                                                          "[0.5, 0.5]")),
          doc="split the training set into parts 0, 1, ... (the whole set comes last)"),
    Param("add_train_shuffle", BOOL, default=False, doc="shuffle before that split"),
    Param("llm_config", ANY, doc="profiles: where, how they are made and loaded (LLM_CONFIG)"),
    Param("scenario", ANY, doc="the steps (utils/tmanager.py COMMANDS)"),
    Param("cold_start", ANY, doc="cut chosen users' training history to k interactions (COLD_START)"),
), label="{}", open_=True, none_is_unset=False)
DISTIL_KEYS = tuple(SETTINGS.names)


def _schema(where, params):
    """A part of the experiment file's own settings: errors name ``where`` and the key, e.g. llm_config.use_user_emb."""
    return Schema(params, label=f"{where}.{{}}", unknown=f"unknown key '{{key}}' in {where}{{suggestion}}",
                  unknown_hint="known keys: {known}", not_mapping=f"{where} must be a mapping, got {{value!r}}",
                  missing=f"missing key '{{key}}' in {where}",
                  none_is_unset=False)


LLM_CONFIG = _schema("llm_config", (
    Param("embeddings_path", TEXT, default="datasets/llm_embeddings", doc="profile files: <this>/<dataset>/"),
    Param("default_users_emb_file", maybe(TEXT), doc="wrap_model's users_emb_file when it names none"),
    Param("default_items_emb_file", maybe(TEXT), doc="wrap_model's items_emb_file when it names none"),
    Param("preprocess_from_json", maybe(MAPPINGS), doc="JSON profiles -> matrices in RecBole's id order"),
    Param("preprocess_random", maybe(MAPPING), doc="random matrices instead of profiles (debugging)"),
    Param("build_profiles", maybe(MAPPINGS), doc="profiles written from the split (utils/profiles.py)"),
    Param("use_user_emb", BOOL, default=True, doc="load user profiles in wrap_model"),
    Param("use_item_emb", BOOL, default=False, doc="load item profiles in wrap_model"),
    Param("users_start_with_1", BOOL, default=True, doc="the user file holds real users only (row 0 is added)"),
    Param("items_start_with_1", BOOL, default=True, doc="the item file holds real items only (row 0 is added)"),
    Param("missing_profiles", one_of("error", "zero", words="'error' or 'zero'"), default="error",
          doc="a dataset id without a profile: refuse, or a row of zeros"),
))
PREPROCESS_FROM_JSON = _schema("llm_config.preprocess_from_json", (
    Param("from", TEXT, required=True, doc="the JSON profiles, in the dataset's embedding folder"),
    Param("to", TEXT, required=True, doc="the matrix written, in the same folder"),
    Param("by", Kind(lambda v: v in ALIGNMENTS, "an alignment", f"use one of: {', '.join(ALIGNMENTS)}",
                     "{label}: unknown alignment {value!r}"), default="recbole", doc="how JSON ids meet RecBole's ids"),
    Param("entity", one_of("user", "item", words="user or item"), default="user", doc="whose profiles"),
    Param("shuffle", Kind(lambda v: isinstance(v, bool) or INT.test(v) and 0 <= v < 2**32,
                          "true, false or a seed (an integer of 0 or more)", "true gives each user another user's "
                          "profile (the shuffled control), seeded by the experiment's seed"),
          default=False, doc="the shuffled control: rows given to other users (true: seeded by seed)"),
))
PREPROCESS_RANDOM = _schema("llm_config.preprocess_random", (
    Param("random", BOOL, default=False, doc="write random matrices"),
    Param("embedding_size", maybe(INT), doc=f"their columns, 1 to {MAX_RANDOM_WIDTH}"),
    Param("random_users_emb_file", maybe(TEXT), doc="the user matrix's file name"),
    Param("random_items_emb_file", maybe(TEXT), doc="the item matrix's file name"),
))


@dataclass
class LLMConfig:
    """``llm_config``: where the profile matrices are and how they are made and loaded (:data:`LLM_CONFIG`)."""

    embeddings_path: str
    default_users_emb_file: str | None
    default_items_emb_file: str | None
    preprocess_from_json: list  # of mappings (e.g. users and items)
    preprocess_random: dict | None
    build_profiles: list  # of mappings
    use_user_emb: bool
    use_item_emb: bool
    users_start_with_1: bool
    items_start_with_1: bool
    missing_profiles: str


@dataclass
class Step:
    """One scenario step, in either form: ``{'command': NAME, 'params': P}`` or ``{NAME: P}``."""

    index: int  # 1-based
    command: str
    params: Any = None


@dataclass
class Settings:
    """The experiment file's own part, checked (:data:`SETTINGS`)."""

    logger_level: str
    journal_name: str
    distil_loss_weight: float
    add_train_split: list | None
    add_train_shuffle: bool
    llm_config: LLMConfig
    scenario: list  # of Step
    cold_start: dict | None = None  # {users: fraction or [raw ids], k: N, seed: S}: see check_cold_start


def _listed(value):
    """A mapping or a list of mappings (checked by the schema), as a list ([] for None)."""
    return [] if value is None else [value] if isinstance(value, dict) else value


def parse_llm_config(raw):
    """``llm_config`` checked against :data:`LLM_CONFIG` and its parts, as an :class:`LLMConfig`."""
    cfg = LLMConfig(**LLM_CONFIG.filled(LLM_CONFIG.check({} if raw is None else raw)))
    for name in ("default_users_emb_file", "default_items_emb_file"):
        if getattr(cfg, name) is not None:
            inside_name(getattr(cfg, name), f"llm_config.{name}")
    cfg.preprocess_from_json = _listed(cfg.preprocess_from_json)
    cfg.build_profiles = _listed(cfg.build_profiles)
    for spec in cfg.preprocess_from_json:
        PREPROCESS_FROM_JSON.check(spec)
        for key in ("from", "to"):
            inside_name(spec[key], f"llm_config.preprocess_from_json.{key}")
    if cfg.build_profiles:
        from .profiles import ProfileSpec

        for spec in cfg.build_profiles:
            ProfileSpec.from_config(spec)
    if cfg.preprocess_random is not None:
        _check_random(PREPROCESS_RANDOM.check(cfg.preprocess_random))
    return cfg


def _check_random(spec):
    for key in ("random_users_emb_file", "random_items_emb_file"):
        if spec.get(key) is not None:
            inside_name(spec[key], f"llm_config.preprocess_random.{key}")
    size = spec.get("embedding_size")
    if spec.get("random", False) and (not INT.test(size) or not 1 <= size <= MAX_RANDOM_WIDTH):
        raise UserError(f"llm_config.preprocess_random.embedding_size must be an integer from 1 to "
                        f"{MAX_RANDOM_WIDTH}, got {size!r}", "text encoders write a few hundred to a few "
                        "thousand columns")


def _params(value):
    # Earlier configs write `'params': None` inside YAML flow style, where None is the string 'None'.
    return None if value == "None" else value


def parse_steps(raw):
    """Normalize the scenario list; both step forms (and a bare command name) are accepted."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UserError(f"scenario must be a list of steps, got {type(raw).__name__}")
    steps = []
    for index, item in enumerate(raw, start=1):
        if isinstance(item, str):
            steps.append(Step(index, item))
        elif isinstance(item, dict) and "command" in item:
            extra = set(item) - {"command", "params"}
            if extra:
                raise UserError(f"step {index}: unexpected key(s) {sorted(extra)} next to 'command'",
                                "a step is {'command': NAME, 'params': P} or {NAME: P}")
            if not isinstance(item["command"], str):
                raise UserError(f"step {index}: command must be a name, got {item['command']!r}")
            steps.append(Step(index, item["command"], _params(item.get("params"))))
        elif isinstance(item, dict) and len(item) == 1:
            (name, params), = item.items()
            if not isinstance(name, str):
                raise UserError(f"step {index}: command must be a name, got {name!r}")
            steps.append(Step(index, name, _params(params)))
        else:
            raise UserError(f"step {index}: cannot read {item!r} as a step",
                            "a step is {'command': NAME, 'params': P} or {NAME: P}")
    return steps


_LITERAL_TYPES = (int, float, list, tuple, dict, bool, type(None))


def literal_value(text):
    """What RecBole's ``Config`` makes of a string setting, by safe literal parsing instead of its ``eval``.

    YAML 1.1 reads ``1e-5`` (no dot) as the string '1e-5'; RecBole turns such strings into numbers, lists, dicts,
    booleans or None, and models rely on that (SimpleX indexes with ``reg_weight``). A string that is no literal
    (a name, an interval such as '[450,500)') stays a string; 'true' / 'false' in any case become booleans, as in
    RecBole.
    """
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        lowered = text.strip().lower()
        return {"true": True, "false": False}.get(lowered, text)
    return value if isinstance(value, _LITERAL_TYPES) else text


def convert_literals(recbole):
    """The RecBole part with its top-level string literals converted (see :func:`literal_value`)."""
    return {key: literal_value(value) if isinstance(value, str) else value for key, value in recbole.items()}


def parse_settings(raw):
    """Split an experiment mapping into (our :class:`Settings`, the RecBole settings dict), checking ours.

    String literals of the RecBole part are converted as RecBole would (:func:`convert_literals`)."""
    recbole = convert_literals({k: v for k, v in raw.items() if k not in DISTIL_KEYS})
    llm_config, scenario = parse_llm_config(raw.get("llm_config")), parse_steps(raw.get("scenario"))
    ours = SETTINGS.filled(SETTINGS.check({key: raw[key] for key in DISTIL_KEYS if key in raw}))
    split = ours["add_train_split"]
    settings = Settings(
        logger_level=ours["logger_level"].upper(),
        journal_name=check_journal_name(ours["journal_name"]),
        distil_loss_weight=float(ours["distil_loss_weight"]),
        add_train_split=None if split is None else [float(r) for r in split],
        add_train_shuffle=ours["add_train_shuffle"],
        llm_config=llm_config,
        scenario=scenario,
        cold_start=check_cold_start(ours["cold_start"]),
    )
    return settings, recbole


COLD_START_HINT = ("e.g. cold_start: {users: 0.2, k: 5, seed: 1} (a fraction of the users, or a list of raw user "
                   "ids; items: ... for item-side cold start)")


def _ids(value):
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value)
    return NUMBER.test(value) and 0 < value <= 1


COLD_START = _schema("cold_start", (
    Param("users", Kind(_ids, "a fraction in (0, 1] or a non-empty list of user ids", COLD_START_HINT),
          doc="which users: a fraction of them (drawn by seed) or their raw ids"),
    Param("items", Kind(_ids, "a fraction in (0, 1] or a non-empty list of item ids", COLD_START_HINT),
          doc="or which items (item-side cold start)"),
    Param("k", Kind(lambda v: INT.test(v) and v >= 0, "an integer of 0 or more", "the training interactions each "
                    "chosen user (item) keeps, e.g. 2, 5 or 10; 0: none (never seen in training)"), required=True,
          doc="interactions each chosen user (item) keeps"),
    Param("seed", Kind(lambda v: INT.test(v) and 0 <= v < 2**32, "an integer from 0 to 2**32 - 1"),
          doc="fixes the users (items) and the interactions kept (default: the experiment's seed)"),
))


def check_cold_start(value):
    """``cold_start`` (:data:`COLD_START`): which users' (or items') training history is cut to ``k`` interactions,
    validation and test untouched.

    Returns:
        None, or {users or items: a fraction in (0, 1] or a list of raw ids as strings, k: int >= 0, seed: int
        (optional)}.
    """
    if value is None:
        return None
    value = COLD_START.check(value)
    entities = [key for key in ("users", "items") if key in value]
    if len(entities) != 1:
        raise UserError(f"cold_start takes users or items (one of them), got {value!r}", COLD_START_HINT)
    entity = entities[0]
    if isinstance(value[entity], list):
        value[entity] = [str(v) for v in value[entity]]
        if len(set(value[entity])) != len(value[entity]):
            raise UserError(f"cold_start.{entity} lists a{'n' if entity == 'items' else ''} {entity[:-1]} twice: "
                            f"{value[entity]!r}", COLD_START_HINT)
    return value


def check_alpha(value):
    """``distil_loss_weight`` (in a ``set_config`` step) must be a number in [0, 1]."""
    if not ALPHA.test(value):
        raise ALPHA.error("distil_loss_weight", value)
    return float(value)



# --- the common RecBole settings: types and ranges, checked before RecBole sees them --------------------------------

EVAL_MODE = re.compile(r"^(full|labeled|(uni|pop)[1-9][0-9]*)$")


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{name} must be an integer of 1 or more, got {value!r}")


def _positive_number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise UserError(f"{name} must be a number above 0, got {value!r}")


def _non_negative_number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise UserError(f"{name} must be a number of 0 or more, got {value!r}")


def _non_negative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{name} must be an integer of 0 or more, got {value!r}")


def _integer(value, name):
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name} must be an integer, got {value!r}")


def _seed(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise UserError(f"{name} must be an integer from 0 to 2**32 - 1, got {value!r}",
                        "numpy's seeding takes no other values")


def check_metrics(value, name="metrics"):
    """RecBole metric names (one, or a non-empty list), all ranking or all value metrics."""
    from recbole.evaluator import metric_types

    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(m, str) for m in names):
        raise UserError(f"{name} must be a metric name or a non-empty list of them, got {value!r}",
                        "e.g. [Recall, NDCG, Hit] or [AUC, LogLoss]")
    for metric in names:
        if metric.lower() not in metric_types:
            raise UserError(f"{name}: RecBole has no metric {metric!r}" + suggest(metric.lower(), metric_types),
                            f"metrics: {', '.join(sorted(metric_types))}")
    if len({metric_types[m.lower()] for m in names}) > 1:
        raise UserError(f"{name}: ranking and value metrics cannot be evaluated together, got {value!r}",
                        "value metrics (AUC, LogLoss, MAE, RMSE) need labeled evaluation; rank with the others")
    return names


def check_topk(value, name="topk"):
    ks = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(ks, list) or not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise UserError(f"{name} must be a positive integer or a non-empty list of them, got {value!r}", "e.g. [10]")
    return ks


def check_eval_mode(value, name="eval_args.mode"):
    modes = value.values() if isinstance(value, dict) else [value]
    if isinstance(value, dict) and set(value) - {"valid", "test"}:
        raise UserError(f"{name} takes valid and test, got {value!r}")
    for mode in modes:
        if not isinstance(mode, str) or not EVAL_MODE.match(mode):
            raise UserError(f"{name}: unknown evaluation mode {mode!r}",
                            "modes: full, labeled, uniN, popN (e.g. uni100)")


def _check_split(split):
    if not isinstance(split, dict) or len(split) != 1:
        raise UserError(f"eval_args.split must be one of {{RS: [train, valid, test]}} or {{LS: valid_and_test}}, "
                        f"got {split!r}")
    (kind, value), = split.items()
    if kind == "RS":
        if (not isinstance(value, list) or len(value) != 3
                or any(isinstance(r, bool) or not isinstance(r, (int, float)) or r < 0 for r in value)
                or not value[0] > 0):
            raise UserError(f"eval_args.split RS must be three ratios [train, valid, test], got {value!r}",
                            "e.g. {RS: [0.8, 0.1, 0.1]}")
    elif kind == "LS":
        if value not in ("valid_and_test", "valid_only", "test_only"):
            raise UserError(f"eval_args.split LS must be valid_and_test, valid_only or test_only, got {value!r}")
    else:
        raise UserError(f"eval_args.split: unknown split {kind!r}", "RS (ratios) or LS (leave one out)")


def _check_eval_args(value, name):
    if not isinstance(value, dict):
        raise UserError(f"{name} must be a mapping, got {value!r}")
    if "split" in value:
        _check_split(value["split"])
    if "mode" in value:
        check_eval_mode(value["mode"])
    if "order" in value and value["order"] not in ("RO", "TO"):
        raise UserError(f"eval_args.order must be RO or TO, got {value['order']!r}")
    if "group_by" in value and str(value["group_by"]).lower() not in ("user", "none"):
        raise UserError(f"eval_args.group_by must be user or none, got {value['group_by']!r}")


def _check_valid_metric(value, name):
    if not isinstance(value, str) or not value:
        raise UserError(f"{name} must be a metric name such as NDCG@10, got {value!r}")


RECBOLE_VALUE_CHECKS = {
    "epochs": _positive_int,
    "train_batch_size": _positive_int,
    "eval_batch_size": _positive_int,
    "stopping_step": _non_negative_int,
    "eval_step": _integer,  # 0 or less: no validation, RecBole saves every epoch
    "learning_rate": _positive_number,
    "weight_decay": _non_negative_number,
    "seed": _seed,
    "metrics": check_metrics,
    "topk": check_topk,
    "valid_metric": _check_valid_metric,
    "eval_args": _check_eval_args,
}


def check_recbole_values(settings, where=""):
    """Types and ranges of the common RecBole settings, which RecBole itself would reject only later (after an
    epoch) or not at all (``epochs: -1`` trains nothing; ``train_batch_size: 0`` hangs).

    Raises:
        UserError: naming the setting and its value.
    """
    for key, check in RECBOLE_VALUE_CHECKS.items():
        if key in settings:
            check(settings[key], f"{where}{key}")


def check_valid_metric(config):
    """``valid_metric`` must be one of the metrics RecBole evaluates (a name in ``metrics`` at a k in ``topk``)."""
    metrics = [m.lower() for m in (config["metrics"] if isinstance(config["metrics"], list) else [config["metrics"]])]
    topk = config["topk"] if isinstance(config["topk"], list) else [config["topk"]]
    name, at, k = str(config["valid_metric"]).lower().partition("@")
    evaluated = [f"{m}@{t}" for m in metrics for t in topk] if at or not metrics else metrics
    if str(config["valid_metric"]).lower() not in evaluated and not (not at and name in metrics):
        raise UserError(f"valid_metric {config['valid_metric']!r} is not among the evaluated metrics "
                        f"({', '.join(evaluated[:12])})",
                        "valid_metric must name one of metrics at one of topk, e.g. NDCG@10")
