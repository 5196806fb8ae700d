"""The model wrapper: layer numbering, forward hooks, trainable flags and the combined loss.

Layers are numbered depth-first, pre-order, over ``named_children()``, starting at 1 for the model itself.
These numbers are what the scenario commands ``set_outputs`` and ``set_trainable`` take; ``info`` prints them.
"""

import difflib
from dataclasses import dataclass

import torch
from torch import nn

from .errors import UserError


@dataclass(frozen=True)
class Layer:
    """One module of a model, as numbered by :func:`enumerate_layers`."""

    uid: int
    depth: int
    name: str
    path: str  # dotted path from the model ('' for the model itself)
    module: nn.Module

    @property
    def label(self):
        return f"{self.uid} ({self.path or 'root'}: {type(self.module).__name__})"


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
    module = layer.module
    return f"{layer.uid:>5} | {'-' * 4 * layer.depth} | {layer.name} | {type(module).__name__} ({module.extra_repr()})"


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
            near = difflib.get_close_matches(ref, list(by_path), n=3)
            raise UserError(
                f"no module at path '{ref}' in {type(model).__name__}"
                + (f"; nearest: {', '.join(near)}" if near else ""),
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
        lines.append(f"{layer.uid:>5} | {layer.path or 'root'} | {name} -> {state} ({count} params)")
    return lines


class ModelWrapper(nn.Module):
    """Wraps a RecBole model so that hooked layers feed a distillation loss while it trains.

    Everything RecBole's trainers and dataloaders call (``calculate_loss``, ``predict``, ``full_sort_predict``,
    ``state_dict``, attributes such as ``USER_ID``) reaches the inner model; checkpoints therefore hold the inner
    model's own keys and load into an unwrapped model too.

    While layers are hooked, ``calculate_loss`` returns ``(1 - alpha) * model_loss + alpha * distil_loss``; both
    parts are kept per epoch in :attr:`stats` (the trainer's history and TensorBoard show them). Hooks capture only
    inside ``calculate_loss``: never during evaluation.

    Args:
        model: the RecBole model.
        distil_loss: a callable ``(hooked, interaction) -> scalar tensor`` (see ``models/losses.py``).
        alpha: the distillation weight in [0, 1].
    """

    def __init__(self, model, distil_loss, alpha):
        super().__init__()
        self.model = model
        self.distil_loss = distil_loss
        self.alpha = float(alpha)
        self.hooked_layers = []
        self._handles = []
        self._root_forward = None
        self._captured = None
        self._verified = False
        self.stats = LossStats()

    # --- delegation -------------------------------------------------------------------------------------------

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__.get("_modules", {}).get("model")
            if inner is None:
                raise
            return getattr(inner, name)

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def predict(self, interaction):
        return self.model.predict(interaction)

    def full_sort_predict(self, interaction):
        return self.model.full_sort_predict(interaction)

    def other_parameter(self):
        return self.model.other_parameter()

    def load_other_parameter(self, para):
        return self.model.load_other_parameter(para)

    def state_dict(self, *args, **kwargs):
        return self.model.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        return self.model.load_state_dict(state_dict, strict=strict, assign=assign)

    def __str__(self):
        return f"ModelWrapper({type(self.model).__name__}, loss={type(self.distil_loss).__name__}, alpha={self.alpha})"

    # --- hooks ------------------------------------------------------------------------------------------------

    def set_outputs(self, refs):
        """Hook the referenced layers (replacing any hooked before); returns the hooked :class:`Layer` list."""
        layers = resolve_layers(self.model, refs)
        self.remove_outputs()
        for layer in layers:
            if layer.uid == 1:
                self._hook_root()
            else:
                self._handles.append(layer.module.register_forward_hook(self._make_hook(layer.uid)))
        self.hooked_layers = layers
        self._verified = False
        bind = getattr(self.distil_loss, "bind", None)
        if bind is not None:  # a loss that names its layer (HiddenDistil) resolves it now
            bind(layers)
        return layers

    def remove_outputs(self):
        """Remove every hook: training returns to the plain model loss."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._root_forward is not None:
            del self.model.forward  # the instance attribute; the class method shows through again
            self._root_forward = None
        self.hooked_layers = []

    def _make_hook(self, uid):
        def hook(module, inputs, output):
            if self._captured is not None:
                self._captured[uid]["input"].append(inputs)
                self._captured[uid]["output"].append(output)

        return hook

    def _hook_root(self):
        # RecBole models call ``self.forward(...)`` directly, which bypasses ``nn.Module`` hooks on the model
        # itself; an instance attribute shadows the method so that those calls are seen.
        original = self.model.forward

        def forward(*args, **kwargs):
            output = original(*args, **kwargs)
            if self._captured is not None:
                self._captured[1]["input"].append(args)
                self._captured[1]["output"].append(output)
            return output

        self._root_forward = original
        self.model.forward = forward

    # --- loss -------------------------------------------------------------------------------------------------

    def calculate_loss(self, interaction, *args, **kwargs):
        if not self.hooked_layers:
            return self.model.calculate_loss(interaction, *args, **kwargs)
        self._captured = {layer.uid: {"input": [], "output": []} for layer in self.hooked_layers}
        try:
            model_loss = self.model.calculate_loss(interaction, *args, **kwargs)
            captured = self._captured
        finally:
            self._captured = None
        if not self._verified:  # once per set_outputs: every hooked layer must run in training
            silent = [layer for layer in self.hooked_layers if not captured[layer.uid]["output"]]
            if silent:
                raise UserError(
                    f"hooked layer {silent[0].label} did not run while {type(self.model).__name__} computed its "
                    "training loss, so there is nothing to distil",
                    "hook a layer the model calls in training (for graph models, layer 1 gives all user/item rows)",
                )
            self._verified = True
        distil = self.distil_loss(captured, interaction)
        if isinstance(model_loss, tuple):
            model_loss = sum(model_loss)
        self.stats.add(model_loss, distil)
        return (1.0 - self.alpha) * model_loss + self.alpha * distil


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
