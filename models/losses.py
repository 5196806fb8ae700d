"""Distillation losses: make a hooked intermediate layer reconstruct the LLM profile vectors.

A loss is built by the ``wrap_model`` command with the RecBole model and the profile matrices, declares in
:meth:`DistilLoss.reads` which side (input/output) and which calls of which hooked layer it reads (only those are
captured), and is called each training batch as ``loss(hooked, interaction)``:

- ``hooked`` (``utils.wrapper.Hooked``) maps each hooked layer, by the number or dotted path ``set_outputs`` took,
  to ``{'input': [...], 'output': [...]}``, one entry per call of that layer in the batch (a layer can run more
  than once, e.g. for positive and negative items; a call the loss did not declare is None). An input entry is
  the tuple of positional arguments the layer got; an output entry is whatever it returned.
- ``interaction`` is RecBole's batch.

It returns a scalar tensor. Matrices are indexed by RecBole's internal ids: ``self.llm_user_emb[user_ids]``
(row 0 belongs to RecBole's padding id; ``users_start_with_1`` adds it when a file holds only real users).

To add a loss, subclass :class:`DistilLoss` (or one of the ready bases below) in this file or in
``models/<model name lower>.py`` and decorate it with :func:`register_loss`; ``wrap_model``'s ``distil_loss`` names
it. Only registered classes are losses: the bases are not, so they are never offered as choices.
"""


import torch
import torch.nn.functional as F
from torch import nn

from utils.errors import UserError, suggest
from utils.params import LAYER, NON_NEGATIVE_INT, Param, Schema, one_of
from utils.wrapper import Read

_LOSSES = {}  # name or alias -> loss class; each class keeps the module it was defined in (its scope)
_CANONICAL = set()  # the names classes are registered under (aliases left out of listings)


def register_loss(cls=None, *, aliases=()):
    """Class decorator: make a :class:`DistilLoss` subclass a loss named by its class name (and ``aliases``).

    A loss in ``models/losses.py`` serves every model; one in ``models/<model name lower>.py`` serves that model.

    Raises:
        ValueError: a name already taken by another class (a programming error, not a user's).
    """

    def register(loss_class):
        for name in (loss_class.__name__, *aliases):
            taken = _LOSSES.get(name)
            if taken is not None and taken.__qualname__ != loss_class.__qualname__:
                raise ValueError(f"loss name {name!r} is already registered for {taken.__module__}.{taken.__name__}")
            _LOSSES[name] = loss_class
        _CANONICAL.add(loss_class.__name__)
        return loss_class

    return register(cls) if cls is not None else register


def _in_scope(loss_class, modules):
    return loss_class.__module__ in modules


def registered_losses(modules=(__name__,)):
    """Sorted names of the losses defined in ``modules`` (module names), aliases left out."""
    return sorted(name for name in _CANONICAL if _in_scope(_LOSSES[name], modules))


def find_loss(name, modules=(__name__,)):
    """The loss class registered as ``name`` (a class name or an alias) in one of ``modules``.

    Raises:
        UserError: no such loss, in one line with the closest registered name and the available ones.
    """
    found = _LOSSES.get(name) if isinstance(name, str) else None
    if found is not None and _in_scope(found, modules):
        return found
    known = [key for key, value in _LOSSES.items() if _in_scope(value, modules)]
    raise UserError(
        f"unknown distillation loss '{name}'" + suggest(name, known),
        f"available: {', '.join(registered_losses(modules))}",
    )


def as_rows(tensor):
    """View a batch tensor as 2-D rows: ``[B, ...] -> [B, prod(...)]``."""
    if tensor.dim() == 2:  # already rows: no reshape, so no extra node in the autograd graph of every batch
        return tensor
    if tensor.dim() == 1:
        return tensor.unsqueeze(1)
    return tensor.reshape(tensor.shape[0], -1)


def first_tensor(value):
    """The first tensor in a (possibly nested) tuple or list, e.g. a layer's positional inputs."""
    while isinstance(value, (tuple, list)):
        if not value:
            raise UserError("the hooked layer received or returned an empty tuple: nothing to distil")
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise UserError(f"the hooked layer gave a {type(value).__name__}, not a tensor")
    return value


