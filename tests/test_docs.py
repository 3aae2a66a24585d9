"""The documentation cannot rot: every code block in docs/ is run, and the site builds without a warning.

* every ``>>>`` example of every page (``docs/*.rst`` and the Markdown files the pages include) runs as a
  doctest;
* the site builds with ``sphinx -W`` (warnings are errors), and every code block of the built pages is
  accounted for: doctests (run above), Python blocks (executed), shell commands (run, or parsed by the
  command's own argument parser when they need data or hours, or equal word for word to a README command
  that CI runs), generated output and plain text;
* every public name of ``ambiseg_metrics`` is in the API reference;
* every built page, opened offline in headless Chromium (``tests/browser.py``), loads nothing from the
  network, logs no error, shows every equation typeset and every figure loaded.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.metadata
import io
import os
import pickle
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILD_ARGS = ["-W", "--keep-going", "-b", "html"]
#: The build command of the README and .ci/run; the build test runs exactly these arguments.
BUILD_COMMAND = "python -m sphinx " + " ".join(BUILD_ARGS) + " docs docs/_build/html"
#: Documented commands that are run for real by the tests (fast, no data needed).
RUN_FOR_REAL = {"ambiseg-eval --example"}
#: Markdown files outside docs/ that pages include.
INCLUDED_ELSEWHERE = [ROOT / "benchmarks" / "RESULTS.md"]
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
TORCH_PAGES = {"cimd_model.rst"}  # pages whose examples need torch: run by tests/model/test_docs_model.py


def doc_sources() -> list[Path]:
    """Every page and every included Markdown file that exists now."""
    pages = sorted(DOCS.glob("*.rst")) + sorted(DOCS.glob("*.md"))
    return pages + [p for p in INCLUDED_ELSEWHERE if p.is_file()]


def run_doctests(path: Path) -> tuple[int, str]:
    """Run the ``>>>`` examples of one file in one namespace; return (number of examples, failure report)."""
    text = path.read_text(encoding="utf-8")
    test = doctest.DocTestParser().get_doctest(text, {"__name__": "__docs__"}, path.name, str(path), 0)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
    runner.run(test, out=out.write)
    return len(test.examples), (out.getvalue() if runner.failures else "")


@pytest.mark.parametrize("path", [p for p in doc_sources() if p.name not in TORCH_PAGES],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_page_examples(path: Path) -> None:
    _, failures = run_doctests(path)
    assert not failures, failures


def test_pages_have_examples() -> None:
    # The pages that promise code must carry it (a doctest parser silently finding nothing would pass).
    for name in ("getting_started.rst", "metrics.rst", "conventions.rst"):
        n, _ = run_doctests(DOCS / name)
        assert n >= 4, f"{name} has only {n} doctest examples"


# ------------------------------------------------------------------------------------ API reference
def test_every_public_name_is_in_the_api_reference() -> None:
    import ambiseg_metrics

    text = (DOCS / "api.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. auto(?:function|class|data|exception)::\s+(\S+)", text, re.M))
    missing = sorted(set(ambiseg_metrics.__all__) - documented)
    assert not missing, f"docs/api.rst lacks an autodoc entry for {missing}"


# ------------------------------------------------------------------------------------ README commands
def readme_commands() -> list[str]:
    """The commands of the README's ```bash blocks."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:bash|console|sh)\n(.*?)```", text, re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_names_the_docs_build_command() -> None:
    if "sphinx" not in (ROOT / "README.md").read_text(encoding="utf-8"):
        pytest.skip("the README does not mention the docs build yet")
    assert BUILD_COMMAND in (ROOT / "README.md").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------ the built site
@pytest.fixture(scope="module")
def built_docs(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    for module in ("sphinx", "myst_parser", "furo", "matplotlib"):
        pytest.importorskip(module, reason="building the docs needs the [docs] extra: pip install .[docs]")
    out = tmp_path_factory.mktemp("docs")
    cmd = [sys.executable, "-m", "sphinx", *BUILD_ARGS, "-q", "-d", str(out / "doctrees"), str(DOCS),
           str(out / "html")]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600, check=False)
    return proc, out


