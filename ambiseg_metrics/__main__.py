"""``python -m ambiseg_metrics``: the same as the ``ambiseg-eval`` command."""

from .files.cli import command

command()
