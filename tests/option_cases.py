"""Shared cases of the "explicit beats preset" tests: for every option, a preset value and an explicit value
that differs from it (falsy wherever the option has a falsy value), and inputs on which they give different
numbers at every entry point that takes the option."""

from __future__ import annotations

import numpy as np

from ambiseg_metrics import Conventions

#: option -> (value in the preset, value passed explicitly); the explicit one is falsy where one exists.
PRESET_VS_EXPLICIT: dict[str, tuple[object, object]] = {
    "threshold": (0.5, 0.0),
    "estimator": ("unbiased", "v-statistic"),
    "distance": ("dice", "iou"),
    "empty_pair": ("zero", "one"),
    "ci_form": ("harmonic", "paper"),
    "variance": ("pixel", "dice"),
    "class_absent": ("zero", "one"),
    "include_background": (True, False),
    "similarity": ("dice", "iou"),
    "classes": ((1, 2), None),
    "pair_average": ("pooled", "mean"),
    "calibration_classes": ("both", "foreground"),
    "requires_classes": (True, False),
}


def preset_with(name: str) -> Conventions:
    """A preset whose value of ``name`` is the preset side of :data:`PRESET_VS_EXPLICIT`."""
    return Conventions(name="test", **{name: PRESET_VS_EXPLICIT[name][0]})


def binary_case() -> tuple[np.ndarray, np.ndarray]:
    """Float samples (values in (0, 1): threshold 0 and 0.5 differ) with a sample and an annotation that
    are empty at 0.5 (so the empty-pair value matters), N = 4, M = 3."""
    rng = np.random.default_rng(7)
    preds = rng.random((4, 12, 12)) * 0.98 + 0.01
    preds[0] = 0.2  # empty at threshold 0.5, full at 0.0
    gts = rng.random((3, 12, 12)) > 0.6
    gts[0] = False
    return preds, gts


def label_case() -> tuple[np.ndarray, np.ndarray]:
    """Label maps with classes 0..3, class 3 in one map only (so an absent class matters), N = 3, M = 2."""
    rng = np.random.default_rng(3)
    preds = rng.integers(0, 3, size=(3, 10, 10))
    gts = rng.integers(0, 3, size=(2, 10, 10))
    preds[1, :2, :2] = 3
    return preds, gts


def as_comparable(value: object) -> tuple[float, ...]:
    """Floats, arrays, lists of arrays and result dataclasses as one flat tuple of floats."""
    if isinstance(value, dict):
        return tuple(x for v in value.values() for x in as_comparable(v))
    if hasattr(value, "__dataclass_fields__"):
        return tuple(x for f in value.__dataclass_fields__ for x in as_comparable(getattr(value, f)))
    if isinstance(value, list):
        return tuple(x for v in value for x in as_comparable(v))
    return tuple(float(x) for x in np.asarray(value, dtype=np.float64).ravel())
