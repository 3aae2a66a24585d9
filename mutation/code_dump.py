"""pytest plugin: write the compiled code of every numba kernel of the package at the end of the session.

``python -m pytest -p mutation.code_dump ...`` with ``AMBISEG_CODE_DUMP=out.json`` writes, for each numba
dispatcher in a loaded ``ambiseg_metrics`` module and each signature the tests compiled, the optimised
LLVM IR and the machine code (assembly) of its library, which holds every function it inlined or linked
(intrinsics, ``@overload`` helpers). :mod:`mutation.same_code` compares two such dumps.

A kernel loaded from numba's on-disk cache has no IR to show, so run with an empty ``NUMBA_CACHE_DIR``;
such kernels are recorded with ``null`` code and make the comparison fail.
"""

from __future__ import annotations

import json
import os
import sys


def _kernels() -> dict[str, dict[str, str | None]]:
    from numba.core.registry import CPUDispatcher

    out: dict[str, dict[str, str | None]] = {}
    ours = sorted(m for m in sys.modules if m == "ambiseg_metrics" or m.startswith("ambiseg_metrics."))
    for modname in ours:
        for name, obj in sorted(vars(sys.modules[modname]).items()):
            if not isinstance(obj, CPUDispatcher) or obj.__module__ != modname:
                continue  # imported from another module: recorded there
            for sig, cres in obj.overloads.items():
                key = f"{modname}.{name}{tuple(str(a) for a in sig)}"
                lib = cres.library
                if getattr(lib, "_disable_inspection", False):  # loaded from the cache: no IR kept
                    ir = asm = None
                else:
                    ir, asm = lib.get_llvm_str(), lib.get_asm_str()
                out[key] = {"ir": ir, "asm": asm}
    return out


def pytest_sessionfinish(session, exitstatus) -> None:  # noqa: ARG001 - pytest's hook signature
    path = os.environ.get("AMBISEG_CODE_DUMP")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"exitstatus": int(exitstatus), "kernels": _kernels()}, f)
