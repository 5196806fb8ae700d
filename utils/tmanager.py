"""The scenario's command table, the check of a whole scenario against it, and the run of its steps.

``COMMANDS`` is the single source of truth, read as data: every scenario command with its params checker (a
function or a :class:`utils.params.Schema` in ``utils/steps.py``), its handler (``utils/steps.py``), what must come
before it (needs / gives / clears) and a one-line summary. The whole scenario is checked against it
(:func:`check_scenario`) before the first step runs, so a typo or a step out of order costs seconds, not a night of
training.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import steps
from .embeddings import embeddings_dir
from .errors import UserError, suggest
from .evaluation import test_eval_params
from .paths import inside_name
from .registry import get_loss_class
from .steps import FILE_PARAMS, WRAP_KEYS, StopScenario, say


@dataclass(frozen=True)
class Command:
    """One scenario command: its name, handler, params checker, summary and its place in the order check."""

    name: str
    handler: Callable
    params: Callable
    summary: str
    needs: frozenset = frozenset()
    gives: frozenset = frozenset()
    clears: frozenset = frozenset()


def _f(*names):
    return frozenset(names)


# name: (handler, params checker, one-line summary, needs / gives / clears). The order check tracks three facts.
COMMANDS = {command.name: command for command in [
    Command("print", steps.print_text, steps.text, "print a text in the step's output"),
    Command("set", steps.set_variables, steps.set_vars,
            "set run variables; train_part: k selects the journal's train_k columns"),
    Command("init_model", steps.init_model, steps.no_params, "build the configured model on the configured device",
            gives=_f("model"), clears=_f("wrapped", "trainer")),
    Command("reduce_dim", steps.reduce_dim, steps.REDUCE_DIM.check,
            "reduce an embedding matrix (UMAP by default, as the original tool; or PCA)"),
    Command("wrap_model", steps.wrap_model, steps.WRAP_MODEL.check, "wrap the model: hooks and the combined loss",
            needs=_f("model"), gives=_f("wrapped"), clears=_f("trainer")),
    Command("set_config", steps.set_config, steps.set_config_params,
            "change config values for the next init_trainer / train"),
    Command("init_trainer", steps.init_trainer, steps.no_params, "build a RecBole trainer (fresh optimizer)",
            needs=_f("model"), gives=_f("trainer")),
    Command("info", steps.info, steps.info_level,
            "parameter counts; 1: also the numbered layer table; 2: with each layer's dotted path", needs=_f("model")),
    Command("break", steps.stop, steps.no_params, "stop the scenario here (what ran is journaled)"),
    Command("set_train_dataset", steps.set_train_dataset, steps.part_index, "select the training part used by train"),
    Command("set_outputs", steps.set_outputs, steps.layer_refs,
            "hook layers: their tensors feed the distillation loss", needs=_f("wrapped")),
    Command("set_trainable", steps.set_trainable, steps.trainable,
            "freeze or unfreeze layers ([[layers] or ['*'], bool])", needs=_f("model")),
    Command("train", steps.train, steps.no_params, "fit with validation; the best model is saved under saved/",
            needs=_f("trainer")),
    Command("test_eval", steps.test_eval, test_eval_params,
            "evaluate the best model of the last train on the test split (optionally {mode, metrics, topk})",
            needs=_f("trainer")),
    Command("remove_outputs", steps.remove_outputs, steps.no_params,
            "remove every hook: back to the plain model loss", needs=_f("wrapped")),
    Command("load_from_file", steps.load_from_file, steps.checkpoint_ref,
            "resume a checkpoint (path, or 'best' for the last train's best model)", needs=_f("trainer")),
    Command("save_datasets", steps.save_datasets, steps.no_params,
            "write the train/valid/test splits as TSV next to the YAML"),
    Command("debug_model", steps.debug_model, steps.layer_ref, "print a layer's parameters with statistics",
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
        return embeddings_dir(self.settings.llm_config.embeddings_path, self.dataset_name) / inside_name(name, "file")


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


def check_scenario(steps, model_name=None):
    """Check every step against the table before anything runs.

    Returns:
        list of (step, Command, normalized params).

    Raises:
        UserError: naming the step number and command (unknown command, bad params, or a step out of order).
    """
    checked, facts = [], set()
    for step in steps:
        command = resolve_command(step.command, step.index)
        try:
            params = command.params(step.params)
            for key in FILE_PARAMS.get(command.name, ()):
                if isinstance(params, dict) and params.get(key) is not None:
                    inside_name(params[key], f"param '{key}'")
            if command.name == "wrap_model" and model_name:
                loss_class = get_loss_class(params["distil_loss"], model_name)
                loss_class.check_options({k: v for k, v in params.items() if k not in WRAP_KEYS})
        except UserError as exc:
            raise exc.locate(step=step.index, command=step.command) from None
        missing = command.needs - facts
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
    """The table as Markdown rows, one per command, in the shape of the README's command table."""
    lines = []
    for command in COMMANDS.values():
        needs = ", ".join(PROVIDERS[f] for f in sorted(command.needs))
        lines.append(f"| `{command.name}` | {command.summary} | {needs or '-'} |")
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

