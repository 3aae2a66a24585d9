"""The pending mutants of a cosmic-ray session database, and marking some of them skipped (sampling,
sharding, or set aside while ``--again`` reruns survivors)."""

from __future__ import annotations

import random
import sqlite3
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
