"""For mutation runs: numba's disk cache keyed on each kernel's own source, not its file.

numba keys a cached kernel on a hash of the whole file that defines it, so every mutant of
``core/_kernels.py`` recompiles every kernel a test calls (about 18 s of the 24 s a surviving kernel mutant
costs). With this module installed (``AMBISEG_MUTATED_FILE`` names the mutated file; the harness
installs it in every Python process of the run through a ``sitecustomize.py``)
a kernel defined in that file is keyed instead on the source of the top-level functions it reaches by name
(its transitive closure within the file) plus every other top-level statement of the file (constants,
imports, ``@overload`` registrations, and the functions those reach). A mutant therefore recompiles only
the kernels whose closure it touches, without saving them (``AMBISEG_ORIGINAL_FILE``: a kernel whose key
is not the unmutated source's is neither loaded nor saved); the others load from the cache, which holds
only compilations of the unmutated source.

Why this cannot kill a mutant falsely: a kernel is loaded from the cache only when the source it is keyed on
is the same as when it was compiled, and numba adds the function's own bytecode to the key. A missed
dependency could only make a mutant *survive* (old code runs), and survivors are judged again with
``--again``, which runs without this module. Kernels of other files of the package keep numba's key plus
the hashes of what they may compile in from the mutated file: its ``@overload`` registrations (called
without being named) and the functions they import from it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.abc
import importlib.util
import os
import sys
from functools import cache
from pathlib import Path

#: decorators that register a function with numba without the caller naming it
_REGISTERING = {"overload", "overload_method", "overload_attribute", "register_jitable", "lower_builtin"}


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def source_keys(source: str) -> tuple[bool, dict[str, str]]:
    """``(registers, keys)`` of a module's ``source``.

    ``registers`` says whether the module registers a function with numba (``@overload``). ``keys[""]``
    hashes its shared statements: everything but the plain top-level functions and classes, with the
    functions those reach by name. ``keys[name]`` hashes, for each top-level function or class, the shared
    statements plus the functions it reaches by name, itself included."""
    tree = ast.parse(source)
    defs: dict[str, ast.AST] = {}
    shared: list[ast.AST] = []
    for node in tree.body:
        is_def = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        if is_def and not any(_decorator_name(d) in _REGISTERING for d in node.decorator_list):
            defs[node.name] = node
        else:
            shared.append(node)

    def closure(roots: set[str]) -> list[str]:
        seen: set[str] = set()
        stack = [r for r in roots if r in defs]
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(n for n in _names(defs[name]) if n in defs and n not in seen)
        return sorted(seen)

    shared_names = set().union(*(_names(s) for s in shared)) if shared else set()
    shared_text = "\n".join(ast.dump(s) for s in shared)
    shared_text += "\n".join(ast.dump(defs[n]) for n in closure(shared_names))
    registers = any(isinstance(s, ast.FunctionDef) for s in shared)  # an @overload implementation
    keys = {"": hashlib.sha256(shared_text.encode()).hexdigest()}
    for name in defs:
        text = shared_text + "\n".join(ast.dump(defs[n]) for n in closure({name}))
        keys[name] = hashlib.sha256(text.encode()).hexdigest()
    return registers, keys


@cache
def _file_keys(path: str) -> tuple[bool, dict[str, str]]:
    return source_keys(Path(path).read_text())


@cache
def _imports_from(path: str, module: str, package: str) -> frozenset[str]:
    """The names the file at ``path`` (in the dotted ``package``) imports from the dotted ``module``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source == module:
                names.update(alias.name for alias in node.names)
    return frozenset(names)


def _patch(caching, mutated: Path, original: Path | None) -> None:
    """Give every numba cache created from now on the stamp described in the module docstring; with the
    ``original`` (unmutated) source, a kernel whose key differs from the original's is compiled without
    the cache (neither loaded nor saved: a mutant runs once, and saving it would overwrite the original's
    entry, which the next mutant would then have to compile again)."""
    mutated = mutated.resolve()
    package = mutated.parent
    while (package.parent / "__init__.py").exists():
        package = package.parent
    init = caching.Cache.__init__

    dotted = ".".join(mutated.relative_to(package.parent).with_suffix("").parts)

    def keyed_init(self, py_func) -> None:  # noqa: ANN001
        init(self, py_func)
        where = Path(py_func.__code__.co_filename).resolve()
        registers, keys = _file_keys(str(mutated))
        base = {"": ""} if original is None else _file_keys(str(original))[1]
        top = py_func.__qualname__.split(".")[0]  # an @overload's implementations: the shared statements
        if where == mutated:
            key, unchanged = keys.get(top, keys[""]), base.get(top, base[""])
            self._cache_file._source_stamp = ("mutation", key)
        elif package in where.parents:
            # another file of the package: what it may compile in from the mutated file, i.e. the
            # @overload registrations (never named) and the functions it imports from it by name
            where_package = ".".join(where.parent.relative_to(package.parent).parts)
            names = sorted(_imports_from(str(where), dotted, where_package) & keys.keys())
            if not registers and not names:
                return
            key = "".join([keys[""] if registers else "", *(keys[n] for n in names)])
            unchanged = "".join([base[""] if registers else "", *(base.get(n, "") for n in names)])
            self._cache_file._source_stamp = (self._cache_file._source_stamp, key)
        else:
            return
        if original is not None and key != unchanged:
            self.disable()

    caching.Cache.__init__ = keyed_init


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches ``numba.core.caching`` when (and only if) a process imports it, so that a process that
    never imports numba (the tests that check what ``import ambiseg_metrics`` loads) is left as it is."""

    def __init__(self, mutated: Path, original: Path | None) -> None:
        self.mutated, self.original = mutated, original

    def find_spec(self, name, path, target=None):  # noqa: ANN001, ANN201
        if name != "numba.core.caching":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def patched_exec(module) -> None:  # noqa: ANN001
            exec_module(module)
            _patch(module, self.mutated, self.original)

        spec.loader.exec_module = patched_exec
        return spec


def install() -> None:
    """Install the hook in this process if ``AMBISEG_MUTATED_FILE`` is set (``sitecustomize`` calls this in
    every Python process of a mutation run, the tests' subprocesses included); ``AMBISEG_ORIGINAL_FILE``
    names a copy of the unmutated module."""
    if os.environ.get("AMBISEG_MUTATED_FILE"):
        original = os.environ.get("AMBISEG_ORIGINAL_FILE")
        hook = _PatchOnImport(Path(os.environ["AMBISEG_MUTATED_FILE"]), Path(original) if original else None)
        sys.meta_path.insert(0, hook)


#: what the harness writes as ``sitecustomize.py`` in a folder it puts first on ``PYTHONPATH``
SITECUSTOMIZE = "from mutation.numba_keys import install\ninstall()\n"
