"""The mutation-testing configuration stays true to the code: every guarding test exists, and every
known-equivalent mutant still names a line of its module (a stale entry would hide nothing, but would
claim a reason for a line that is gone)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mutation.__main__ import ROOT, _load_equivalent
from mutation.scope import SCOPE

EQUIVALENT = _load_equivalent()


@pytest.mark.parametrize("module", sorted(SCOPE))
def test_scope_names_existing_files(module):
    assert (ROOT / "ambiseg_metrics" / module).is_file()
    for test in SCOPE[module]:
        path = Path(test.split("::", 1)[0])
        assert (ROOT / path).is_file(), test


@pytest.mark.parametrize("entry", EQUIVALENT, ids=lambda e: f"{e['module']}:{e['before'][:40]}")
def test_equivalent_mutants_name_current_lines(entry):
    assert entry["module"] in SCOPE
    lines = [ln.strip() for ln in (ROOT / "ambiseg_metrics" / entry["module"]).read_text().splitlines()]
    before = entry["before"].strip().splitlines()
    assert any(lines[i : i + len(before)] == before for i in range(len(lines))), entry["before"]
    afters = [entry["after"]] if isinstance(entry["after"], str) else entry["after"]
    assert afters and all(a.strip() != entry["before"].strip() for a in afters)
    assert entry["why"].strip()


def _diff(minus: list[str], plus: list[str]) -> str:
    path = "ambiseg_metrics/metrics/multiclass.py"
    head = f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n"
    return head + "".join(f"-{ln}\n" for ln in minus) + "".join(f"+{ln}\n" for ln in plus)


def test_a_survivor_matches_its_entry_whatever_blank_lines_its_diff_carries():
    """cosmic-ray's diff of a module's last statement also removes and re-adds the blank lines after it;
    those do not stop the match, and a different change still does not match."""
    from mutation.equivalents import _changed_lines, _is_equivalent

    before = "    return values if is_batch else float(values[0])"
    after = "    return values if is_batch else float(values[ -1])"
    plain, padded = _diff([before], [after]), _diff([before, "", ""], [after, "", ""])
    assert _changed_lines(padded) == _changed_lines(plain) == (before.strip(), after.strip())
    assert _is_equivalent("metrics/multiclass.py", padded, EQUIVALENT)
    other = _diff([before, ""], ["    return values if is_batch else float(values[1])", ""])
    assert _is_equivalent("metrics/multiclass.py", other, EQUIVALENT) is None
