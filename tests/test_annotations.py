"""Every annotation in the library resolves to a valid type.

Sphinx autodoc and ``typing.get_type_hints`` evaluate the annotations, which ``from __future__ import
annotations`` keeps as strings: a broken one (``str - None``) would only show up there. Private helpers are
included, since a mistyped annotation anywhere is a latent error, and so are the annotations of variables
(``out: list[Block | None] = ...``), which Python never evaluates at all.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import inspect
import pkgutil
import typing

import pytest

import ambiseg_metrics

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(ambiseg_metrics.__path__, "ambiseg_metrics.")
    if not m.name.endswith(".__main__")  # running it is the CLI
)


@functools.cache
def _library_classes() -> dict[str, type]:
    """Every class the library defines, by name: what ``if TYPE_CHECKING:`` imports refer to."""
    out: dict[str, object] = {}
    try:  # the torch adapter's annotations name torch, which it imports only when used
        import torch

        out["torch"] = torch
    except ImportError:
        pass
    for module_name in MODULES:
        for obj in vars(importlib.import_module(module_name)).values():
            if inspect.isclass(obj) and obj.__module__.startswith("ambiseg_metrics."):
                out.setdefault(obj.__name__, obj)
    return out


def _annotated(module):
    for name, obj in vars(module).items():
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj):
            yield name, obj
            for attr, member in vars(obj).items():
                func = getattr(member, "__func__", member)
                if inspect.isfunction(func):
                    yield f"{name}.{attr}", func


@pytest.mark.parametrize("module_name", MODULES)
def test_annotations_resolve(module_name):
    module = importlib.import_module(module_name)
    classes = _library_classes()
    for name, obj in _annotated(module):
        try:
            typing.get_type_hints(obj, localns=classes)
        except Exception as exc:  # noqa: BLE001 - report which annotation is broken
            raise AssertionError(f"{module_name}.{name}: {type(exc).__name__}: {exc}") from exc


@pytest.mark.parametrize("module_name", MODULES)
def test_variable_annotations_resolve(module_name):
    module = importlib.import_module(module_name)
    namespace = {**vars(builtins), **_library_classes(), **vars(module)}
    tree = ast.parse(inspect.getsource(module))
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign):
            text = ast.unparse(node.annotation)
            try:
                eval(compile(ast.Expression(node.annotation), module_name, "eval"), namespace)  # noqa: S307
            except Exception as exc:  # noqa: BLE001 - report which annotation is broken
                raise AssertionError(f"{module_name}, line {node.lineno}: {text}: {exc}") from exc


def test_public_docstrings_have_no_unfilled_markers():
    """``fill_doc`` replaces ``{inputs}``, ``{conventions}``, ``{weights}`` markers: a function whose
    decorator went missing would show the bare marker in the rendered docs."""
    import re

    marker = re.compile(r"^\s*\{[a-z_]+\}\s*$", re.MULTILINE)
    for name in ambiseg_metrics.__all__:
        doc = getattr(getattr(ambiseg_metrics, name), "__doc__", None) or ""
        assert not marker.search(doc), f"{name}: {marker.search(doc).group().strip()}"
