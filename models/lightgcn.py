"""LightGCN (RecBole's) whose sampled evaluation propagates the graph once per evaluation, not once per batch.

RecBole's ``LightGCN.predict`` runs the whole-graph propagation (``forward``) for every batch it scores, so a
sampled (uniN/popN) evaluation costs batches x propagation, while its full ranking already keeps the propagated
tables (``restore_user_e``, ``restore_item_e``: cleared by each training step, computed again by the first
evaluation batch after it). Here ``predict`` uses those same tables; training is RecBole's, unchanged.
``utils.trainer`` clears the tables when an evaluation starts, so that they are always those of the weights
evaluated (a loaded checkpoint included).
"""

import torch
from recbole.model.general_recommender.lightgcn import LightGCN as RecBoleLightGCN


class LightGCN(RecBoleLightGCN):
    """RecBole's LightGCN; ``predict`` without gradients reads the propagated tables of the evaluation."""

    def predict(self, interaction):
        if torch.is_grad_enabled():  # a caller that trains through predict gets RecBole's own
            return super().predict(interaction)
        if self.restore_user_e is None or self.restore_item_e is None:
            self.restore_user_e, self.restore_item_e = self.forward()
        users = self.restore_user_e[interaction[self.USER_ID]]
        items = self.restore_item_e[interaction[self.ITEM_ID]]
        return torch.mul(users, items).sum(dim=1)
