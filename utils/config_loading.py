"""Reading experiment files and building RecBole's Config from them, without RecBole's command-line and eval() habits.

``load_yaml`` is PyYAML's safe loading with limits (duplicate keys, depth, alias expansion) and one-line errors;
``ExperimentConfig`` is RecBole's ``Config`` that neither reads ``sys.argv`` nor ``eval()``s values;
``known_setting_names`` lists the setting names the typo check of the RecBole part compares with.
"""

import functools
from pathlib import Path

import yaml
from recbole.config import Config

from .device import choose_device
from .errors import UserError

# --- experiment files ---------------------------------------------------------------------------------------------


MAX_YAML_DEPTH = 64  # nesting levels; an experiment file needs fewer than ten
MAX_YAML_NODES = 100_000  # values once aliases are expanded; a long scenario has a few thousand


class _YAMLLimit(yaml.YAMLError):
    def __init__(self, problem, mark, hint):
        super().__init__(problem)
        self.problem, self.problem_mark, self.hint = problem, mark, hint


class ExperimentLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses duplicate keys, nesting deeper than :data:`MAX_YAML_DEPTH` (the composer
    recurses: thousands of levels end in a RecursionError) and aliases that expand to more than
    :data:`MAX_YAML_NODES` values (an "alias bomb" is small on disk and exhausts memory when walked)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _YAMLLimit(f"nesting deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark,
                                 "an experiment file needs only a few levels of nesting")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        size, sizes, todo = 0, {}, [(node, False)]
        while todo:  # expanded size of every node, each node computed once (aliases share nodes)
            current, expanded = todo.pop()
            if id(current) in sizes:
                continue
            children = _children(current)
            if not expanded:
                todo.append((current, True))
                todo.extend((child, False) for child in children if id(child) not in sizes)
                continue
            sizes[id(current)] = size = 1 + sum(sizes[id(child)] for child in children)
            if size > MAX_YAML_NODES:
                raise _YAMLLimit(f"aliases expand to more than {MAX_YAML_NODES:,} values",
                                 current.start_mark, "an alias bomb? write the values out instead of nesting aliases")
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue  # an unhashable key: the constructor reports it
                if first is not key_node:
                    raise _YAMLLimit(f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                                     key_node.start_mark, "a key may appear once: remove one of them")
        return super().construct_mapping(node, deep=deep)


def _children(node):
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_yaml(path):
    """Read one experiment file with the safe loader; the top level must be a mapping.

    Raises:
        UserError: unreadable file, text that is not UTF-8, YAML syntax error (with line and column), duplicate
            keys, nesting too deep, aliases expanding too far, or a top level that is no mapping.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read the experiment file: {exc.strerror}", file=path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(f"not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}",
                        "save the file as UTF-8", file=path) from None
    try:
        loaded = yaml.load(text, Loader=ExperimentLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        hint = getattr(exc, "hint", None) or "check indentation, brackets and quotes there"
        kind = "YAML syntax error" if not isinstance(exc, _YAMLLimit) else "YAML refused"
        raise UserError(f"{kind} at {where}{problem}", hint, file=path) from None
    if not isinstance(loaded, dict):
        raise UserError(f"expected a mapping of settings at the top level, got {type(loaded).__name__}", file=path)
    return loaded


# --- RecBole's Config ---------------------------------------------------------------------------------------------


class ExperimentConfig(Config):
    """RecBole's ``Config`` that neither reads ``sys.argv`` nor ``eval()``s string values.

    RecBole reads every ``--key=value`` on the command line into the config (so the runner's own flags would leak
    into experiments) and passes string values of the config dict through ``eval``. Our values come from a safely
    loaded YAML and are already typed; command-line overrides, if any, are passed explicitly as ``overrides``.
    """

    def __init__(self, model=None, dataset=None, config_dict=None, overrides=None):
        self._overrides = dict(overrides or {})
        super().__init__(model=model, dataset=dataset, config_file_list=None, config_dict=config_dict)

    def _load_variable_config_dict(self, config_dict):
        return dict(config_dict) if config_dict else {}

    def _load_internal_config_dict(self, model, model_class, dataset):
        """RecBole's defaults; a custom model also gets those of the RecBole models it extends (e.g. AutoIntKar
        those of AutoInt) and its own class attribute ``default_config``."""
        super()._load_internal_config_dict(model, model_class, dataset)
        if isinstance(model_class, str):
            return
        import recbole

        properties = Path(recbole.__file__).parent / "properties" / "model"
        for cls in model_class.__mro__:
            path = properties / f"{cls.__name__}.yaml"
            if cls.__module__.startswith("recbole.model.") and path.is_file():
                for key, value in (yaml.load(path.read_text(encoding="utf-8"), Loader=self.yaml_loader) or {}).items():
                    self.internal_config_dict.setdefault(key, value)
        for key, value in (getattr(model_class, "default_config", None) or {}).items():
            self.internal_config_dict.setdefault(key, value)

    def _load_cmd_line(self):
        return dict(self._overrides)

    def _init_device(self):
        """RecBole's device setup, except that ``use_gpu: False`` is honoured (RecBole 1.2.1 ignores it)."""
        super()._init_device()
        if self.final_config_dict.get("single_spec", True):
            self.final_config_dict["device"] = choose_device(self.final_config_dict.get("use_gpu"),
                                                             self.final_config_dict.get("gpu_id"))


@functools.lru_cache(maxsize=1)
def recbole_setting_names():
    """Every setting name RecBole itself knows: its argument lists and every key of its bundled YAML files (read
    once per process: about a hundred files, a quarter of a second)."""
    import recbole
    from recbole.utils import argument_list

    names = set()
    for group in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        names |= set(getattr(argument_list, group))
    for path in (Path(recbole.__file__).parent / "properties").rglob("*.yaml"):
        if path.parent.name == "dataset" and path.stem in ("url", "kg_url"):
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        if isinstance(data, dict):
            names |= set(data)
    return frozenset(names)


def known_setting_names(model_class):
    """Every setting name RecBole knows, plus a custom model's own (class attributes ``extra_config_keys`` and
    ``default_config``): what the typo check of the RecBole part (``utils.settings.RECBOLE``) compares with."""
    known = recbole_setting_names() | set(getattr(model_class, "extra_config_keys", ()))
    return known | set(getattr(model_class, "default_config", None) or {})
