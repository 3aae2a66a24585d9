"""The Table 1 pipeline (``cimd-table1``) on its tiny profile, and the true-distribution GED."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import shutil
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="cimd_model tests need torch (pip install .[model])")

import ambiseg_metrics  # noqa: E402
from cimd_model import table1  # noqa: E402
from cimd_model.true_ged import true_ged, true_ged_batch  # noqa: E402

DATA = ["ambiblobs-ct", "ambiblobs-mri"]  # 1 and 4 image channels, 4 and 2 annotators
ARGS = ["--config", "tiny", "--data", ",".join(DATA), "--no-progress", "--quiet", "--n-boot", "200"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("table1") / "run"
    t0 = time.time()
    assert table1.main([*ARGS, "--out", str(out)]) == 0
    return out, time.time() - t0


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _written(out, key, model):
    ids = sorted(p.stem for p in (out / key / "gts").glob("*.npy"))
    preds = [np.load(out / key / model / "samples" / f"{i}.npy") for i in ids]
    gts = [np.load(out / key / "gts" / f"{i}.npy") for i in ids]
    return ids, preds, gts


# ------------------------------------------------------------------------------------------ the pipeline
def test_layout_of_the_outputs(tiny_run):
    out, _ = tiny_run
    for name in ("table1.md", "table1.csv", "per_image.csv", "timings.json"):
        assert (out / name).is_file(), name
    for key in DATA:
        ids = sorted(p.stem for p in (out / key / "gts").glob("*.npy"))
        assert len(ids) == 4
        for model in table1.MODELS:
            assert (out / key / model / "checkpoint.pt").is_file()
            for case in ids:
                s = np.load(out / key / model / "samples" / f"{case}.npy")
                assert s.dtype == np.float32 and s.shape == (4, 32, 32)
                assert 0.0 <= s.min() and s.max() <= 1.0
        g = np.load(out / key / "gts" / f"{ids[0]}.npy")
        assert g.dtype == np.uint8 and g.shape == (4 if key.endswith("ct") else 2, 32, 32)
    pngs = sorted((out / "figures").glob("*.png"))
    assert {p.name for p in pngs} >= {f"{k}_metrics.png" for k in DATA} | {f"{k}_samples_0.png" for k in DATA}
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_equals_a_direct_ambiseg_metrics_call_on_the_written_samples(tiny_run):
    out, _ = tiny_run
    rows = {r["model"]: r for r in _read_csv(out / "table1.csv")}
    assert list(rows) == list(table1.MODELS)
    md = (out / "table1.md").read_text()
    assert "SYNTHETIC" in md
    for key in DATA:
        for model in table1.MODELS:
            ids, preds, gts = _written(out, key, model)
            direct = ambiseg_metrics.evaluate(preds, gts, batch=True)
            assert int(rows[model][f"{key}:n_images"]) == len(ids)
            for name, values in direct.items():
                mean = float(np.mean(values))
                assert float(rows[model][f"{key}:{name}"]) == pytest.approx(mean, rel=1e-12, abs=1e-12)
                low, high = (
                    float(rows[model][f"{key}:{name}:ci_low"]),
                    float(rows[model][f"{key}:{name}:ci_high"]),
                )
                assert low - 1e-12 <= mean <= high + 1e-12
            # the Markdown cells are the same numbers, rounded
            ged, ci = float(np.mean(direct["ged"])), float(np.mean(direct["ci"]))
            assert f"{ged:.3f} ±" in md and f"{ci:.3f} ±" in md


def test_chunked_evaluation_equals_one_call(tiny_run):
    out, _ = tiny_run
    key = DATA[0]
    ids = sorted(p.stem for p in (out / key / "gts").glob("*.npy"))
    whole = table1.evaluate_model_samples(out / key / "cimd" / "samples", out / key / "gts", ids)
    parts = table1.evaluate_model_samples(out / key / "cimd" / "samples", out / key / "gts", ids, chunk=3)
    assert list(whole) == list(parts)
    for name in whole:
        np.testing.assert_array_equal(whole[name], parts[name])
    with pytest.raises(FileNotFoundError, match="missing"):
        table1.evaluate_model_samples(out / key / "cimd" / "samples", out / key / "gts", ["nope"])


def test_ged_against_the_true_distribution_column(tiny_run):
    out, _ = tiny_run
    rows = {r["model"]: r for r in _read_csv(out / "table1.csv")}
    prof = table1.PROFILES["tiny"]
    for key in DATA:
        test_ds = table1.load_split(key, "test", prof, 0, {})
        for model in ("prob_unet", "cimd"):
            ids, preds, _ = _written(out, key, model)
            pos = {case: i for i, case in enumerate(test_ds.ids)}
            modes = [test_ds.modes(pos[c]) for c in ids]
            expected = [
                true_ged(p, np.stack([m for m, _ in md]), [w for _, w in md])
                for p, md in zip(preds, modes, strict=True)
            ]
            assert float(rows[model][f"{key}:ged_true"]) == pytest.approx(np.mean(expected), abs=1e-12)


def test_rerun_reuses_checkpoints_and_reproduces_the_table(tiny_run):
    out, first_wall = tiny_run
    before = {n: (out / n).read_bytes() for n in ("table1.md", "table1.csv", "per_image.csv")}
    result = table1.run_table1(
        DATA,
        out,
        profile="tiny",
        progress=False,
        figures=False,
        n_boot=200,
        quiet=True,
        command="cimd-table1 " + " ".join([*ARGS, "--out", str(out)]),
    )
    stages = result["timings"]["stages"]
    for key in DATA:
        for model in table1.MODELS:
            assert stages[f"{key}/{model}"]["train"] == "reused"
            assert stages[f"{key}/{model}"]["sample"] == "reused"
    for name, data in before.items():
        assert (out / name).read_bytes() == data, name


def test_fresh_rerun_in_worker_processes_reproduces_the_run(tiny_run, tmp_path):
    """Same seed in a new folder (and in worker processes): same weights, samples and per-image metrics."""
    out, _ = tiny_run
    models = ["prob_unet", "cimd"]
    result = table1.run_table1(
        DATA[:1],
        tmp_path,
        profile="tiny",
        models=models,
        progress=False,
        figures=False,
        n_boot=200,
        quiet=True,
        jobs=2,  # in two worker processes: the results must not depend on it
    )
    key = DATA[0]
    for model in models:
        for case in result["ids"][key]:
            a = np.load(out / key / model / "samples" / f"{case}.npy")
            b = np.load(tmp_path / key / model / "samples" / f"{case}.npy")
            # float kernels may differ in the last bit between runs in one process (memory alignment);
            # the masks the metrics see are identical
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
            np.testing.assert_array_equal(a > 0.5, b > 0.5)
    first = [r for r in _read_csv(out / "per_image.csv") if r["data"] == key and r["model"] in models]
    again = _read_csv(tmp_path / "per_image.csv")
    assert first == again


def test_other_sampler_settings_reuse_the_checkpoint_and_resample(tiny_run, tmp_path):
    out, _ = tiny_run
    key = DATA[0]
    shutil.copytree(out / key, tmp_path / key)
    tiny = table1.PROFILES["tiny"]
    overrides = {**tiny.overrides, "cimd": {**tiny.overrides["cimd"], "sampling_steps": 3, "eta": 1.0}}
    prof = dataclasses.replace(tiny, overrides=overrides)
    result = table1.run_table1(
        [key], tmp_path, profile=prof, models=["cimd"], progress=False, figures=False, n_boot=200, quiet=True
    )
    stage = result["timings"]["stages"][f"{key}/cimd"]
    assert (stage["train"], stage["sample"]) == ("reused", "sampled")
    case = result["ids"][key][0]
    before = np.load(out / key / "cimd" / "samples" / f"{case}.npy")
    after = np.load(tmp_path / key / "cimd" / "samples" / f"{case}.npy")
    assert not np.array_equal(before, after)


def test_checkpoint_of_another_config_is_an_error(tiny_run, tmp_path, capsys):
    out, _ = tiny_run
    # reuse the tiny checkpoints of the fixture under a different seed: must refuse, not silently reuse
    rc = table1.main([*ARGS, "--out", str(out), "--seed", "1", "--models", "prob_unet", "--no-figures"])
    assert rc == 2
    assert "--retrain" in capsys.readouterr().err


def test_usage_errors(tmp_path, capsys):
    assert table1.main(["--config", "tiny", "--models", "unet", "--out", str(tmp_path)]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert table1.main(["--config", "tiny", "--n-samples", "1", "--out", str(tmp_path)]) == 2
    assert "n_samples must be >= 2" in capsys.readouterr().err
    assert table1.main(["--config", "tiny", "--data", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown data spec" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        table1.main(["--config", "huge", "--out", str(tmp_path)])


def test_parse_data_specs():
    assert table1.parse_data_specs(["ambiblobs-ct,ambiblobs-us", "ambiblobs-mri", "ambiblobs-ct"]) == [
        "ambiblobs-ct",
        "ambiblobs-us",
        "ambiblobs-mri",
    ]
    # a comma inside a path does not split it
    assert table1.parse_data_specs(["lidc-pickle:/d/a,b.pickle,ambiblobs-ct"]) == [
        "lidc-pickle:/d/a,b.pickle",
        "ambiblobs-ct",
    ]
    assert table1.data_key("lidc-pickle:/data/data_lidc.pickle") == "lidc-pickle-data_lidc"
    with pytest.raises(ValueError, match="no data set"):
        table1.parse_data_specs([" , "])


def test_profiles_resolve_for_every_model():
    from cimd_model.registry import model_configs

    for prof in table1.PROFILES.values():
        for model in table1.MODELS:
            if prof.name == "table1-v0" and model == "cimd":
                assert prof.model_config not in model_configs(model)  # a baselines-only profile
                continue
            cfg = table1.model_config(prof, model, image_size=32)
            assert int(cfg["steps"]) >= 1 and int(cfg["batch_size"]) >= 1
            if "image_size" in cfg:
                assert cfg["image_size"] == 32


# ------------------------------------------------------------------------------------------ true GED
def _iou_distance(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 0.0 if union == 0 else 1.0 - np.logical_and(a, b).sum() / union


def _numpy_true_ged(samples, modes, weights, estimator):
    w = np.asarray(weights, float) / np.sum(weights)
    n = len(samples)
    cross = np.mean([sum(w[j] * _iou_distance(s, y) for j, y in enumerate(modes)) for s in samples])
    pairs = [(i, k) for i, k in itertools.product(range(n), repeat=2) if estimator == "v-statistic" or i != k]
    sdiv = np.mean([_iou_distance(samples[i], samples[k]) for i, k in pairs])
    adiv = sum(
        w[j] * w[k] * _iou_distance(modes[j], modes[k])
        for j, k in itertools.product(range(len(modes)), repeat=2)
    )
    return 2 * cross - sdiv - adiv


@pytest.mark.parametrize("estimator", ["unbiased", "v-statistic"])
def test_true_ged_equals_a_direct_numpy_computation(estimator):
    rng = np.random.default_rng(3)
    for _ in range(20):
        n, j = rng.integers(1, 6), rng.integers(1, 4)
        samples = rng.random((n, 5, 6))  # floats: foreground where > 0.5
        modes = rng.random((j, 5, 6)) > rng.uniform(0.3, 1.0)  # some all-empty modes
        if rng.random() < 0.3:
            samples[0] = 0.0  # an empty sample
        weights = rng.random(j) + 0.01
        got = true_ged(samples, modes, weights, estimator=estimator)
        want = _numpy_true_ged(samples > 0.5, modes, weights, estimator if n > 1 else "v-statistic")
        assert got == pytest.approx(want, abs=1e-12)


def test_true_ged_is_zero_when_the_samples_are_the_mixture():
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[1:] = True
    samples = np.stack([a, a, b, b])
    assert true_ged(samples, np.stack([a, b]), [0.5, 0.5], estimator="v-statistic") == pytest.approx(0.0)
    # both empty: distance 0
    e = np.zeros((2, 4, 4), bool)
    assert true_ged(e, e[:1], [1.0]) == 0.0


def test_true_ged_batch_with_different_mode_counts_and_errors():
    rng = np.random.default_rng(0)
    samples = [rng.random((3, 4, 4)), rng.random((3, 4, 4))]
    modes = [rng.random((1, 4, 4)) > 0.5, rng.random((3, 4, 4)) > 0.5]
    weights = [[1.0], [0.2, 0.3, 0.5]]
    got = true_ged_batch(samples, modes, weights)
    for i in range(2):
        assert got[i] == pytest.approx(true_ged(samples[i], modes[i], weights[i]), abs=1e-15)
    with pytest.raises(ValueError, match="weights must have shape"):
        true_ged(samples[0], modes[1], [1.0])
    with pytest.raises(ValueError, match="spatial shape"):
        true_ged(samples[0], rng.random((2, 5, 4)) > 0.5, [0.5, 0.5])
    with pytest.raises(ValueError, match="estimator"):
        true_ged(samples[0], modes[0], [1.0], estimator="biased")
    with pytest.raises(ValueError, match="non-negative"):
        true_ged(samples[0], modes[1], [0.5, -0.1, 0.6])


# ------------------------------------------------------------------------------------------ layout
def test_no_import_circle_and_neutral_file_helpers():
    """table1 takes configs and ``--set`` parsing from the registry, never from cimd_model.cli; sampling
    takes its file helpers from cimd_model.fileio, never from the training loop."""
    import subprocess
    import sys

    code = (
        "import sys, cimd_model.table1 as t, cimd_model.sample; "
        "t.model_config(t.PROFILES['tiny'], 'prob_unet'); "
        "print(sorted(m for m in ('cimd_model.cli', 'cimd_model.train') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_progress_is_a_ui_setting_not_config():
    from cimd_model.registry import build_model, model_configs

    config = model_configs("prob_unet")["cpu-small"]
    model = build_model("prob_unet", config, 1)
    model.set_progress(True)
    assert model.progress is True and "progress" not in model.config


# ------------------------------------------------------------------------------ seeds, budget, protocol
@pytest.fixture(scope="module")
def seeded_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("table1_seeds") / "run"
    result = table1.run_table1(
        DATA[:1],
        out,
        profile="tiny",
        models=["prob_unet", "phiseg"],
        seeds=[0, 1, 2],
        progress=False,
        figures=False,
        n_boot=200,
        quiet=True,
    )
    return out, result


def test_several_seeds_train_each_model_once_per_seed_on_the_same_data(seeded_run, tiny_run):
    out, result = seeded_run
    key = DATA[0]
    assert result["seeds"] == [0, 1, 2]
    for model in ("prob_unet", "phiseg"):
        for s in (0, 1, 2):
            assert (out / key / model / f"seed{s}" / "checkpoint.pt").is_file()
        a = np.load(out / key / model / "seed1" / "samples" / f"{result['ids'][key][0]}.npy")
        b = np.load(out / key / model / "seed2" / "samples" / f"{result['ids'][key][0]}.npy")
        assert not np.array_equal(a, b)
    # seed 0 of the seeded run is the single-seed run: the other seeds did not change the data
    first, _ = tiny_run
    for case in result["ids"][key]:
        np.testing.assert_array_equal(
            np.load(out / key / "prob_unet" / "seed0" / "samples" / f"{case}.npy") > 0.5,
            np.load(first / key / "prob_unet" / "samples" / f"{case}.npy") > 0.5,
        )


def test_seed_and_image_intervals_equal_a_direct_computation(seeded_run):
    out, result = seeded_run
    key = DATA[0]
    rows = {r["model"]: r for r in _read_csv(out / "table1.csv")}
    for model in ("prob_unet", "phiseg"):
        per_seed = []
        for s in (0, 1, 2):
            ids = result["ids"][key]
            preds = [np.load(out / key / model / f"seed{s}" / "samples" / f"{i}.npy") for i in ids]
            gts = [np.load(out / key / "gts" / f"{i}.npy") for i in ids]
            per_seed.append(np.asarray(ambiseg_metrics.evaluate(preds, gts, batch=True)["ged"], float))
        means = np.array([v.mean() for v in per_seed])
        t975 = 4.302652729911275  # scipy.stats.t.ppf(0.975, 2)
        half = t975 * means.std(ddof=1) / np.sqrt(3)
        row = rows[model]
        assert int(row[f"{key}:n_seeds"]) == 3
        assert float(row[f"{key}:ged"]) == pytest.approx(means.mean(), abs=1e-12)
        assert float(row[f"{key}:ged:seed_low"]) == pytest.approx(
            means.mean() - half, abs=2e-3 * half + 1e-12
        )
        assert float(row[f"{key}:ged:seed_high"]) == pytest.approx(
            means.mean() + half, abs=2e-3 * half + 1e-12
        )
        image_means = np.mean(per_seed, axis=0)
        low, high = float(row[f"{key}:ged:ci_low"]), float(row[f"{key}:ged:ci_high"])
        assert low <= image_means.mean() <= high
    lines = _read_csv(out / "per_image.csv")
    assert {r["seed"] for r in lines} == {"0", "1", "2"} and len(lines) == 2 * 3 * len(result["ids"][key])
    md = (out / "table1.md").read_text()
    assert "3 seeds 0, 1, 2" in md and "[±" in md


def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    from cimd_model.table1.evaluate import t_quantile_975

    for df in range(1, 31):
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-3)


def test_matched_budget_gives_every_model_the_same_steps_and_batch():
    prof = table1.PROFILES["matched"]
    assert prof.seeds is not None and len(prof.seeds) >= 3
    configs = [table1.model_config(prof, m, image_size=32) for m in table1.MODELS]
    assert {(c["steps"], c["batch_size"]) for c in configs} == {(1000, 8)}
    bad = dataclasses.replace(prof, budget={"lr": 1.0})
    with pytest.raises(ValueError, match="budget"):
        table1.model_config(bad, "prob_unet")


def test_cli_budget_seeds_and_protocol_errors(tmp_path, capsys):
    assert table1.main(["--config", "tiny", "--seeds", "0,x", "--out", str(tmp_path)]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert table1.main(["--config", "tiny", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "--steps" in capsys.readouterr().err
    argv = ["--config", "tiny", "--data", "ambiblobs-ct", "--protocol", "kohl", "--out", str(tmp_path)]
    assert table1.main(argv) == 2
    assert "applies to LIDC data" in capsys.readouterr().err
    assert table1.main([*argv[:4], "--protocol", "phiseg", "--out", str(tmp_path)]) == 2
    assert "unknown --protocol" in capsys.readouterr().err


def test_knegt_protocol_end_to_end_on_a_pickle(tmp_path):
    from test_protocols import _knegt_pickle

    from cimd_model.data.protocols import knegt_split

    path = tmp_path / "data_lidc.pickle"
    data = _knegt_pickle(path, n_series=6, slices=2)
    argv = [
        "--config",
        "tiny",
        "--data",
        f"lidc-pickle:{path}",
        "--models",
        "prob_unet",
        "--protocol",
        "knegt",
        "--steps",
        "2",
        "--n-samples",
        "2",
        "--no-figures",
        "--no-progress",
        "--quiet",
        "--n-boot",
        "50",
        "--out",
        str(tmp_path / "run"),
    ]
    assert table1.main(argv) == 0
    test_uids = knegt_split([v["series_uid"] for v in data.values()])["test"]
    written = {p.stem for p in (tmp_path / "run" / "lidc-pickle-data_lidc" / "gts").glob("*.npy")}
    assert written == {k for k, v in data.items() if v["series_uid"] in test_uids}
    md = (tmp_path / "run" / "table1.md").read_text()
    assert "protocol `knegt`" in md and "steps 2" in md