class DistilLoss(nn.Module):
    """Base class of the distillation losses, with the shared helpers.

    Args:
        model: the inner RecBole model (not the wrapper).
        dataset: the RecBole dataset the model was built on (field names and id counts).
        user_emb: ``[n_users, d]`` float tensor indexed by RecBole user id, or None.
        item_emb: ``[n_items, d]`` float tensor indexed by RecBole item id, or None.
        particular: compare only the first ``d`` columns of the hooked tensor, ``d`` = the profile width.

    Class attributes a subclass may set:
        source: 'output' or 'input': which side of the hooked layer the loss reads.
        layer: which hooked layer it reads, as ``set_outputs`` names it; None (default): the one hooked layer.
        calls: which calls of that layer in a batch it reads (default: the first); None: every call.
        needs: the matrices the loss requires, a subset of ``{'user', 'item'}``.
    """

    source = "output"
    layer = None
    calls = (0,)
    needs = frozenset({"user"})
    options = ()  # the extra wrap_model params this loss takes: utils.params.Param s (a layer: kind LAYER)

    @classmethod
    def options_schema(cls):
        """:attr:`options` as a schema whose errors name the loss (``HiddenDistil.rows must be ...``)."""
        return Schema(tuple(cls.options), where=cls.__name__, none_is_unset=False)

    @classmethod
    def check_options(cls, values):
        """``values`` checked against :attr:`options` (one ``UserError`` naming the loss and the key)."""
        return cls.options_schema().check(values)

    def __init__(self, model, dataset, user_emb=None, item_emb=None, particular=False):
        super().__init__()
        self.__dict__["_model"] = model  # not a submodule: its parameters belong to the wrapper already
        self.particular = bool(particular)
        self.uid_field = dataset.uid_field
        self.iid_field = dataset.iid_field
        self.n_users = dataset.user_num
        self.n_items = dataset.item_num
        for entity, matrix in (("user", user_emb), ("item", item_emb)):
            if entity in self.needs and matrix is None:
                raise UserError(
                    f"{type(self).__name__} needs {entity} profiles but none were loaded",
                    f"set llm_config.use_{entity}_emb: True and give {entity}s_emb_file in wrap_model",
                )
        self.register_buffer("llm_user_emb", _as_float(user_emb), persistent=False)
        self.register_buffer("llm_item_emb", _as_float(item_emb), persistent=False)

    @property
    def model(self):
        return self.__dict__["_model"]

    # --- reading the hooked data ------------------------------------------------------------------------------

    def reads(self):
        """What this loss reads each batch: a list of :class:`utils.wrapper.Read`; only that is captured.

        The default reads :attr:`source` of :attr:`layer`, calls :attr:`calls`; a loss reading more overrides it.
        """
        return [Read(self.layer, self.source, self.calls)]

    def hooked_value(self, hooked, source=None, layer=None, call=0):
        """The raw input tuple or output of one call of one hooked layer (default: :attr:`source` of
        :attr:`layer`)."""
        return hooked.value(self.layer if layer is None else layer, source or self.source, call)

    def hooked_tensor(self, hooked, source=None, layer=None, call=0):
        """The first tensor of :meth:`hooked_value`."""
        return first_tensor(self.hooked_value(hooked, source, layer, call))

    # --- targets ----------------------------------------------------------------------------------------------

    def user_targets(self, user_ids):
        return self._rows(self.llm_user_emb, user_ids)

    def item_targets(self, item_ids):
        return self._rows(self.llm_item_emb, item_ids)

    @staticmethod
    def _rows(matrix, ids):
        # index_select is several times faster than advanced indexing on CPU: this runs once per training batch
        if isinstance(ids, torch.Tensor) and ids.dim() == 1:
            return matrix.index_select(0, ids.to(matrix.device))
        return matrix[ids]

    # --- comparing --------------------------------------------------------------------------------------------

    def cut(self, hidden, target):
        """Match ``hidden [N, w]`` to ``target [N, d]``: the first ``d`` columns with ``particular``, else equal widths.

        Raises:
            UserError: rows differ, the hooked tensor is narrower than the profiles, or widths differ without
                ``particular``; the message gives both shapes.
        """
        hidden = as_rows(hidden)
        rows, columns = hidden.shape
        width = target.shape[1]
        if rows == target.shape[0] and (columns == width or (self.particular and columns > width)):
            return hidden[:, :width] if columns > width else hidden  # every batch comes here: no more work
        shapes = f"hooked {tuple(hidden.shape)} vs profiles {tuple(target.shape)}"
        if hidden.shape[0] != target.shape[0]:
            raise UserError(
                f"{type(self).__name__}: the hooked tensor has {hidden.shape[0]} rows but the batch gives "
                f"{target.shape[0]} ({shapes})",
                "hook a layer whose rows follow the batch, or use a loss that selects rows (e.g. for graph models)",
            )
        if self.particular:
            if hidden.shape[1] < width:
                raise UserError(
                    f"{type(self).__name__}: the hooked tensor is narrower than the profiles ({shapes})",
                    f"reduce the profiles to at most {hidden.shape[1]} columns with reduce_dim, or hook a wider layer",
                )
            return hidden[:, :width]
        if hidden.shape[1] != width:
            raise UserError(
                f"{type(self).__name__}: widths differ ({shapes})",
                "set particular: True in wrap_model to compare the first columns, or reduce_dim to the layer width",
            )
        return hidden

    def mse(self, hidden, target):
        """Mean squared error over all elements, after :meth:`cut`."""
        hidden = self.cut(hidden, target)
        return F.mse_loss(hidden.float(), target.float())

    def rmse(self, hidden, target):
        """Root of :meth:`mse`."""
        return torch.sqrt(self.mse(hidden, target) + 1e-12)

    def cosine_distance(self, hidden, target):
        """Mean of ``1 - cos(hidden_i, target_i)`` over rows, after :meth:`cut`."""
        hidden = self.cut(hidden, target)
        return (1.0 - F.cosine_similarity(hidden.float(), target.float(), dim=1, eps=1e-8)).mean()

    def distance(self, name, hidden, target):
        """Dispatch to ``'mse'``, ``'rmse'`` or ``'cosine'`` (a class's ``metric``, or the declared ``distance``
        option, whose kind admits only these: no other name reaches here)."""
        return getattr(self, _DISTANCES[name])(hidden, target)

    def forward(self, hooked, interaction):
        raise NotImplementedError(f"{type(self).__name__} must implement forward(hooked, interaction)")


