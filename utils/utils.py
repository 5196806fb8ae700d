"""Model and loss lookup, reading experiment files, RecBole's Config without its command-line and eval() habits.

Models are found by name: ``models/<name lower>.py`` first (custom models), then RecBole. Losses are found by the
name they are registered under (``models.losses.register_loss``) in ``models/losses.py`` and in
``models/<model name lower>.py``. Nothing is ever imported from a path named in a config: only the project's
``models`` package and RecBole are searched.
"""

import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path

import yaml
from recbole.config import Config

from .device import choose_device
from .errors import UserError, suggest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"
RECBOLE_MODEL_PACKAGES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


def recbole_setting_names():
    """Every setting name RecBole itself knows: its argument lists and every key of its bundled YAML files."""
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
    return names


def check_setting_names(recbole_settings, model_class):
    """Refuse a RecBole-part key that is not a known setting but is one typo away from one (``epoch: 5`` would
    otherwise silently train RecBole's default 300 epochs). A custom model may list its own keys in its class
    attribute ``extra_config_keys``."""
    known = recbole_setting_names() | set(getattr(model_class, "extra_config_keys", ()))
    known |= set(getattr(model_class, "default_config", None) or {})
    for key in recbole_settings:
        if key in known:
            continue
        near = suggest(key, known, cutoff=0.8)
        if near:
            raise UserError(
                f"'{key}' is not a RecBole setting{near}",
                "RecBole would silently ignore it; a setting of a custom model belongs in its extra_config_keys",
            )


# --- models and losses --------------------------------------------------------------------------------------------


def _custom_module(name):
    """``models.<name lower>`` if that file exists in the project (never anything outside it)."""
    module_name = name.lower()
    if not _IDENTIFIER.match(module_name) or module_name.startswith("_") or module_name == "losses":
        return None
    if not (MODELS_DIR / f"{module_name}.py").is_file():
        return None
    return importlib.import_module(f"models.{module_name}")


def _recbole_module_names():
    names = {}
    for package in RECBOLE_MODEL_PACKAGES:
        spec = importlib.util.find_spec(f"recbole.model.{package}")
        for info in pkgutil.iter_modules(spec.submodule_search_locations):
            names[info.name] = f"recbole.model.{package}.{info.name}"
    return names


def _class_named(module, name):
    """The class in ``module`` whose name is ``name``, ignoring case (RecBole files are lower-case names)."""
    for attr, value in vars(module).items():
        if isinstance(value, type) and attr.lower() == name.lower() and value.__module__ == module.__name__:
            return value
    return None


def available_models():
    """Names of the custom models in ``models/`` and of RecBole's models (lower-case file names)."""
    custom = sorted(p.stem for p in MODELS_DIR.glob("*.py") if p.stem != "losses" and not p.stem.startswith("_"))
    return custom + sorted(_recbole_module_names())


def get_model_class(name):
    """The model class for ``name``: ``models/<name lower>.py`` first, then RecBole.

    Raises:
        UserError: no such model, with the closest names.
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise UserError(f"model {name!r} is not a model name", "set model: to a RecBole or models/ class name")
    module = _custom_module(name)
    if module is not None:
        cls = getattr(module, name, None) or _class_named(module, name)
        if cls is None:
            raise UserError(f"models/{name.lower()}.py defines no class named {name}")
        return cls
    recbole_modules = _recbole_module_names()
    if name.lower() in recbole_modules:
        cls = _class_named(importlib.import_module(recbole_modules[name.lower()]), name)
        if cls is not None:
            return cls
    raise UserError(
        f"unknown model '{name}'" + suggest(name.lower(), available_models(), n=3, quote=False),
        "models are RecBole's (e.g. NeuMF, SimpleX, LightGCN, SASRec) or classes in models/<name lower>.py",
    )


def _loss_modules(model_name):
    """The modules whose registered losses serve ``model_name``: ``models.losses`` and the model's own file."""
    import models.losses

    module = _custom_module(model_name) if model_name else None  # importing it registers its losses
    return (models.losses.__name__,) + ((module.__name__,) if module is not None else ())


def available_losses(model_name=None):
    """Names of the registered losses of ``models/losses.py`` (and of the model's own file); no aliases."""
    from models.losses import registered_losses

    return registered_losses(_loss_modules(model_name))


def get_loss_class(name, model_name=None):
    """The loss class registered as ``name`` (or an alias) in ``models/losses.py`` or ``models/<model lower>.py``.

    Raises:
        UserError: no such loss, in one line with a suggestion and the available ones.
    """
    from models.losses import find_loss

    return find_loss(name, _loss_modules(model_name))
