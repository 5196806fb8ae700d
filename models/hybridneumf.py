"""HybridNeuMF: NeuMF whose item embeddings can come from the items' text, for a fair item cold start (issue 25).

``model: HybridNeuMF`` finds this class. Both of NeuMF's item towers (``item_mf_embedding``, ``item_mlp_embedding``)
read the item's text vector (``item_text_file``: a ``[items, d]`` matrix in RecBole's item id order, one row per
real item, e.g. MiniLM vectors of title, year and genres written by tools/ladder_targets.py), one of three ways
(``item_text_mode``):

- ``none``: NeuMF itself (models/neumf.py), the text unused: the baseline, trained exactly as NeuMF;
- ``ridge``: NeuMF trained as usual; whenever it scores, the embeddings of the items with fewer than
  ``text_min_count`` training interactions are replaced, in both towers, by a ridge regression from text to the
  learned embeddings fitted on the items with at least ``ridge_fit_count`` (refitted whenever the weights changed);
- ``hybrid``: each tower's item embedding is ``id embedding + W text`` (W learned), trained with id dropout: in
  every training batch an item's id embedding is dropped with probability ``id_dropout``, so the text path has to
  carry the item alone; items with fewer than ``text_min_count`` training interactions are scored from the text
  path only (an id never trained holds only its initialisation).

``candidate_items: sparse`` ranks only the items with at most ``candidate_max_count`` training interactions (with an
item-side cold start of k, the cold items and the naturally rare ones; with k = 0 exactly the cold items); every
other item scores -inf. ``all`` (the default) ranks every item.
"""

from pathlib import Path

import torch
from torch import nn

from models.neumf import FULL_SORT, NeuMF
from utils.embeddings import load_float_matrix
from utils.errors import UserError
from utils.params import NON_NEGATIVE_INT, PROBABILITY, Kind, Param, Rule, Schema, one_of

MODES = ("none", "ridge", "hybrid")
CANDIDATES = ("all", "sparse")
CANDIDATE_ITEMS = Param("candidate_items", one_of(*CANDIDATES, words="all or sparse", hint="sparse ranks only the "
                                                  "items with at most candidate_max_count training interactions"),
                        default="all", doc="the items ranked: all, or the sparse ones only")
CANDIDATE_MAX_COUNT = Param("candidate_max_count", NON_NEGATIVE_INT, default=0,
                            doc="with candidate_items: sparse, the most training interactions a ranked item has")
ITEM_TEXT_FILE = Param("item_text_file", Kind(lambda v: isinstance(v, str) and bool(v), "a file path"),
                       doc="the [items, d] matrix of item text vectors (read when text is used)")
SETTINGS = Schema((
    FULL_SORT,
    Param("item_text_mode", one_of(*MODES, words="none, ridge or hybrid"), default="none",
          doc="item text in the item towers: none, a ridge map for sparse items, or ids + projected text"),
    ITEM_TEXT_FILE,
    Param("text_min_count", NON_NEGATIVE_INT, default=1, doc="items with fewer training interactions use their text"),
    Param("ridge_fit_count", NON_NEGATIVE_INT, default=10, doc="items with this many or more fit the ridge map"),
    Param("ridge_alpha", Kind(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
                              "a number of 0 or more"), default=1.0, doc="the ridge map's regularization"),
    Param("id_dropout", PROBABILITY, default=0.5, doc="hybrid: the chance an item's id is dropped in training"),
    CANDIDATE_ITEMS,
    CANDIDATE_MAX_COUNT,
), open_=True, rules=(Rule(lambda v, c: v.get("candidate_items") != "sparse" or v.get("neumf_full_sort") == "parts",
                           "candidate_items: sparse needs neumf_full_sort: parts, got {value[neumf_full_sort]!r}",
                           "set neumf_full_sort: parts (RecBole's pair scorer would bypass the candidate set)"),),
    summary="HybridNeuMF's own settings")


def item_counts(dataset, n_items):
    """Training interactions per internal item id (the model is built on the training split)."""
    items = dataset.inter_feat[dataset.iid_field]
    return torch.bincount(items, minlength=n_items)


def load_item_text(path, n_items):
    """``[n_items, d]`` text vectors, row = internal id (row 0, the padding item, zeros)."""
    if not path:
        raise UserError("HybridNeuMF needs item_text_file", "a [items, d] matrix of item text vectors "
                        "(tools/ladder_targets.py writes one: ladder_item_text.pt)")
    matrix = load_float_matrix(Path(path).resolve())
    if matrix.shape[0] != n_items - 1:
        raise UserError(f"item_text_file {path}: {matrix.shape[0]} rows for the dataset's {n_items - 1} items",
                        "one row per real item, in RecBole's item id order")
    return torch.vstack([torch.zeros(1, matrix.shape[1]), matrix])


