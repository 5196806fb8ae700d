"""The one language for the values an experiment file gives: every check of a param or setting lives here.

A :class:`Kind` says what one value must be (a test, the words an error uses, a hint, optionally a conversion); a
:class:`Param` is one key of a mapping (name, kind, required or not, default, a line of doc); a :class:`Schema` is a
mapping's keys, checked in one pass. A schema may be a param's kind (a mapping inside a mapping), may take more keys
that depend on the value (``wrap_model``: the loss's own options) and may state rules across keys.

Every error reads the same way, one line:

- ``<label> must be <words>, got <value>`` (with ``: <detail>`` when the kind knows more, e.g. which metric);
- ``unknown key '<key>' in <where>; did you mean '<near>'?`` (hint: the keys it takes);
- ``missing key '<key>' in <where>``;
- ``<where> must be a mapping, got <value>``.

The labels name the place: ``llm_config.use_user_emb``, ``cold_start.k``, ``HiddenDistil.rows`` or, in a scenario
step (whose error line already names the step and command), the param itself: ``dimension``, ``params``.

The scenario commands (``utils/tmanager.py``), the experiment file's own settings and the RecBole settings the tool
checks (``utils/settings.py``), the losses' options (``models/losses.py``), ``test_eval`` (``utils/evaluation.py``)
and ``build_profiles`` (``utils/profiles.py``) are declared with these; :func:`reference` renders any declaration as
Markdown (``docs/REFERENCE.md`` is generated from them by ``tools/reference.py``).
"""

import importlib.util
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import UserError, suggest


@dataclass(frozen=True)
class Kind:
    """What a value must be.

    Attributes:
        test: ``test(value) -> bool``; with ``contextual``, ``test(value, context) -> bool`` (context: a mapping of
            what the check knows besides the value, e.g. the dataset's item count, or None).
        words: what the value must be, as the error says it ("an integer of 1 or more").
        hint: how to fix it.
        convert: the accepted value normalized (e.g. a single layer as a one-item list).
        detail: ``detail(value, context) -> str | None``: a more specific reason, appended to the line.
        inner: ``inner(value, label, context) -> value``: a further check of an accepted value by other
            declarations (a schema), raising their errors.
    """

    test: Callable
    words: str
    hint: str | None = None
    convert: Callable | None = None
    detail: Callable | None = None
    inner: Callable | None = None
    contextual: bool = False
    secret: bool = False  # the value may be a secret (an API key): errors never show it

    def accepts(self, value, context=None):
        """Whether ``value`` passes the test (never raises for a wrong type)."""
        try:
            return bool(self.test(value, context) if self.contextual else self.test(value))
        except (TypeError, ValueError, OverflowError, AttributeError):
            return False

    def error(self, label, value, context=None):
        """The ``UserError`` for ``value`` failing this kind, in the one wording."""
        if self.secret:
            return UserError(f"{label} must be {self.words}, got a value that is not shown here (it may be a secret)",
                             self.hint)
        more = self.detail(value, context) if self.detail else None
        return UserError(f"{label} must be {self.words}, got {value!r}" + (f": {more}" if more else ""), self.hint)

    def check(self, value, label=None, context=None):
        """``value`` checked (and converted); raises the kind's ``UserError``. ``label`` names the value in the error
        (default 'params': a scenario step's whole params)."""
        label = label or "params"
        if not self.accepts(value, context):
            raise self.error(label, value, context)
        if self.inner is not None:
            value = self.inner(value, label, context)
        return self.convert(value) if self.convert else value


@dataclass(frozen=True)
class Param:
    """One key of a mapping: its kind (a :class:`Kind` or a :class:`Schema`), whether it must be given, its default
    when not, what it is for."""

    name: str
    kind: Any
    required: bool = False
    default: Any = None
    doc: str = ""


