"""Check that a kernel mutant compiles to the same code as the original: ``python -m mutation.same_code``.

Some mutants of numba code cannot change a result because they change nothing that reaches the compiled
code: a cast between two types that have the same LLVM type (llvmlite emits no instruction for it), or an
alignment claim that the target's instructions ignore. Tests cannot kill them; the proof is the code.

For each ``mutation/equivalent.toml`` entry with a ``same-code`` field (``"ir"`` or ``"asm"``), this runs the
module's scoped tests (the ``mutation`` hypothesis profile, an empty numba cache, :mod:`mutation.code_dump`)
once on the unmutated copy and once per mutant, and compares every kernel the tests compiled, signature by
signature:

* ``ir``: the optimised LLVM IR is identical, so the mutant is equivalent on every target for these
  specialisations;
* ``asm``: only the machine code of this machine's target is identical (equivalent here, e.g. on x86-64).

The exit code is 1 if any claim does not hold (or the tests fail, or the kernels compiled differ), so the
claims in ``equivalent.toml`` can be checked again after a numba or LLVM upgrade. ``--module M --before B
--after A`` checks one mutant that is not listed yet.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .__main__ import _copy_tree
from .equivalents import _load_equivalent
from .scope import SCOPE


def _dump(repo: Path, tests: list[str], out: Path) -> dict[str, dict[str, str | None]]:
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, AMBISEG_CODE_DUMP=str(out), PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "mutation.code_dump",
               "--hypothesis-profile=mutation", *tests]
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        tail = proc.stdout[-3000:] + proc.stderr[-2000:]
        raise RuntimeError(f"the tests failed (exit {proc.returncode}):\n{tail}")
    return json.loads(out.read_text())["kernels"]


def _apply(path: Path, before: str, after: str, occurrence: int | None = None) -> str:
    """Replace the line whose stripped text is ``before`` (the ``occurrence``-th, 1-based, where several
    lines read the same) by ``after``, with the same indentation; return the original text."""
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    hits = [i for i, ln in enumerate(lines) if ln.strip() == before.strip()]
    if occurrence is None and len(hits) != 1 or occurrence is not None and not 1 <= occurrence <= len(hits):
        raise ValueError(f"{path.name}: {len(hits)} lines read {before.strip()!r}; "
                         "name one with an `occurrence` (1-based)")
    i = hits[0 if occurrence is None else occurrence - 1]
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    lines[i] = indent + after.strip() + "\n"
    path.write_text("".join(lines))
    return text


#: numba names an array expression's environment after its Python object's address (differs per process)
_ADDRESS = re.compile(r"0x[0-9a-f]{8,}")


def _same(a: str, b: str) -> bool:
    return a == b or _ADDRESS.sub("0x?", a) == _ADDRESS.sub("0x?", b)


def compare(original: dict, mutant: dict) -> dict[str, list[str]]:
    """Kernel signatures grouped by how the mutant's code compares with the original's (object addresses
    in symbol names, which differ from one process to the next, set aside)."""
    groups = ("same_ir", "same_asm_only", "different", "missing", "no_code")
    out: dict[str, list[str]] = {k: [] for k in groups}
    for key in sorted(set(original) | set(mutant)):
        if key not in original or key not in mutant:
            out["missing"].append(key)
        elif original[key]["ir"] is None or mutant[key]["ir"] is None:
            out["no_code"].append(key)
        elif _same(original[key]["ir"], mutant[key]["ir"]):
            out["same_ir"].append(key)
        elif _same(original[key]["asm"], mutant[key]["asm"]):
            out["same_asm_only"].append(key)
        else:
            out["different"].append(key)
    return out


def holds(claim: str, groups: dict[str, list[str]]) -> bool:
    """Whether the comparison supports the claim (``ir`` or ``asm``) for every compiled kernel."""
    if groups["different"] or groups["missing"] or groups["no_code"]:
        return False
    if not groups["same_ir"] + groups["same_asm_only"]:
        return False  # nothing compiled: nothing shown
    return claim == "asm" or not groups["same_asm_only"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mutation.same_code", description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", help="with --before/--after: check this mutant instead of the listed ones")
    ap.add_argument("--before", help="the source line, stripped")
    ap.add_argument("--after", help="the mutated line, stripped")
    ap.add_argument("--claim", choices=["ir", "asm"], default="ir", help="with --module: what must be equal")
    ap.add_argument("--json", type=Path, help="write the comparison here")
    args = ap.parse_args(argv)
    if args.module:
        if not (args.before and args.after) or args.module not in SCOPE:
            ap.error(f"--module needs --before and --after, and one of {', '.join(SCOPE)}")
        checks = [{"module": args.module, "before": args.before, "after": args.after,
                   "same-code": args.claim}]
    else:
        listed = [k for k in _load_equivalent() if "same-code" in k]
        checks = [dict(k, after=a) for k in listed
                  for a in ([k["after"]] if isinstance(k["after"], str) else k["after"])]
    results, ok, t0 = [], True, time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ambiseg-same-code-") as tmp:
        repo = Path(tmp) / "repo"
        _copy_tree(repo)
        originals: dict[str, dict] = {}
        for n, check in enumerate(checks):
            module, tests = check["module"], SCOPE[check["module"]]
            if module not in originals:
                print(f"compiling the unmutated {module} with its {len(tests)} test files ...", flush=True)
                originals[module] = _dump(repo, tests, Path(tmp) / f"original{n}.json")
            path = repo / "ambiseg_metrics" / module
            text = _apply(path, check["before"], check["after"], check.get("occurrence"))
            try:
                print(f"mutant {n + 1}/{len(checks)}: {check['after'].strip()}", flush=True)
                groups = compare(originals[module], _dump(repo, tests, Path(tmp) / f"mutant{n}.json"))
            finally:
                path.write_text(text)
            good = holds(check["same-code"], groups)
            ok &= good
            counts = {k: len(v) for k, v in groups.items()}
            verdict = "holds" if good else "DOES NOT HOLD"
            print(f"  claim {check['same-code']!r}: {verdict}; {counts}", flush=True)
            for key in groups["different"] + groups["missing"] + groups["no_code"]:
                print(f"    {key}")
            results.append({**check, "holds": good, "groups": groups})
    print(f"{len(checks)} mutants checked in {time.perf_counter() - t0:.0f} s: "
          f"{'every claim holds' if ok else 'SOME CLAIMS DO NOT HOLD'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
