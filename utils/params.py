"""One way to declare the keys a mapping in an experiment file takes, and to check it.

A :class:`Schema` lists :class:`Param` s (name, :class:`Kind`, required or not, default, a line of doc) and says
how its errors read; :meth:`Schema.check` refuses, in one line each, a value that is not a mapping, an unknown key
(with a "did you mean"), a missing required key and a value of the wrong kind (naming the key and the value). The
scenario commands' params (``utils/tmanager.py``), ``llm_config`` and its parts (``utils/settings.py``), the
losses' options (``models/losses.py``) and ``build_profiles`` (``utils/profiles.py``) are all declared this way.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import UserError, suggest


@dataclass(frozen=True)
class Kind:
    """What a value must be: a test, the words an error uses for it and a hint. The error reads ``message``, a
    format of ``label`` (the key as the schema names it), ``words`` and ``value``."""

    test: Callable[[Any], bool]
    words: str
    hint: str | None = None
    message: str = "{label} must be {words}, got {value!r}"

    def error(self, label, value):
        """The ``UserError`` for ``value`` failing this kind."""
        return UserError(self.message.format(label=label, words=self.words, value=value), self.hint)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


BOOL = Kind(lambda v: isinstance(v, bool), "true or false")
INT = Kind(lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
NUMBER = Kind(_number, "a number")
STR = Kind(lambda v: isinstance(v, str), "a string")
TEXT = Kind(lambda v: isinstance(v, str) and bool(v), "a non-empty string")
MAPPING = Kind(lambda v: isinstance(v, dict), "a mapping")
LIST = Kind(lambda v: isinstance(v, list), "a list")
# A layer as set_outputs names it: a number from 'info' (1, 2, ...) or a dotted module path.
LAYER = Kind(lambda v: not isinstance(v, bool) and (isinstance(v, str) or isinstance(v, int) and v >= 1),
             "a layer number or a dotted path")


def _mappings(value):
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


MAPPINGS = Kind(_mappings, "a mapping or a list of mappings")
ANY = Kind(lambda v: True, "anything")  # checked elsewhere (e.g. a file name, by its own function)


def maybe(kind):
    """``kind``, or None (left unset)."""
    return Kind(lambda v: v is None or kind.test(v), kind.words, kind.hint, kind.message)


def one_of(*choices, words=None):
    """A value among ``choices``; ``words`` overrides the default "one of a, b, c" (e.g. "'error' or 'zero'")."""
    return Kind(lambda v: not isinstance(v, (dict, list)) and v in choices,
                words or "one of " + ", ".join(map(str, choices)))


def either(*kinds):
    """A value of any of ``kinds`` ("a string or a list")."""
    return Kind(lambda v: any(kind.test(v) for kind in kinds), " or ".join(kind.words for kind in kinds))


@dataclass(frozen=True)
class Param:
    """One key of a mapping: its kind, whether it must be given, its default when not, what it is for."""

    name: str
    kind: Kind
    required: bool = False
    default: Any = None
    doc: str = ""


@dataclass(frozen=True)
class Schema:
    """The keys a mapping takes, and how its errors read.

    The message fields are format strings: ``label`` names one key in "<label> must be ..." (``{}`` is the key);
    ``unknown`` / ``unknown_hint`` (``{key}``, ``{known}``, ``{suggestion}``), ``missing`` / ``missing_hint``
    (``{key}``, ``{required}``) and ``not_mapping`` (``{value}``, ``{known}``) read as the place's errors always
    have. With ``open_``, unknown keys pass (``wrap_model``: the loss checks its own options). With
    ``none_is_unset``, a None value is "not given" for a key that is not required.
    """

    params: tuple
    label: str = "param '{}'"
    unknown: str = "unknown param '{key}'{suggestion}"
    unknown_hint: str = "params: {known}"
    missing: str = "missing param '{key}'"
    missing_hint: str = "required: {required}"
    not_mapping: str = "params must be a mapping with {known}, got {value!r}"
    open_: bool = False
    none_is_empty: bool = True  # None stands for {} when no key is required
    none_is_unset: bool = True  # a key given as None counts as left out (its kind is not checked)

    @property
    def names(self):
        return [param.name for param in self.params]

    @property
    def required(self):
        return [param.name for param in self.params if param.required]

    def check(self, value, also=()):
        """``value`` checked; returns a copy of the mapping (no defaults filled in: what was written is journaled).

        ``also`` are names an unknown key may also have meant (named by the suggestion only).

        Raises:
            UserError: the first problem, in the place's wording.
        """
        known = ", ".join(self.names) or "none"
        if value is None and self.none_is_empty and not self.required:
            return {}
        if not isinstance(value, dict):
            raise UserError(self.not_mapping.format(value=value, known=known))
        by_name = {param.name: param for param in self.params}
        for key in value:
            if key not in by_name and not self.open_:
                raise UserError(self.unknown.format(key=key, suggestion=suggest(key, self.names + list(also))),
                                self.unknown_hint.format(known=known) or None)
        for name in self.required:
            if name not in value:
                raise UserError(self.missing.format(key=name),
                                self.missing_hint.format(required=", ".join(self.required)) or None)
        for key, given in value.items():
            param = by_name.get(key)
            unset = given is None and self.none_is_unset and not param.required if param else True
            if param is not None and not unset and not param.kind.test(given):
                raise param.kind.error(self.label.format(key), given)
        return dict(value)

    def filled(self, value):
        """``value`` with the default of every key it leaves out."""
        return {**{param.name: param.default for param in self.params}, **value}
