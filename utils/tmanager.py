"""The scenario's command table, the check of a whole scenario against it, and the run of its steps.

``COMMANDS`` is the single source of truth, read as data: every scenario command with the declaration of its params
(a :class:`utils.params.Kind` or :class:`utils.params.Schema`), its handler (``utils/steps.py``), what must come
before it (needs / gives / clears, and needs that depend on a param) and a one-line summary. The whole scenario is
checked against it (:func:`check_scenario`) before the first step runs, so a typo or a step out of order costs
seconds, not a night of training; ``--check`` and ``docs/REFERENCE.md`` (:func:`command_reference`) read the same
declarations.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recbole.utils.argument_list import dataset_arguments

from . import steps
from .embeddings import embeddings_dir
from .errors import UserError, suggest
from .evaluation import TEST_EVAL
from .params import (
    ALPHA,
    BOOL,
    CHECKPOINT_REF,
    FILE_INSIDE,
    INFO_LEVEL,
    JOURNAL_PART,
    LAYER,
    LAYERS,
    NOTHING,
    PART_INDEX,
    POSITIVE_INT,
    TEXT,
    TEXT_ANY,
    TRAINABLE,
    Kind,
    Param,
    Schema,
    one_of,
)
from .paths import inside_name, real_inside
from .registry import get_loss_class
from .settings import RECBOLE
from .steps import StopScenario, say


def _loss_options(value, context):
    """``wrap_model``'s keys beyond its own: the options of the loss it names (``DistilLoss.options``)."""
    name = value.get("distil_loss")
    if not isinstance(name, str):
        return "the loss", ()
    loss_class = get_loss_class(name, (context or {}).get("model"))
    return loss_class.__name__, tuple(loss_class.options)


REDUCE_DIM = Schema((
    Param("file_in", FILE_INSIDE, required=True, doc="the matrix to reduce, in the dataset's embedding folder"),
    Param("file_out", FILE_INSIDE, required=True, doc="where the reduced matrix goes, in the same folder"),
    Param("dimension", POSITIVE_INT, required=True, doc="columns of the reduced matrix"),
    Param("overwrite", BOOL, default=True, doc="false: keep file_out when it exists"),
    Param("method", one_of("pca", "umap"), default="umap", doc="UMAP, as in the original tool, or PCA"),
))
WRAP_MODEL = Schema((
    Param("distil_loss", TEXT, required=True, doc="a registered loss (models/losses.py or the model's file)"),
    Param("users_emb_file", FILE_INSIDE, doc="the user profile matrix; default llm_config.default_users_emb_file"),
    Param("items_emb_file", FILE_INSIDE, doc="the item profile matrix; default llm_config.default_items_emb_file"),
    Param("particular", BOOL, default=False, doc="compare only the first d columns of the hooked tensor"),
), extra=_loss_options)  # + the named loss's own options (see the losses)
# Settings that shape the data are fixed once it is prepared: set_config refuses them.
DATA_KEYS = sorted(set(dataset_arguments) | {"dataset", "data_path", "eval_args", "seed", "model", "repeatable"})
FIXED = Kind(lambda v: False, "left to the file's RecBole part: it shapes the data, which is prepared before the "
             "first step", "set it at the top level of the file instead")
SET_CONFIG = Schema(tuple({param.name: param for param in (
    *RECBOLE.params,
    *(Param(key, FIXED, doc="fixed once the data is prepared") for key in DATA_KEYS),
    Param("distil_loss_weight", ALPHA, doc="the Distiller's weight from here on (needs wrap_model before it)"),
)}.values()), open_=lambda key, context: "settings" not in (context or {}) or key in context["settings"],
    non_empty=True)
SET = Schema((Param("train_part", JOURNAL_PART, doc="the journal's train_k columns the following steps fill"),),
             open_=True, non_empty=True)