@dataclass(frozen=True)
class Rule:
    """A condition across the keys of a mapping: ``test(mapping, context) -> bool``, the error line when false."""

    test: Callable
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class Schema:
    """The keys a mapping takes.

    Attributes:
        params: the :class:`Param` s.
        where: how errors name the mapping ("llm_config"; "" in a scenario step, whose line names the step).
        open_: unknown keys pass (the top level: every key that is not the tool's is a RecBole setting); a callable
            ``open_(key, context) -> bool`` decides per key (``set_config``: the experiment's settings).
        extra: ``extra(mapping, context) -> (name, params)``: more keys the mapping takes, depending on its value
            (``wrap_model``: the options of the loss it names), announced in errors as ``name``'s.
        rules: :class:`Rule` s across keys, checked after every key.
        non_empty: an empty mapping (or None) is refused.
        none_is_unset: a key given as None counts as left out (its kind is not checked).
        summary: one line for the reference.
        unknown_hint: the hint of an unknown key, instead of the keys the mapping takes.
    """

    params: tuple
    where: str = ""
    open_: Any = False
    extra: Callable | None = None
    rules: tuple = ()
    non_empty: bool = False
    none_is_unset: bool = True
    summary: str = ""
    unknown_hint: str | None = None  # instead of the keys it takes (an open mapping's unknown key is a typo)

    @property
    def names(self):
        return [param.name for param in self.params]

    @property
    def required(self):
        return [param.name for param in self.params if param.required]

    def _place(self, label):
        where = self.where if label is None else label
        return where, (f" in {where}" if where else "")

    def check(self, value, label=None, context=None):
        """``value`` checked; returns a copy of the mapping (no defaults filled in: what was written is journaled).

        Raises:
            UserError: the first problem, in the one wording.
        """
        where, in_where = self._place(label)
        known = self.names
        if value is None and not self.required and not self.non_empty:
            return {}
        if not isinstance(value, dict) or (self.non_empty and not value):
            words = "a non-empty mapping" if self.non_empty else "a mapping"
            raise UserError(f"{where or 'params'} must be {words}, got {value!r}",
                            f"keys: {', '.join(known)}" if known else None)
        params = {param.name: param for param in self.params}
        if self.extra is not None:
            owner, more = self.extra(value, context)
            params.update({param.name: param for param in more})
        for key in value:
            if not isinstance(key, str):
                raise UserError(f"{where or 'params'} has a key that is not a name: {key!r}",
                                "keys are names (a YAML key such as 1: or ~: is a number or null)")
            if key not in params and not self._open(key, context):
                candidates = list(params) + list(self._open_candidates(context))
                also = f" ({owner} takes no others)" if self.extra is not None else ""
                raise UserError(f"unknown key '{key}'{in_where}" + suggest(key, candidates),
                                self.unknown_hint or f"keys: {', '.join(params) or 'none'}{also}")
        for name, param in params.items():
            if param.required and name not in value:
                raise UserError(f"missing key '{name}'{in_where}",
                                f"required: {', '.join(p.name for p in params.values() if p.required)}")
        checked = dict(value)
        for key, given in value.items():
            param = params.get(key)
            if param is None or (given is None and self.none_is_unset and not param.required):
                continue
            checked[key] = param.kind.check(given, f"{where}.{key}" if where else key, context)
        for rule in self.rules:
            if not rule.test(checked, context):
                raise UserError(rule.message.format(where=where or "params", value=value), rule.hint)
        return checked

    def _open(self, key, context):
        return self.open_(key, context) if callable(self.open_) else bool(self.open_)

    def _open_candidates(self, context):
        return (context or {}).get("settings", ()) if callable(self.open_) else ()

    def filled(self, value):
        """``value`` with the default of every key it leaves out."""
        return {**{param.name: param.default for param in self.params}, **value}


# --- kinds: the shapes values take --------------------------------------------------------------------------------


def _int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value):
    return _number(value) and math.isfinite(value)


def int_from(low, high=None, words=None, hint=None):
    """An integer ``low <= v`` (``<= high`` when given)."""
    text = words or (f"an integer of {low} or more" if high is None else f"an integer from {low} to {high}")
    return Kind(lambda v: _int(v) and v >= low and (high is None or v <= high), text, hint)


