"""The example masks shipped with the package: 32 synthetic lesion-like cases, 16 samples, 4 annotators.

``ambiseg-eval --example`` evaluates them; ``python -m ambiseg_metrics.examples`` prints the two folders
(``ambiseg-eval $(python -m ambiseg_metrics.examples)`` does the same); with ``--compare`` it prints
the two model folders and the annotations (``ambiseg-eval compare $(python -m ambiseg_metrics.examples
--compare)``): ``preds_worse/`` is a second, deliberately worse model made from ``preds/``.
The data were made by
:mod:`ambiseg_metrics.examples.make_examples` (seeded): predictions as one NPZ stack per case
(``preds/<case>.npz``), annotations as one PNG per annotator (``gts/<case>/rater_<k>.png``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_DIR", "example_compare_paths", "example_paths"]

#: Folder holding ``preds/`` and ``gts/``.
DATA_DIR = Path(__file__).resolve().parent / "data"


def example_paths() -> tuple[Path, Path]:
    """The ``(preds, gts)`` folders of the shipped example set."""
    preds, gts = DATA_DIR / "preds", DATA_DIR / "gts"
    if not (preds.is_dir() and gts.is_dir()):
        raise FileNotFoundError(
            f"the example masks are missing from {DATA_DIR}; regenerate them with "
            "`python -m ambiseg_metrics.examples.make_examples`"
        )
    return preds, gts


def example_compare_paths() -> tuple[Path, Path, Path]:
    """The ``(preds, preds_worse, gts)`` folders: two models of the example set and its annotations."""
    preds, gts = example_paths()
    worse = DATA_DIR / "preds_worse"
    if not worse.is_dir():
        raise FileNotFoundError(
            f"{worse} is missing; regenerate with `python -m ambiseg_metrics.examples.make_examples`"
        )
    return preds, worse, gts