def test_docs_build_without_warnings(built_docs) -> None:
    proc, out = built_docs
    assert proc.returncode == 0, f"sphinx -W failed:\n{proc.stdout}\n{proc.stderr}"
    assert (out / "html" / "index.html").is_file()
    # the worked example's figure was made at build time
    assert list((out / "html" / "_images").glob("worked_example*.png")) or list(
        (out / "html").rglob("worked_example*.png")
    )


# ------------------------------------------------------------------------------------ in a browser
#: Pages whose screenshots are kept; the failure message names their folder.
SCREENSHOT_PAGES = ("index", "metrics", "conventions")
#: What an equation left untypeset shows: Sphinx's ``\(`` ``\)`` ``\[`` ``\]`` delimiters, or ``$$``.
RAW_MATH = re.compile(r"\\[()[\]]|\$\$")


def test_pages_in_a_browser(built_docs, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every built page, opened offline in headless Chromium as a reader without internet access would:
    nothing requested from the network, no console error or warning, no failed request, every equation
    typeset (no raw delimiter left; a TeX error is a console error, see docs/_ext/mathjax_config.js) and
    every figure loaded with a non-zero size."""
    from browser import open_page, require_chromium

    require_chromium()
    proc, out = built_docs
    assert proc.returncode == 0, f"sphinx -W failed:\n{proc.stdout}\n{proc.stderr}"
    html = out / "html"
    shots = tmp_path_factory.mktemp("docs-screenshots")
    problems: list[str] = []
    math_pages, figures = [], 0
    for path in sorted(html.rglob("*.html")):
        page = path.relative_to(html).with_suffix("").as_posix()
        report = open_page(path, screenshot=shots / f"{page}.png" if page in SCREENSHOT_PAGES else None)
        problems += [f"{page}: console {message}" for message in report.console]
        problems += [f"{page}: failed request {url}" for url in report.failed_requests]
        problems += [f"{page}: network request {url}" for url in report.network_requests]
        raw = list(RAW_MATH.finditer(report.text))
        if raw:
            first = raw[0]
            problems.append(f"{page}: {len(raw)} raw math delimiters in the visible text, the first in "
                            f"{report.text[max(first.start() - 30, 0):first.end() + 50]!r}")
        problems += [f"{page}: figure not loaded or of zero size {image}" for image in report.images
                     if not (image["complete"] and image["width"] > 0 and image["height"] > 0)]
        figures += len(report.images)
        if 'class="math' in path.read_text(encoding="utf-8"):
            math_pages.append(page)
    print(f"docs in a browser: {len(math_pages)} pages with math, {figures} figures; screenshots in {shots}")
    assert not problems, (f"{len(problems)} problems in the built docs opened offline in Chromium "
                          f"(screenshots of {', '.join(SCREENSHOT_PAGES)} in {shots}):\n"
                          + "\n".join(problems[:40]) + ("\n..." if len(problems) > 40 else ""))
    # the checks saw what they check: the equations of the definition pages and the built figures
    assert {"metrics", "conventions"} <= set(math_pages), math_pages
    assert figures >= 1, f"no figure found in the built pages (screenshots in {shots})"


def doctrees(out: Path) -> Iterator[tuple[str, object]]:
    for path in sorted((out / "doctrees").glob("*.doctree")):
        with path.open("rb") as f:
            yield path.stem, pickle.load(f)


def code_blocks(out: Path) -> Iterator[tuple[str, object]]:
    from docutils import nodes

    for page, tree in doctrees(out):
        for node in tree.findall(lambda n: isinstance(n, (nodes.literal_block, nodes.doctest_block))):
            yield page, node


def shell_commands(text: str) -> list[str]:
    """Commands of a console block: ``$ `` prompts stripped, ``\\`` continuations joined, comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    return lines


def entry_point(prog: str):
    """The function behind a console script declared in the installed metadata."""
    matches = [ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == prog]
    if not matches:
        pytest.fail(f"the docs use the command {prog!r}, which no installed package declares")
    return matches[0]


def command_parser(prog: str):
    """The argparse parser behind a console script (``<name>_parser`` beside ``<name>_main``, or
    ``build_parser`` / ``make_parser`` / ``get_parser``)."""
    ep = entry_point(prog)
    stem = ep.attr.removesuffix("_main")
    # the entry point's module, or the module it delegates to (cimd-table1 -> cimd_model.table1)
    candidates = [ep.module, f"{ep.module.rpartition('.')[0]}.{stem}"]
    for module_name in candidates:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == "torch":
                return None  # a cimd_model command without torch installed: checked where torch is
            continue
        for name in (f"{stem}_parser", "build_parser", "make_parser", "get_parser", "parser"):
            factory = getattr(module, name, None)
            if callable(factory):
                return factory()
    pytest.fail(f"no parser factory in {candidates} to check the documented `{prog}` command against")


def project_extras() -> tuple[str, set[str], set[str]]:
    """(project name, its optional-dependency extras, top-level module names of every declared dependency)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: read the installed metadata instead
        meta = importlib.metadata.metadata("ambiseg-metrics")
        requirements = [r.split(";")[0] for r in meta.get_all("Requires-Dist") or []]
        extras = {e: [] for e in meta.get_all("Provides-Extra") or []}
        meta = {"name": meta["Name"]}
    else:
        meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        extras = meta.get("optional-dependencies", {})
        requirements = list(meta.get("dependencies", [])) + [r for reqs in extras.values() for r in reqs]
    names = set()
    for req in requirements:
        name = re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0]
        names.add(name.lower().replace("-", "_"))
        for extra in re.findall(r"\[(.*?)\]", req):  # dask[distributed] brings distributed
            names.update(e.strip().lower().replace("-", "_") for e in extra.split(","))
    return meta["name"], set(extras), names


def check_pip_install(argv: list[str], command: str) -> str:
    """``pip install "<this project>[extras]"``: the extras must exist in pyproject.toml."""
    name, extras, _ = project_extras()
    targets = [a for a in argv[2:] if not a.startswith("-")]
    assert argv[1] == "install" and targets, f"unexpected pip command in the docs: {command}"
    for target in targets:
        package, _, rest = target.partition("[")
        assert package.lower() in {name, "."}, f"the docs install a package that is not ours: {command}"
        wanted = {e.strip() for e in rest.rstrip("]").split(",") if e.strip()}
        assert wanted <= extras, f"`{command}` names extras {sorted(wanted - extras)} missing from pyproject"
    return "pip extras"


def check_flags(help_cmd: list[str], argv: list[str], command: str) -> None:
    """Every ``--flag`` of the documented command must appear in the ``--help`` of what it runs."""
    proc = subprocess.run([*help_cmd, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          check=False)
    assert proc.returncode == 0, f"`{' '.join(help_cmd)} --help` failed:\n{proc.stdout}\n{proc.stderr}"
    flags = [a.split("=")[0] for a in argv[1:] if a.startswith("--")]
    missing = [f for f in flags if f not in proc.stdout]
    assert not missing, f"`{command}`: {missing} are not options of `{' '.join(help_cmd)}`"


def check_external(argv: list[str], command: str) -> str:
    """A command of another tool (e.g. ``dask worker``): its flags are checked against its ``--help``."""
    prog = argv[0]
    exe = Path(sys.executable).parent / prog
    exe = str(exe) if exe.exists() else shutil.which(prog)
    if exe is None:
        pytest.fail(f"the docs use `{prog}`, which is not installed here: {command}")
    sub = [a for a in argv[1:2] if not a.startswith("-") and "://" not in a]
    check_flags([exe, *sub], argv, command)
    return "external flags"


def check_python_script(argv: list[str], command: str) -> str:
    """``python path/to/script.py --flags`` or ``python -m module --flags`` (a long job such as a
    benchmark): the script must exist in the repository and accept the flags (checked with ``--help``)."""
    if len(argv) >= 3 and argv[1] == "-m":
        target = argv[1:3]
    elif len(argv) >= 2 and argv[1].endswith(".py"):
        assert (ROOT / argv[1]).is_file(), f"`{command}` runs {argv[1]}, which is not in the repository"
        target = argv[1:2]
    else:
        pytest.fail(f"documented command is neither run by the tests nor a README command: {command}")
    check_flags([sys.executable, *target], argv, command)
    return "script flags"


def check_command(command: str, readme: list[str]) -> str:
    """Run or check one documented shell command; return how it was checked."""
    if command == BUILD_COMMAND:
        return "build"  # what built_docs runs
    if command in readme:
        return "README"
    argv = shlex.split(command, comments=True)
    while argv and re.match(r"^[A-Za-z_]\w*=", argv[0]):
        argv = argv[1:]  # environment assignments (OMP_NUM_THREADS=1 ...)
    prog, args = argv[0], argv[1:]
    if "&&" in argv or "|" in argv or ";" in argv:
        pytest.fail(f"documented command is neither run by the tests nor a README command: {command}")
    if prog == "pip":
        return check_pip_install(argv, command)
    if prog in {"python", "python3"}:
        return check_python_script(argv, command)
    if prog not in OUR_COMMANDS:
        return check_external(argv, command)
    if " ".join(argv) in RUN_FOR_REAL or args == ["--help"]:
        ep = entry_point(prog)
        code = f"import sys; from {ep.module} import {ep.attr} as main; sys.argv = {argv!r}; sys.exit(main())"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                              timeout=300, check=False)
        assert proc.returncode == 0, f"`{command}` failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        return "run"
    if prog == "ambiseg-eval" and args[:1] == ["compare"]:  # the subcommand has its own parser
        from ambiseg_metrics.files.cli_report import build_compare_parser

        prog, args = "ambiseg-eval compare", args[1:]
        parser = build_compare_parser()
    else:
        parser = command_parser(prog)
    if parser is None:
        return "needs torch"
    try:  # needs data or hours: check it against the command's real parser (flags, choices, types)
        parser.parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"documented command `{command}` is rejected by its parser (exit {exc.code})")
    return "parsed"


class StandIns:
    """Placeholders of the docs' deployment examples, replaced by local stand-ins so the code really runs:
    a cluster address by an in-process Dask cluster, cohort folders by the shipped example cases."""

    ADDRESS = "tcp://scheduler-host:8786"

    def __init__(self) -> None:
        self.cluster = None

    def apply(self, text: str) -> str:
        if "/shared/cohort/" in text:
            from ambiseg_metrics.examples import example_paths

            preds, gts = example_paths()
            text = text.replace("/shared/cohort/preds", str(preds)).replace("/shared/cohort/gts", str(gts))
        if self.ADDRESS in text:
            if self.cluster is None:
                distributed = pytest.importorskip("distributed", reason="Dask examples need [distributed]")
                self.cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                                        dashboard_address=None)
            text = text.replace(self.ADDRESS, self.cluster.scheduler_address)
        return text

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()


def run_python_block(text: str, name: str, namespace: dict, stand_ins: StandIns) -> str:
    """Execute a Python block; a block that imports a third-party package this project does not declare
    (e.g. ``dask_jobqueue`` in a deployment example) is compiled but cannot run here."""
    code = compile(stand_ins.apply(text), name, "exec")
    try:
        exec(code, namespace)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        _, _, declared = project_extras()
        if top in {"ambiseg_metrics", "cimd_model"} or top.lower() in declared:
            raise
        return "python (external package)"
    return "python"


def needs_torch(text: str) -> bool:
    """Python blocks of the model side; tests/model/test_docs_model.py runs them (torch tests live there)."""
    return bool(re.search(r"^\s*(from|import)\s+(cimd_model|torch)\b", text, re.M))


def python_blocks(path: Path) -> list[str]:
    """The Python code blocks of a page source: ```python fences (Markdown), ``code-block:: python`` (rst)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        return [m.group(2) for m in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", text, re.M | re.S)
                if m.group(1) in PYTHON]
    blocks = []
    for m in re.finditer(r"^( *)\.\. code-block:: *python3?\n((?:\1 .*\n|\s*\n)*)", text, re.M):
        lines = [line for line in m.group(2).splitlines() if not line.strip().startswith(":")]
        blocks.append(textwrap.dedent("\n".join(lines)).strip() + "\n")
    return blocks


PYTHON = {"python", "py", "python3", "ipython3", "pycon"}
SHELL = {"console", "bash", "sh", "shell", "shell-session"}
TEXT = {"text", "none", "default", "", None}
OUR_COMMANDS = {"ambiseg-eval", "cimd-train", "cimd-sample", "cimd-table1"}


def test_every_code_block_is_run(built_docs) -> None:
    proc, out = built_docs
    if not (out / "doctrees").is_dir():
        pytest.fail(f"the docs build wrote no doctrees:\n{proc.stderr}")
    readme = readme_commands()
    doctested = {str(p) for p in doc_sources()}
    seen: dict[str, int] = {}
    namespaces: dict[str, dict] = {}
    stand_ins = StandIns()
    try:
        for page, node in code_blocks(out):
            text = node.astext()
            source = str(node.get("source") or node.source or "")
            language = node.get("language")
            if "docstring of" in source:
                kind = "docstring"  # API reference: run by tests/test_doctests.py (or plain text)
            elif ">>>" in text:
                assert source.split(":")[0] in doctested, f"{page}: doctest from {source} is not run"
                kind = "doctest"
            elif {"generated-output", "included-output"} & set(node.get("classes", [])):
                kind = "output"
            elif language in PYTHON and needs_torch(text):
                kind = "python (torch: run by tests/model/test_docs_model.py)"
            elif language in PYTHON:
                if source.endswith(".py"):
                    runpy.run_path(source, run_name="docs_check")  # a literalinclude: the whole file runs
                kind = run_python_block(text, f"<{page}: {source}>", namespaces.setdefault(page, {}),
                                        stand_ins)
            elif language in SHELL:
                for command in shell_commands(text):
                    kind = check_command(command, readme)
                    seen[kind] = seen.get(kind, 0) + 1
                continue
            elif language in TEXT:
                kind = "text"
            else:
                pytest.fail(f"{page}: code block in language {language!r} is not run by the tests:\n{text}")
            seen[kind] = seen.get(kind, 0) + 1
    finally:
        stand_ins.close()
    print("code blocks checked:", seen)
    # the getting-started page shows both README commands and the build command; the CLI page runs one
    assert seen.get("README", 0) >= 2 and seen.get("build", 0) >= 1 and seen.get("doctest", 0) >= 8, seen
    assert seen.get("python", 0) >= 2 and seen.get("run", 0) >= 1, seen


def test_worked_example_text_matches_its_numbers() -> None:
    """docs/worked_example.rst reads the computed numbers in words; the words must stay true."""
    from ambiseg_metrics import combined_sensitivity, max_dice_matching

    script = runpy.run_path(str(DOCS / "figures" / "worked_example.py"), run_name="docs_check")
    values = script["example_metrics"]()
    preds, gts = script["example_masks"]()
    assert not gts[-1].any() and not preds[-1].any()  # one empty annotation, one empty sample
    assert 0.9 < values["combined_sensitivity"] < 1.0  # "just below 1"
    assert combined_sensitivity(preds, gts[:-1]) == values["combined_sensitivity"]  # empty one: no effect
    assert values["max_dice_matching"] < 1.0
    assert max_dice_matching(preds[:-1], gts) < values["max_dice_matching"]  # the empty sample helps
    assert values["diversity_agreement"] > 0.9  # "high"
    assert values["ged"] < 0.25 * values["ged_cross"]  # "small compared with its cross term"


def test_offline_math_names_the_missing_mathjax_package(monkeypatch) -> None:
    """Without the MathJax package the build stops at once and says what to install (no CDN fallback)."""
    pytest.importorskip("sphinx", reason="the docs extension needs the [docs] extra")
    monkeypatch.syspath_prepend(str(DOCS / "_ext"))
    import offline_math
    from sphinx.errors import ExtensionError

    assert (offline_math.mathjax_distribution() / "es5" / offline_math.SCRIPT).is_file()
    monkeypatch.setattr(offline_math.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ExtensionError, match="pip install django-static-mathjax"):
        offline_math.mathjax_distribution()
