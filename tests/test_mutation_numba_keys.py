"""The mutation run's per-kernel numba cache keys (``mutation/numba_keys.py``): a change reaches exactly the
keys of the functions that can see it, and in a real process a mutant recompiles the kernel it changed (and
its callers) while an untouched kernel is loaded from the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from mutation.__main__ import ROOT
from mutation.numba_keys import SITECUSTOMIZE, source_keys

MODULE = textwrap.dedent('''
    from numba import njit
    from numba.extending import overload

    SCALE = 3

    def _stub(x):
        return x

    @overload(_stub)
    def _stub_impl(x):
        return lambda x: x + 1

    @njit(cache=True)
    def leaf(x):
        return x * 2

    @njit(cache=True)
    def caller(x):
        return leaf(x) + 1

    @njit(cache=True)
    def scaled(x):
        return x * SCALE

    @njit(cache=True)
    def other(x):
        return x - 1
''')


def _changed(old: str, new: str) -> set[str]:
    registers_old, a = source_keys(old)
    registers_new, b = source_keys(new)
    assert registers_old and registers_new  # the module registers an @overload
    assert a.keys() == b.keys()
    return {name for name in a if a[name] != b[name]}


def test_a_function_change_reaches_it_and_its_callers_only():
    assert _changed(MODULE, MODULE.replace("x * 2", "x * 4")) == {"leaf", "caller"}
    assert _changed(MODULE, MODULE.replace("x - 1", "x + 1")) == {"other"}
    assert _changed(MODULE, MODULE.replace("leaf(x) + 1", "leaf(x) - 1")) == {"caller"}


def test_a_shared_statement_change_reaches_every_key():
    everything = set(source_keys(MODULE)[1])
    assert _changed(MODULE, MODULE.replace("SCALE = 3", "SCALE = 4")) == everything
    # an @overload implementation is called without being named: it is a shared statement
    assert _changed(MODULE, MODULE.replace("x + 1", "x + 2")) == everything


def test_formatting_and_comments_change_no_key():
    assert _changed(MODULE, MODULE.replace("return x - 1", "return (x  -  1)  # same")) == set()


USER = textwrap.dedent('''
    from numba import njit

    from .kernels import leaf

    @njit(cache=True)
    def uses(x):
        return leaf(x) + 10
''')

SCRIPT = """
from numba.core import caching
saved = []
original = caching.IndexDataCacheFile.save
def save(self, key, data):
    saved.append(self._index_name.split(".")[1].split("-")[0])  # kernels.<name>-<line>.pyXY.nbi
    return original(self, key, data)
caching.IndexDataCacheFile.save = save
from pkg import kernels, user
print(kernels.caller(2), kernels.other(2), kernels.scaled(2), user.uses(2), ",".join(sorted(set(saved))))
"""


def _run(tmp_path, env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True, timeout=300)
    return out.stdout.split()


def test_a_mutant_recompiles_only_what_it_changed(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "user.py").write_text(USER)  # another file that compiles in the mutated one's leaf
    source = tmp_path / "pkg" / "kernels.py"
    source.write_text(MODULE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "PYTHON"))}
    # no .pyc: a mutant of the same size written within the second would be imported from the stale one
    # (cosmic-ray sets the same for its test runs)
    env.update(PYTHONPATH=f"{site}:{ROOT}:{tmp_path}", AMBISEG_MUTATED_FILE=str(source),
               PYTHONDONTWRITEBYTECODE="1")
    everything = "caller,leaf,other,scaled,uses"
    assert _run(tmp_path, env) == ["5", "1", "6", "14", everything]  # first run: all saved
    assert _run(tmp_path, env) == ["5", "1", "6", "14"]  # nothing changed: all loaded
    source.write_text(MODULE.replace("x * 2", "x * 4"))  # a mutant of the leaf, which user.py imports
    assert _run(tmp_path, env) == ["9", "1", "6", "18", "caller,leaf,uses"]
    source.write_text(MODULE)  # restored: the original's cache entries of the three were overwritten
    assert _run(tmp_path, env) == ["5", "1", "6", "14", "caller,leaf,uses"]
    # with the original named, a mutant's kernels are compiled but not saved: the restored source and
    # the next mutant load the original's entries
    (tmp_path / "original.py").write_text(MODULE)
    env["AMBISEG_ORIGINAL_FILE"] = str(tmp_path / "original.py")
    source.write_text(MODULE.replace("x * 2", "x * 4"))
    assert _run(tmp_path, env) == ["9", "1", "6", "18"]
    source.write_text(MODULE.replace("x - 1", "x - 3"))
    assert _run(tmp_path, env) == ["5", "-1", "6", "14"]
    source.write_text(MODULE)
    assert _run(tmp_path, env) == ["5", "1", "6", "14"]
    del env["AMBISEG_ORIGINAL_FILE"]
    # without the hook numba keys every function on its whole file: a change anywhere in kernels.py
    # recompiles all of kernels.py's functions
    del env["AMBISEG_MUTATED_FILE"]
    _run(tmp_path, env)
    source.write_text(MODULE.replace("x - 1", "x - 2"))
    assert _run(tmp_path, env)[:5] == ["5", "0", "6", "14", "caller,leaf,other,scaled"]
