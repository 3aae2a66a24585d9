"""Picking the mutants of a run (mutation/work_db.py): changed lines, shards, survivors to rerun."""

from __future__ import annotations

import sqlite3
import subprocess

import pytest

from mutation.work_db import _forget, _lines_changed_since, _only_lines, _pending, _shard


def _db(tmp_path, spans, results=()):
    """A session database like cosmic-ray's: one mutant per (first, last) line span; ``results`` are
    (job, outcome, diff) rows already run."""
    db = tmp_path / "s.sqlite"
    con = sqlite3.connect(db)
    con.execute("create table work_items (job_id varchar primary key)")
    con.execute("create table mutation_specs (job_id varchar primary key, start_pos_row int, "
                "end_pos_row int)")
    con.execute("create table work_results (worker_outcome varchar, output text, test_outcome varchar, "
                "diff text, job_id varchar primary key)")
    for i, (first, last) in enumerate(spans):
        con.execute("insert into work_items values (?)", (f"j{i}",))
        con.execute("insert into mutation_specs values (?, ?, ?)", (f"j{i}", first, last))
    for job, outcome, diff in results:
        con.execute("insert into work_results values ('NORMAL', '', ?, ?, ?)", (outcome, diff, job))
    con.commit()
    con.close()
    return db


def test_only_the_mutants_that_touch_a_changed_line_stay(tmp_path):
    db = _db(tmp_path, [(1, 1), (3, 3), (4, 6), (7, 7), (9, 9)])
    _only_lines(db, {3, 6})
    con = sqlite3.connect(db)
    assert _pending(con) == ["j1", "j2"]  # line 3; lines 4-6 hold 6
    skipped = "select count(*) from work_results where worker_outcome = 'SKIPPED'"
    assert con.execute(skipped).fetchone()[0] == 3


def test_changed_lines_come_from_git_new_files_count_whole(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@t")
    git("config", "user.name", "t")
    (tmp_path / "m.py").write_text("".join(f"x{i} = {i}\n" for i in range(1, 11)))
    git("add", "m.py")
    git("commit", "-q", "-m", "one")
    text = (tmp_path / "m.py").read_text().replace("x3 = 3", "x3 = 33")
    text = text.replace("x8 = 8\n", "x8 = 8\ny = 0\nz = 1\n").replace("x5 = 5\n", "")
    (tmp_path / "m.py").write_text(text)  # uncommitted edits count too
    assert _lines_changed_since(tmp_path, "m.py", "HEAD") == {3, 8, 9}  # x3; y, z (x5 removed: no line)
    (tmp_path / "new.py").write_text("a = 1\n")
    assert _lines_changed_since(tmp_path, "new.py", "HEAD") is None
    with pytest.raises(ValueError, match="no-such-revision: not a git revision"):
        _lines_changed_since(tmp_path, "m.py", "no-such-revision")  # not "every line new"


def test_shards_split_the_pending_mutants_and_skip_the_rest(tmp_path):
    db = _db(tmp_path, [(i, i) for i in range(1, 8)], results=[("j0", "KILLED", "")])
    _shard(db, (1, 2))
    assert _pending(sqlite3.connect(db)) == ["j2", "j4", "j6"]  # every second of j1..j6, from the second


def test_forget_deletes_only_the_chosen_survivors(tmp_path):
    db = _db(tmp_path, [(1, 1), (2, 2), (3, 3)],
             results=[("j0", "SURVIVED", "a"), ("j1", "SURVIVED", "b"), ("j2", "KILLED", "a")])
    _forget(db, lambda diff: diff == "a")
    con = sqlite3.connect(db)
    assert _pending(con) == ["j0"]
