"""The distillation part of an experiment file: parsed, typed and checked before anything heavy runs.

An experiment file is one mapping. The keys below belong to this tool; every other key is a RecBole setting and
goes to RecBole's ``Config`` unchanged.
"""

import ast
import difflib
from dataclasses import dataclass
from typing import Any

from .embeddings import ALIGNMENTS
from .errors import UserError
from .journal import check_journal_name
from .params import (
    ALPHA,
    ANY,
    BOOL,
    EVAL_ARGS,
    FILE_IN_EMBEDDINGS,
    FILE_INSIDE,
    INT,
    JOURNAL_NAME,
    LAYER_SIZES,
    LEARNING_RATE,
    LOG_WANDB,
    MAPPING,
    MAPPINGS,
    METRICS,
    NON_NEGATIVE_INT,
    NUMBER,
    POSITIVE_INT,
    PROBABILITY,
    SEED,
    SIZE,
    TEXT,
    TOPK,
    VALID_METRIC,
    WEIGHT_DECAY,
    Kind,
    Param,
    Rule,
    Schema,
    int_from,
    list_of,
    maybe,
    one_of,
    refuse_secret_settings,
)

MAX_RANDOM_WIDTH = 65536  # columns of a random debugging matrix (a larger one only exhausts memory)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
RATIOS = list_of(Kind(lambda v: NUMBER.test(v) and 0 < v < float("inf"), "a positive ratio"), min_items=2,
                 words="a list of two or more positive ratios", hint="e.g. add_train_split: [0.5, 0.5]")

# The top level's own keys; every other key is a RecBole setting (open_), checked by RECBOLE.
SETTINGS = Schema((
    Param("logger_level", Kind(lambda v: isinstance(v, str) and v.upper() in LOG_LEVELS,
                               f"one of {', '.join(LOG_LEVELS)}"), default="INFO", doc="RecBole's logging level"),
    Param("journal_name", JOURNAL_NAME, default="journal.csv", doc="the journal, a .csv next to the file"),
    Param("distil_loss_weight", ALPHA, default=0.5,
          doc="w in (1 - w) * model loss + w * distillation loss: what each wrap_model starts from"),
    Param("add_train_split", maybe(RATIOS), doc="split the training set into parts 0, 1, ... (the whole set last)"),
    Param("add_train_shuffle", BOOL, default=False, doc="shuffle before that split"),
    Param("llm_config", ANY, doc="profiles: where, how they are made and loaded (see llm_config)"),
    Param("scenario", ANY, doc="the steps (see the commands)"),
    Param("cold_start", ANY, doc="cut chosen users' training history to k interactions (see cold_start)"),
), open_=True, none_is_unset=False, summary="the experiment file's own keys (the rest is RecBole's)")
DISTIL_KEYS = tuple(SETTINGS.names)


def _where(where, params, **more):
    """A part of the experiment file's own settings: errors name ``where`` and the key, e.g. llm_config.use_user_emb."""
    return Schema(params, where=where, none_is_unset=False, **more)


def _mappings_of(schema):
    """A mapping or a list of mappings, each checked by ``schema``; converted to a list."""
    return Kind(MAPPINGS.test, MAPPINGS.words, inner=lambda v, label, c: [
        schema.check(item, label, c) for item in ([v] if isinstance(v, dict) else v)])


PREPROCESS_FROM_JSON = _where("llm_config.preprocess_from_json", (
    Param("from", FILE_INSIDE, required=True, doc="the JSON profiles, in the dataset's embedding folder"),
    Param("to", FILE_INSIDE, required=True, doc="the matrix written, in the same folder"),
    Param("by", Kind(lambda v: v in ALIGNMENTS, "an alignment", f"use one of: {', '.join(ALIGNMENTS)}"),
          default="recbole", doc="how JSON ids meet RecBole's ids"),
    Param("entity", one_of("user", "item", words="user or item"), default="user", doc="whose profiles"),
    Param("shuffle", Kind(lambda v: isinstance(v, bool) or SEED.test(v),
                          "true, false or a seed (an integer of 0 or more)", "true gives each user another user's "
                          "profile (the shuffled control), seeded by the experiment's seed"),
          default=False, doc="the shuffled control: rows given to other users (true: seeded by seed)"),
), summary="JSON profiles -> a matrix in RecBole's id order")
PREPROCESS_RANDOM = _where("llm_config.preprocess_random", (
    Param("random", BOOL, default=False, doc="write random matrices"),
    Param("embedding_size", maybe(int_from(1, MAX_RANDOM_WIDTH, hint="text encoders write a few hundred to a few "
                                                                     "thousand columns")),
          doc=f"their columns, 1 to {MAX_RANDOM_WIDTH}"),
    Param("random_users_emb_file", maybe(FILE_INSIDE), doc="the user matrix's file name"),
    Param("random_items_emb_file", maybe(FILE_INSIDE), doc="the item matrix's file name"),
), rules=(Rule(lambda v, c: not v.get("random") or v.get("embedding_size") is not None,
               "llm_config.preprocess_random.embedding_size must be an integer from 1 to 65536 when random is true, "
               "got None", "text encoders write a few hundred to a few thousand columns"),),
    summary="random matrices instead of profiles (debugging)")
