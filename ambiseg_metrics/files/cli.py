"""``ambiseg-eval``: evaluate a model's sampled masks against the annotators' masks, from files.

The command only reads files, runs :func:`ambiseg_metrics.files.cases.evaluate_cases` (which calls
:func:`ambiseg_metrics.evaluate` once per case) and reports; it does no metric arithmetic itself. Heavy
modules (numba, tqdm, Pillow, nibabel, dask) are imported only once a run starts, so ``--help`` is instant.
Its option flags are made from the option table (:data:`ambiseg_metrics.options.OPTIONS`): one flag
``--<name>`` per option :func:`~ambiseg_metrics.evaluate` takes. The library's messages speak Python; the
flag hints (``--allow-missing``, ``--scheduler``) are added here.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import asdict

from .. import __version__
from ..conventions import PRESETS, Conventions
from ..evaluation import ALL_METRICS, FAMILIES
from ..examples import example_paths
from ..options import evaluate_options, option
from . import case_eval
from .atomic import atomic_write_many
from .cases import EvalOptions, InputWarning, evaluate_cases
from .cli_process import (
    FIRED,
    Stopped,
    catch_signals,
    end_process,
    keep_worker_start_method,
    quiet_after_stop,
)
from .cli_report import (
    ReportUsageError,
    add_report_arguments,
    check_report_arguments,
    compare_main,
    discover_cli_cases,
    report_outputs,
)
from .distributed import (
    DaskMissingError,
    SchedulerUnreachableError,
    parse_scheduler,
    require_distributed,
    scheduler_client,
)
from .io import InputFileError
from .masks import ReadOptions
from .outputs import OutputPathError, check_output, check_outputs
from .report import csv_text, format_summary, json_text, summarize
from .runner import AUTO_MIN_CASES, jobs_value, start_method

__all__ = ["command", "main"]

EPILOG = """\
layouts (cases are matched by name; preds/ and gts/ may use different layouts):
  folder per case   PREDS/<case>/<anything>.<ext>   every file is one sample (one annotation under GTS/),
                                                     read in sorted file-name order
  file per case     PREDS/<case>.npy|.npz|.nii.gz|.tif  one file holds the stack (N, *spatial)

formats: .png .jpg .jpeg .bmp (one 2D mask per file), .tif/.tiff (a multi-page TIFF per case = a stack),
  .npy, .npz (the only array, or the one named 'masks'), .nii/.nii.gz (NIfTI; in a stack file the mask
  index is the last axis, as in NIfTI).
  Integer/bool masks are foreground where nonzero, float masks where > --threshold (values in [0, 1]).
  Integer masks with more than one foreground value (label maps, 8-bit probability images) or negative
  values are reported (--strict: refused); choose --label K (value == K) or --grey-probability
  (uint8 value/255 > --threshold). Palette PNGs are read by their index values; alpha is ignored.
  JPEG is lossy: such masks are read but a warning is printed (compression noise becomes foreground).

cases with N < 2 samples or M < 2 annotations: {pair_metrics} are undefined there;
  without --metrics they are left empty (nan) for those cases with a warning; with --metrics naming one
  of them the run fails with exit code 2.

output: a summary table on stdout (mean, std, median and a seeded bootstrap 95% CI of the mean over cases);
  --out writes one CSV row per case (case, n_pred, n_gt, every metric), --json the summary and the rows.
  Files are written atomically after every case succeeded: a failed run writes nothing.

exit codes: 0 ok, 2 bad input or usage (the message names the file), 1 internal error (--debug: traceback).

examples:
  ambiseg-eval --example
  ambiseg-eval preds/ gts/ --out results.csv --json summary.json --jobs 4
  ambiseg-eval preds/ gts/ --metrics ged,ci --estimator unbiased
  ambiseg-eval preds/ gts/ --scheduler local:4            # Dask: pip install "ambiseg-metrics[distributed]"
  ambiseg-eval /shared/preds /shared/gts --scheduler tcp://scheduler:8786