_DISTANCES = {"mse": "mse", "rmse": "rmse", "cosine": "cosine_distance"}  # name in configs -> DistilLoss method


def rows_of(model):
    """How a hooked tensor's rows meet the batch when a loss is not told: 'ids' for a graph model (one that
    propagates over the whole user-item graph, ``norm_adj_matrix``: LightGCN, NGCF; its forward gives every user's
    and item's row), else 'batch'. Decided once, from the model, when the loss is built."""
    return "ids" if getattr(model, "norm_adj_matrix", None) is not None else "batch"


def _as_float(matrix):
    return None if matrix is None else matrix.float()


class UserRowsLoss(DistilLoss):
    """The hooked tensor has one row per batch interaction; each row should reconstruct its user's profile."""

    metric = "rmse"

    def batch_users(self, interaction, rows):
        """The user id of each hooked row (``rows`` of them)."""
        return interaction[self.uid_field]

    def forward(self, hooked, interaction):
        hidden = self.hooked_tensor(hooked)
        target = self.user_targets(self.batch_users(interaction, hidden.shape[0]))
        return self.distance(self.metric, hidden, target)


class GraphUserLoss(DistilLoss):
    """The hooked tensor holds every user (and item): take the rows of the batch's users.

    Accepts a ``(user_all, item_all)`` pair (e.g. a graph model's own forward, layer 1) or one tensor whose first
    ``n_users`` rows are the users (e.g. one of NGCF's propagation layers).
    """

    metric = "rmse"

    def all_users(self, hooked):
        value = self.hooked_value(hooked)
        if isinstance(value, tuple) and self.source == "input":
            value = value[0]
        if isinstance(value, (tuple, list)):
            value = value[0]
        if not isinstance(value, torch.Tensor):
            raise UserError(f"{type(self).__name__}: the hooked layer gave a {type(value).__name__}, not a tensor")
        if value.shape[0] not in (self.n_users, self.n_users + self.n_items):
            raise UserError(
                f"{type(self).__name__}: the hooked tensor has shape {tuple(value.shape)}, but rows for all "
                f"{self.n_users} users (or {self.n_users + self.n_items} users and items) were expected",
                "hook the graph model itself (layer 1) or one of its propagation layers",
            )
        return value[: self.n_users]

    def forward(self, hooked, interaction):
        users = interaction[self.uid_field]
        hidden = self.all_users(hooked)[users]
        return self.distance(self.metric, hidden, self.user_targets(users))


