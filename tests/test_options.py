"""The option model: one table, one resolver, explicit beats preset at every entry point (falsy too)."""

from __future__ import annotations

import inspect
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from option_cases import PRESET_VS_EXPLICIT, as_comparable, binary_case, label_case, preset_with

import ambiseg_metrics as am
from ambiseg_metrics.conventions import resolve_conventions, resolve_options
from ambiseg_metrics.core.docfill import fill_doc
from ambiseg_metrics.files.cases import EvalOptions, evaluate_case
from ambiseg_metrics.files.cli import main
from ambiseg_metrics.options import DEFAULT, OPTIONS, Default, evaluate_options, option

P, G = binary_case()
LP, LG = label_case()


def test_the_bug_of_issue_14_explicit_estimator_beats_the_preset_object():
    rng = np.random.default_rng(0)
    preds, gts = rng.random((1, 8, 16, 16)) > 0.5, rng.random((1, 4, 16, 16)) > 0.5
    got = am.evaluate(preds, gts, batch=True, conventions=am.Conventions(estimator="unbiased"),
                      estimator="v-statistic", metrics=["ged"])["ged"]
    want = am.ged(preds, gts, batch=True, estimator="v-statistic")
    unbiased = am.ged(preds, gts, batch=True, estimator="unbiased")
    assert got == pytest.approx(want) and not np.allclose(want, unbiased)


def test_every_option_has_a_case_and_markers():
    assert set(PRESET_VS_EXPLICIT) == {o.name for o in OPTIONS}
    for o in OPTIONS:
        marker = getattr(DEFAULT, o.name)
        assert isinstance(marker, Default) and repr(marker) == repr(o.default)
        assert o.validate(o.default) == o.default
        assert getattr(am.Conventions(), o.name) == o.default  # a Conventions field per option


@pytest.mark.parametrize("name", sorted(PRESET_VS_EXPLICIT))
def test_resolver_explicit_value_wins_even_when_falsy(name):
    preset, explicit = PRESET_VS_EXPLICIT[name]
    base = preset_with(name)
    resolved = resolve_options(base, **{name: explicit})
    assert getattr(resolved, name) == explicit and resolved.name == "test+custom"
    assert resolve_options(base, **{name: getattr(DEFAULT, name)}) is base  # not passed: the preset's
    assert getattr(resolve_options(base), name) == preset
    if name != "classes":  # the None-means-not-given form (CLI, EvalOptions) cannot pass classes=None
        assert getattr(resolve_conventions(base, **{name: explicit}), name) == explicit


def test_resolver_rejects_unknown_and_unaccepted_options_and_bad_values():
    with pytest.raises(TypeError, match="unknown option 'colour'"):
        resolve_options(None, colour="red")
    with pytest.raises(TypeError, match="ged_terms_from_counts\\(\\) takes no option 'threshold'"):
        resolve_options(None, accepted=("estimator",), caller="ged_terms_from_counts()", threshold=0.3)
    with pytest.raises(TypeError, match="evaluate\\(\\) takes no option 'classes'"):
        am.evaluate(P, G, classes=3)
    with pytest.raises(ValueError, match="variance must be one of"):
        am.evaluate(P, G, variance="std")
    with pytest.raises(TypeError, match="include_background must be True or False"):
        am.multiclass_ged(LP, LG, include_background=1)
    with pytest.raises(ValueError, match="classes must be >= 1"):
        am.multiclass_ged(LP, LG, classes=0)


def test_options_are_checked_before_any_pixel_is_read():
    nan = np.full((2, 4, 4), np.nan)  # reading these pixels would raise the NaN error
    for call in (
        lambda: am.evaluate(nan, nan, variance="bad"),
        lambda: am.ged(nan, nan, distance="bad"),
        lambda: am.ci_score(nan, nan, variance="bad"),
        lambda: am.hungarian_iou(nan, nan, similarity="bad"),
        lambda: am.MetricAccumulator(["ged"], estimator="bad"),
        lambda: am.evaluate(nan, nan, threshold=1.5),
    ):
        with pytest.raises(ValueError, match="must be one of|must lie in"):
            call()


# ----------------------------------------------------------------------------- explicit beats preset
def _binary(func, **fixed):
    return lambda conventions, **opts: func(P, G, conventions=conventions, **fixed, **opts)


