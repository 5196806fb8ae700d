"""Scenario runner, wrapper, journal and helpers for LLM knowledge transfer into RecBole models."""