"""


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


def _pair_metric_names() -> list[str]:
    return [name for family in FAMILIES for name in family.names if name in family.needs_pairs]


def _add_option_flags(p: argparse.ArgumentParser) -> None:
    """One flag per option of :func:`~ambiseg_metrics.evaluate`, from the option table (None = not given)."""
    for name in evaluate_options():
        o = option(name)
        kind = {"choices": list(o.choices)} if o.choices else {"type": type(o.default)}
        p.add_argument("--" + name.replace("_", "-"), dest=name, **kind,
                       help=f"{o.doc} (default: the preset's; the library's is {o.default})")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ambiseg-eval``."""
    p = argparse.ArgumentParser(
        prog="ambiseg-eval",
        description="Evaluate sampled segmentation masks against several annotations per case: GED and its "
        "terms, the CI score (paper form and true harmonic mean) and its components, per case and summarised "
        "over cases.",
        epilog=EPILOG.replace("{pair_metrics}", ", ".join(_pair_metric_names())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("preds", nargs="?",
                   help="folder of the model's samples (a folder or a stack file per case)")
    p.add_argument("gts", nargs="?", help="folder of the annotations (a folder or a stack file per case)")
    p.add_argument("--example", action="store_true",
                   help="evaluate the example masks shipped with the package (instead of PREDS GTS)")
    p.add_argument("--metrics", metavar="LIST",
                   help="comma-separated metric names (default: the pairwise ones; 'raters' = every "
                   "rater-vote metric): " + ", ".join(ALL_METRICS))
    p.add_argument("--conventions", metavar="PRESET", choices=list(PRESETS),
                   help="conventions of a published code: " + ", ".join(PRESETS)
                   + " (default: the library's, = cimd); the options below override it")
    _add_option_flags(p)  # --threshold applies to float masks (and to --grey-probability images)
    p.add_argument("--label", type=int, metavar="K",
                   help="integer label maps: foreground = value == K (one class; both preds and gts)")
    p.add_argument("--grey-probability", action="store_true",
                   help="read 8-bit (uint8) images as probabilities value/255, foreground = > --threshold")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit 2) integer masks with more than one foreground value or negative "
                   "values, and a --threshold that cannot apply, instead of warning")
    p.add_argument("--out", metavar="CSV",
                   help="write one row per case (every metric, N and M) to this CSV ('-' = stdout)")
    p.add_argument("--json", metavar="JSON",
                   help="write the summary (and per-case rows) to this JSON file ('-' = stdout)")
    p.add_argument("--jobs", type=jobs_value, default="auto", metavar="N",
                   help="read and evaluate cases in N processes (this one and N-1 workers); 'auto' (the "
                   f"default): one process below {AUTO_MIN_CASES['images']} cases of image files or "
                   f"{AUTO_MIN_CASES['arrays']} of .npy/.npz stacks (of 8+3 masks of 128x128; fewer "
                   "for larger cases), else one per free CPU (usable CPUs less those busy now)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="run on Dask: tcp://host:8786 (an existing cluster whose workers see the same paths) "
                   "or local:N (a local cluster of N worker processes); needs the [distributed] extra")
    p.add_argument("--allow-missing", action="store_true",
                   help="skip (with a warning) cases present on one side only, instead of failing")
    p.add_argument("--bootstrap", type=int, default=10_000, metavar="B",
                   help="bootstrap resamples for the 95%% CI (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none when stderr is not a terminal)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing but errors (no table, no warnings, no progress)")
    p.add_argument("--debug", action="store_true", help="show the traceback of internal errors")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_report_arguments(p)  # --format, --html, --sample-curve
    return p


def _version() -> str:
    return __version__


def _warn(message: str) -> None:
    print(f"ambiseg-eval: warning: {message}", file=sys.stderr)


def _options(args: argparse.Namespace) -> EvalOptions:
    metrics = None
    if args.metrics is not None:
        metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    try:
        return EvalOptions(metrics=metrics, conventions=args.conventions,
                           **{name: getattr(args, name) for name in evaluate_options()}).checked()
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from exc


def _conventions_line(conv: Conventions) -> str:
    return f"{conv.name} (" + ", ".join(f"{k}={getattr(conv, k)}" for k in evaluate_options()) + ")"


