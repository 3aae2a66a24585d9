"""The report side of ``ambiseg-eval``: ``--format``, ``--html``, ``--sample-curve``, the ``compare`` command.

:func:`add_report_arguments` adds the flags to the main parser and :func:`report_outputs` turns a finished
run into the extra files (written together with ``--out``/``--json``, all or nothing) and the text printed
after the summary. :func:`compare_main` is the ``compare`` subcommand. Like :mod:`.cli`, nothing heavy is
imported before a run starts.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .runner import jobs_value

__all__ = [
    "ReportUsageError", "add_report_arguments", "check_report_arguments", "compare_main", "report_outputs",
]

FORMAT_CHOICES = ("grand-challenge", "nnunet")


class ReportUsageError(Exception):
    """Bad usage of a report flag (exit code 2)."""


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--format``, ``--format-dir``, ``--html``, ``--html-metric``, ``--sample-curve`` and
    ``--sample-repeats`` to ``p``."""
    g = p.add_argument_group("reports (see `ambiseg-eval compare --help` to compare models)")
    g.add_argument("--format", action="append", choices=FORMAT_CHOICES, default=None, metavar="NAME",
                   help="also write a file other tools read: grand-challenge (metrics.json with 'case' and "
                   "'aggregates') or nnunet (summary.json with 'metric_per_case' and 'mean'); repeatable")
    g.add_argument("--format-dir", metavar="DIR", default=".",
                   help="folder for the --format files (default: the current folder)")
    g.add_argument("--html", metavar="HTML", help="write a self-contained HTML report (needs matplotlib)")
    g.add_argument("--html-metric", metavar="NAME", default="ged",
                   help="metric whose worst/median/best cases the report shows (default ged)")
    g.add_argument("--sample-curve", nargs="?", const="", default=None, metavar="CSV",
                   help="score each case with the first n = 1, 2, 4, ... N samples and random subsets; print "
                   "each metric's mean and spread against n (and write them to CSV if given; before the "
                   "folders write --sample-curve=CSV)")
    g.add_argument("--sample-repeats", type=int, default=10, metavar="R",
                   help="random subsets per case and n for --sample-curve (default 10)")


