"""DCNKar: RecBole's DCN with LLM profile vectors as extra input fields (KAR-style; see models/_kar.py)."""

from recbole.model.context_aware_recommender.dcn import DCN

from models._kar import KarMixin


class DCNKar(KarMixin, DCN):
    """DCN whose inputs also hold a mixture-of-experts projection of (user profile, item profile)."""
