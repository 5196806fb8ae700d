"""KAR-style knowledge augmentation: LLM profile vectors enter a context-aware model as extra feature fields.

The comparison the LLM-KT paper makes: knowledge injected into a hidden layer through an auxiliary loss (ours)
versus knowledge fed as extra *inputs* (KAR, Xi et al. 2023). Here a small mixture-of-experts adapter maps the
pair (user profile, item profile) to ``kar_fields`` extra field embeddings that the backbone (AutoInt, DCN,
DeepFM) sees next to its own fields, at training and at prediction time.

Settings (in the experiment's RecBole part): ``kar_user_emb_file`` / ``kar_item_emb_file`` (``.pt`` matrices with
one row per real user / item in RecBole's order, e.g. written by ``preprocess_from_json``; at least one),
``kar_experts`` (default 4), ``kar_hidden_size`` (default 128), ``kar_fields`` (default 2).
"""

import torch
from torch import nn

from utils.embeddings import load_matrix

KAR_KEYS = ("kar_user_emb_file", "kar_item_emb_file", "kar_experts", "kar_hidden_size", "kar_fields")


class MixtureOfExperts(nn.Module):
    """``out = sum_k softmax(gate(x))_k * expert_k(x)``, reshaped to ``[B, fields, width]``."""

    def __init__(self, in_features, width, fields, experts, hidden):
        super().__init__()
        self.fields, self.width = fields, width
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, fields * width))
            for _ in range(experts)
        )
        self.gate = nn.Linear(in_features, experts)

    def forward(self, x):
        weights = torch.softmax(self.gate(x), dim=-1)  # [B, K]
        outputs = torch.stack([expert(x) for expert in self.experts], dim=-1)  # [B, fields * width, K]
        mixed = (outputs * weights.unsqueeze(1)).sum(dim=-1)
        return mixed.view(x.shape[0], self.fields, self.width)


class KarMixin:
    """Put in front of a RecBole context-aware model class: ``class AutoIntKar(KarMixin, AutoInt)``.

    The backbone sizes its layers from ``num_feature_field`` in its ``__init__``; the property below counts the
    extra fields once RecBole's ContextRecommender has finished counting the dataset's own (it assigns
    ``first_order_linear`` last), so the backbone builds its layers for ``fields + kar_fields`` inputs.
    """

    extra_config_keys = KAR_KEYS

    @property
    def num_feature_field(self):
        own = self.__dict__.get("_own_feature_fields", 0)
        counted = "first_order_linear" in self.__dict__.get("_modules", {})
        return own + (self.__dict__.get("_kar_fields", 0) if counted else 0)

    @num_feature_field.setter
    def num_feature_field(self, value):
        self.__dict__["_own_feature_fields"] = value

    def __init__(self, config, dataset):
        self.__dict__["_kar_fields"] = int(config["kar_fields"] or 2)
        super().__init__(config, dataset)
        self.kar_uid, self.kar_iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
        matrices = []
        for entity, key, rows in (("user", "kar_user_emb_file", dataset.user_num),
                                  ("item", "kar_item_emb_file", dataset.item_num)):
            if config[key]:
                matrix = load_matrix(config[key], expected_rows=rows, start_with_1=True, entity=entity)
                self.register_buffer(f"kar_{entity}_emb", matrix, persistent=False)
                matrices.append(matrix)
            else:
                self.register_buffer(f"kar_{entity}_emb", None, persistent=False)
        if not matrices:
            from utils.errors import UserError

            raise UserError(f"{type(self).__name__} needs kar_user_emb_file and/or kar_item_emb_file",
                            "point them at profile matrices, e.g. those preprocess_from_json writes")
        width = sum(m.shape[1] for m in matrices)
        self.kar_adapter = MixtureOfExperts(width, self.embedding_size, self.__dict__["_kar_fields"],
                                            int(config["kar_experts"] or 4), int(config["kar_hidden_size"] or 128))
        self.kar_adapter.apply(self._init_weights)

    def kar_inputs(self, interaction):
        parts = []
        if self.kar_user_emb is not None:
            parts.append(self.kar_user_emb[interaction[self.kar_uid]])
        if self.kar_item_emb is not None:
            parts.append(self.kar_item_emb[interaction[self.kar_iid]])
        return torch.cat(parts, dim=-1)

    def concat_embed_input_fields(self, interaction):
        fields = super().concat_embed_input_fields(interaction)  # [B, F, E]
        return torch.cat((fields, self.kar_adapter(self.kar_inputs(interaction))), dim=1)  # [B, F + kar, E]
