"""The pending mutants of a cosmic-ray session database, and marking some of them skipped (sampling,
sharding, or set aside while ``--again`` reruns survivors)."""

from __future__ import annotations

import random
import re
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path


def _pending(con: sqlite3.Connection) -> list[int]:
    """The mutants of a session database not run (nor skipped) yet, in job order."""
    query = ("select job_id from work_items where job_id not in (select job_id from work_results) "
             "order by job_id")
    return [r[0] for r in con.execute(query)]


def _skip(db: Path, keep: Callable[[list[int]], list[int]], why: str) -> None:
    """Mark the pending mutants that ``keep(pending)`` does not return as done (skipped, ``why``)."""
    con = sqlite3.connect(db)
    pending = _pending(con)
    kept = set(keep(pending))
    con.executemany(
        "insert into work_results (worker_outcome, output, test_outcome, diff, job_id) "
        "values ('SKIPPED', ?, 'SKIPPED', '', ?)",
        [(why, j) for j in pending if j not in kept],
    )
    con.commit()
    con.close()


#: why --again skips the mutants of an unfinished run that were never run (they stay for --resume)
_NOT_YET = "not run yet (--again reruns survivors only)"


def _sample(db: Path, fraction: float, seed: int) -> None:
    """Keep a seeded ``fraction`` of the pending mutants; mark the others skipped."""
    rng = random.Random(seed)
    _skip(db, lambda pending: [j for j in pending if rng.random() < fraction], "not sampled")


def _shard(db: Path, shard: tuple[int, int]) -> None:
    """Keep only every n-th pending mutant (offset k) of ``shard = (k, n)``; mark the others skipped."""
    k, n = shard
    _skip(db, lambda pending: pending[k::n], "other shard")


def _lines_changed_since(root: Path, path: str, rev: str) -> set[int] | None:
    """Lines of ``path`` (1-based, in the working tree under ``root``) added or changed since the git
    revision ``rev``; None if the file did not exist at ``rev`` (then every line is new)."""
    commit = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=root,
                            capture_output=True)
    if commit.returncode != 0:
        raise ValueError(f"--changed-since {rev}: not a git revision of {root}")
    known = subprocess.run(["git", "cat-file", "-e", f"{rev}:{path}"], cwd=root, capture_output=True)
    if known.returncode != 0:
        return None
    diff = subprocess.run(["git", "diff", "-U0", rev, "--", path], cwd=root, capture_output=True, text=True,
                          check=True).stdout
    lines: set[int] = set()
    for hunk in re.finditer(r"^@@ -\S+ \+(\d+)(?:,(\d+))? @@", diff, re.MULTILINE):
        start, count = int(hunk[1]), int(hunk[2] or 1)
        lines.update(range(start, start + count))
    return lines


def _only_changed(db: Path, root: Path, path: str, rev: str) -> None:
    """Keep the pending mutants on lines of ``path`` changed since ``rev`` (all of a file new since)."""
    lines = _lines_changed_since(root, path, rev)
    if lines is not None:
        _only_lines(db, lines)


def _forget(db: Path, rerun: Callable[[str], bool]) -> None:
    """Delete the results of the survivors whose diff ``rerun`` selects: cosmic-ray runs them again."""
    con = sqlite3.connect(db)
    query = ("select job_id, diff from work_results where test_outcome = 'SURVIVED' "
             "and worker_outcome != 'SKIPPED'")
    jobs = [(job,) for job, diff in con.execute(query) if rerun(diff)]
    con.executemany("delete from work_results where job_id = ?", jobs)
    con.commit()
    con.close()


def _only_lines(db: Path, lines: set[int]) -> None:
    """Keep the pending mutants that touch one of ``lines``; mark the others skipped."""
    con = sqlite3.connect(db)
    spans = {job: range(first, last + 1) for job, first, last in con.execute(
        "select job_id, start_pos_row, end_pos_row from mutation_specs")}
    con.close()
    _skip(db, lambda pending: [j for j in pending if not lines.isdisjoint(spans[j])], "not on a changed line")
