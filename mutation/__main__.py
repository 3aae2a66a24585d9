"""Mutation testing of the metric core with cosmic-ray: ``python -m mutation [--module M ...] [--sample F]``.

Why cosmic-ray and not mutmut: mutmut 3 never mutates a decorated function (its trampolines need plain
functions), so every numba kernel (``@njit``) in ``core/_kernels.py`` would go untested; cosmic-ray rewrites
the source file itself, so a mutated kernel is recompiled and run like the real one.

The run never touches this checkout: the tracked files of the working tree (uncommitted edits included) are
copied to a temporary folder and mutated there. For each scoped module the fast tests that guard it run
against every mutant; a mutant "survives" when they all pass. Survivors listed in ``mutation/equivalent.toml``
(mutants proven to compute the same thing) are reported apart; any other survivor makes the exit code 1 and
is printed with its diff, so that a test can be written that kills it.

Examples
--------
``python -m mutation --module core/counts.py --keep /tmp/m`` runs every mutant of one module with the fast
``mutation`` hypothesis profile and keeps the work folder; after writing tests for the survivors,
``python -m mutation --module core/counts.py --again /tmp/m`` reruns only the survivors that
``equivalent.toml`` does not explain, with the full ``ci`` profile. ``--sample 0.05`` runs a seeded 5% of
the mutants (the kernels: about 2,000 mutants, hours on 2 cores), ``--shard K/N`` one of N interleaved
parts, ``--resume DIR`` goes on with an interrupted run. During a first pass numba's cache is keyed per
kernel (:mod:`mutation.numba_keys`), so a kernel mutant recompiles only what its change reaches;
``--again`` judges survivors with numba's own keys (add ``--boundscheck`` for the kernels). Figures are in
the README's development section.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mutation.equivalents import _changed_lines, _is_equivalent, _load_equivalent
from mutation.numba_keys import SITECUSTOMIZE
from mutation.scope import EXCLUDED_OPERATORS, SCOPE
from mutation.work_db import _NOT_YET, _forget, _only_changed, _sample, _shard, _skip

ROOT = Path(__file__).resolve().parents[1]

def _copy_tree(dst: Path) -> None:
    listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]  # untracked tests too
    files = subprocess.run(listing, cwd=ROOT, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if not name or not (ROOT / name).is_file():
            continue
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dst / name)


def _config(
    module: str, tests: list[str], timeout: float, profile: str = "mutation", site: Path | None = None,
    boundscheck: bool = False,
) -> str:
    """cosmic-ray's configuration; with ``site`` (a folder holding the ``sitecustomize.py`` of
    :mod:`mutation.numba_keys`), the tests run with numba's cache keyed per kernel; with ``boundscheck``,
    with numba's bounds checks on (an index outside an array raises instead of reading what lies there)."""
    excluded = ", ".join(json.dumps(e) for e in EXCLUDED_OPERATORS)
    test_command = (f"{sys.executable} -m pytest -x -q -p no:cacheprovider --hypothesis-profile={profile} "
                    + " ".join(shlex.quote(t) for t in tests))
    env = ["NUMBA_BOUNDSCHECK=1"] if boundscheck else []
    if site is not None:
        repo = site.parent / "repo"
        env += [
            f"PYTHONPATH={site}:{repo}", f"AMBISEG_MUTATED_FILE={repo / 'ambiseg_metrics' / module}",
            f"AMBISEG_ORIGINAL_FILE={site / Path(module).name}",
        ]
    if env:
        test_command = shlex.join([shutil.which("env") or "env", *env]) + " " + test_command
    return (
        "[cosmic-ray]\n"
        f'module-path = "ambiseg_metrics/{module}"\n'
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(test_command)}\n"
        '[cosmic-ray.distributor]\nname = "local"\n'
        f"[cosmic-ray.filters.operators-filter]\nexclude-operators = [{excluded}]\n"
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_module(
    work: Path, module: str, tests: list[str], sample: float, seed: int, timeout: float, again: bool = False,
    profile: str = "mutation", shard: tuple[int, int] = (0, 1), resume: bool = False,
    boundscheck: bool = False, changed_since: str | None = None,
) -> dict:
    """Mutate ``module`` in the copy under ``work`` and run its tests against each mutant.

    With ``again``, the mutants of an earlier run kept in ``work`` are reused: the ones that survived are
    run again (against the tests as they are now), except those ``mutation/equivalent.toml`` explains;
    the killed ones stay killed. With ``resume``, the mutants of an interrupted run kept in ``work`` that
    have no result yet are run (against the tests as they are now). In both cases the module's source must
    be the one the mutants were made from.
    """
    stem = module.replace("/", "_")
    cfg, db, stamp = work / f"{stem}.toml", work / f"{stem}.sqlite", work / f"{stem}.sha256"
    repo = work / "repo"
    source = repo / "ambiseg_metrics" / module
    site = None
    if not again:  # survivors are judged again with numba's own cache keys
        site = work / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        shutil.copy2(source, site / Path(module).name)  # the unmutated module (checked below on resume)
    cfg.write_text(_config(module, tests, timeout, profile, site, boundscheck))

    def cr(*args: str) -> None:
        subprocess.run([*args], cwd=repo, check=True, stdout=subprocess.DEVNULL)

    bindir = Path(sys.executable).parent
    if (again or resume) and not db.exists():
        raise SystemExit(f"{work} has no mutants of {module}: run it with --keep")
    if again or resume:
        if not stamp.exists() or stamp.read_text() != _digest(source):
            raise SystemExit(
                f"{module} changed since its mutants were made in {work}: run it with --keep in a new folder"
            )
    marked, part = work / f"{stem}.shard", f"{shard[0]}/{shard[1]}"  # the part this folder was cut to
    if resume and shard[1] > 1:
        if not marked.exists():
            _shard(db, shard)
            marked.write_text(part)
        elif marked.read_text() != part:
            raise SystemExit(f"{work} holds shard {marked.read_text()} of {module}, not {part}")
    if again:
        # the mutants of an unfinished run that were never run wait (for --resume): skip them meanwhile
        _skip(db, lambda pending: [], _NOT_YET)
        _forget(db, lambda diff: _is_equivalent(module, diff, _load_equivalent()) is None)
    elif not resume:
        if db.exists():
            db.unlink()
        stamp.write_text(_digest(source))
        cr(str(bindir / "cosmic-ray"), "init", str(cfg), str(db))
        cr(str(bindir / "cr-filter-operators"), str(db), str(cfg))
        cr(str(bindir / "cr-filter-pragma"), str(db))
        if changed_since:
            _only_changed(db, ROOT, f"ambiseg_metrics/{module}", changed_since)
        if sample < 1.0:
            _sample(db, sample, seed)
        if shard[1] > 1:
            _shard(db, shard)
            marked.write_text(part)
        else:
            marked.unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        cr(str(bindir / "cosmic-ray"), "exec", str(cfg), str(db))
    finally:
        if again:
            con = sqlite3.connect(db)
            query = "delete from work_results where worker_outcome = 'SKIPPED' and output = ?"
            con.execute(query, (_NOT_YET,))
            con.commit()
            con.close()
    seconds = time.perf_counter() - t0
    con = sqlite3.connect(db)
    rows = con.execute("select test_outcome, worker_outcome, diff from work_results").fetchall()
    con.close()
    outcomes = [r[0] for r in rows if r[1] != "SKIPPED"]  # filtered or not sampled
    survivors = [r[2] for r in rows if r[0] == "SURVIVED"]
    return {
        "module": module,
        "tested": len(outcomes),
        "killed": outcomes.count("KILLED"),
        "survived": survivors,
        "incompetent": outcomes.count("INCOMPETENT"),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mutation", description=__doc__.split("\n\n")[0])
    p.add_argument("--module", action="append", choices=sorted(SCOPE), help="only these modules (repeatable)")
    p.add_argument(
        "--sample", type=float, default=1.0, help="fraction of each module's mutants to run (seeded)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per mutant before it counts as killed"
    )
    p.add_argument(
        "--shard", default="0/1", metavar="K/N",
        help="run only the K-th of N interleaved parts of the (sampled) mutants, e.g. 0/2 and 1/2 in two "
        "processes with their own --keep folders (with --resume: of the mutants still to run, each process "
        "in its own copy of the kept folder)",
    )
    p.add_argument(
        "--hypothesis-profile", dest="profile",
        help='hypothesis profile of the tests (tests/conftest.py); default "mutation" (20 reproducible '
        'examples per test, fast), or "ci" with --again, so that a survivor is judged by the full tests',
    )
    p.add_argument(
        "--boundscheck", action="store_true",
        help="run the tests with numba's bounds checks (NUMBA_BOUNDSCHECK=1): a mutant that indexes outside "
        "an array fails instead of reading memory that may happen to hold the right value (slower)",
    )
    p.add_argument("--changed-since", metavar="REV",
                   help="only the mutants on lines changed since the git revision REV (or uncommitted)")
    p.add_argument("--json", type=Path, help="write the summary here")
    p.add_argument(
        "--keep", type=Path, metavar="DIR",
        help="work in DIR (created) and keep it: the mutants and their results, for --again",
    )
    p.add_argument(
        "--again", type=Path, metavar="DIR",
        help="rerun only the survivors of a run kept with --keep DIR, against the current tests",
    )
    p.add_argument(
        "--resume", type=Path, metavar="DIR",
        help="go on with an interrupted run kept with --keep DIR: run the mutants that have no result yet",
    )
    args = p.parse_args(argv)
    if not 0.0 < args.sample <= 1.0:
        p.error("--sample must be in (0, 1]")
    try:
        shard = tuple(int(v) for v in args.shard.split("/"))
        if len(shard) != 2 or not 0 <= shard[0] < shard[1]:
            raise ValueError
    except ValueError:
        p.error(f"--shard must be K/N with 0 <= K < N; got {args.shard!r}")
    if sum(map(bool, (args.keep, args.again, args.resume))) > 1:
        p.error("--keep, --again and --resume are exclusive (--again and --resume reuse a kept folder)")
    if args.changed_since and (args.again or args.resume):
        p.error("--changed-since picks the mutants of a new run; --again and --resume reuse a kept one")
    verify = ["git", "rev-parse", "--verify", "--quiet", f"{args.changed_since}^{{commit}}"]
    if args.changed_since and subprocess.run(verify, cwd=ROOT, capture_output=True).returncode != 0:
        p.error(f"--changed-since {args.changed_since}: not a git revision of {ROOT}")
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        p.error(f"--keep {args.keep}: the folder is not empty")
    for flag, folder in (("--again", args.again), ("--resume", args.resume)):
        if folder and not (folder / "repo").is_dir():
            p.error(f"{flag} {folder}: not a folder kept by --keep")
    if shutil.which("cosmic-ray", path=str(Path(sys.executable).parent)) is None:
        p.error("cosmic-ray is not installed in this environment: pip install -e '.[mutation]'")
    known = _load_equivalent()
    status = 0
    summary = []
    with contextlib.ExitStack() as stack:
        if args.keep or args.again or args.resume:
            work = args.keep or args.again or args.resume
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ambiseg-mutation-")))
        # again/resume: the tests as they are now, and the module restored if an interrupted mutant was left
        # in it (a module changed since --keep is refused below)
        _copy_tree(work / "repo")
        for module in args.module or sorted(SCOPE):
            res = run_module(
                work, module, SCOPE[module], args.sample, args.seed, args.timeout, again=bool(args.again),
                profile=args.profile or ("ci" if args.again else "mutation"), shard=shard,
                resume=bool(args.resume), boundscheck=args.boundscheck, changed_since=args.changed_since,
            )
            real = []
            for diff in res["survived"]:
                why = _is_equivalent(module, diff, known)
                if why is None:
                    real.append(diff)
            n_eq = len(res["survived"]) - len(real)
            score = (res["tested"] - len(real) - n_eq) / max(1, res["tested"] - n_eq)
            print(
                f"{module}: {res['tested']} mutants ({'survivors rerun' if args.again else 'run'} in "
                f"{res['seconds']:.0f} s); killed {res['killed']}, "
                f"equivalent {n_eq}, surviving {len(real)}; score {score:.1%}",
                flush=True,
            )
            for diff in real:
                before, after = _changed_lines(diff)
                print(f"  SURVIVED  - {before}\n            + {after}")
            status |= bool(real)
            summary.append(
                {**res, "survived": [_changed_lines(d) for d in real], "equivalent": n_eq, "score": score}
            )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