def number_in(low, high, *, low_open=False, words=None, hint=None):
    """A finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    lower = "above" if low_open else "from"
    text = words or f"a number {lower} {low:g} to {high:g}"
    return Kind(lambda v: _finite(v) and (v > low if low_open else v >= low) and v <= high, text, hint)


def maybe(kind):
    """``kind``, or None (left unset)."""
    return Kind(lambda v, c=None: v is None or kind.accepts(v, c), kind.words, kind.hint,
                convert=kind.convert and (lambda v: v if v is None else kind.convert(v)), detail=kind.detail,
                inner=kind.inner and (lambda v, label, c: v if v is None else kind.inner(v, label, c)),
                contextual=True)


def one_of(*choices, words=None, hint=None):
    """A value among ``choices``; ``words`` overrides the default "one of a, b, c"."""
    return Kind(lambda v: not isinstance(v, (dict, list)) and v in choices,
                words or "one of " + ", ".join(map(str, choices)), hint)


def either(*kinds):
    """A value of any of ``kinds`` ("a string or a list")."""
    return Kind(lambda v, c=None: any(kind.accepts(v, c) for kind in kinds),
                " or ".join(kind.words for kind in kinds), contextual=True)


def list_of(kind, *, words, hint=None, min_items=1, single=False):
    """A list of ``kind`` values with at least ``min_items``; with ``single``, one value stands for a list of it."""

    def test(value, context=None):
        items = [value] if single and not isinstance(value, list) else value
        return isinstance(items, list) and len(items) >= min_items and all(kind.accepts(v, context) for v in items)

    convert = (lambda v: v if isinstance(v, list) else [v]) if single else None
    return Kind(test, words, hint, convert, contextual=True)


BOOL = Kind(lambda v: isinstance(v, bool), "true or false", "write true or false (not 'yes' or 'Train')")
INT = Kind(_int, "an integer")
NUMBER = Kind(_number, "a number")
STR = Kind(lambda v: isinstance(v, str), "a string")
TEXT = Kind(lambda v: isinstance(v, str) and bool(v), "a non-empty string")
MAPPING = Kind(lambda v: isinstance(v, dict), "a mapping")
LIST = Kind(lambda v: isinstance(v, list), "a list")
ANY = Kind(lambda v: True, "anything")
NOTHING = Kind(lambda v: v in (None, {}, []), "empty (this command takes no params)",
               "leave params out or set them to None", convert=lambda v: None)
TEXT_ANY = Kind(lambda v: True, "any text", convert=lambda v: "" if v is None else str(v))
MAPPINGS = Kind(lambda v: isinstance(v, dict) or isinstance(v, list) and bool(v) and all(isinstance(i, dict)
                                                                                        for i in v),
                "a mapping or a list of mappings")

POSITIVE_INT = int_from(1)
NON_NEGATIVE_INT = int_from(0)
SEED = int_from(0, 2**32 - 1, hint="numpy's seeding takes no other values")
JOURNAL_PART = int_from(0, words="a training-part index (0, 1, ...)", hint="it selects the journal's train_k columns")
PART_INDEX = Kind(lambda v, c=None: _int(v) and 0 <= v < (c or {}).get("parts", 2**31),
                  "a training-part index (0, 1, ...) below the number of parts",
                  "add_train_split: [r0, r1] makes parts 0 and 1, and 2 is the whole training set; without it there "
                  "is one part, 0", detail=lambda v, c: f"there are {c['parts']} (0-{c['parts'] - 1})"
                  if c and "parts" in c and _int(v) else None, contextual=True)
PROBABILITY = number_in(0, 1, words="a number in [0, 1]")
ALPHA = number_in(0, 1, words="a number in [0, 1]", hint="total loss = (1 - w) * model loss + w * distillation loss")
# Settings whose sane range has no natural bound: a bound far above any real use refuses 1e308 (which trains NaN).
LEARNING_RATE = number_in(0, 10, low_open=True, words="a number above 0 and at most 10",
                          hint="learning rates are usually 1e-4 to 1e-1")
WEIGHT_DECAY = number_in(0, 10, words="a number from 0 to 10", hint="weight decay is usually 0 to 1e-2")
SIZE = int_from(1, 2**20, words="an integer from 1 to 1048576", hint="a layer width or count, e.g. 64")
LAYER_SIZES = list_of(SIZE, words="a non-empty list of integers from 1 to 1048576", hint="e.g. [256, 128, 64]")
# A layer as set_outputs names it: a number from 'info' (1, 2, ...) or a dotted module path.
LAYER = Kind(lambda v: isinstance(v, str) and bool(v) or _int(v) and v >= 1, "a layer number or a dotted path",
             "give a number from 'info' (1, 2, ...) or a dotted module path")
LAYERS = list_of(LAYER, words="a layer or a non-empty list of layers (numbers from 'info' or dotted paths)",
                 hint="e.g. [9]; run 'info' with params 1 to see the numbered layers", single=True)
INFO_LEVEL = Kind(lambda v: v is None or v in (0, 1, 2) and not isinstance(v, bool),
                  "0 (parameter counts), 1 (also the layer table) or 2 (with dotted paths)",
                  convert=lambda v: v or 0)


def _trainable(value):
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[1], bool):
        return False
    refs = value[0] if isinstance(value[0], list) else [value[0]]
    return refs == ["*"] or "*" not in refs and LAYERS.accepts(refs)


def _trainable_detail(value, context):
    if isinstance(value, list) and len(value) == 2 and not isinstance(value[1], bool):
        return f"the second item must be true or false, got {value[1]!r}"
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], list) and "*" in value[0]:
        return "'*' (all layers) cannot be mixed with layer numbers"
    return None


TRAINABLE = Kind(_trainable, "[[layers] or ['*'], true or false]", "e.g. [['*'], false] or [[4, 5], true]",
                 convert=lambda v: [v[0] if isinstance(v[0], list) else [v[0]], v[1]], detail=_trainable_detail)


def _inside_name(value):
    if not isinstance(value, str) or not value or "\0" in value:
        return False
    path = PurePosixPath(value)
    return not path.is_absolute() and ".." not in path.parts


FILE_INSIDE = Kind(_inside_name, "a file name inside the folder it names (no absolute path, no '..')",
                   "name a file inside <embeddings_path>/<dataset>/ (a sub-folder is fine); to use files elsewhere, "
                   "point llm_config.embeddings_path at their folder")


def _resolved_inside(value, context):
    """A path (as written: relative to the working folder, or absolute) whose real location, symlinks resolved,
    is inside ``context['embeddings_dir']`` (the check is skipped where no folder is known)."""
    if not isinstance(value, str) or not value or "\0" in value:
        return False
    folder = (context or {}).get("embeddings_dir")
    if folder is None:
        return True
    root = Path(folder).resolve()
    for candidate in (Path(value), root / value):
        try:
            candidate.resolve().relative_to(root)
            return True
        except ValueError:
            continue
    return False


FILE_IN_EMBEDDINGS = Kind(_resolved_inside, "a file inside <embeddings_path>/<dataset>/ (symlinks resolved)",
                          "name a file of the dataset's embedding folder (a path from the working folder or a name "
                          "in it); to use files elsewhere, point llm_config.embeddings_path at their folder",
                          contextual=True)
CHECKPOINT_FILE = Kind(lambda v: isinstance(v, str) and bool(v) and "\0" not in v,
                       "a checkpoint path written by this tool, or 'best' (the last train's best model)")
CHECKPOINT = Schema((
    Param("file", CHECKPOINT_FILE, required=True, doc="a checkpoint written by this tool, or 'best'"),
    Param("resume", BOOL, default=True, doc="also the optimizer, epoch and best score; false: the weights only"),
))
CHECKPOINT_REF = Kind(lambda v: CHECKPOINT_FILE.test(v) or isinstance(v, dict),
                      "a checkpoint path (or {file: path, resume: false})", "'best' is the last train's best model",
                      inner=lambda v, label, c: CHECKPOINT.filled(CHECKPOINT.check(v, "", c)) if isinstance(v, dict)
                      else {"file": v, "resume": True})


ENV_NAME = Kind(lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", v) is not None,
               "the name of an environment variable (letters, digits and _, at most 64), never the key itself",
               "export OPENAI_API_KEY=<key> in the shell and write api_key_env: OPENAI_API_KEY; the key itself "
               "never goes in a file", secret=True)
SECRET_NAME = re.compile(r"api[_-]?key|token|secret|password|passwd", re.IGNORECASE)


def refuse_secret_settings(mapping, where="the experiment file"):
    """Refuse a setting whose name says it holds a secret (``openai_api_key``, ``hf_token``, ...), without showing
    its value: a RecBole setting goes into RecBole's log, the TensorBoard event file and the journal.

    Raises:
        UserError: naming the key, never the value.
    """
    for key in mapping if isinstance(mapping, dict) else ():
        if isinstance(key, str) and SECRET_NAME.search(key):
            raise UserError(f"setting '{key}' in {where} looks like a secret; it is refused and its value is not "
                            "shown (settings are written to logs, event files and the journal)",
                            "remove it: a key is read from the environment (build_profiles.llm.api_key_env)")


HTTP_URL = Kind(lambda v: isinstance(v, str) and v.startswith(("http://", "https://")),
                "a URL starting with http:// or https://", "e.g. http://127.0.0.1:8000/v1")
JOURNAL_NAME = Kind(lambda v: isinstance(v, str) and PurePosixPath(v).suffix.lower() == ".csv" and not any(
    c in v for c in "/\\\0"), "a .csv file name (written next to the experiment file)",
    "e.g. journal_name: neumf_journal.csv")


def _wandb_installed(value):
    return value is False or value is None or value is True and importlib.util.find_spec("wandb") is not None


LOG_WANDB = Kind(lambda v: isinstance(v, bool) and _wandb_installed(v), "false (wandb is not installed)",
                 "install wandb, or leave log_wandb out")


# --- RecBole's evaluation settings ----------------------------------------------------------------------------------

EVAL_MODE_PATTERN = re.compile(r"^(full|labeled|(uni|pop)([1-9][0-9]*))$")


def _eval_mode(value, context=None):
    modes = list(value.values()) if isinstance(value, dict) else [value]
    if isinstance(value, dict) and (not value or set(value) - {"valid", "test"}):
        return False
    items = (context or {}).get("items")
    for mode in modes:
        match = EVAL_MODE_PATTERN.match(mode) if isinstance(mode, str) else None
        if match is None or items is not None and match.group(3) and int(match.group(3)) >= items:
            return False
    return True


def _eval_mode_detail(value, context):
    items = (context or {}).get("items")
    if items is not None and _eval_mode(value):
        return f"the dataset has {items} items, so at most {items - 1} negatives can be sampled per positive"
    return None


EVAL_MODE = Kind(_eval_mode, "full, labeled, uniN or popN (N sampled negatives, fewer than the items), or "
                 "{valid: mode, test: mode}", "modes: full, labeled, uniN, popN (e.g. uni100)",
                 detail=_eval_mode_detail, contextual=True)


def _metric_types():
    from recbole.evaluator import metric_types

    return metric_types


def _metrics(value):
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(m, str) for m in names):
        return False
    types = _metric_types()
    return all(m.lower() in types for m in names) and len({types[m.lower()] for m in names}) == 1


def _metrics_detail(value, context):
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list):
        return None
    types = _metric_types()
    for metric in names:
        if isinstance(metric, str) and metric.lower() not in types:
            return f"RecBole has no metric {metric!r}" + suggest(metric.lower(), types)
    if all(isinstance(m, str) for m in names) and len({types[m.lower()] for m in names}) > 1:
        return "ranking and value metrics cannot be evaluated together (value metrics need labeled evaluation)"
    return None


METRICS = Kind(_metrics, "RecBole metric names, all ranking or all value metrics", "e.g. [Recall, NDCG, Hit] or "
               "[AUC, LogLoss]", convert=lambda v: [v] if isinstance(v, str) else v, detail=_metrics_detail)
TOPK = list_of(POSITIVE_INT, words="a positive integer or a non-empty list of them", hint="e.g. [10]", single=True)
VALID_METRIC = Kind(lambda v: isinstance(v, str) and bool(v), "a metric name such as NDCG@10")


def _ratios(value):
    return (isinstance(value, list) and len(value) == 3 and all(_finite(r) and r >= 0 for r in value)
            and value[0] > 0)


SPLIT = Kind(lambda v: isinstance(v, dict) and len(v) == 1 and (
    "RS" in v and _ratios(v["RS"]) or v.get("LS") in ("valid_and_test", "valid_only", "test_only")),
    "{RS: [train, valid, test]} (three ratios) or {LS: valid_and_test | valid_only | test_only}",
    "e.g. {RS: [0.8, 0.1, 0.1]}")
EVAL_ARGS = Schema((
    Param("split", SPLIT, doc="how interactions are split"),
    Param("mode", EVAL_MODE, doc="full ranking, labeled, or N sampled negatives (uniN, popN)"),
    Param("order", one_of("RO", "TO", words="RO or TO"), doc="random or time order"),
    Param("group_by", Kind(lambda v: str(v).lower() in ("user", "none"), "user or none"), doc="split per user"),
), where="eval_args", open_=True)


def check_valid_metric(config):
    """``valid_metric`` must be one of the metrics RecBole evaluates (a name in ``metrics`` at a k in ``topk``): a
    rule across three settings of the final config."""
    metrics = [m.lower() for m in (config["metrics"] if isinstance(config["metrics"], list) else [config["metrics"]])]
    topk = config["topk"] if isinstance(config["topk"], list) else [config["topk"]]
    name, at, _ = str(config["valid_metric"]).lower().partition("@")
    evaluated = [f"{m}@{t}" for m in metrics for t in topk] if at or not metrics else metrics
    if str(config["valid_metric"]).lower() not in evaluated and not (not at and name in metrics):
        raise UserError(f"valid_metric must be one of the evaluated metrics ({', '.join(evaluated[:12])}), got "
                        f"{config['valid_metric']!r}", "valid_metric names one of metrics at one of topk, e.g. NDCG@10")


def check_model_settings(model_class, config):
    """The settings a model of ``models/`` declares (its class's ``settings``, a :class:`Schema`), read from a
    RecBole ``Config`` (the model's defaults included) and checked; {} for a model that declares none.

    Raises:
        UserError: the first bad value or broken rule, in the one wording.
    """
    schema = getattr(model_class, "settings", None)
    if not isinstance(schema, Schema):
        return {}
    return schema.filled(schema.check({name: config[name] for name in schema.names}))


# --- the reference --------------------------------------------------------------------------------------------------


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def describe_kind(kind):
    """How a kind reads in the reference: its words (a nested schema: its keys)."""
    if isinstance(kind, Schema):
        return "a mapping: " + ", ".join(kind.names)
    return kind.words


def rule_text(rule):
    """A rule's error line as the reference states it: the values it would quote left out (``, got {value!r}``),
    a named key's value shown as ``<key>``."""
    text = re.sub(r",? got (None|\{[^{}]*\})", "", rule.message)
    text = re.sub(r"\{value\[(\w+)\][^{}]*\}", r"<\1>", text)
    text = re.sub(r":? ?\{value[^{}]*\}", "", text).replace("{{", "{").replace("}}", "}")
    return text + (f" (hint: {rule.hint})" if rule.hint else "")


def reference(schema, title=None):
    """``schema`` as a Markdown table (key, what it must be, default, what it is for), then its rules across keys,
    each as the error line it gives."""
    lines = [f"**{title}**" if title else "", "", "| key | must be | default | what for |", "|---|---|---|---|"]
    for param in schema.params:
        default = "required" if param.required else ("-" if param.default is None else f"`{param.default!r}`")
        lines.append(f"| `{param.name}` | {_cell(describe_kind(param.kind))} | {default} | {_cell(param.doc)} |")
    if schema.rules:
        lines += ["", "Across keys:", *(f"- {rule_text(rule)}" for rule in schema.rules)]
    return "\n".join(line for line in lines if line is not None).lstrip("\n")
