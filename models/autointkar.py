"""AutoIntKar: RecBole's AutoInt with LLM profile vectors as extra input fields (KAR-style; see models/_kar.py)."""

from recbole.model.context_aware_recommender.autoint import AutoInt

from models._kar import KarMixin


class AutoIntKar(KarMixin, AutoInt):
    """AutoInt whose inputs also hold a mixture-of-experts projection of (user profile, item profile)."""
