"""ItemReference: the reference rows of the item cold start (issue 25), popularity and content-kNN, as a model.

``model: ItemReference`` with ``item_reference: pop`` ranks items by their training interactions (RecBole's Pop,
with ``candidate_items`` as HybridNeuMF has it); ``content_knn`` ranks items by the cosine between their text vector
(``item_text_file``, as HybridNeuMF reads it) and the mean text vector of the user's training items: knowledge from
the text alone, no collaborative signal. Nothing is learned (one epoch fills the counts, as Pop's does).
"""

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType, ModelType

from models.hybridneumf import CANDIDATE_ITEMS, CANDIDATE_MAX_COUNT, ITEM_TEXT_FILE, item_counts, load_item_text
from utils.params import Param, Schema, check_model_settings, one_of

REFERENCES = ("pop", "content_knn")
SETTINGS = Schema((
    Param("item_reference", one_of(*REFERENCES, words="pop or content_knn"), default="pop",
          doc="rank by training interactions, or by the cosine to the text of the user's items"),
    ITEM_TEXT_FILE,
    CANDIDATE_ITEMS,
    CANDIDATE_MAX_COUNT,
), open_=True, summary="ItemReference's own settings")


class ItemReference(GeneralRecommender):
    """Popularity or content-kNN scores (module docstring)."""

    input_type = InputType.POINTWISE
    type = ModelType.TRADITIONAL
    default_config = {"item_reference": "pop", "item_text_file": None, "candidate_items": "all",
                      "candidate_max_count": 0}
    settings = SETTINGS

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        checked = check_model_settings(type(self), config)
        reference, candidates = checked["item_reference"], checked["candidate_items"]
        self.reference = reference
        self.fake_loss = torch.nn.Parameter(torch.zeros(1))  # RecBole's trainer needs a parameter to optimise
        counts = item_counts(dataset, self.n_items)
        self.register_buffer("popularity", counts.float() / max(int(counts.max()), 1), persistent=False)
        self.candidates = None if candidates == "all" else counts <= int(config["candidate_max_count"])
        if self.candidates is not None:
            self.candidates[0] = False
        if reference == "content_knn":
            text = load_item_text(config["item_text_file"], self.n_items)
            text = text / text.norm(dim=1, keepdim=True).clamp_min(1e-12)
            history = torch.from_numpy(dataset.inter_matrix(form="csr").toarray().astype("float32"))
            users = history @ text  # the sum of each user's training items' text vectors
            users = users / users.norm(dim=1, keepdim=True).clamp_min(1e-12)
            self.register_buffer("user_text", users, persistent=False)
            self.register_buffer("item_text", text, persistent=False)

    def calculate_loss(self, interaction):
        return (self.fake_loss * 0).sum()

    def _scores(self, users):
        if self.reference == "pop":
            return self.popularity.unsqueeze(0).expand(len(users), -1).clone()
        return self.user_text[users] @ self.item_text.T

    def predict(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        return self._scores(users).gather(1, items.unsqueeze(1)).squeeze(1)

    def full_sort_predict(self, interaction):
        scores = self._scores(interaction[self.USER_ID])
        if self.candidates is not None:
            scores[:, ~self.candidates.to(scores.device)] = -torch.inf
        return scores.view(-1)
