"""NeuMF: RecBole's, plus an opt-in full-ranking scorer that computes per user and per item what does not need pairs.

``model: NeuMF`` finds this class (``models/`` comes before RecBole); it is RecBole's NeuMF, with the same layers,
layer numbers, settings, training and checkpoints. RecBole's NeuMF has no ``full_sort_predict``, so full-ranking
evaluation scores every (user, item) pair through the whole network: on ml-100k, 1.6 million pairs per validation,
five times the time of a training epoch on one core.

With ``neumf_full_sort: parts`` the scores come from the same formula split where it is linear: the first MLP
layer is ``W [u; i] + b = W_u u + W_i i + b``, computed once per user and once per item and added per pair, and the
GMF half of the predict layer, ``w . (p * q)``, is a product of a user matrix and an item matrix. Only what
follows the first layer's activation runs per pair. The scores equal RecBole's up to float rounding (1e-7 to 1e-6),
so a ranking can differ where two items' scores tie to that precision; the default (``pairs``) keeps RecBole's
scorer, and with it every number this tool has committed.
"""

import torch
from recbole.model.general_recommender.neumf import NeuMF as RecBoleNeuMF
from torch import nn

from utils.params import Param, Schema, check_model_settings, one_of

SCORERS = ("pairs", "parts")
FULL_SORT = Param("neumf_full_sort", one_of(*SCORERS, words="pairs or parts", hint="pairs (RecBole's scorer, the "
                                            "default) or parts (the same scores, several times faster)"),
                  default="pairs", doc="the full-ranking scorer: RecBole's per pair, or the factorised one")
SETTINGS = Schema((FULL_SORT,), open_=True, summary="NeuMF's own settings")
USERS_PER_CHUNK = 32  # users scored together by ``parts``: [32, n_items, width] stays in cache-friendly sizes


class NeuMF(RecBoleNeuMF):
    """RecBole's NeuMF; ``neumf_full_sort: parts`` adds the factorised full-ranking scorer (module docstring)."""

    default_config = {"neumf_full_sort": "pairs"}
    settings = SETTINGS

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.full_sort_scorer = check_model_settings(type(self), config)["neumf_full_sort"]

    def full_sort_predict(self, interaction):
        if self.full_sort_scorer != "parts":
            raise NotImplementedError  # RecBole's trainer then scores every pair through predict()
        users = interaction[self.USER_ID]
        return torch.cat([self._score_all_items(users[start:start + USERS_PER_CHUNK])
                          for start in range(0, len(users), USERS_PER_CHUNK)], dim=0).view(-1)

    def _score_all_items(self, users):
        """Sigmoid scores ``[len(users), n_items]``, equal to ``predict`` on every pair up to float rounding."""
        items = torch.arange(self.n_items, device=users.device)
        logits = self.predict_layer.bias.view(1, 1)
        weight = self.predict_layer.weight.view(-1)
        if self.mf_train:
            gmf_weight = weight[:self.mf_embedding_size]
            logits = logits + (self.user_mf_embedding(users) * gmf_weight) @ self.item_mf_embedding(items).T
        if self.mlp_train:
            hidden = self._mlp_all_items(self.user_mlp_embedding(users), self.item_mlp_embedding(items))
            mlp_weight = weight[self.mf_embedding_size:] if self.mf_train else weight
            logits = logits + hidden @ mlp_weight
        return self.sigmoid(logits)

    def _mlp_all_items(self, user_e, item_e):
        """The MLP's output for every (user, item) pair, ``[users, items, width]``; the first layer split in two."""
        linears = [m for m in self.mlp_layers.mlp_layers if isinstance(m, nn.Linear)]
        first = linears[0]
        width = user_e.shape[-1]
        user_part = user_e @ first.weight[:, :width].T + first.bias
        item_part = item_e @ first.weight[:, width:].T
        hidden = torch.relu(user_part.unsqueeze(1) + item_part.unsqueeze(0))
        for linear in linears[1:]:
            hidden = torch.relu(linear(hidden))
        return hidden
