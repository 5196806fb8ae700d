"""LightGCN (RecBole's) whose sampled evaluation propagates the graph once per evaluation, not once per batch.

RecBole's ``LightGCN.predict`` runs the whole-graph propagation (``forward``) for every batch it scores, so a
sampled (uniN/popN) evaluation costs batches x propagation, while its full ranking already keeps the propagated
tables (``restore_user_e``, ``restore_item_e``: cleared by each training step, computed again by the first
evaluation batch after it). Here ``predict`` uses those same tables; training is RecBole's, unchanged.
``utils.trainer`` clears the tables when an evaluation starts, so that they are always those of the weights
evaluated (a loaded checkpoint included).

Its normalised adjacency matrix is RecBole's too, entry for entry and in the same order, built from index arrays
instead of RecBole's dictionary of keys: at 10^7 interactions RecBole's build took 4.5 GB above the process, the
arrays 1.2 GB (``benchmarks/adjacency.py``).
"""

import numpy as np
import torch
from recbole.model.general_recommender.lightgcn import LightGCN as RecBoleLightGCN


def normalized_adjacency(n_users, n_items, interactions):
    """``D^-1/2 A D^-1/2`` of the user-item graph as RecBole's ``LightGCN.get_norm_adj_mat`` returns it.

    RecBole inserts the user->item pairs (in the order of the interaction matrix), then the item->user pairs, into a
    dictionary (a repeated pair counts once, where it first came), and its sparse products keep, row by row, that
    order of insertion; the summation order of the propagation follows it, so it is kept here too.

    Args:
        interactions (scipy.sparse.coo_matrix): the ``[n_users, n_items]`` training interactions.
    """
    n = n_users + n_items
    users, items = interactions.row.astype(np.int64), interactions.col.astype(np.int64) + n_users
    rows, cols = np.concatenate([users, items]), np.concatenate([items, users])
    del users, items
    _, first = np.unique(rows * n + cols, return_index=True)  # each pair once, at its first insertion
    first.sort()
    rows, cols = rows[first], cols[first]
    del first
    order = np.argsort(rows, kind="stable")
    rows, cols = rows[order], cols[order]
    del order
    scale = np.power(np.bincount(rows, minlength=n) + 1e-7, -0.5)  # RecBole's epsilon, in float64 as there
    values = torch.from_numpy((scale[rows] * scale[cols]).astype(np.float32))
    return torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows, cols])), values, (n, n), check_invariants=False)


class LightGCN(RecBoleLightGCN):
    """RecBole's LightGCN; ``predict`` without gradients reads the propagated tables of the evaluation, and the
    adjacency matrix is built without RecBole's dictionary of keys (module docstring)."""

    def get_norm_adj_mat(self):
        return normalized_adjacency(self.n_users, self.n_items, self.interaction_matrix)

    def predict(self, interaction):
        if torch.is_grad_enabled():  # a caller that trains through predict gets RecBole's own
            return super().predict(interaction)
        if self.restore_user_e is None or self.restore_item_e is None:
            self.restore_user_e, self.restore_item_e = self.forward()
        users = self.restore_user_e[interaction[self.USER_ID]]
        items = self.restore_item_e[interaction[self.ITEM_ID]]
        return torch.mul(users, items).sum(dim=1)