def _out_path(path: str, flag: str, inputs: Sequence[str]) -> Path:
    out = Path(path)
    if out.is_dir():
        raise ReportUsageError(f"{flag} {path}: is a folder; give a file name")
    if not out.parent.is_dir():
        raise ReportUsageError(f"{flag} {path}: folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise ReportUsageError(f"{flag} {path}: folder {out.parent} is not writable")
    target = out.resolve()
    for folder in inputs:
        root = Path(folder).resolve()
        if target == root or root in target.parents:
            raise ReportUsageError(f"{flag} {path}: is inside the input folder {folder}; write elsewhere")
    return out


@dataclass
class ReportOutputs:
    """Files to write (path → text) and what to print after the summary."""

    texts: dict[Path, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def print(self, stream=None) -> None:
        for line in self.lines:
            print(line, file=stream or sys.stdout)


def _command(args: argparse.Namespace) -> str:
    argv = getattr(args, "command_line", None) or ["ambiseg-eval", *sys.argv[1:]]
    return shlex.join(argv)


def _report_paths(args: argparse.Namespace) -> tuple[dict[str, Path], Path | None, Path | None]:
    from .formats import FORMATS

    inputs = [str(args.preds), str(args.gts)]
    if args.sample_repeats < 1:
        raise ReportUsageError(f"--sample-repeats must be >= 1; got {args.sample_repeats}")
    if args.format and not Path(args.format_dir).is_dir():
        raise ReportUsageError(f"--format-dir {args.format_dir}: no such folder")
    paths = {name: _out_path(str(Path(args.format_dir) / FORMATS[name]), f"--format {name}", inputs)
             for name in dict.fromkeys(args.format or [])}
    html_path = _out_path(args.html, "--html", inputs) if args.html else None
    curve_path = _out_path(args.sample_curve, "--sample-curve", inputs) if args.sample_curve else None
    return paths, html_path, curve_path


def check_report_arguments(args: argparse.Namespace) -> None:
    """Check the report flags before any file is read (raises ReportUsageError)."""
    _report_paths(args)
    if args.html:
        from ..evaluation import METRICS

        wanted = METRICS if args.metrics is None else [m.strip() for m in args.metrics.split(",")]
        if args.html_metric not in wanted:
            raise ReportUsageError(f"--html-metric {args.html_metric}: not among the metrics computed: "
                                   + ", ".join(wanted))


def report_outputs(args: argparse.Namespace, cases, table, summary, meta: dict, options) -> ReportOutputs:
    """The ``--format``/``--html``/``--sample-curve`` outputs of a finished ``ambiseg-eval`` run."""
    from .formats import format_text

    out = ReportOutputs()
    paths, html_path, curve_path = _report_paths(args)
    if html_path is not None and args.html_metric not in table.metrics:
        raise ReportUsageError(f"--html-metric {args.html_metric}: not computed; computed: "
                               + ", ".join(table.metrics))
    sources = {c.name: (str(c.pred), str(c.gt)) for c in cases}
    for name, path in paths.items():
        out.texts[path] = format_text(name, table, sources)
    curve = None
    if args.sample_curve is not None:
        from .sample_curve import sample_curve

        curve = sample_curve(cases, options, repeats=args.sample_repeats, seed=args.seed,
                             progress=not args.no_progress)
        out.lines += ["", f"sample curve ({args.sample_repeats} random subsets per case and n, "
                      f"seed {args.seed}):",
                      curve.format(), *curve.notes]
        if curve_path is not None:
            out.texts[curve_path] = curve.csv_text()
    if html_path is not None:
        from .html import ReportInput, build_html

        rep = ReportInput({"model": table}, {"model": cases}, {"model": summary}, meta["conventions"],
                          _command(args), threshold=options.conventions.threshold,
                          grid_metric=args.html_metric, curve=curve, notes=list(table.notes))
        out.texts[html_path] = build_html(rep)
    return out


# ------------------------------------------------------------------------------------------------ compare
COMPARE_EPILOG = """\
The last folder holds the annotations; every other folder one model's samples (same layouts as
ambiseg-eval). Every model is scored on the same cases; then, per metric and pair of models: the mean
paired difference A - B with its paired bootstrap 95% interval, the sign-flip permutation p-value (exact
for <= 16 non-zero differences), the Wilcoxon signed-rank p-value, both Holm-corrected over all rows, the
win/tie/loss count of A (direction-aware: lower GED is better, higher CI is better) and Cohen's d_z.

exit codes: 0 ok, 2 bad input or usage (also: the model folders do not hold the same cases, unless
  --allow-missing), 1 internal error.

examples:
  ambiseg-eval compare modelA/ modelB/ gts/ --names A,B --html report.html
  ambiseg-eval compare $(python -m ambiseg_metrics.examples --compare)
"""


def build_compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ambiseg-eval compare", epilog=COMPARE_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Compare two or more models on the same cases, with paired "
                                "statistics.")
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="MODEL_A MODEL_B [MODEL_C ...] GTS")
    p.add_argument("--names", metavar="LIST", help="comma-separated model names (default: folder names)")
    p.add_argument("--allow-missing", action="store_true",
                   help="compare the cases every folder holds and report how many were dropped")
    p.add_argument("--metrics", metavar="LIST", help="comma-separated metric names (default: all)")
    from ..conventions import PRESETS

    p.add_argument("--conventions", metavar="PRESET", choices=list(PRESETS),
                   help="conventions of a published code: " + ", ".join(PRESETS) + " (as ambiseg-eval)")
    p.add_argument("--threshold", type=float, help="foreground threshold of float masks (default 0.5)")
    p.add_argument("--estimator", choices=["v-statistic", "unbiased"], help="GED within-set estimator")
    p.add_argument("--distance", choices=["iou", "dice"], help="GED distance: 1 - IoU or 1 - Dice")
    p.add_argument("--variance", choices=["dice", "pixel"], help="D_a pairwise variance")
    p.add_argument("--out", metavar="CSV", help="write the comparison table (one row per metric and pair)")
    p.add_argument("--json", metavar="JSON",
                   help="write per-model summaries, per-case rows and the comparison")
    p.add_argument("--html", metavar="HTML", help="write a self-contained HTML report")
    p.add_argument("--html-metric", metavar="NAME", default="ged",
                   help="metric of the case grids (default ged)")
    p.add_argument("--bootstrap", type=int, default=10_000, metavar="B", help="bootstrap resamples (10000)")
    p.add_argument("--permutations", type=int, default=10_000, metavar="P",
                   help="Monte Carlo sign flips when there are more than 16 non-zero differences (10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the sign flips (0)")
    p.add_argument("--jobs", type=jobs_value, default="auto", metavar="N",
                   help="local processes ('auto', the default: 1 for small runs, else one per free CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show the traceback of internal errors")
    return p


