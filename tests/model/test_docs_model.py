"""The ``>>>`` examples of the docs pages that need torch (the cimd_model guide)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="cimd_model tests need torch (pip install .[model])")

from test_docs import DOCS, TORCH_PAGES, run_doctests  # noqa: E402  (tests/ is on sys.path: conftest)


@pytest.mark.parametrize("name", sorted(TORCH_PAGES))
def test_torch_page_examples(name: str) -> None:
    torch.set_num_threads(1)
    n, failures = run_doctests(DOCS / name)
    assert not failures, failures
    assert n >= 5, f"{name} has only {n} doctest examples"
