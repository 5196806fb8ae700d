"""Distillation in one place: layer numbering, the hooks, trainable flags and the combined training loss.

Layers are numbered depth-first, pre-order, over ``named_children()``, starting at 1 for the model itself.
These numbers (or dotted module paths) are what the scenario commands ``set_outputs`` and ``set_trainable`` take;
``info`` prints them.

``wrap_model`` makes a :class:`Distiller`: the model, its distillation loss and the weight alpha. ``set_outputs``
hooks layers through its :class:`HookManager` (one hook per module, keyed by path, capturing only what the loss
declares in ``reads()``), and the trainer calls the distiller as its loss function (RecBole's ``loss_func``) and
asks it for the epoch's loss parts. The trainer itself holds the plain model: checkpoints, evaluation and
prediction never go through the distiller, and hooks capture only inside its training loss.
"""

from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .errors import UserError, suggest


@dataclass(frozen=True)
class Layer:
    """One module of a model, as numbered by :func:`enumerate_layers`."""

    number: int  # the number ``info`` shows
    depth: int
    name: str
    path: str  # dotted path from the model ('' for the model itself)
    module: nn.Module

    @property
    def label(self):
        return f"{self.number} ({self.path or 'root'}: {type(self.module).__name__})"


def enumerate_layers(model):
    """Number every module of ``model`` depth-first, pre-order; the model itself is 1 and named 'root'."""
    layers = []

    def visit(module, name, path, depth):
        layers.append(Layer(len(layers) + 1, depth, name, path, module))
        for child_name, child in module.named_children():
            visit(child, child_name, f"{path}.{child_name}" if path else child_name, depth + 1)

    visit(model, "root", "", 0)
    return layers


def format_layer(layer):
    """One row of the ``info`` table, e.g. ``    9 | -------- | 1 | Linear (in_features=1024, ...)``."""
    module, indent = layer.module, "-" * 4 * layer.depth
    return f"{layer.number:>5} | {indent} | {layer.name} | {type(module).__name__} ({module.extra_repr()})"


def layer_table(model, paths=False):
    """The numbered layer table of ``model`` as text, one row per module; ``paths`` adds each dotted path."""
    layers = enumerate_layers(model)
    if not paths:
        return "\n".join(format_layer(layer) for layer in layers)
    return "\n".join(f"{format_layer(layer)} | {layer.path or '(root)'}" for layer in layers)


def count_params(model):
    """``{'total_params': N, 'train_params': M}`` for ``model``."""
    params = list(model.parameters())
    return {
        "total_params": sum(p.numel() for p in params),
        "train_params": sum(p.numel() for p in params if p.requires_grad),
    }


def resolve_layers(model, refs, *, allow_all=False):
    """Turn layer references (numbers from ``info``, dotted module paths, or ``'*'``) into layers.

    Raises:
        UserError: a number outside the model or an unknown path, with how many layers there are.
    """
    layers = enumerate_layers(model)
    by_path = {layer.path: layer for layer in layers if layer.path}
    resolved = []
    for ref in refs:
        if ref == "*" and allow_all:
            return layers
        if isinstance(ref, bool) or not isinstance(ref, (int, str)):
            raise UserError(f"layer {ref!r} is neither a layer number nor a module path")
        if isinstance(ref, int):
            if not 1 <= ref <= len(layers):
                raise UserError(
                    f"layer {ref} is outside the model: {type(model).__name__} has {len(layers)} layers "
                    f"(1-{len(layers)})",
                    "run the 'info' command with params 1 to see the numbered layers",
                )
            resolved.append(layers[ref - 1])
        elif ref in by_path:
            resolved.append(by_path[ref])
        else:
            raise UserError(
                f"no module at path '{ref}' in {type(model).__name__}"
                + suggest(ref, by_path, n=3, lead="nearest:", quote=False, end=""),
                "run the 'info' command with params 1 to see the layers",
            )
    return resolved