LLM_CONFIG = _where("llm_config", (
    Param("embeddings_path", TEXT, default="datasets/llm_embeddings", doc="profile files: <this>/<dataset>/"),
    Param("default_users_emb_file", maybe(FILE_INSIDE), doc="wrap_model's users_emb_file when it names none"),
    Param("default_items_emb_file", maybe(FILE_INSIDE), doc="wrap_model's items_emb_file when it names none"),
    Param("preprocess_from_json", maybe(_mappings_of(PREPROCESS_FROM_JSON)),
          doc="JSON profiles -> matrices in RecBole's id order (see llm_config.preprocess_from_json)"),
    Param("preprocess_random", maybe(MAPPING), doc="random matrices (see llm_config.preprocess_random)"),
    Param("build_profiles", maybe(MAPPINGS), doc="profiles written from the split (see build_profiles)"),
    Param("use_user_emb", BOOL, default=True, doc="load user profiles in wrap_model"),
    Param("use_item_emb", BOOL, default=False, doc="load item profiles in wrap_model"),
    Param("users_start_with_1", BOOL, default=True, doc="the user file holds real users only (row 0 is added)"),
    Param("items_start_with_1", BOOL, default=True, doc="the item file holds real items only (row 0 is added)"),
    Param("missing_profiles", one_of("error", "zero", words="'error' or 'zero'"), default="error",
          doc="a dataset id without a profile: refuse, or a row of zeros"),
), summary="where the profile matrices are and how they are made and loaded")


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


@dataclass(frozen=True)
class Settings:
    """The experiment file's own part, checked (:data:`SETTINGS`); read-only once loaded (a ``set_config`` of the
    distillation weight changes the Distiller's, not the file's)."""

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
    cfg = LLM_CONFIG.filled(LLM_CONFIG.check({} if raw is None else raw))
    cfg["preprocess_from_json"] = cfg["preprocess_from_json"] or []
    cfg["build_profiles"] = _listed(cfg["build_profiles"])
    if cfg["build_profiles"]:
        from .profiles import ProfileSpec

        for spec in cfg["build_profiles"]:
            ProfileSpec.from_config(spec)
    if cfg["preprocess_random"] is not None:
        PREPROCESS_RANDOM.check(cfg["preprocess_random"])
    return LLMConfig(**cfg)


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
    refuse_secret_settings(raw)
    ours = SETTINGS.filled(SETTINGS.check(raw))
    recbole = convert_literals({k: v for k, v in raw.items() if k not in DISTIL_KEYS})
    llm_config, scenario = parse_llm_config(raw.get("llm_config")), parse_steps(raw.get("scenario"))
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


def _listed_once(entity):
    return Rule(lambda v, c: not isinstance(v.get(entity), list) or len({str(i) for i in v[entity]}) == len(v[entity]),
                f"cold_start.{entity} lists a{'n' if entity == 'items' else ''} {entity[:-1]} twice: {{value}}",
                COLD_START_HINT)


COLD_START = _where("cold_start", (
    Param("users", Kind(_ids, "a fraction in (0, 1] or a non-empty list of user ids", COLD_START_HINT),
          doc="which users: a fraction of them (drawn by seed) or their raw ids"),
    Param("items", Kind(_ids, "a fraction in (0, 1] or a non-empty list of item ids", COLD_START_HINT),
          doc="or which items (item-side cold start)"),
    Param("k", int_from(0, hint="the training interactions each chosen user (item) keeps, e.g. 2, 5 or 10; 0: none"),
          required=True, doc="interactions each chosen user (item) keeps"),
    Param("seed", SEED, doc="fixes the users (items) and the interactions kept (default: the experiment's seed)"),
), rules=(Rule(lambda v, c: ("users" in v) != ("items" in v), "cold_start takes users or items (one of them), got "
               "{value!r}", COLD_START_HINT), _listed_once("users"), _listed_once("items")),
    summary="cut chosen users' (or items') training history to k interactions; validation and test untouched")


def check_cold_start(value):
    """``cold_start`` (:data:`COLD_START`) with listed ids as strings, or None.

    Returns:
        None, or {users or items: a fraction in (0, 1] or a list of raw ids as strings, k: int >= 0, seed: int
        (optional)}.
    """
    if value is None:
        return None
    value = COLD_START.check(value)
    for entity in ("users", "items"):
        if isinstance(value.get(entity), list):
            value[entity] = [str(v) for v in value[entity]]
    return value