def _accumulator(conventions, **opts):
    acc = am.MetricAccumulator(conventions=conventions, **opts)
    return acc.update(P[None], G[None])


def _evaluate_case(conventions, **opts):
    row = evaluate_case(P, G, EvalOptions(conventions=conventions, **opts))
    return {k: v for k, v in row.items() if k in am.METRICS}


def _counts(func, **fixed):
    counts = am.pair_counts(P, G)
    return lambda conventions, **opts: func(counts, conventions=conventions, **fixed, **opts)


def _labels(func):
    return lambda conventions, **opts: func(LP, LG, conventions=conventions, **opts)


GED_OPTIONS = ("threshold", "estimator", "distance", "empty_pair", "pair_average")
#: entry point -> (call(conventions, **options), the options it takes)
ENTRY_POINTS = {
    "ged": (_binary(am.ged), GED_OPTIONS),
    "ged_terms": (_binary(am.ged_terms), GED_OPTIONS),
    "ged_terms_from_counts": (_counts(am.ged_terms_from_counts), ("estimator", "distance", "empty_pair",
                                                                  "pair_average")),
    "sample_diversity": (lambda c, **o: am.sample_diversity(P, conventions=c, **o),
                         ("threshold", "estimator", "distance", "empty_pair")),
    "annotator_diversity": (lambda c, **o: am.annotator_diversity(P, conventions=c, **o),
                            ("threshold", "estimator", "distance", "empty_pair")),
    "combined_sensitivity": (_binary(am.combined_sensitivity), ("threshold",)),
    "max_dice_matching": (_binary(am.max_dice_matching), ("threshold",)),
    "diversity_agreement": (_binary(am.diversity_agreement), ("threshold", "variance")),
    "collective_insight": (_binary(am.collective_insight), ("threshold", "variance")),
    "ci_score": (_binary(am.ci_score), ("threshold", "variance")),
    "collective_insight_from_counts": (_counts(am.collective_insight_from_counts), ("variance",)),
    "hungarian_iou": (_binary(am.hungarian_iou), ("threshold", "similarity", "empty_pair")),
    "hungarian_iou_from_counts": (_counts(am.hungarian_iou_from_counts), ("similarity", "empty_pair")),
    "similarity_matrix": (_binary(am.similarity_matrix), ("threshold", "empty_pair")),
    "pair_counts_via_evaluate_counts": (_counts(am.evaluate_counts), tuple(
        n for n in evaluate_options() if n != "threshold")),
    "evaluate": (_binary(am.evaluate), evaluate_options()),
    "MetricAccumulator": (_accumulator, evaluate_options()),
    "evaluate_case (EvalOptions)": (_evaluate_case, evaluate_options()),
    "multiclass_ged": (_labels(am.multiclass_ged), (
        "classes", "include_background", "class_absent", "estimator", "distance")),
    "multiclass_ged_terms": (_labels(am.multiclass_ged_terms), (
        "classes", "include_background", "class_absent", "estimator", "distance")),
    "multiclass_hungarian_iou": (_labels(am.multiclass_hungarian_iou), (
        "classes", "include_background", "class_absent", "distance")),
    "multiclass_similarity": (_labels(am.multiclass_similarity), (
        "classes", "include_background", "class_absent", "distance")),
}
CASES = [(entry, name) for entry, (_, names) in ENTRY_POINTS.items() for name in names]


@pytest.mark.parametrize(("entry", "name"), CASES, ids=[f"{e}-{n}" for e, n in CASES])
def test_explicit_option_beats_the_preset(entry, name):
    call, _ = ENTRY_POINTS[entry]
    base = preset_with(name)
    explicit = PRESET_VS_EXPLICIT[name][1]
    got = as_comparable(call(base, **{name: explicit}))
    want = as_comparable(call(base.with_options(**{name: explicit})))
    preset_only = as_comparable(call(base))
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, preset_only), "the inputs do not tell the two values apart"


