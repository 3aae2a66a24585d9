"""Issue 13, item 8: a read-only install used by an unprivileged user whose HOME is not writable.

numba raised "cannot cache function '_pack': no locator available" there. The package now imports and
computes: it caches in a private per-user folder under the temporary directory, or, where even that is not
possible, compiles without a cache and says so once.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import ambiseg_metrics

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uids and permission bits: Linux")

SCRIPT = """
import time, warnings
warnings.simplefilter("always")
t0 = time.perf_counter()
import ambiseg_metrics as am
t1 = time.perf_counter()
import numpy as np
p = np.zeros((3, 9, 70), bool); p[0, 2:5, 3:60] = True; p[1, 3:6, 5:66] = True
g = np.zeros((2, 9, 70), bool); g[0, 2:6, 3:60] = True; g[1] = p[1]
# small inputs are counted by numpy; these two (1.1 MB together) take the compiled kernels once the
# process has loaded them (as a long run does: else the first mid-sized calls run in numpy too)
from ambiseg_metrics.core._kernel_load import load_kernels
load_kernels()
q = np.zeros((2, 400, 700), bool); q[0, 10:200, 30:600] = True; q[1, 50:300, 100:650] = True
r = np.zeros((2, 400, 700), bool); r[0, 20:220, 30:600] = True; r[1] = q[1]
print("ged", repr(am.ged(p, g)), repr(am.evaluate(p.astype(np.float32), g)["ged"]), repr(am.ged(q, r)))
print(f"import {t1 - t0:.3f} s, first call {time.perf_counter() - t1:.1f} s")
"""


def _user() -> list[str]:
    if os.geteuid() != 0:
        return []
    tool = shutil.which("setpriv")
    if tool is None:
        pytest.skip("running as root without setpriv: cannot drop privileges")
    return [tool, "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture(scope="module")
def readonly_install():
    """A read-only copy of the package in a folder everyone can read."""
    base = Path(tempfile.mkdtemp(prefix="ambiseg-ro-"))
    os.chmod(base, 0o755)
    src = Path(ambiseg_metrics.__file__).parent
    shutil.copytree(src, base / "ambiseg_metrics",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "data"))
    for p in [*base.rglob("*")]:
        os.chmod(p, 0o555 if p.is_dir() else 0o444)
    yield base
    for p in [base, *base.rglob("*")]:
        os.chmod(p, 0o755)
    shutil.rmtree(base, ignore_errors=True)


def _run(install: Path, tmpdir: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent",
           "PYTHONPATH": str(install), "TMPDIR": str(tmpdir), "NUMBA_NUM_THREADS": "1", **extra}
    return subprocess.run([*_user(), sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                          cwd="/", timeout=600)


def _scratch(mode: int = 0o777) -> Path:
    d = Path(tempfile.mkdtemp(prefix="ambiseg-tmp-"))
    os.chmod(d, mode)
    return d


@functools.lru_cache(maxsize=1)
def _expected() -> str:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()[0]


def test_imports_and_computes_with_a_private_cache_folder(readonly_install):
    tmpdir = _scratch()
    try:
        first = _run(readonly_install, tmpdir)
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines()[0] == _expected()
        assert "Warning" not in first.stderr, first.stderr
        cache = [p for p in tmpdir.iterdir() if p.name.startswith("ambiseg-numba-")]
        assert len(cache) == 1 and (cache[0].stat().st_mode & 0o777) == 0o700
        assert list(cache[0].rglob("*.nbi")), "nothing was cached"
        second = _run(readonly_install, tmpdir)  # reuses the cache
        assert second.returncode == 0 and second.stdout.splitlines()[0] == _expected()
        print(first.stdout.splitlines()[1], "|", second.stdout.splitlines()[1])
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_falls_back_to_no_cache_with_one_warning(readonly_install):
    tmpdir = _scratch()
    try:
        foreign = tmpdir / f"ambiseg-numba-{65534 if os.geteuid() == 0 else os.getuid()}"
        foreign.mkdir(mode=0o777)  # someone else's (root's) or world-writable: never loaded from
        os.chmod(foreign, 0o777)
        proc = _run(readonly_install, tmpdir)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[0] == _expected()
        assert proc.stderr.count("NUMBA_CACHE_DIR") == 1, proc.stderr
        assert not list(foreign.rglob("*.nbi"))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_numba_cache_dir_is_honoured(readonly_install):
    tmpdir, cache = _scratch(), _scratch()
    try:
        proc = _run(readonly_install, tmpdir, NUMBA_CACHE_DIR=str(cache))
        assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
        assert list(cache.rglob("*.nbi")) and not list(tmpdir.iterdir())
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