@dataclass(frozen=True)
class Command:
    """One scenario command: its name, handler, params declaration, summary and its place in the order check.

    ``needs_if`` maps a param key to facts that must hold when the step gives that key (``set_config``'s
    ``distil_loss_weight`` needs a wrapped model: the Distiller owns the weight)."""

    name: str
    handler: Any
    params: Any  # a Kind or a Schema
    summary: str
    needs: frozenset = frozenset()
    gives: frozenset = frozenset()
    clears: frozenset = frozenset()
    needs_if: tuple = ()  # (param key, facts)


def _f(*names):
    return frozenset(names)


COMMANDS = {command.name: command for command in [
    Command("print", steps.print_text, TEXT_ANY, "print a text in the step's output"),
    Command("set", steps.set_variables, SET, "set run variables; train_part: k selects the journal's train_k columns"),
    Command("init_model", steps.init_model, NOTHING, "build the configured model on the configured device",
            gives=_f("model"), clears=_f("wrapped", "trainer")),
    Command("reduce_dim", steps.reduce_dim, REDUCE_DIM,
            "reduce an embedding matrix (UMAP by default, as the original tool; or PCA)"),
    Command("wrap_model", steps.wrap_model, WRAP_MODEL,
            "wrap the model: the loss and the Distiller (its weight: the file's distil_loss_weight, or the "
            "weight of the Distiller it replaces)", needs=_f("model"), gives=_f("wrapped"), clears=_f("trainer")),
    Command("set_config", steps.set_config, SET_CONFIG,
            "change config values for the next init_trainer / train, and the Distiller's weight",
            needs_if=(("distil_loss_weight", _f("wrapped")),)),
    Command("init_trainer", steps.init_trainer, NOTHING, "build a RecBole trainer (fresh optimizer)",
            needs=_f("model"), gives=_f("trainer")),
    Command("info", steps.info, INFO_LEVEL,
            "parameter counts; 1: also the numbered layer table; 2: with each layer's dotted path", needs=_f("model")),
    Command("break", steps.stop, NOTHING, "stop the scenario here (what ran is journaled)"),
    Command("set_train_dataset", steps.set_train_dataset, PART_INDEX, "select the training part used by train"),
    Command("set_outputs", steps.set_outputs, LAYERS,
            "hook layers: their tensors feed the distillation loss", needs=_f("wrapped")),
    Command("set_trainable", steps.set_trainable, TRAINABLE,
            "freeze or unfreeze layers ([[layers] or ['*'], bool])", needs=_f("model")),
    Command("train", steps.train, NOTHING, "fit with validation; the best model is saved under saved/",
            needs=_f("trainer")),
    Command("test_eval", steps.test_eval, TEST_EVAL,
            "evaluate the best model of the last train on the test split (optionally {mode, metrics, topk})",
            needs=_f("trainer")),
    Command("remove_outputs", steps.remove_outputs, NOTHING,
            "remove every hook: back to the plain model loss", needs=_f("wrapped")),
    Command("load_from_file", steps.load_from_file, CHECKPOINT_REF,
            "resume a checkpoint (path, or 'best' for the last train's best model)", needs=_f("trainer")),
    Command("save_datasets", steps.save_datasets, NOTHING,
            "write the train/valid/test splits as TSV next to the YAML"),
    Command("debug_model", steps.debug_model, LAYER, "print a layer's parameters with statistics",
            needs=_f("model")),
]}
ALIASES = {"set_output": "set_outputs"}
# Which command provides each fact the order check tracks.
PROVIDERS = {"model": "init_model", "wrapped": "wrap_model", "trainer": "init_trainer"}


# --- run state ----------------------------------------------------------------------------------------------------


