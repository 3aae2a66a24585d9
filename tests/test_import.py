"""`import ambiseg_metrics` stays light: no torch, numba, matplotlib, dask or image readers at import."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ["torch", "numba", "matplotlib", "dask", "distributed", "imageio", "PIL", "nibabel", "tifffile",
         "scipy.optimize"]


def test_import_is_light():
    code = f"import sys, ambiseg_metrics; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "", f"imported at `import ambiseg_metrics`: {out.strip()}"


def test_public_names_are_exported():
    import ambiseg_metrics as am

    missing = [name for name in am.__all__ if not hasattr(am, name)]
    assert not missing
    for name in ["ged", "ged_terms", "ci_score", "collective_insight", "combined_sensitivity",
                 "max_dice_matching", "diversity_agreement", "evaluate", "pair_counts"]:
        assert name in am.__all__ and callable(getattr(am, name))