@register_loss
class HiddenDistil(DistilLoss):
    """The generic loss, configured in ``wrap_model`` instead of written in Python (options: :attr:`options`).

    ``rows`` says how the hooked tensor's rows meet the batch: 'batch' (one row per interaction, in order), 'ids'
    (the tensor holds every user or item, or every user then every item, as graph models give: take the batch's
    ids) or 'all' (the hooked layer is the entity's embedding table, and every row of it, ids 1 on, meets its profile
    in every batch, so that a user or item with few interactions is pulled as often as any other; with 'batch', the
    pull on an entity grows with its number of interactions). Left out (or 'auto'), it is decided once, when the
    loss is built: 'ids' for a graph model (one with a ``norm_adj_matrix``: LightGCN, NGCF), else 'batch';
    never from a batch's row count (a batch of exactly as many rows as users is still a batch).
    """

    needs = frozenset()
    options = (
        Param("layer", LAYER, doc="which hooked layer, as set_outputs names it; default: the one hooked layer"),
        Param("source", one_of("output", "input"), default="output", doc="which side of that layer"),
        Param("call", NON_NEGATIVE_INT, default=0, doc="which call of the layer in the batch (0: the first)"),
        Param("entity", one_of("user", "item"), default="user", doc="whose profiles"),
        Param("rows", one_of("auto", "batch", "ids", "all"), default="auto",
              doc="how hooked rows meet the batch: batch, ids or all; auto: ids for graph models, else batch, "
                  "decided when the loss is built"),
        Param("distance", one_of("rmse", "mse", "cosine"), default="rmse", doc="the comparison"),
    )

    def __init__(self, model, dataset, user_emb=None, item_emb=None, particular=False, **options):
        super().__init__(model, dataset, user_emb=user_emb, item_emb=item_emb, particular=particular)
        values = self.options_schema().filled(self.check_options(options))
        entity = values["entity"]
        if entity == "user" and user_emb is None or entity == "item" and item_emb is None:
            raise UserError(f"HiddenDistil with entity {entity} needs {entity} profiles but none were loaded",
                            f"set llm_config.use_{entity}_emb: True and give {entity}s_emb_file in wrap_model")
        self.layer, self.source, self.call = values["layer"], values["source"], values["call"]
        self.calls = (self.call,)
        self.entity, self.metric = entity, values["distance"]
        self.rows = values["rows"] if values["rows"] != "auto" else rows_of(model)

    def extra_repr(self):
        return f"entity={self.entity}, rows={self.rows}, distance={self.metric}"

    def _tensor(self, value):
        """The hooked tensor; from a graph model's (all users, all items) pair, the entity's half."""
        if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, torch.Tensor) for v in value):
            users, items = value
            if users.shape[0] == self.n_users and items.shape[0] == self.n_items:
                return users if self.entity == "user" else items
        return first_tensor(value)

    def forward(self, hooked, interaction):
        if self.rows == "all":
            return self._every_row(hooked)
        tensor = self._tensor(self.hooked_value(hooked, call=self.call))
        count = self.n_users if self.entity == "user" else self.n_items
        ids = interaction[self.uid_field if self.entity == "user" else self.iid_field]
        if self.rows == "ids":
            if tensor.shape[0] not in (count, self.n_users + self.n_items):
                raise UserError(f"HiddenDistil rows: ids reads a table of every {self.entity}, but the hooked tensor "
                                f"has {tensor.shape[0]} rows ({count} {self.entity}s)",
                                "hook a layer that gives every user / item (a graph model's layer 1), or use rows: "
                                "batch")
            if tensor.shape[0] == self.n_users + self.n_items and self.entity == "item":
                tensor = tensor[self.n_users:]
            tensor = tensor[ids]
        target = self.user_targets(ids) if self.entity == "user" else self.item_targets(ids)
        return self.distance(self.metric, tensor, target)

    def _every_row(self, hooked):
        """``rows: all``: the hooked embedding table's rows of every user (item), id 1 on (0 is padding)."""
        path = hooked.path(self.layer)
        module = self.model.get_submodule(path) if path else self.model
        count = self.n_users if self.entity == "user" else self.n_items
        if not isinstance(module, nn.Embedding) or module.num_embeddings != count:
            raise UserError(f"HiddenDistil rows: all reads the hooked layer's table, but {path or 'root'} is "
                            f"{type(module).__name__}, not an embedding of the {count} {self.entity}s",
                            f"hook the {self.entity} embedding (e.g. {self.entity}_mf_embedding) or use rows: batch")
        ids = torch.arange(1, count, device=module.weight.device)
        target = self.user_targets(ids) if self.entity == "user" else self.item_targets(ids)
        return self.distance(self.metric, module.weight[1:], target)


