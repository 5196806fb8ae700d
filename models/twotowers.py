"""TwoTowers: a user tower and an item tower over ids and features, scored by their dot product.

A RecBole context-aware model (``model: 'TwoTowers'``), found by name in this folder. The user tower embeds every
user field of the dataset (user id, and with ``load_col`` e.g. age, gender, occupation), the item tower every item
field (item id, release year, genres, ...); each tower is an MLP whose last layer is the representation, and the
score is the dot product of the two, trained with binary cross-entropy on RecBole's labels (positives and
sampled negatives). Distil into ``user_out`` (the user representation, one row per interaction).
"""

import torch
from recbole.model.abstract_recommender import ContextRecommender
from recbole.model.layers import MLPLayers
from recbole.utils import InputType
from torch import nn
from torch.nn.init import constant_, xavier_normal_


class TwoTowers(ContextRecommender):
    """User and item towers over RecBole's field embeddings; ``score = <user_tower(u), item_tower(i)>``.

    Settings: ``embedding_size`` (per field), ``tower_hidden_size`` (list; the last entry is the representation
    width), ``dropout_prob``.
    """

    input_type = InputType.POINTWISE
    default_config = {"embedding_size": 16, "tower_hidden_size": [128, 64], "dropout_prob": 0.1}

    def __init__(self, config, dataset):
        config["double_tower"] = True  # RecBole then embeds user fields and item fields separately
        super().__init__(config, dataset)
        hidden = config["tower_hidden_size"]
        dropout = config["dropout_prob"]
        user_fields = self.user_token_field_num + self.user_float_field_num + self.user_token_seq_field_num
        item_fields = self.item_token_field_num + self.item_float_field_num + self.item_token_seq_field_num
        self.user_tower = MLPLayers([self.embedding_size * user_fields] + hidden, dropout, activation="relu")
        self.item_tower = MLPLayers([self.embedding_size * item_fields] + hidden, dropout, activation="relu")
        self.user_out = nn.Linear(hidden[-1], hidden[-1])
        self.item_out = nn.Linear(hidden[-1], hidden[-1])
        self.loss = nn.BCEWithLogitsLoss()
        self.sigmoid = nn.Sigmoid()
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Embedding):
            xavier_normal_(module.weight.data)
        elif isinstance(module, nn.Linear):
            xavier_normal_(module.weight.data)
            if module.bias is not None:
                constant_(module.bias.data, 0)

    @staticmethod
    def _fields(sparse, dense):
        """Concatenate the sparse ``[B, n, E]`` and embedded float ``[B, m, E]`` fields of one side."""
        parts = [sparse] if sparse is not None else []
        if dense is not None and dense.dim() == 3:
            parts.append(dense)
        return torch.cat(parts, dim=1)

    def towers(self, interaction):
        """The user and item representations, ``[B, d]`` each."""
        user_sparse, user_dense, item_sparse, item_dense = self.double_tower_embed_input_fields(interaction)
        users = self._fields(user_sparse, user_dense)
        items = self._fields(item_sparse, item_dense)
        batch = users.shape[0]
        return (self.user_out(self.user_tower(users.reshape(batch, -1))),
                self.item_out(self.item_tower(items.reshape(batch, -1))))

    def forward(self, interaction):
        users, items = self.towers(interaction)
        return (users * items).sum(dim=-1)

    def calculate_loss(self, interaction):
        return self.loss(self.forward(interaction), interaction[self.LABEL])

    def predict(self, interaction):
        return self.sigmoid(self.forward(interaction))
