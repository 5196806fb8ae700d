"""Distillation losses (losses.py) and custom RecBole models (<name lower>.py), found by name."""
