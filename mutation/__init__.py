"""Mutation testing of the metric core (``python -m mutation``); see ``mutation/__main__.py``."""