def ridge_map(features, targets, alpha):
    """``W`` of the ridge regression ``[features, 1] W ~ targets`` (the bias column not penalised)."""
    x = torch.cat([features, torch.ones(len(features), 1, dtype=features.dtype)], dim=1).double()
    penalty = alpha * torch.eye(x.shape[1], dtype=torch.float64)
    penalty[-1, -1] = 0.0
    return torch.linalg.solve(x.T @ x + penalty, x.T @ targets.double()).float()


class TextItemEmbedding(nn.Module):
    """An item tower's embedding: ids, the text, or both (see the module docstring); called with item ids like
    ``nn.Embedding``, so NeuMF's forward, predict and factorised scorer use it unchanged."""

    def __init__(self, ids, text, mode, sparse, fit, id_dropout=0.0, ridge_alpha=1.0):
        super().__init__()
        self.ids, self.mode, self.id_dropout, self.ridge_alpha = ids, mode, id_dropout, ridge_alpha
        self.register_buffer("text", text, persistent=False)
        self.register_buffer("sparse", sparse, persistent=False)  # [n_items] bool: scored from the text only
        self.register_buffer("fit", fit, persistent=False)  # [n_items] bool: the ridge map is fitted on these
        self.project = nn.Linear(text.shape[1], ids.embedding_dim, bias=False) if mode == "hybrid" else None
        if self.project is not None:
            nn.init.normal_(self.project.weight, std=0.01)
        self._ridge = (None, None)  # (the ids' weight version it was fitted on, the mapped table)

    def forward(self, items):
        if self.mode == "hybrid":
            keep = ~self.sparse[items]
            if self.training and self.id_dropout > 0:
                keep = keep & (torch.rand(items.shape, device=items.device) >= self.id_dropout)
            return self.ids(items) * keep.unsqueeze(-1) + self.project(self.text[items])
        if self.mode == "ridge" and not self.training:
            return self.mapped_table()[items]
        return self.ids(items)

    def mapped_table(self):
        """The id table with the sparse items' rows replaced by the ridge map of their text (cached per weights)."""
        weight = self.ids.weight
        if self._ridge[0] != weight._version:
            with torch.no_grad():
                w = ridge_map(self.text[self.fit], weight[self.fit], self.ridge_alpha)
                mapped = torch.cat([self.text, torch.ones(len(self.text), 1)], dim=1) @ w
                table = torch.where(self.sparse.unsqueeze(-1), mapped, weight)
            self._ridge = (weight._version, table)
        return self._ridge[1]


class HybridNeuMF(NeuMF):
    """NeuMF whose two item towers can read item text (module docstring)."""

    default_config = {**NeuMF.default_config, "item_text_mode": "none", "item_text_file": None,
                      "text_min_count": 1, "ridge_fit_count": 10, "ridge_alpha": 1.0, "id_dropout": 0.5,
                      "candidate_items": "all", "candidate_max_count": 0}
    settings = SETTINGS

    def __init__(self, config, dataset):
        super().__init__(config, dataset)  # checks SETTINGS, the rule across candidate_items and the scorer too
        mode, candidates = config["item_text_mode"], config["candidate_items"]
        counts = item_counts(dataset, self.n_items)
        self.candidates = None if candidates == "all" else counts <= int(config["candidate_max_count"])
        if self.candidates is not None:
            self.candidates[0] = False  # the padding item
        if mode == "none":
            return
        text = load_item_text(config["item_text_file"], self.n_items)
        sparse, fit = counts < int(config["text_min_count"]), counts >= int(config["ridge_fit_count"])
        options = {"id_dropout": float(config["id_dropout"]), "ridge_alpha": float(config["ridge_alpha"])}
        self.item_mf_embedding = TextItemEmbedding(self.item_mf_embedding, text, mode, sparse, fit, **options)
        self.item_mlp_embedding = TextItemEmbedding(self.item_mlp_embedding, text, mode, sparse, fit, **options)

    def full_sort_predict(self, interaction):
        scores = super().full_sort_predict(interaction)
        if self.candidates is None:
            return scores
        scores = scores.view(-1, self.n_items).clone()
        scores[:, ~self.candidates.to(scores.device)] = -torch.inf
        return scores.view(-1)