# --- per-model losses: what the ready scenarios in experiments/ use ---------------------------------------------


@register_loss
class NeumfUserRMSE(UserRowsLoss):
    """NeuMF: a hooked MLP layer's output (one row per interaction) reconstructs the user's profile."""


@register_loss
class NeumfUserCosine(UserRowsLoss):
    """NeuMF with cosine distance instead of RMSE."""

    metric = "cosine"


@register_loss
class SimpleXUserRMSE(UserRowsLoss):
    """SimpleX: the input of the hooked layer (the ``dropout`` after the user-history aggregation, one row per
    batch user) reconstructs the user's profile."""

    source = "input"

    def batch_users(self, interaction, rows):
        # SimpleX's batch repeats each user once per negative sample and keeps the first len/neg_seq_len rows.
        users = interaction[self.uid_field]
        if len(users) != rows and rows and len(users) % rows == 0:
            users = users[:rows]
        return users


@register_loss
class SimpleXUserCosine(SimpleXUserRMSE):
    """SimpleX with cosine distance instead of RMSE."""

    metric = "cosine"


@register_loss
class MultiVAEUserRMSE(UserRowsLoss):
    """MultiVAE: the input of the hooked decoder layer (the latent code of each batch user)."""

    source = "input"


@register_loss
class AutoIntUserRMSE(UserRowsLoss):
    """AutoInt (context-aware): the hooked layer's input, flattened per interaction, reconstructs the user's
    profile (e.g. the MLP's input, whose first columns are the user's field embeddings)."""

    source = "input"


@register_loss(aliases=("AutoIntUserCosSim",))  # the name seven of the original tool's AutoInt files use
class AutoIntUserCosine(AutoIntUserRMSE):
    """AutoInt with cosine distance."""

    metric = "cosine"


@register_loss
class SASRecUserRMSE(UserRowsLoss):
    """SASRec (sequential): the sequence representation (the model's own output, layer 1) stands for the user."""


@register_loss
class NGCFUserRMSE(GraphUserLoss):
    """NGCF: a propagation layer's (or the model's) output over all users; the batch users' rows."""


@register_loss
class LightGCNUserRMSE(GraphUserLoss):
    """LightGCN: the model's own output (layer 1, all users and items); the batch users' rows."""


@register_loss(aliases=("LightGCNUserCosSim",))  # the name earlier configs use
class LightGCNUserCosine(GraphUserLoss):
    """LightGCN with cosine distance."""

    metric = "cosine"