def set_trainable(model, refs, trainable):
    """Set ``requires_grad`` on the parameters of the referenced layers (and everything inside them).

    Returns:
        list[str]: one line per layer, saying what it now is.
    """
    layers = resolve_layers(model, refs, allow_all=True)
    state = "trainable" if trainable else "frozen"
    lines = []
    for layer in layers:
        params = list(layer.module.parameters())
        for param in params:
            param.requires_grad_(trainable)
        count = sum(p.numel() for p in params)
        name = type(layer.module).__name__
        lines.append(f"{layer.number:>5} | {layer.path or 'root'} | {name} -> {state} ({count} params)")
    return lines


def unique_layers(layers):
    """``layers`` without repeats of the same module (``[2, 'user_mf_embedding']`` names one module twice)."""
    seen, unique = set(), []
    for layer in layers:
        if layer.path not in seen:
            seen.add(layer.path)
            unique.append(layer)
    return unique


# --- what a loss reads, and the hooks that capture it ---------------------------------------------------------------

SIDES = ("input", "output")


@dataclass(frozen=True)
class Read:
    """What a distillation loss reads of one hooked layer each training batch (see ``DistilLoss.reads``).

    Attributes:
        layer: the layer as ``set_outputs`` names it (a number from ``info`` or a dotted path); None: the one
            hooked layer (an error when several are hooked).
        side: 'input' (the tuple of positional arguments) or 'output' (what the layer returned).
        calls: which calls of the layer in the batch, 0 first (e.g. positives before negatives); None: every call.
    """

    layer: int | str | None = None
    side: str = "output"
    calls: tuple | None = (0,)