def _conventions_dict(conv: Conventions) -> dict[str, object]:
    return {k: v for k, v in asdict(conv).items() if k != "notes"}


def _run(args: argparse.Namespace) -> int:
    if args.example:
        if args.preds or args.gts:
            raise UsageError("give either --example or PREDS GTS, not both")
        args.preds, args.gts = (str(p) for p in example_paths())
    elif not (args.preds and args.gts):
        raise UsageError("give the PREDS and GTS folders (or --example); see --help")
    if args.jobs != "auto" and args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1; got {args.jobs}")
    if args.bootstrap < 1:
        raise UsageError(f"--bootstrap must be >= 1; got {args.bootstrap}")
    try:
        start_method()  # AMBISEG_START_METHOD, if set, is fork or spawn
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.scheduler is not None and args.jobs not in (1, "auto"):
        raise UsageError("--jobs and --scheduler do not combine (size the Dask cluster instead)")
    if args.scheduler is not None:
        try:
            parse_scheduler(args.scheduler)
            require_distributed()
        except ValueError as exc:
            raise UsageError(f"--scheduler {args.scheduler!r}: {exc}") from exc
        except DaskMissingError as exc:
            raise UsageError(f"--scheduler: {exc}") from exc
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0; got {args.seed}")
    options = _options(args)
    if args.label is not None and args.grey_probability:
        raise UsageError("--label and --grey-probability do not combine (a label map is not a probability)")
    read = ReadOptions(label=args.label, grey_probability=args.grey_probability, strict=args.strict,
                       threshold=args.threshold)
    try:
        out_csv = check_output(args.out, "--out")
        out_json = check_output(args.json, "--json")
        check_outputs([(flag, given, target) for flag, given, target in
                       (("--out", args.out, out_csv), ("--json", args.json, out_json)) if target is not None],
                      [("predictions", args.preds), ("annotations", args.gts)])
    except OutputPathError as exc:
        raise UsageError(str(exc)) from exc
    check_report_arguments(args)  # before any pixel is read

    found: list[tuple[str, str]] = []
    cases = discover_cli_cases(args.preds, args.gts, args.allow_missing, found)

    progress = not (args.no_progress or args.quiet) and sys.stderr.isatty()  # no \r lines in logs
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)  # printed below, once, from table.notes
        if args.scheduler is not None:
            try:
                warm = (case_eval.warm_up, (options.checked(), len(cases) >= case_eval.BATCH_MIN_CASES))
                keep_worker_start_method()  # for this process's life: Dask may start workers after a stop
                with scheduler_client(args.scheduler, warm_up=warm) as client:
                    table = evaluate_cases(cases, options, client=client, progress=progress,
                                           extra_notes=found, read=read)
            except SchedulerUnreachableError as exc:
                raise SchedulerUnreachableError(f"--scheduler {exc}") from exc
            except KeyboardInterrupt:  # Ctrl-C, SIGTERM: a local cluster interrupted while it started
                quiet_after_stop()  # goes on logging its failure from its own threads; the run is over
                raise
        else:
            table = evaluate_cases(cases, options, jobs=args.jobs, progress=progress,
                                   extra_notes=found, read=read)
    elapsed = time.perf_counter() - started
    if not args.quiet:
        for note in table.notes:
            _warn(note)

    summary = summarize(table, n_boot=args.bootstrap, seed=args.seed)
    meta = {
        "tool": "ambiseg-eval", "version": _version(), "preds": str(args.preds), "gts": str(args.gts),
        "conventions": _conventions_dict(options.conventions),
        "bootstrap": {"resamples": args.bootstrap, "seed": args.seed, "confidence": 0.95},
    }
    texts = {}
    if out_csv is not None:
        texts[out_csv] = csv_text(table)
    if out_json is not None:
        texts[out_json] = json_text(table, summary, meta)
    extra = report_outputs(args, cases, table, summary, meta, options)
    texts.update(extra.texts)
    if FIRED:  # a signal whose exception was swallowed on its way (raised inside a library's __del__ or
        raise Stopped(FIRED[0])  # gc callback, which Python only reports): the run was still stopped
    try:  # all or nothing, never a truncated file; before printing (stdout may close)
        atomic_write_many(texts)
        args.written = bool(texts)
    except OSError as exc:
        names = ", ".join(str(p) for p in texts)
        raise UsageError(f"cannot write {names}: {exc}") from exc
    if args.quiet:
        return 0
    # the table goes to stdout unless stdout carries a written file
    report = sys.stderr if "-" in texts else sys.stdout

    n_pred = sorted({int(r["n_pred"]) for r in table.rows})
    n_gt = sorted({int(r["n_gt"]) for r in table.rows})

    def span(v: list[int]) -> str:
        return str(v[0]) if len(v) == 1 else f"{v[0]}..{v[-1]}"

    def say(line: str = "") -> None:
        print(line, file=report)

    say(f"{len(table)} cases, N = {span(n_pred)} samples and M = {span(n_gt)} annotations per case")
    say(f"preds: {args.preds}")
    say(f"gts:   {args.gts}")
    say(f"conventions: {_conventions_line(options.conventions)}")
    say(f"statistics over cases: mean, std (ddof=1), median, percentile bootstrap of the mean "
        f"({args.bootstrap} resamples, seed {args.seed})")
    say()
    say(format_summary(summary))
    if report is sys.stdout:
        extra.print()
    say(f"\nevaluated in {elapsed:.1f} s")
    for flag, given, target in (("--out", args.out, out_csv), ("--json", args.json, out_json)):
        if target is None:
            continue
        what = f"{len(table)} rows" if flag == "--out" else f"summary and {len(table)} cases"
        where = "standard output" if target == "-" else given
        print(f"wrote {where} ({what})", file=sys.stderr if target == "-" else report)
    for path in extra.texts:
        print(f"wrote {path}", file=report)
    if out_csv is None:
        say("(the per-case table was not saved: add --out results.csv to write it)")
    return 0