# --- the RecBole settings the tool checks before RecBole sees them ---------------------------------------------------
# RecBole would reject these only later (after an epoch) or not at all (epochs: -1 trains nothing, train_batch_size: 0
# hangs, learning_rate: 1e308 trains NaN, dropout_prob: 2.0 fails in the first batch, kar_fields: 0 became 2).

def _not_a_typo(key, context):
    """A RecBole-part key passes unless it is one typo away from a setting RecBole or the model knows (``epoch: 5``
    would otherwise silently train RecBole's default 300 epochs); ``context['settings']``: the known names."""
    known = (context or {}).get("settings")
    return known is None or key in known or not difflib.get_close_matches(key, list(known), n=1, cutoff=0.8)


LEARNERS = ("adam", "adamw", "sgd", "adagrad", "rmsprop", "sparse_adam")  # recbole AbstractTrainer._build_optimizer
LEARNER = Kind(lambda v: isinstance(v, str) and v.lower() in LEARNERS, f"one of {', '.join(LEARNERS)}",
               "RecBole trains with Adam, without a word, under any other name")

RECBOLE = Schema((
    Param("epochs", POSITIVE_INT, doc="training epochs"),
    Param("train_batch_size", POSITIVE_INT, doc="interactions per training batch"),
    Param("eval_batch_size", POSITIVE_INT, doc="interactions per evaluation batch"),
    Param("stopping_step", NON_NEGATIVE_INT, doc="epochs without improvement before early stopping"),
    Param("eval_step", INT, doc="validate every N epochs; 0 or less: no validation (every epoch is saved)"),
    Param("learning_rate", LEARNING_RATE, doc="the optimizer's learning rate"),
    Param("learner", LEARNER, doc="the optimizer (RecBole silently falls back to Adam on any other name)"),
    Param("weight_decay", WEIGHT_DECAY, doc="the optimizer's weight decay"),
    Param("seed", SEED, doc="the seed of the split, the model's initialization and the sampling"),
    Param("metrics", METRICS, doc="what is evaluated"),
    Param("topk", TOPK, doc="cut-offs of ranking metrics"),
    Param("valid_metric", VALID_METRIC, doc="the metric early stopping and the best model follow"),
    Param("sparse_embeddings", BOOL, doc="this tool's: sparse gradients and SparseAdam for nn.Embedding tables"),
    Param("eval_args", EVAL_ARGS, doc="split, order, grouping and evaluation mode"),
    *(Param(name, SIZE, doc="a model width or count") for name in (
        "embedding_size", "mf_embedding_size", "mlp_embedding_size", "hidden_size", "latent_dimension", "inner_size")),
    *(Param(name, PROBABILITY, doc="a dropout probability") for name in (
        "dropout_prob", "hidden_dropout_prob", "attn_dropout_prob")),
    *(Param(name, LAYER_SIZES, doc="the widths of a model's layers") for name in (
        "mlp_hidden_size", "hidden_size_list", "tower_hidden_size")),
    Param("kar_fields", int_from(1, 64), doc="KAR: the extra feature fields the adapter adds (default 2)"),
    Param("kar_experts", int_from(1, 64), doc="KAR: the adapter's experts (default 4)"),
    Param("kar_hidden_size", SIZE, doc="KAR: the experts' hidden width (default 128)"),
    Param("kar_user_emb_file", maybe(FILE_IN_EMBEDDINGS), doc="KAR: the user profile matrix or JSON"),
    Param("kar_item_emb_file", maybe(FILE_IN_EMBEDDINGS), doc="KAR: the item profile matrix or JSON"),
    Param("kar_user_width", maybe(SIZE), doc="KAR: a check: the user profiles' width (refused if they differ)"),
    Param("kar_item_width", maybe(SIZE), doc="KAR: a check: the item profiles' width (refused if they differ)"),
    Param("kar_output_dim", maybe(SIZE), doc="KAR: a check: each extra field's width, the model's embedding_size"),
    Param("log_wandb", LOG_WANDB, doc="RecBole's Weights & Biases logging (needs wandb installed)"),
), rules=(Rule(lambda v, c: "kar_user_emb_file" not in (c or {}).get("settings", ()) or "model" not in v
               or bool(v.get("kar_user_emb_file") or v.get("kar_item_emb_file")),
               "{value[model]} needs kar_user_emb_file and/or kar_item_emb_file",
               "point them at profile matrices, e.g. those preprocess_from_json writes"),
         ), open_=_not_a_typo,
    unknown_hint="RecBole would silently ignore it; a setting of a custom model belongs in its extra_config_keys",
    summary="RecBole settings the tool checks (every other RecBole setting goes to RecBole unchanged, unless its name "
    "is one typo away from a known one)")
