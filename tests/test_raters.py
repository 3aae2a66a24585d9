"""Rater-vote metrics (vote-table path and per-pixel path) against the per-pixel numpy references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rater_reference as rr
from hypothesis import given
from hypothesis import strategies as st
from strategies import mask_sets

import ambiseg_metrics as am

TOL = 1e-12


def close(a, b):
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= TOL


def check_all(preds, gts, weights=None, n_bins=10):
    """Every metric of the library against the reference for one image."""
    kw = {} if weights is None else {"gt_weights": weights}
    assert close(am.qubiq_score(preds, gts, **kw), rr.qubiq(preds, gts, weights=weights))
    assert close(
        am.qubiq_score(preds, gts, comparison=">=", **kw),
        rr.qubiq(preds, gts, inclusive=True, weights=weights),
    )
    assert close(am.soft_dice(preds, gts, **kw), rr.soft_dice(preds, gts, weights))
    for classes in ("foreground", "both"):
        got = am.rater_calibration(preds, gts, n_bins=n_bins, classes=classes, **kw)
        want = rr.calibration(preds, gts, n_bins, classes == "both", weights)
        for g, w in zip((got.ece, got.mce, got.ace, got.brier), want, strict=True):
            assert close(g, w), (classes, got, want)
    got = am.uncertainty_error_overlap(preds, gts, **kw)
    want = rr.ueo(preds, gts, weights)
    for g, w in zip((got.ueo, got.auroc, got.auprc), want, strict=True):
        assert close(g, w), (got, want)
    assert abs(am.volume_crps(preds, gts, **kw) - rr.volume_crps(preds, gts, weights)) <= 1e-9
    assert close(am.consensus_dice(preds, gts, **kw), rr.consensus_dice(preds, gts, weights))


@given(mask_sets(max_n=7, max_m=5), st.integers(1, 12))
def test_binary_masks_through_the_vote_table(sets, n_bins):
    preds, gts = sets
    check_all(preds, gts, n_bins=n_bins)


@given(mask_sets(max_n=4, max_m=4), st.integers(0, 2**32 - 1))
def test_soft_and_weighted_inputs_through_the_per_pixel_path(sets, seed):
    preds, gts = sets
    rng = np.random.default_rng(seed)
    soft = np.where(preds, rng.random(preds.shape), 0.0)
    check_all(soft, gts)
    w = rng.random(len(gts)) + 0.1
    w[rng.random(len(gts)) < 0.3] = 0.0
    if w.sum() == 0:
        w[0] = 1.0
    check_all(preds, gts, weights=w / w.sum())


@given(mask_sets(max_n=8, max_m=5), st.integers(1, 12))
def test_vectorised_table_path_equals_the_per_image_readouts(sets, n_bins):
    """rater_metrics (vectorised over vote tables) against rater_metrics_from_votes (generic readouts of
    the same tables), both classes settings."""
    from ambiseg_metrics.metrics.raters import rater_metrics_from_votes, rater_votes

    preds, gts = sets
    votes = rater_votes(preds, gts)
    for classes in ("foreground", "both"):
        fast = am.rater_metrics(preds, gts, classes=classes, n_bins=n_bins)
        slow = rater_metrics_from_votes(votes, batch=False, classes=classes, n_bins=n_bins)
        for name in am.RATER_METRICS:
            assert close(fast[name], slow[name]), (name, fast[name], slow[name])


@given(mask_sets(max_n=4, max_m=4))
def test_table_and_per_pixel_paths_agree(sets):
    """0/1 floats take the per-pixel path; with N a power of two u = p(1 - p) is exact in both paths."""
    preds, gts = sets
    preds = preds[: 1 << int(np.log2(len(preds)))]
    for classes in ("foreground", "both"):
        table = am.rater_metrics(preds, gts, classes=classes)
        pixels = am.rater_metrics(preds.astype(np.float64), gts.astype(np.float64), classes=classes)
        for name in am.RATER_METRICS:
            assert close(table[name], pixels[name]) or abs(table[name] - pixels[name]) <= 1e-9, name


def test_batch_ragged_and_weights_per_image():
    rng = np.random.default_rng(0)
    preds = [rng.random((3, 6, 7)) < 0.5, rng.random((5, 6, 7)) < 0.5]
    gts = [rng.random((2, 6, 7)) < 0.5, rng.random((4, 6, 7)) < 0.5]
    got = am.qubiq_score(preds, gts, batch=True)
    assert got.shape == (2,)
    assert all(close(got[i], rr.qubiq(preds[i], gts[i])) for i in range(2))
    w = [np.array([0.25, 0.75]), np.array([0.1, 0.2, 0.3, 0.4])]
    cal = am.rater_calibration(preds, gts, batch=True, gt_weights=w)
    assert cal.bin_count.shape == (2, 10) and cal.bin_count.sum() == 2 * 42
    assert close(cal.ece[1], rr.calibration(preds[1], gts[1], weights=w[1])[0])


def test_worked_values_and_conventions():
    gts = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], bool)  # f = 1, 1/2, 0, 0
    preds = np.array([[[1, 1, 0, 0]]], bool)  # p = 1, 1, 0, 0
    # τ < 1/2: both {0, 1}: 1; τ >= 1/2 strict: f > τ only at pixel 0: 2/3
    assert close(am.qubiq_score(preds, gts), (4 + 5 * 2 / 3) / 9)
    assert am.qubiq_score(preds, gts, thresholds=[0.5], comparison=">=") == 1.0
    assert am.qubiq_score(preds, gts, thresholds=[0.5]) == 2 / 3
    empty = np.zeros((2, 3, 3), bool)
    assert am.qubiq_score(empty, empty) == 1.0 and am.soft_dice(empty, empty) == 1.0
    assert am.consensus_dice(empty, empty) == 1.0
    r = am.uncertainty_error_overlap(empty, empty)
    assert r.ueo == 1.0 and np.isnan(r.auroc) and np.isnan(r.auprc)
    # one probability map is p itself
    prob = np.array([[[0.9, 0.2, 0.5, 0.0]]])
    assert close(am.soft_dice(prob, gts), 2 * (0.9 + 0.1) / (1.6 + 1.5))


def test_linspace_edges_put_three_tenths_below_the_edge():
    """p = 3/10 lies in [0.2, 0.3) because np.linspace's edge is 0.30000000000000004 (as in SSN's code)."""
    preds = np.zeros((10, 1, 1), bool)
    preds[:3] = True
    cal = am.rater_calibration(preds, np.zeros((1, 1, 1), bool))
    assert cal.bin_count[2] == 1 and cal.bin_count[3] == 0


def test_bad_arguments_are_named():
    m = np.zeros((2, 3, 3), bool)
    with pytest.raises(ValueError, match="comparison"):
        am.qubiq_score(m, m, comparison="<")
    with pytest.raises(ValueError, match="thresholds"):
        am.qubiq_score(m, m, thresholds=[1.0])
    with pytest.raises(ValueError, match="n_bins"):
        am.rater_calibration(m, m, n_bins=0)
    with pytest.raises(ValueError, match="gt_weights must sum to 1"):
        am.soft_dice(m, m, gt_weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="one weight per annotation"):
        am.soft_dice(m, m, gt_weights=[1.0])
    with pytest.raises(ValueError, match="preds contains"):
        am.soft_dice(np.full((1, 3, 3), 1.5), m)


# ---- the compiled readout kernel (core._rater_kernel) against the numpy table path and the references
@st.composite
def vote_tables(draw):
    """(tables (B, N+1, M+1), areas (B, N+M)) of B images of P pixels each: random cells, all pixels in one
    cell (empty: T[0, 0] = P; full: T[N, M] = P; any other cell), P = 1 (a single pixel), N = 1, M = 1."""
    n, m = draw(st.integers(1, 9)), draw(st.integers(1, 5))
    b_images, pixels = draw(st.integers(1, 4)), draw(st.integers(1, 40))
    tables = np.zeros((b_images, n + 1, m + 1), np.int64)
    for i in range(b_images):
        kind = draw(st.sampled_from(["random", "random", "empty", "full", "one cell"]))
        if kind == "random":
            cells = draw(st.lists(st.integers(0, (n + 1) * (m + 1) - 1), min_size=pixels, max_size=pixels))
            np.add.at(tables[i].reshape(-1), cells, 1)
        else:
            corner = {"empty": (0, 0), "full": (n, m)}.get(kind)
            a, b = corner or (draw(st.integers(0, n)), draw(st.integers(0, m)))
            tables[i, a, b] = pixels
    areas = np.array(draw(st.lists(st.integers(0, pixels), min_size=b_images * (n + m),
                                   max_size=b_images * (n + m)))).reshape(b_images, n + m)
    return tables, areas


@given(vote_tables(), st.integers(1, 12), st.booleans(), st.booleans(),
       st.sets(st.sampled_from(am.RATER_METRICS), min_size=1))
def test_kernel_equals_the_numpy_table_path(tables, n_bins, inclusive, both, wanted):
    from ambiseg_metrics.core._rater_kernel import COLUMNS, table_readouts
    from ambiseg_metrics.metrics.rater_family import QUBIQ_THRESHOLDS
    from ambiseg_metrics.metrics.rater_tables import table_metrics

    assert COLUMNS == am.RATER_METRICS
    table, areas = tables
    thresholds = np.array(QUBIQ_THRESHOLDS)
    got = table_readouts(table, areas, wanted, thresholds, inclusive, n_bins, both)
    want = table_metrics(table, areas, set(am.RATER_METRICS), thresholds, inclusive, n_bins, both)
    assert set(got) == wanted
    for name in wanted:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-14, err_msg=name)


@given(st.lists(mask_sets(max_n=6, max_m=4), min_size=1, max_size=4), st.booleans())
def test_kernel_over_a_batch_equals_the_per_pixel_reference(images, both):
    """Several images in one block (same N, M, shape: the kernel's loop over images), 2D and 3D."""
    preds0, gts0 = images[0]
    same = [(p, g) for p, g in images if p.shape == preds0.shape and g.shape == gts0.shape]
    preds, gts = np.stack([p for p, _ in same]), np.stack([g for _, g in same])
    got = am.rater_metrics(preds, gts, batch=True, classes="both" if both else "foreground")
    for i in range(len(same)):
        p, g = preds[i], gts[i]
        ref = {"qubiq": rr.qubiq(p, g), "soft_dice": rr.soft_dice(p, g), "volume_crps": rr.volume_crps(p, g),
               "consensus_dice": rr.consensus_dice(p, g)}
        ref.update(zip(("ece", "mce", "ace", "brier"), rr.calibration(p, g, 10, both), strict=True))
        ref.update(zip(("ueo", "ueo_auroc", "ueo_auprc"), rr.ueo(p, g), strict=True))
        for name, value in ref.items():
            assert close(got[name][i], value) or abs(got[name][i] - value) <= 1e-12 * abs(value), name


def test_per_pixel_path_without_error_pixels_or_without_correct_ones_warns_nothing():
    """Soft predictions take the per-pixel path. With no error pixel, or with nothing but error pixels,
    there is no (error, non-error) pair to rank: the AUROC is NaN, and no numpy warning is raised."""
    gts = np.array([[[1, 1, 0, 0]], [[1, 1, 0, 0]]], bool)
    for soft in ([0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.9, 1.0]):  # p > 1/2 exactly where f > 1/2 / nowhere
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            r = am.uncertainty_error_overlap(np.array([[soft]]), gts)
        assert np.isnan(r.auroc)


@pytest.mark.parametrize("value", [-0.5, -1e-9, 1.0 + 1e-9, np.nan])
def test_per_pixel_path_refuses_a_probability_outside_0_1(value):
    gts = np.zeros((2, 3, 3), bool)
    soft = np.full((1, 3, 3), 0.5)
    am.soft_dice(soft, gts)
    soft[0, 1, 2] = value
    with pytest.raises(ValueError, match=r"preds contains .* at index \(0, 5\): probabilities must lie in"):
        am.soft_dice(soft, gts)


def test_per_pixel_path_names_the_image_only_in_a_batch():
    gts = np.zeros((2, 2, 3, 3), bool)
    soft = np.full((2, 1, 3, 3), 0.5)
    soft[1, 0, 2, 2] = 1.5
    with pytest.raises(ValueError, match=r"preds contains 1.5 \(image 1\) at index \(0, 8\)"):
        am.soft_dice(soft, gts, batch=True)
    with pytest.raises(ValueError, match=r"preds contains 1.5 at index \(0, 8\)"):
        am.soft_dice(soft[1], gts[1])


SECTIONS = [("qubiq",), ("soft_dice",), ("ece", "mce", "ace", "brier"), ("ueo", "ueo_auroc", "ueo_auprc"),
            ("volume_crps",), ("consensus_dice",)]


@pytest.mark.parametrize("picked", [(i, j) for i in range(6) for j in range(i, 6)])
def test_any_one_or_two_sections_of_the_kernel_read_as_all(picked):
    """The kernel computes only the sections asked for (a bit mask): each section alone and each pair
    gives the values of a call that asks for everything."""
    from ambiseg_metrics.core._rater_kernel import table_readouts
    from ambiseg_metrics.metrics.rater_family import QUBIQ_THRESHOLDS

    rng = np.random.default_rng(list(picked))
    table = rng.integers(0, 9, (3, 5, 4))
    areas = rng.integers(0, 30, (3, 7))
    thresholds = np.array(QUBIQ_THRESHOLDS)
    wanted = {name for k in set(picked) for name in SECTIONS[k]}
    every = table_readouts(table, areas, set(am.RATER_METRICS), thresholds, False, 10, True)
    got = table_readouts(table, areas, wanted, thresholds, False, 10, True)
    assert set(got) == wanted
    for name in wanted:
        np.testing.assert_array_equal(got[name], every[name], err_msg=name)
        assert not np.isnan(got[name]).any(), name


@pytest.mark.parametrize("b_images", [11, 12, 40])
def test_kernel_reads_batches_of_more_images_than_columns(b_images):
    """Batches of more images than the kernel has output columns (11): each image's row is its own, as
    image-by-image reads give it (a loop over the wrong axis of the output shows here under numba's
    bounds checks, ``python -m mutation --boundscheck``)."""
    from ambiseg_metrics.core._rater_kernel import COLUMNS, table_readouts
    from ambiseg_metrics.metrics.rater_family import QUBIQ_THRESHOLDS

    assert len(COLUMNS) == 11
    rng = np.random.default_rng(b_images)
    table = rng.integers(0, 9, (b_images, 5, 4))
    areas = rng.integers(0, 30, (b_images, 7))
    thresholds = np.array(QUBIQ_THRESHOLDS)
    got = table_readouts(table, areas, set(COLUMNS), thresholds, False, 10, True)
    for i in range(b_images):
        one = table_readouts(table[i : i + 1], areas[i : i + 1], set(COLUMNS), thresholds, False, 10, True)
        for name in COLUMNS:
            np.testing.assert_array_equal(got[name][i], one[name][0], err_msg=f"{name}, image {i}")


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("section", range(6))
def test_each_section_alone_equals_all_on_both_paths(section, soft):
    """``wanted`` of one section gives that section's values of a call for everything, through the vote
    table (binary masks) and through the per-pixel path (soft predictions); one image gives floats."""
    rng = np.random.default_rng(section)
    preds = rng.random((4, 6, 6)) if soft else rng.random((4, 6, 6)) < 0.5
    gts = rng.random((3, 6, 6)) < 0.5
    every = am.rater_metrics(preds, gts)
    got = am.rater_metrics(preds, gts, wanted=SECTIONS[section])
    assert set(got) == set(SECTIONS[section])
    for name, value in got.items():
        assert type(value) is float, name
        assert value == every[name] or (np.isnan(value) and np.isnan(every[name])), name


def test_reliability_curves_are_count_mean_p_and_mean_f_per_bin():
    """Binary masks: p = a/N per pixel, f = b/M; equal-width bins of p (np.linspace edges)."""
    rng = np.random.default_rng(12)
    preds = rng.random((4, 8, 8)) < 0.5
    gts = rng.random((3, 8, 8)) < 0.5
    cal = am.rater_calibration(preds, gts, n_bins=5)
    p, f = preds.mean(0).ravel(), gts.mean(0).ravel()
    bins = np.searchsorted(np.linspace(0.0, 1.0, 6)[1:-1], p, side="right")
    count = np.bincount(bins, minlength=5)
    np.testing.assert_array_equal(cal.bin_count, count)
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(cal.bin_mean_pred, np.bincount(bins, p, 5) / count, rtol=1e-12)
        np.testing.assert_allclose(cal.bin_mean_rater, np.bincount(bins, f, 5) / count, rtol=1e-12)
    assert len(set(map(tuple, (cal.bin_count, cal.bin_mean_pred, cal.bin_mean_rater)))) == 3


def test_rater_results_are_frozen():
    import dataclasses

    m = np.random.default_rng(0).random((3, 4, 4)) < 0.5
    for result, field in ((am.rater_calibration(m, m), "ece"), (am.uncertainty_error_overlap(m, m), "auroc")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(result, field, 0.0)


@pytest.mark.parametrize("thresholds", [[], [1.0], [1.5], [-0.5], [0.5, np.nan], [0.2, np.inf]])
def test_bad_thresholds_are_refused(thresholds):
    m = np.zeros((2, 3, 3), bool)
    with pytest.raises(ValueError, match=r"thresholds must be a non-empty sequence of levels in \[0, 1\)"):
        am.qubiq_score(m, m, thresholds=thresholds)


def test_a_threshold_of_0_is_valid():
    gts = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], bool)
    preds = np.array([[[1, 1, 0, 0]]], bool)
    assert am.qubiq_score(preds, gts, thresholds=[0.0]) == 1.0  # f > 0 and p > 0 at pixels 0 and 1


