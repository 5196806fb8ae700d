"""DeepFMKar: RecBole's DeepFM with LLM profile vectors as extra input fields (KAR-style; see models/_kar.py)."""

from recbole.model.context_aware_recommender.deepfm import DeepFM

from models._kar import KarMixin


class DeepFMKar(KarMixin, DeepFM):
    """DeepFM whose inputs also hold a mixture-of-experts projection of (user profile, item profile)."""