class HookManager:
    """Forward hooks on a model's layers, one per module, keyed by its dotted path ('' for the model itself).

    Each hook keeps only the sides and calls it was added with, and only while :meth:`capture` is open: at any
    other time (evaluation, prediction) a hooked layer runs as if unhooked.
    """

    def __init__(self, model):
        self.model = model
        self._wanted = {}  # path -> (sides, calls or None)
        self._handles = []
        self._root_forward = None
        self._io = None

    @property
    def paths(self):
        return list(self._wanted)

    def add(self, layer, sides, calls):
        """Hook ``layer`` (once: adding a hooked path again is a programming error)."""
        if layer.path in self._wanted:
            raise ValueError(f"layer {layer.label} is hooked already")
        self._wanted[layer.path] = (frozenset(sides), None if calls is None else frozenset(calls))
        if layer.path == "":
            self._hook_root()
        else:
            self._handles.append(layer.module.register_forward_hook(self._make_hook(layer.path)))

    def clear(self):
        """Remove every hook."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._root_forward is not None:
            del self.model.forward  # the instance attribute; the class method shows through again
            self._root_forward = None
        self._wanted = {}

    def held(self):
        """How many values are held right now (0 outside :meth:`capture`)."""
        if self._io is None:
            return 0
        return sum(len(entry[side]) for entry in self._io.values() for side in SIDES)

    @contextmanager
    def capture(self):
        """Capture while the block runs; yields ``{path: {'input': [...], 'output': [...], 'calls': n}}``.

        Each side's list has one entry per call of the layer; a call not asked for is None in the list, a side
        not asked for stays empty.
        """
        self._io = {path: {"input": [], "output": [], "calls": 0} for path in self._wanted}
        try:
            yield self._io
        finally:
            self._io = None

    def _record(self, path, inputs, output):
        if self._io is None:
            return
        entry = self._io[path]
        sides, calls = self._wanted[path]
        index = entry["calls"]
        entry["calls"] += 1
        keep = calls is None or index in calls
        for side, value in (("input", inputs), ("output", output)):
            if side in sides:
                entry[side].append(value if keep else None)

    def _make_hook(self, path):
        def hook(module, inputs, output):
            self._record(path, inputs, output)

        return hook

    def _hook_root(self):
        # RecBole models call ``self.forward(...)`` directly, which bypasses ``nn.Module`` hooks on the model
        # itself; an instance attribute shadows the method so that those calls are seen.
        original = self.model.forward

        def forward(*args, **kwargs):
            output = original(*args, **kwargs)
            self._record("", args, output)
            return output

        self._root_forward = original
        self.model.forward = forward


class Hooked(Mapping):
    """What the hooked layers gave in one training batch, as a loss receives it.

    Maps each hooked layer to ``{'input': [...], 'output': [...], 'calls': n}``; a layer is found by the
    reference ``set_outputs`` took (its number or its dotted path), and :meth:`value` picks one call of one side.
    """

    def __init__(self, io, layers):
        self._io = io
        self._layers = layers
        self._paths = {layer.number: layer.path for layer in layers} | {layer.path: layer.path for layer in layers}

    def __getitem__(self, ref):
        return self._io[self.path(ref)]

    def __iter__(self):
        return iter(layer.number for layer in self._layers)

    def __len__(self):
        return len(self._layers)

    def __contains__(self, ref):
        return ref in self._paths

    def path(self, ref):
        """The path of a hooked layer named by ``ref`` (None: the only hooked layer)."""
        if ref is None and len(self._layers) == 1:
            return self._layers[0].path
        if ref in self._paths:
            return self._paths[ref]
        hooked = ", ".join(layer.label for layer in self._layers)
        raise UserError(f"layer {ref!r} is not hooked; hooked: {hooked}", "name a layer that set_outputs hooks")

    def value(self, layer=None, side="output", call=0):
        """The raw input tuple or output of call ``call`` of ``layer``.

        Raises:
            UserError: the layer ran fewer times in this batch, or the loss did not declare that call or side.
        """
        entry = self[layer]
        if call >= entry["calls"]:
            raise UserError(f"layer {layer!r} ran {entry['calls']} time(s) in this batch; call {call} does not exist")
        values = entry[side]
        if call >= len(values) or values[call] is None:
            raise UserError(f"call {call} of layer {layer!r} ({side}) was not captured",
                            "the loss's reads() must declare every side and call it reads")
        return values[call]


# --- the distiller ------------------------------------------------------------------------------------------------


class Distiller:
    """What ``wrap_model`` makes: a model, its distillation loss and the weight alpha; the trainer's loss function.

    While layers are hooked, calling it on a batch returns ``(1 - alpha) * model_loss + alpha * distil_loss``;
    without hooks, the model's own loss. The trainer talks to it through exactly three calls: :meth:`start_epoch`,
    ``distiller(interaction)`` (RecBole's ``loss_func``) per batch and :meth:`pop_epoch_losses` (the epoch's parts).

    Args:
        model: the RecBole model (the trainer holds this same object).
        loss: a ``DistilLoss``: ``loss(hooked, interaction) -> scalar tensor`` and ``loss.reads()``.
        alpha: the distillation weight in [0, 1].
    """

    def __init__(self, model, loss, alpha):
        self.model = model
        self.loss = loss
        self.alpha = float(alpha)
        self.hooks = HookManager(model)
        self.hooked = []  # the hooked Layers, in set_outputs order
        self._verified = False
        self._stats = LossStats()

    def __str__(self):
        return f"Distiller({type(self.model).__name__}, loss={type(self.loss).__name__}, alpha={self.alpha})"

    # --- hooks ------------------------------------------------------------------------------------------------

    def set_outputs(self, refs):
        """Hook the referenced layers, each module once, replacing any hooked before; returns the hooked layers.

        Raises:
            UserError: an unknown layer, or a loss that reads a layer not among them (or reads "the" hooked
                layer while several are hooked).
        """
        layers = unique_layers(resolve_layers(self.model, refs))
        plan = self._plan(layers)
        self.remove_outputs()
        for layer in layers:
            self.hooks.add(layer, *plan.get(layer.path, ((), ())))
        self.hooked = layers
        self._verified = False
        return layers

    def remove_outputs(self):
        """Remove every hook: training returns to the plain model loss."""
        self.hooks.clear()
        self.hooked = []

    def _plan(self, layers):
        """``{path: (sides, calls)}``: what the loss's ``reads()`` asks of each hooked layer, merged per path."""
        plan = {}
        for read in self.loss.reads():
            path = self._path_read(read.layer, layers)
            sides, calls = plan.get(path, (frozenset(), frozenset()))
            calls = None if calls is None or read.calls is None else calls | set(read.calls)
            plan[path] = (sides | {read.side}, calls)
        return plan

    def _path_read(self, ref, layers):
        name = type(self.loss).__name__
        numbers = ", ".join(str(layer.number) for layer in layers)
        if ref is None:
            if len(layers) == 1:
                return layers[0].path
            raise UserError(f"{name} reads one layer but {len(layers)} are hooked ({numbers})",
                            "hook only the layer it reads, or name it in the loss's layer param")
        (layer,) = resolve_layers(self.model, [ref])
        if layer.path not in {hooked.path for hooked in layers}:
            raise UserError(f"{name}: layer {ref!r} is not among the hooked layers ({numbers})",
                            "hook it with set_outputs")
        return layer.path

    # --- the training loss ------------------------------------------------------------------------------------

    def __call__(self, interaction):
        """The training loss of one batch (RecBole's ``loss_func``): combined while layers are hooked.

        Returns:
            a scalar tensor (or the model's own loss, as it returns it, when nothing is hooked).
        """
        if not self.hooked:
            return self.model.calculate_loss(interaction)
        with self.hooks.capture() as io:
            model_loss = self.model.calculate_loss(interaction)
        self._verify(io)
        distil = self.loss(Hooked(io, self.hooked), interaction)
        if isinstance(model_loss, tuple):
            model_loss = sum(model_loss)
        self._stats.add(model_loss, distil)
        return (1.0 - self.alpha) * model_loss + self.alpha * distil

    def _verify(self, io):
        if self._verified:  # once per set_outputs: every hooked layer must run in training
            return
        silent = [layer for layer in self.hooked if not io[layer.path]["calls"]]
        if silent:
            raise UserError(
                f"hooked layer {silent[0].label} did not run while {type(self.model).__name__} computed its "
                "training loss, so there is nothing to distil",
                "hook a layer the model calls in training (for graph models, layer 1 gives all user/item rows)",
            )
        self._verified = True

    def start_epoch(self):
        """Forget parts left by a batch outside a finished epoch (an interrupted one), so an epoch counts its own."""
        self._stats.reset()

    def pop_epoch_losses(self):
        """The losses since the last call, as mean per batch, then reset; None when nothing was distilled.

        Returns:
            dict | None: ``{'model_loss', 'distil_loss', 'combined_loss'}`` (model and distillation unweighted).
        """
        parts = self._stats.pop()
        if not parts:
            return None
        model_loss = parts["model_loss"] / parts["batches"]
        distil_loss = parts["distil_loss"] / parts["batches"]
        combined = (1 - self.alpha) * model_loss + self.alpha * distil_loss
        return {"model_loss": model_loss, "distil_loss": distil_loss, "combined_loss": combined}


class LossStats:
    """The model and distillation losses of each batch, summed once per epoch (no arithmetic per batch); long epochs
    fold the kept tensors into one every :attr:`FOLD` batches, so memory stays bounded."""

    FOLD = 1024

    def __init__(self):
        self.reset()

    def reset(self):
        self.model_losses, self.distil_losses, self.batches = [], [], 0

    def add(self, model_loss, distil_loss):
        self.model_losses.append(model_loss.detach())
        self.distil_losses.append(distil_loss.detach())
        self.batches += 1
        if len(self.model_losses) >= self.FOLD:
            self.model_losses, self.distil_losses = [_total(self.model_losses)], [_total(self.distil_losses)]

    def pop(self):
        """``{'model_loss': float, 'distil_loss': float, 'batches': n}`` summed since the last pop, then reset."""
        if not self.batches:
            return None
        out = {
            "model_loss": float(_total(self.model_losses)),
            "distil_loss": float(_total(self.distil_losses)),
            "batches": self.batches,
        }
        self.reset()
        return out


def _total(losses):
    # a model's loss may be 0-d or of shape (1,) (e.g. NGCF): flatten before summing
    return torch.cat([loss.reshape(-1) for loss in losses]).sum()
