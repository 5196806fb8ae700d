"""Finding models and distillation losses by name.

Models are found by name: ``models/<name lower>.py`` first (custom models), then RecBole. Losses are found by the
name they are registered under (``models.losses.register_loss``) in ``models/losses.py`` and in
``models/<model name lower>.py``; the lookup asks that registry and never scans a module. Nothing is ever imported
from a path named in a config: only the project's ``models`` package and RecBole are searched.
"""

import importlib
import importlib.util
import pkgutil
import re

from .errors import UserError, suggest
from .paths import PROJECT_ROOT

MODELS_DIR = PROJECT_ROOT / "models"
RECBOLE_MODEL_PACKAGES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
