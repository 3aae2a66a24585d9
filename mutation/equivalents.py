"""The known equivalent mutants (``mutation/equivalent.toml``), matched to a survivor's diff."""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent


def _changed_lines(diff: str) -> tuple[str, str]:
    """The removed and the added lines of a mutant's diff, stripped; blank lines are left out (cosmic-ray's
    diff of a module's last statement also removes and re-adds the blank lines after it)."""
    minus = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    plus = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    return "\n".join(x for x in minus if x), "\n".join(x for x in plus if x)


def _load_equivalent() -> list[dict[str, str]]:
    path = HERE / "equivalent.toml"
    return tomllib.loads(path.read_text())["mutant"] if path.exists() else []


def _is_equivalent(module: str, diff: str, known: list[dict[str, str]]) -> str | None:
    before, after = _changed_lines(diff)
    for k in known:
        afters = [k["after"]] if isinstance(k["after"], str) else k["after"]
        if k["module"] == module and k["before"].strip() == before and after in (a.strip() for a in afters):
            return k["why"]
    return None