@pytest.mark.parametrize("name", evaluate_options())
def test_cli_explicit_flag_beats_the_preset(tmp_path, capsys, name):
    # the CLI takes preset names only: pick a preset and a value it does not have (falsy where possible)
    preset = "mbh" if name == "empty_pair" else "cimd"
    explicit = {"threshold": 0.0, "estimator": "unbiased", "distance": "dice", "empty_pair": "one",
                "ci_form": "harmonic", "variance": "pixel", "pair_average": "pooled"}[name]
    assert getattr(am.get_convention(preset), name) != explicit
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    np.save(tmp_path / "p" / "c.npy", P.astype(np.float32))
    np.save(tmp_path / "g" / "c.npy", G)
    js = tmp_path / "s.json"
    flag = "--" + name.replace("_", "-")
    code = main([str(tmp_path / "p"), str(tmp_path / "g"), "--conventions", preset, flag, str(explicit),
                 "--json", str(js), "--bootstrap", "10", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(js.read_text())
    assert doc["conventions"][name] == explicit
    changed = am.get_convention(preset).with_options(**{name: explicit})
    want = am.evaluate(P.astype(np.float32), G, conventions=changed)
    other = am.evaluate(P.astype(np.float32), G, conventions=preset)
    row = doc["cases"][0]
    assert [row[k] for k in am.METRICS] == pytest.approx([want[k] for k in am.METRICS], nan_ok=True)
    assert as_comparable(want) != as_comparable(other)


# ----------------------------------------------------------------------------- the option table
def test_option_docs_come_from_the_table():
    for name in evaluate_options():
        assert f"{name} : {option(name).doc_type}" in am.evaluate.__doc__
        assert f"{name} : {option(name).doc_type}" in am.MetricAccumulator.__doc__
    assert "conventions : str or Conventions" in am.ged.__doc__


def test_markers_and_options_pickle():
    assert pickle.loads(pickle.dumps(DEFAULT.threshold)).name == "threshold"
    conv = resolve_options("kohl", threshold=0.0)
    assert pickle.loads(pickle.dumps(conv)) == conv


def test_eval_options_keep_their_positional_order():
    o = EvalOptions(("ged",), 0.0, "unbiased", "dice", "pixel", "mbh").checked()
    assert (o.threshold, o.estimator, o.distance, o.variance, o.conventions.name) == (
        0.0, "unbiased", "dice", "pixel", "mbh+custom")
    assert o.empty_pair == "zero"  # not given: the preset's


# ----------------------------------------------------------------------------- docstring helper
def test_fill_doc_replaces_marker_lines_only():
    @fill_doc(part="a : int\n    The a.\n\n    indented")
    def f():
        """Doc with \\mathbb{E}[x] and {not a marker} inline.

        Parameters
        ----------
        {part}
        """

    assert "\\mathbb{E}[x] and {not a marker} inline" in f.__doc__
    assert "        a : int\n            The a.\n\n            indented\n" in f.__doc__


def test_fill_doc_refuses_holes_and_unused_parts():
    with pytest.raises(KeyError, match="marker {other}"):
        @fill_doc(part="x")
        def g():
            """{other}"""
    with pytest.raises(ValueError, match="no marker line for \\['part'\\]"):
        @fill_doc(part="x")
        def h():
            """No marker."""


def test_no_docstring_keeps_a_marker_and_none_is_patched():
    names = [n for n in am.__all__ if callable(getattr(am, n))]
    for n in names:
        doc = getattr(am, n).__doc__ or ""
        assert "{inputs}" not in doc and "{conventions}" not in doc and "{options}" not in doc, n
    package = Path(am.__file__).parent
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "__doc__.replace" not in text and "__doc__ = " not in text.replace("func.__doc__ = ", ""), path


#: Public functions whose options may also be passed by position (low-level helpers of one array, and the
#: file API's single ``options`` object); every other option of every public function is keyword-only.
POSITIONAL_OPTIONS = {"dice_from_counts": ["empty_value"], "iou_from_counts": ["empty_value"],
                      "hungarian_from_matrix": ["method", "col_weights"], "evaluate_case": ["options"],
                      "evaluate_cases": ["options"]}


@pytest.mark.parametrize("name", [n for n in am.__all__ if inspect.isfunction(getattr(am, n))])
def test_every_public_option_is_keyword_only(name):
    """The data come first and may be named (``preds=``, ``gts=``: no positional-only parameter); every
    option after them is keyword-only, so a call never binds a threshold to the wrong option."""
    params = list(inspect.signature(getattr(am, name)).parameters.values())
    assert not [p.name for p in params if p.kind is p.POSITIONAL_ONLY]
    positional = [p.name for p in params if p.default is not p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == POSITIONAL_OPTIONS.get(name, [])
