"""Sphinx directives of the ambiseg-metrics docs: content that is computed or written elsewhere.

``optional-include``
    Include a Markdown (myst) or text file written by another part of the project. While the file does
    not exist yet, a note says so instead of failing the build (with an optional fallback title so the
    page still has one).
``cli-help``
    The ``--help`` text of a console entry point, produced by running it at build time, so the CLI
    reference cannot drift from the parser.
``metrics-table``
    A table of metric values returned by a function of a figure script (``docs/figures/*.py``), computed
    by the library at build time.
"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from docutils.utils import new_document
from sphinx.util.docutils import SphinxDirective

__all__ = ["setup"]


def _missing_note(directive: SphinxDirective, what: str, title: str | None) -> list[nodes.Node]:
    note = nodes.note()
    note += nodes.paragraph(text=f"{what} is not in the repository yet; this part of the page appears once "
                            "it lands.")
    if not title:
        return [note]
    section = nodes.section(ids=[nodes.make_id(title)], names=[nodes.fully_normalize_name(title)])
    section += nodes.title(text=title)
    section += note
    directive.state.document.note_implicit_target(section, section)
    return [section]


class OptionalInclude(SphinxDirective):
    """``.. optional-include:: path`` (relative to the page, like ``include``).

    Options: ``:fallback-title:`` (section title used while the file is missing), ``:literal:`` (show the
    file as a literal block instead of parsing it; ``:language:`` sets its highlighting), ``:drop-title:``
    (Markdown: leave out the file's ``#`` title and promote its other headings one level, so that its
    sections become sections of the including page).
    """

    required_arguments = 1
    option_spec = {
        "fallback-title": directives.unchanged,
        "literal": directives.flag,
        "language": directives.unchanged,
        "drop-title": directives.flag,
    }

    def run(self) -> list[nodes.Node]:
        rel, path = self.env.relfn2path(self.arguments[0])
        if not os.path.isfile(path):
            return _missing_note(self, f"``{rel}``", self.options.get("fallback-title"))
        self.env.note_dependency(path)
        text = Path(path).read_text(encoding="utf-8")
        if "literal" in self.options:
            block = nodes.literal_block(text, text, source=path, classes=["included-output"])
            block["language"] = self.options.get("language", "text")
            self.set_source_info(block)
            return [block]
        if not path.endswith(".md"):
            raise self.error(f"optional-include: {rel} is neither Markdown (.md) nor marked :literal:")
        if "drop-title" in self.options:
            text = _drop_title(text)
        text = _link_included_pages(text, self.config.optional_include_pages)
        from myst_parser.parsers.sphinx_ import MystParser

        document = new_document(path, self.state.document.settings)
        MystParser().parse(text, document)
        return list(document.children)


def _drop_title(markdown: str) -> str:
    """Remove the first ``# `` heading and promote every other ATX heading by one level (not in fences)."""
    out, in_fence, dropped = [], False, False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            if level == 1 and not dropped and line[1:2] == " ":
                dropped = True
                continue
            if level > 1 and line[level:level + 1] == " ":
                line = line[1:]
        out.append(line)
    return "\n".join(out) + "\n"


_MD_LINK = re.compile(r"\]\(([^)\s#]+\.md)(#[^)\s]*)?\)")


def _link_included_pages(markdown: str, pages: dict[str, str]) -> str:
    """Point Markdown links to other included files (``conventions_table.md``, ``../README.md`` …) at the
    pages that show them (``optional_include_pages`` in conf.py maps file names to page names)."""

    def repl(match: re.Match) -> str:
        name = os.path.basename(match.group(1))
        page = pages.get(name)
        if not page:
            return match.group(0)
        anchor = "" if name == "README.md" else (match.group(2) or "")  # README headings are not on a page
        return f"](/{page}.rst{anchor})"

    return _MD_LINK.sub(repl, markdown)


class CliHelp(SphinxDirective):
    """``.. cli-help:: package.module:function`` with ``:prog:`` (the command's name).

    Runs ``function()`` in a fresh interpreter with ``sys.argv = [prog, "--help"]`` and shows its output.
    While the module does not exist yet, a note says so.
    """

    required_arguments = 1
    option_spec = {"prog": directives.unchanged_required, "args": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        target = self.arguments[0]
        module, _, func = target.partition(":")
        prog = self.options["prog"]
        args = self.options.get("args", "--help").split()
        import importlib.util

        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return _missing_note(self, f"The command ``{prog}`` (``{module}``)", None)
        code = (f"import sys; sys.argv = {[prog, *args]!r}; from {module} import {func}; "
                f"sys.exit({func}())")
        env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              timeout=120, check=False)
        if proc.returncode != 0:
            raise self.error(f"cli-help: `{prog} {' '.join(args)}` exited with {proc.returncode}:\n"
                             f"{proc.stdout}{proc.stderr}")
        text = f"$ {prog} {' '.join(args)}\n{proc.stdout.rstrip()}"
        block = nodes.literal_block(text, text, classes=["generated-output"])
        block["language"] = "text"
        self.set_source_info(block)
        return [block]


class MetricsTable(SphinxDirective):
    """``.. metrics-table:: figures/script.py`` with ``:function:`` (default ``example_metrics``).

    The function returns ``{metric name: value}``; the table shows each value with ``:digits:`` decimals
    (default 4).
    """

    required_arguments = 1
    option_spec = {
        "function": directives.unchanged,
        "digits": directives.nonnegative_int,
        "caption": directives.unchanged,
    }

    def run(self) -> list[nodes.Node]:
        rel, path = self.env.relfn2path(self.arguments[0])
        self.env.note_dependency(path)
        namespace = runpy.run_path(path, run_name="docs_figure")
        values = namespace[self.options.get("function", "example_metrics")]()
        digits = self.options.get("digits", 4)
        lines = [f".. list-table:: {self.options.get('caption', '')}".rstrip(),
                 "   :header-rows: 1", "   :widths: auto", "", "   * - metric", "     - value"]
        for name, value in values.items():
            lines += [f"   * - ``{name}``", f"     - {float(value):.{digits}f}"]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=rel), self.content_offset, container)
        return list(container.children)


def setup(app) -> dict[str, object]:
    app.add_config_value("optional_include_pages", {}, "env")
    app.add_directive("optional-include", OptionalInclude)
    app.add_directive("cli-help", CliHelp)
    app.add_directive("metrics-table", MetricsTable)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
