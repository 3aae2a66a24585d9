"""Run the docstring examples (``>>>``) of every module of ``ambiseg_metrics`` with doctest.

The API reference of the docs is built from these docstrings, so their examples are part of the docs.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import pytest

import ambiseg_metrics

#: Optional dependencies a module may need; without them its examples are skipped, not failed.
OPTIONAL = {"torch", "torchmetrics", "dask", "distributed", "matplotlib"}


def module_names() -> list[str]:
    names = ["ambiseg_metrics"]
    for info in pkgutil.walk_packages(ambiseg_metrics.__path__, prefix="ambiseg_metrics."):
        last = info.name.rsplit(".", 1)[-1]
        if last == "__main__" or ".data" in info.name:
            continue  # importing __main__ would run it; data folders hold no code
        names.append(info.name)
    return names


def run_module_doctests(name: str) -> tuple[int, str]:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in OPTIONAL:
            pytest.skip(f"{name} needs the optional dependency {exc.name}")
        raise
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = io.StringIO()
    n = 0
    for test in finder.find(module, name, globs={"__name__": name}):
        n += len(test.examples)
        runner.run(test, out=out.write)
    return n, (out.getvalue() if runner.failures else "")


@pytest.mark.parametrize("name", module_names())
def test_module_docstring_examples(name: str) -> None:
    _, failures = run_module_doctests(name)
    assert not failures, failures


def test_public_metrics_have_examples() -> None:
    # A finder that silently found nothing would pass the test above; the main entry points carry examples.
    for name in ("evaluate", "ci_score", "combined_sensitivity", "max_dice_matching", "diversity_agreement",
                 "pair_counts"):
        tests = doctest.DocTestFinder().find(getattr(ambiseg_metrics, name), name)
        assert sum(len(t.examples) for t in tests) > 0, f"ambiseg_metrics.{name} has no docstring example"
