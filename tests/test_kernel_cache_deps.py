"""numba's on-disk cache keys a compiled function on the file that defines it: a change in another file it
calls into goes unnoticed, and the old machine code keeps running. The batched assignment (HM-IoU) was
such a case: its batch loop sat in ``_kernels.py`` and called the solver in ``_assign.py``, so after an edit
of ``_assign.py`` (a ``git pull`` in an editable install) the compiled path returned the old solver's
numbers. Both now live in ``_assign.py``; this test edits that file in a copy of the package and checks
that the compiled kernel follows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import ambiseg_metrics

SCRIPT = """
import sys
import numpy as np
from ambiseg_metrics.core import _assign, _kernels
sim = np.random.default_rng(0).random((4, 3, 2))
out, ref = np.empty(4), np.empty(4)
_kernels.assignment_kernel(sim, 2, 3, out)
_assign.batch_means(sim, 2, 3, ref)   # the interpreter, reading the file as it is now
assert _kernels.__file__.startswith(sys.argv[1]), _kernels.__file__
print(repr(out.tolist()), "|", repr(ref.tolist()))
"""


def _run(root: Path) -> tuple[list[float], list[float]]:
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}  # no NUMBA_CACHE_DIR: the copy's __pycache__
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(root)], env=env, cwd=root, capture_output=True,
                         text=True, check=True)
    compiled, interpreted = (eval(part) for part in out.stdout.strip().split("|"))  # noqa: S307
    return compiled, interpreted


def test_editing_the_assignment_source_recompiles_the_kernel(tmp_path):
    src = Path(ambiseg_metrics.__file__).parent
    shutil.copytree(src, tmp_path / "ambiseg_metrics",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "data"))
    compiled, interpreted = _run(tmp_path)
    assert compiled == interpreted
    assert (tmp_path / "ambiseg_metrics/core/__pycache__").is_dir()  # the kernels were cached
    # the solver now maximises the cost, i.e. returns the worst assignment
    source = tmp_path / "ambiseg_metrics/core/_assign.py"
    text = source.read_text()
    assert text.count("    R, C = cost.shape\n") == 1
    source.write_text(text.replace("    R, C = cost.shape\n", "    R, C = cost.shape\n    cost = -cost\n"))
    worse_compiled, worse_interpreted = _run(tmp_path)
    assert worse_compiled == worse_interpreted
    assert all(w < c for w, c in zip(worse_compiled, compiled, strict=True))
