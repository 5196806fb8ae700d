"""Sparse embedding updates (``sparse_embeddings: true``): the cost of a training step follows the batch, not the
size of the embedding tables.

With RecBole's dense update, every step writes a gradient the size of each ``nn.Embedding`` table and Adam then
updates every row of it; at 100k users and items that is most of a NeuMF step. Here the tables look rows up with
``sparse=True`` (their gradient holds only the rows of the batch) and :class:`TableOptimizer` updates them with
``torch.optim.SparseAdam`` (lazy Adam: only the touched rows, and only their moments, change); every other
parameter keeps the configured optimizer. Whether a table's gradient is really sparse is seen at the step that first
gives it one: a model that uses a whole table densely (LightGCN propagates ``embedding.weight`` over the graph)
gives a dense gradient, and that table goes back to the configured optimizer, said in one line.
"""

import torch
from torch import nn

STATE_FORMAT = "llmkt-table-optimizer/1"


def _print(text):
    print(text, flush=True)


def embedding_tables(model):
    """``{dotted path: nn.Embedding}`` of every embedding table in ``model`` that trains."""
    return {name: module for name, module in model.named_modules()
            if isinstance(module, nn.Embedding) and module.weight.requires_grad}


class TableOptimizer:
    """Two optimizers stepped as one: SparseAdam for the embedding tables with sparse gradients, the configured
    optimizer (``dense``) for everything else. RecBole's trainer steps it, zeroes it and saves its ``state_dict``.

    A table is undecided until its first gradient: a sparse one puts it on SparseAdam, a dense one (the model used
    the whole table) on the configured optimizer, with its module's ``sparse`` flag off again.

    Args:
        tables: ``{path: nn.Embedding}``, their ``sparse`` flag already on.
        dense: the configured optimizer over every other trainable parameter (it may hold none).
        make_dense_group: ``params -> dict`` of a parameter group for ``dense`` (its lr and weight decay).
        lr: SparseAdam's learning rate.
        model_name: for the console line about tables kept dense.
        say: where that line goes.
    """

    def __init__(self, tables, dense, make_dense_group, lr, model_name="", say=_print):
        self.tables, self.dense, self.lr, self.model_name, self.say = dict(tables), dense, lr, model_name, say
        self._make_dense_group = make_dense_group
        self.undecided = list(self.tables)
        self.sparse_names, self.dense_groups = [], []  # in the order decided: state_dict follows it
        self.sparse = None

    # --- what RecBole's trainer calls ---------------------------------------------------------------------------

    @property
    def param_groups(self):
        return self.dense.param_groups + (self.sparse.param_groups if self.sparse is not None else [])

    def zero_grad(self, set_to_none=True):
        self.dense.zero_grad(set_to_none=set_to_none)
        for module in self.tables.values():
            module.weight.grad = None

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        self._decide()
        for name in self.sparse_names:
            weight = self.tables[name].weight
            if weight.grad is not None and not weight.grad.is_sparse:  # a dense use after a sparse first step
                weight.grad = weight.grad.to_sparse(sparse_dim=1)
        if self.sparse is not None:
            self.sparse.step()
        self.dense.step()
        return loss

    def state_dict(self):
        """Tensors and plain values only (checkpoints load with ``weights_only=True``)."""
        return {"format": STATE_FORMAT, "sparse_names": list(self.sparse_names),
                "dense_groups": [list(group) for group in self.dense_groups],
                "sparse": self.sparse.state_dict() if self.sparse is not None else None,
                "dense": self.dense.state_dict()}

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict`: the same tables on the same side, then each optimizer's state.

        Raises:
            ValueError: the state is not this optimizer's, or names tables this model does not have.
        """
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError("the checkpoint's optimizer was not written with sparse_embeddings: true")
        unknown = [n for n in state["sparse_names"] + sum(state["dense_groups"], []) if n not in self.tables]
        if unknown or self.sparse_names or self.dense_groups:
            raise ValueError(f"its embedding tables {unknown or 'were decided already'} do not fit this model")
        for group in state["dense_groups"]:
            self._to_dense(group, quiet=True)
        self._to_sparse(state["sparse_names"])
        if state["sparse"] is not None:
            self.sparse.load_state_dict(state["sparse"])
        self.dense.load_state_dict(state["dense"])

    # --- deciding each table's side -----------------------------------------------------------------------------

    def _decide(self):
        ready = [n for n in self.undecided if self.tables[n].weight.grad is not None]
        if not ready:
            return
        self._to_sparse([n for n in ready if self.tables[n].weight.grad.is_sparse])
        self._to_dense([n for n in ready if not self.tables[n].weight.grad.is_sparse])

    def _to_sparse(self, names):
        if not names:
            return
        params = [self.tables[n].weight for n in names]
        if self.sparse is None:
            self.sparse = torch.optim.SparseAdam(params, lr=self.lr)
        else:
            self.sparse.add_param_group({"params": params})
        self.sparse_names += names
        self.undecided = [n for n in self.undecided if n not in names]

    def _to_dense(self, names, quiet=False):
        if not names:
            return
        for name in names:
            self.tables[name].sparse = False
        self.dense.add_param_group(self._make_dense_group([self.tables[n].weight for n in names]))
        self.dense_groups.append(list(names))
        self.undecided = [n for n in self.undecided if n not in names]
        if not quiet:
            self.say(f"sparse_embeddings: {self.model_name} uses {', '.join(names)} as whole tables (dense "
                        "gradient): kept on the configured optimizer")

    def touched_rows(self, name):
        """Rows of table ``name`` that SparseAdam holds moments for (non-zero), as a sorted 1-d tensor."""
        state = self.sparse.state[self.tables[name].weight] if self.sparse is not None else {}
        if "exp_avg_sq" not in state:
            return torch.empty(0, dtype=torch.long)
        return torch.nonzero(state["exp_avg_sq"].abs().sum(dim=1) > 0).flatten()


def build_table_optimizer(model, make_optimizer, lr, weight_decay, model_name, say=_print):
    """Turn ``model``'s embedding tables sparse and return their :class:`TableOptimizer` (None: no tables).

    Args:
        make_optimizer: ``params -> optimizer``, the configured one (RecBole's ``_build_optimizer``).
        lr, weight_decay: the configured ones (SparseAdam takes no weight decay: said in one line when not 0).
        say: where the console lines go.
    """
    tables = embedding_tables(model)
    if not tables:
        say(f"sparse_embeddings: {model_name} has no nn.Embedding tables; the configured optimizer updates it "
            "densely")
        return None
    for module in tables.values():
        module.sparse = True
    table_params = {id(m.weight) for m in tables.values()}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in table_params]
    dense = make_optimizer(rest if rest else [torch.zeros(0, requires_grad=True)])
    defaults = {key: value for key, value in dense.defaults.items() if key in ("lr", "weight_decay")}
    say(f"sparse_embeddings: {len(tables)} tables of {model_name} ({', '.join(tables)}) on SparseAdam (lr {lr}); "
        + (f"weight_decay {weight_decay} is not applied to them (SparseAdam has none; the model's own reg loss on "
           "the looked-up rows still is)" if weight_decay else "no weight decay anywhere (weight_decay 0)"))
    return TableOptimizer(tables, dense, lambda params: {"params": params, **defaults}, lr, model_name, say)