def _model_names(args: argparse.Namespace, folders: list[str]) -> list[str]:
    if args.names is not None:
        names = [n.strip() for n in args.names.split(",")]
        if len(names) != len(folders) or not all(names):
            raise ReportUsageError(f"--names: give {len(folders)} non-empty names; got {args.names!r}")
    else:
        names = [Path(f).resolve().name or f for f in folders]
        if len(set(names)) != len(names):
            names = [f"{n}_{i + 1}" for i, n in enumerate(names)]
    if len(set(names)) != len(names):
        raise ReportUsageError(f"--names: the names must be distinct; got {names}")
    return names


def _case_names(root: str) -> set[str]:
    """Case names under ``root`` as discover_cases sees them (sub-folders and mask files, hidden skipped)."""
    from .io import case_name, mask_extension

    return {case_name(e) for e in Path(root).iterdir()
            if not e.name.startswith(".") and (e.is_dir() or mask_extension(e) is not None)}


def _run_compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .cases import EvalOptions

    if len(args.folders) < 3:
        raise ReportUsageError("give at least two model folders and the annotations folder")
    for flag, v in (("--bootstrap", args.bootstrap), ("--permutations", args.permutations),
                    ("--jobs", args.jobs)):
        if v != "auto" and v < 1:
            raise ReportUsageError(f"{flag} must be >= 1; got {v}")
    *model_dirs, gts = args.folders
    names = _model_names(args, model_dirs)
    metrics = None if args.metrics is None else tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    try:
        options = EvalOptions(metrics, args.threshold, args.estimator, args.distance, args.variance,
                              args.conventions).checked()
    except (ValueError, TypeError) as exc:
        raise ReportUsageError(str(exc)) from exc
    if args.html and args.html_metric not in options.names:
        raise ReportUsageError(f"--html-metric {args.html_metric}: not computed; computed: "
                               + ", ".join(options.names))
    outs = {flag: _out_path(v, flag, args.folders) for flag, v in
            (("--out", args.out), ("--json", args.json), ("--html", args.html)) if v}

    from .compare import compare_runs

    found: list[tuple[str, str]] = []
    per_model = {n: discover_cli_cases(d, gts, args.allow_missing, found)
                 for n, d in zip(names, model_dirs, strict=True)}
    common = set.intersection(*({c.name for c in cs} for cs in per_model.values()))
    universe = set().union(*(_case_names(d) for d in [*model_dirs, gts]))
    dropped = len(universe - common)
    if dropped and not args.allow_missing:  # cannot happen: discover_cases raised already
        raise ReportUsageError("the folders do not hold the same cases (pass --allow-missing)")
    per_model = {n: [c for c in cs if c.name in common] for n, cs in per_model.items()}

    import warnings

    from .atomic import atomic_write_many
    from .cases import InputWarning, evaluate_cases
    from .report import format_summary, summarize

    started = time.perf_counter()
    tables = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        for n, cs in per_model.items():
            tables[n] = evaluate_cases(cs, options, jobs=args.jobs, progress=not args.no_progress)
    cmp = compare_runs(tables, n_boot=args.bootstrap, n_perm=args.permutations, seed=args.seed)
    cmp.dropped = dropped
    if dropped:
        cmp.notes.insert(0, f"--allow-missing: {dropped} case(s) not held by every folder were dropped; "
                         f"{len(common)} compared")
    elapsed = time.perf_counter() - started
    summaries = {n: summarize(t, n_boot=args.bootstrap, seed=args.seed) for n, t in tables.items()}
    notes = [*(m for _, m in found), *cmp.notes, *(x for t in tables.values() for x in t.notes)]
    from dataclasses import asdict

    conv = {k: v for k, v in asdict(options.conventions).items() if k != "notes"}
    command = shlex.join(["ambiseg-eval", "compare", *argv])
    texts: dict[Path, str] = {}
    if "--out" in outs:
        texts[outs["--out"]] = cmp.csv_text()
    if "--json" in outs:
        import json

        doc = {"tool": "ambiseg-eval compare", "command": command, "gts": gts, "conventions": conv,
               "models": {n: {"folder": d, "summary": {s.metric: s.as_dict() for s in summaries[n]},
                              "cases": [{k: (None if isinstance(v, float) and v != v else v)
                                         for k, v in r.items()} for r in tables[n].rows]}
                          for n, d in zip(names, model_dirs, strict=True)},
               "comparison": cmp.as_dict()}
        texts[outs["--json"]] = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    if "--html" in outs:
        from .html import ReportInput, build_html

        rep = ReportInput(tables, per_model, summaries, conv, command,
                          threshold=options.conventions.threshold, grid_metric=args.html_metric,
                          comparison=cmp, notes=notes,
                          title="ambiseg-eval compare report")
        texts[outs["--html"]] = build_html(rep)
    atomic_write_many(texts)

    for m in notes:
        print(f"ambiseg-eval compare: warning: {m}", file=sys.stderr)
    print(f"{len(common)} cases compared ({dropped} dropped); annotations: {gts}")
    for n, d in zip(names, model_dirs, strict=True):
        print(f"\nmodel {n}: {d}\n{format_summary(summaries[n])}")
    print(f"\npaired comparison (A - B; {args.bootstrap} bootstrap resamples, seed {args.seed}):")
    print(cmp.format())
    written = [str(p) for p in texts]
    print(f"\nevaluated in {elapsed:.1f} s" + (f"; wrote {', '.join(written)}" if written else ""))
    return 0


def discover_cli_cases(preds: str | Path, gts: str | Path, allow_missing: bool,
                       found: list[tuple[str, str]]) -> list:
    """:func:`~ambiseg_metrics.files.io.discover_cases` for the command line: warnings are collected in
    ``found``, and unmatched cases are reported with the flag that skips them."""
    from .io import InputFileError, UnmatchedCasesError, discover_cases

    try:
        return discover_cases(preds, gts, allow_missing=allow_missing,
                              warn=lambda kind, msg: found.append((kind, msg)))
    except UnmatchedCasesError as exc:
        raise InputFileError(f"{exc.unmatched} (pass --allow-missing to skip them)") from exc


def compare_main(argv: Sequence[str]) -> int:
    """Run ``ambiseg-eval compare ARGV``; return the exit code."""
    parser = build_compare_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    from .compare import CaseSetMismatchError
    from .io import InputFileError

    try:
        return _run_compare(args, argv)
    except (ReportUsageError, InputFileError, CaseSetMismatchError) as exc:
        print(f"ambiseg-eval compare: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ambiseg-eval compare: interrupted; no output written", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        else:
            print(f"ambiseg-eval compare: internal error: {type(exc).__name__}: {exc} (run with --debug)",
                  file=sys.stderr)
        return 1