@pytest.mark.parametrize("n_bins", [0, -1, 2.5, True, "10", None])
def test_bad_bin_counts_are_refused(n_bins):
    m = np.zeros((2, 3, 3), bool)
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        am.rater_calibration(m, m, n_bins=n_bins)


def test_numpy_table_path_of_a_batch_equals_image_by_image():
    """The numpy reference reads a batch with one searchsorted over all images (each image's cumulative
    counts shifted apart): 300 random batches of 2-4 tables, many with all pixels in the first and last
    cells, give the values of one image at a time."""
    from ambiseg_metrics.metrics.rater_tables import table_metrics

    rng = np.random.default_rng(0)
    for _ in range(300):
        n, m = rng.integers(1, 6), rng.integers(1, 5)
        b_images, pixels = rng.integers(2, 5), rng.integers(1, 30)
        tables = np.zeros((b_images, n + 1, m + 1), np.int64)
        for i in range(b_images):
            cells = rng.integers(0, (n + 1) * (m + 1), pixels)
            if rng.random() < 0.5:
                cells = rng.choice([0, (n + 1) * (m + 1) - 1], pixels)
            np.add.at(tables[i].reshape(-1), cells, 1)
        areas = rng.integers(0, pixels + 1, (b_images, n + m))
        n_bins, both = int(rng.integers(1, 12)), bool(rng.integers(2))
        args = (set(am.RATER_METRICS), np.array([0.3, 0.5]), False, n_bins, both)
        batch = table_metrics(tables, areas, *args)
        for i in range(b_images):
            one = table_metrics(tables[i : i + 1], areas[i : i + 1], *args)
            for name in am.RATER_METRICS:
                np.testing.assert_allclose(batch[name][i], one[name][0], rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("section", range(6))
def test_each_section_alone_of_the_numpy_table_path(section):
    from ambiseg_metrics.metrics.rater_family import QUBIQ_THRESHOLDS
    from ambiseg_metrics.metrics.rater_tables import table_metrics

    rng = np.random.default_rng(section)
    table, areas = rng.integers(0, 9, (3, 5, 4)), rng.integers(0, 30, (3, 7))
    args = (np.array(QUBIQ_THRESHOLDS), False, 10, True)
    every = table_metrics(table, areas, set(am.RATER_METRICS), *args)
    got = table_metrics(table, areas, set(SECTIONS[section]), *args)
    assert set(got) == set(SECTIONS[section])
    for name in got:
        np.testing.assert_array_equal(got[name], every[name], err_msg=name)


def test_one_error_pixel_has_an_auprc():
    """One pixel where the samples' majority and the raters' majority disagree: AUPRC is defined (not NaN),
    on the kernel and on the numpy table path."""
    from ambiseg_metrics.core._rater_kernel import table_readouts
    from ambiseg_metrics.metrics.rater_tables import table_metrics

    table = np.zeros((1, 3, 3), np.int64)
    table[0, 2, 0] = 1  # both samples say yes, no rater does: the one error pixel
    table[0, 0, 0], table[0, 1, 1], table[0, 2, 2] = 5, 3, 4
    areas = np.array([[5, 4, 4, 4]])
    args = ({"ueo_auprc"}, np.array([0.5]), False, 10, False)
    kernel, numpy_path = table_readouts(table, areas, *args), table_metrics(table, areas, *args)
    assert not np.isnan(kernel["ueo_auprc"][0])
    assert numpy_path["ueo_auprc"][0] == pytest.approx(kernel["ueo_auprc"][0], rel=1e-12)


def test_per_pixel_path_reads_any_nonzero_integer_as_foreground():
    """Weights send binary masks to the per-pixel path: 0/255 uint8 masks count as 0/1 masks."""
    rng = np.random.default_rng(13)
    preds, gts = rng.random((3, 5, 5)) < 0.5, rng.random((2, 5, 5)) < 0.5
    w = [0.25, 0.75]
    want = am.rater_metrics(preds, gts, gt_weights=w)
    got = am.rater_metrics(preds.astype(np.uint8) * 255, gts.astype(np.uint8) * 255, gt_weights=w)
    for name in want:
        assert got[name] == want[name] or (np.isnan(got[name]) and np.isnan(want[name])), name


def test_per_pixel_path_names_the_first_of_several_bad_values():
    soft = np.full((2, 3, 3), 0.5)
    soft[0, 2, 2], soft[1, 0, 0] = 1.5, -0.5  # mask 0 pixel 8 comes before mask 1 pixel 0
    with pytest.raises(ValueError, match=r"preds contains 1.5 at index \(0, 8\)"):
        am.soft_dice(soft, np.zeros((2, 3, 3), bool))


@pytest.mark.parametrize("inclusive", [False, True])
def test_a_vote_fraction_equal_to_the_threshold_on_both_table_paths(inclusive):
    """N = M = 2: p = f = 1/2 lies exactly on the threshold 0.5, above it only with >=."""
    from ambiseg_metrics.core._rater_kernel import table_readouts
    from ambiseg_metrics.metrics.rater_tables import table_metrics

    table = np.array([[[3, 1, 0], [1, 4, 1], [0, 2, 5]]], np.int64)
    areas = np.array([[9, 12, 11, 11]])
    args = ({"qubiq"}, np.array([0.5]), inclusive, 10, False)
    kernel = table_readouts(table, areas, *args)["qubiq"]
    numpy_path = table_metrics(table, areas, *args)["qubiq"]
    yes_p, yes_f = (slice(1, None), slice(1, None)) if inclusive else (slice(2, None), slice(2, None))
    inter = table[0][yes_p, yes_f].sum()
    want = 2 * inter / (table[0][yes_p].sum() + table[0][:, yes_f].sum())
    assert kernel[0] == pytest.approx(want, rel=1e-12) and numpy_path[0] == pytest.approx(want, rel=1e-12)


def test_per_pixel_votes_are_frozen():
    import dataclasses

    from ambiseg_metrics.metrics.rater_readouts import rater_votes

    votes = rater_votes(np.full((2, 3, 3), 0.5), np.zeros((2, 3, 3), bool))[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        votes.c = None  # type: ignore[misc]
