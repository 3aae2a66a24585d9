"""Hypothesis settings for the metric tests (strategies are in ``strategies.py``); the start-up rule of
core/_kernel_load.py off outside its own tests."""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import HealthCheck, Phase, settings

sys.path.insert(0, os.path.dirname(__file__))  # `import reference` / `strategies` from any test

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# pytest --hypothesis-profile=long: before a release (the CLI fuzz test then builds 2000 trees)
settings.register_profile(
    "long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# python -m mutation: fewer, reproducible examples per mutant, and no shrinking (a killed mutant needs a
# failure, not the smallest one); its survivors are rerun with "ci" (--again)
settings.register_profile(
    "mutation", max_examples=20, derandomize=True, deadline=None,
    suppress_health_check=[HealthCheck.too_slow], phases=(Phase.explicit, Phase.reuse, Phase.generate),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _no_numpy_while_kernels_unloaded(monkeypatch):
    """Tests pick numpy or the compiled kernels through each call site's size limits. The start-up rule
    of ``core/_kernel_load.py`` (mid-sized calls in numpy until the kernels are worth loading) would
    otherwise send a "kernel path" test to numpy when no test module has imported the kernels yet; it is
    off here and tested on its own in tests/test_kernel_load.py."""
    from ambiseg_metrics.core import _kernel_load

    monkeypatch.setattr(_kernel_load, "LOAD_SECONDS", 0.0)