@dataclass
class ScenarioRun:
    """What the steps of one experiment act on."""

    file: Path
    config: Any  # RecBole Config
    settings: Any  # settings.Settings
    data: Any  # data.DataBundle
    record: Any  # journal.JournalRecord
    model_class: type
    model: Any = None  # the RecBole model
    distiller: Any = None  # wrapper.Distiller of that model (hooks, loss, alpha), after wrap_model
    trainer: Any = None
    train_ds: int = 0
    trained_file: str | None = None  # best-model file of the last train, when saved
    variables: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)  # train part -> {'trains': [...epochs...], 'test_per_user': ...}

    @property
    def dataset_name(self):
        return self.config["dataset"]

    def embedding_path(self, name):
        """``<embeddings_path>/<dataset>/<name>``; a name that would leave that folder is refused."""
        folder = embeddings_dir(self.settings.llm_config.embeddings_path, self.dataset_name)
        return real_inside(folder, folder / inside_name(name, "file"), "file")


# --- the check ----------------------------------------------------------------------------------------------------


def resolve_command(name, index):
    """The :class:`Command` for a step name (aliases included), or a one-line error with a suggestion."""
    name = ALIASES.get(name, name)
    if name in COMMANDS:
        return COMMANDS[name]
    raise UserError(
        f"unknown command '{name}'" + suggest(name, list(COMMANDS) + list(ALIASES)),
        f"commands: {', '.join(COMMANDS)}",
        step=index,
        command=name,
    )


def check_scenario(steps, model_name=None, context=None):
    """Check every step against its declaration, and the order of the steps, before anything runs.

    ``context`` is what the declarations may read besides the params (``model``: the loss lookup; ``settings``: the
    experiment's setting names, for ``set_config``; ``parts``: the training parts; ``items``: the dataset's items).

    Returns:
        list of (step, Command, checked params).

    Raises:
        UserError: naming the step number and command (unknown command, bad params, or a step out of order).
    """
    context = {"model": model_name, **(context or {})}
    checked, facts = [], set()
    for step in steps:
        command = resolve_command(step.command, step.index)
        try:
            params = command.params.check(step.params, None, context)
        except UserError as exc:
            raise exc.locate(step=step.index, command=step.command) from None
        needs = set(command.needs)
        for key, more in command.needs_if:
            if isinstance(params, dict) and key in params:
                needs |= more
        missing = needs - facts
        if missing:
            fact = sorted(missing)[0]
            raise UserError(
                f"needs {PROVIDERS[fact]} before it (no {fact.replace('wrapped', 'wrapped model')} yet)",
                f"add an {PROVIDERS[fact]} step before step {step.index}",
                step=step.index,
                command=step.command,
            )
        facts = (facts - command.clears) | command.gives
        checked.append((step, command, params))
        if command.name == "break":
            break
    return checked


def command_reference():
    """The command table as Markdown: one row per command (params, needs, summary), then each command's params."""
    from .params import describe_kind, reference

    lines = ["| command | params | needs | what it does |", "|---|---|---|---|"]
    for command in COMMANDS.values():
        needs = ", ".join(PROVIDERS[f] for f in sorted(command.needs)) or "-"
        params = "a mapping (below)" if isinstance(command.params, Schema) else describe_kind(command.params)
        lines.append(f"| `{command.name}` | {params} | {needs} | {command.summary} |")
    for command in COMMANDS.values():
        if isinstance(command.params, Schema) and command.name != "set_config":
            lines += ["", reference(command.params, f"{command.name}")]
    return "\n".join(lines)


class TrainManager:
    """Runs a checked scenario, step by step, on a :class:`ScenarioRun`."""

    def __init__(self, run, checked_steps):
        self.run = run
        self.steps = checked_steps

    def execute(self):
        """Run every step; returns 'done', or 'stopped' when a ``break`` ended the scenario."""
        total = len(self.steps)
        for step, command, params in self.steps:
            shown = "" if params is None else f" {params}"
            say(f"[{step.index}/{total}] {command.name}{shown}")
            try:
                command.handler(self.run, params)
            except StopScenario:
                say("    scenario stopped here by 'break'")
                return "stopped"
            except UserError as exc:
                raise exc.locate(step=step.index, command=command.name) from None
        return "done"