def command() -> None:
    """The ``ambiseg-eval`` command (and ``python -m ambiseg_metrics``): :func:`main`, then the process
    ends without the interpreter's teardown (:func:`~ambiseg_metrics.files.cli_process.end_process`). An
    exception that escapes :func:`main` takes the normal way out, traceback included."""
    end_process(main())


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ambiseg-eval``; return the exit code (0 ok, 2 bad input/usage, 1 internal error,
    130/143 interrupted by SIGINT/SIGTERM, 141 stdout closed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compare"]:  # ambiseg-eval compare A/ B/ gts/ (files/cli_report.py)
        return compare_main(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.command_line = ["ambiseg-eval", *argv]
    except SystemExit as exc:  # --help / --version (0) and usage errors (2)
        return int(exc.code or 0)
    args.written = False
    old = catch_signals()
    try:
        return _main(args)
    finally:
        # after a signal the handlers stay a no-op: a second Ctrl-C while the process ends would otherwise
        # end it with a traceback or a death by SIGINT instead of our exit code
        if not FIRED:
            for sig, handler in old.items():
                signal.signal(sig, handler)


def _stopped(args: argparse.Namespace, signum: int) -> int:
    what = "terminated" if signum == signal.SIGTERM else "interrupted"
    done = "the output files were written" if args.written else "no output written"
    print(f"ambiseg-eval: {what}, {done}", file=sys.stderr)
    return 128 + int(signum)


def _main(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (UsageError, ReportUsageError) as exc:
        print(f"ambiseg-eval: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed early (e.g. piped into head): the files are already written
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt as exc:
        return _stopped(args, getattr(exc, "signum", signal.SIGINT))
    except Exception as exc:
        if FIRED:  # the signal's exception, turned into another one on its way (e.g. by a C extension)
            return _stopped(args, FIRED[0])
        if isinstance(exc, (InputFileError, SchedulerUnreachableError)):
            print(f"ambiseg-eval: error: {exc}", file=sys.stderr)
            return 2
        if args.debug:
            traceback.print_exc()
        else:
            print(f"ambiseg-eval: internal error: {type(exc).__name__}: {exc} (run with --debug for the "
                  "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
