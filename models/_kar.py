"""KAR-style knowledge augmentation: LLM profile vectors enter a context-aware model as extra feature fields.

The comparison the LLM-KT paper makes: knowledge injected into a hidden layer through an auxiliary loss (ours)
versus knowledge fed as extra *inputs* (KAR, Xi et al. 2023). Here a small mixture-of-experts adapter maps the
pair (user profile, item profile) to ``kar_fields`` extra field embeddings that the backbone (AutoInt, DCN,
DeepFM) sees next to its own fields, at training and at prediction time.

Settings (in the experiment's RecBole part): ``kar_user_emb_file`` / ``kar_item_emb_file`` (``.pt`` matrices with
one row per real user / item in RecBole's order, e.g. written by ``preprocess_from_json``, or JSON profile files,
whose rows are picked by id; at least one), ``kar_experts`` (default 4), ``kar_hidden_size`` (default 128),
``kar_fields`` (default 2); optional checks ``kar_user_width``, ``kar_item_width`` (the profile widths) and
``kar_output_dim`` (the width of each extra field, which is the backbone's ``embedding_size``).

The original tool's KAR files name the models ``AutoIntKAR``, ``DCNKAR``, ``DeepFMKAR`` (found here, names being
matched without case) and use other keys; :func:`translate_original_keys` maps them onto these.
"""

import torch
from torch import nn

from utils.embeddings import align_rows, embeddings_dir, load_matrix, read_profile_matrix
from utils.errors import UserError
from utils.paths import inside_name

KAR_KEYS = ("kar_user_emb_file", "kar_item_emb_file", "kar_experts", "kar_hidden_size", "kar_fields",
            "kar_user_width", "kar_item_width", "kar_output_dim")
# the original tool's key -> ours; profile JSON names are resolved in <embeddings_path>/<dataset>/, as it did
ORIGINAL_KAR_KEYS = {
    "user_profile_json": "kar_user_emb_file",
    "item_profile_json": "kar_item_emb_file",
    "user_kar_emb": "kar_user_width",
    "item_kar_emb": "kar_item_width",
    "item_kar_experts_n": "kar_experts",
    "output_kar_dim": "kar_output_dim",
}


def translate_original_keys(recbole, embeddings_path):
    """The RecBole part with the original tool's KAR keys replaced by ours (see :data:`ORIGINAL_KAR_KEYS`).

    With ``output_kar_dim`` the adapter adds one field, as the original's did, unless ``kar_fields`` is set.

    Returns:
        (dict, list of str): the translated settings and the original keys that were found.

    Raises:
        UserError: an original key given together with the key it maps onto.
    """
    found = [key for key in ORIGINAL_KAR_KEYS if key in recbole]
    translated = {key: value for key, value in recbole.items() if key not in ORIGINAL_KAR_KEYS}
    for key in found:
        ours, value = ORIGINAL_KAR_KEYS[key], recbole[key]
        if ours in recbole:
            raise UserError(f"both '{key}' (the original tool's name) and '{ours}' are set",
                            f"keep one: '{key}' is read as '{ours}'")
        if key.endswith("_profile_json") and isinstance(value, str):
            value = str(embeddings_dir(embeddings_path, str(recbole.get("dataset"))) / inside_name(value, key))
        translated[ours] = value
    if "output_kar_dim" in recbole:
        translated.setdefault("kar_fields", 1)
    return translated, found


def profile_matrix(path, dataset, field, entity):
    """``[n + 1, d]``, row index == RecBole id (row 0 zero): a ``.pt`` matrix of real ids, or a JSON profile file
    whose rows are picked by id in RecBole's order."""
    if not str(path).endswith(".json"):
        return load_matrix(path, expected_rows=dataset.num(field), start_with_1=True, entity=entity)
    ids, rows = read_profile_matrix(path)
    matrix = align_rows(ids, rows, dataset.field2id_token[field][1:], source=str(path))
    return torch.vstack((torch.zeros(1, matrix.shape[1]), matrix))


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
        self.__dict__["_kar_fields"] = _setting(config, "kar_fields", 2)
        super().__init__(config, dataset)
        self.kar_uid, self.kar_iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
        matrices = []
        for entity, field in (("user", dataset.uid_field), ("item", dataset.iid_field)):
            matrix = None
            if config[f"kar_{entity}_emb_file"]:
                matrix = profile_matrix(config[f"kar_{entity}_emb_file"], dataset, field, entity)
                self._check_width(config[f"kar_{entity}_width"], matrix.shape[1], f"kar_{entity}_width",
                                  f"the {entity} profiles are {matrix.shape[1]} wide")
                matrices.append(matrix)
            self.register_buffer(f"kar_{entity}_emb", matrix, persistent=False)
        self._check_width(config["kar_output_dim"], self.embedding_size, "kar_output_dim",
                          f"each extra field is embedding_size = {self.embedding_size} wide")
        width = sum(m.shape[1] for m in matrices)
        experts, hidden = _setting(config, "kar_experts", 4), _setting(config, "kar_hidden_size", 128)
        self.kar_adapter = MixtureOfExperts(width, self.embedding_size, self.__dict__["_kar_fields"], experts, hidden)
        self.kar_adapter.apply(self._init_weights)

    def _check_width(self, expected, actual, key, why):
        if expected is not None and expected != actual:
            raise UserError(f"{type(self).__name__}: {key} is {expected!r}, but {why}",
                            f"set {key} (the original's {_original_name(key)}) to {actual}, or leave it out")

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


def _setting(config, key, default):
    """A KAR setting, ``default`` only when it is not set (0 is refused by the check, never replaced)."""
    return default if config[key] is None else int(config[key])


def _original_name(key):
    return next((original for original, ours in ORIGINAL_KAR_KEYS.items() if ours == key), key)
