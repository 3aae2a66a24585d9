"""Training loop (seeded, resumable), sampling to the file-per-case layout, and the two commands."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="cimd_model tests need torch (pip install .[model])")

from cimd_model.cli import sample_main, train_main  # noqa: E402
from cimd_model.data import ArrayDataset, load_dataset  # noqa: E402
from cimd_model.registry import build_model, parse_assignments, resolve_config  # noqa: E402
from cimd_model.sample import sample_dataset, write_samples  # noqa: E402
from cimd_model.train import CHECKPOINT_FORMAT, load_checkpoint, load_model, train  # noqa: E402

DATA_ARGS = ["--data-arg", "n=8", "--data-arg", "size=32"]
TINY = {
    "base_channels": 8,
    "mults": [1, 2],
    "n_convs": 1,
    "encoder_base_channels": 8,
    "encoder_mults": [1, 2],
}


def _model(seed=0):
    from cimd_model.baselines.prob_unet import CONFIGS

    torch.manual_seed(seed)
    return build_model("prob_unet", {**CONFIGS["cpu-small"], **TINY}, in_channels=1)


def test_train_writes_checkpoint_config_and_log(tmp_path, tiny_blobs):
    out = tmp_path / "run"
    result = train(_model(), tiny_blobs, out, steps=4, batch_size=3, seed=1, log_every=2, progress=False)
    assert result["step"] == 4 and set(result["last"]) >= {"loss", "rec", "kl"}
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["format"] == CHECKPOINT_FORMAT and ckpt["step"] == 4 and ckpt["model_name"] == "prob_unet"
    assert ckpt["optimizer_state"] is not None and ckpt["seed"] == 1
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "prob_unet" and cfg["config"]["latent_dim"] == 6
    lines = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4]
    assert not list(out.glob(".*tmp"))  # atomic writes leave nothing behind
    with pytest.raises(FileExistsError, match="resume"):
        train(_model(), tiny_blobs, out, steps=4, batch_size=3, progress=False)


def test_training_is_seeded(tmp_path, tiny_blobs):
    states = []
    for name in ("a", "b"):
        model = _model(seed=123)  # same init
        train(model, tiny_blobs, tmp_path / name, steps=3, batch_size=2, seed=7, progress=False)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    other = _model(seed=123)
    train(other, tiny_blobs, tmp_path / "c", steps=3, batch_size=2, seed=8, progress=False)
    assert not all(torch.equal(states[0][k], other.state_dict()[k]) for k in states[0])


def test_resume_reproduces_an_uninterrupted_run(tmp_path, tiny_blobs):
    straight = _model()
    train(straight, tiny_blobs, tmp_path / "s", steps=6, batch_size=3, seed=3, progress=False)
    first = _model()
    train(first, tiny_blobs, tmp_path / "r", steps=3, batch_size=3, seed=3, progress=False)
    torch.manual_seed(999)  # whatever happens in between must not matter
    resumed = _model(seed=42)  # different init: everything must come from the checkpoint
    result = train(
        resumed, tiny_blobs, tmp_path / "r", steps=6, batch_size=3, seed=3, resume=True, progress=False
    )
    assert result["step"] == 6
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_channel_mismatch_is_an_error(tmp_path):
    mri = load_dataset("ambiblobs-mri", "train", n=2, size=32)
    with pytest.raises(ValueError, match="channels"):
        train(_model(), mri, tmp_path, steps=1, batch_size=1, progress=False)


def test_sample_dataset_and_write_samples(tmp_path):
    test = load_dataset("ambiblobs-ct", "test", n=5, size=32)
    model = _model()
    got = list(sample_dataset(model, test, n=4, batch_size=2, seed=0))
    assert [g[0] for g in got] == test.ids
    for _case_id, probs, gts in got:
        assert probs.shape == (4, 32, 32) and probs.dtype == np.float32
        assert gts.shape == (4, 32, 32) and gts.dtype == np.uint8
        assert probs.min() >= 0 and probs.max() <= 1
    again = list(sample_dataset(model, test, n=4, batch_size=2, seed=0))
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(got, again, strict=True))
    other = list(sample_dataset(model, test, n=4, batch_size=2, seed=1))
    assert not np.array_equal(got[0][1], other[0][1])
    ids = write_samples(model, test, 3, tmp_path / "preds", tmp_path / "gts", limit=3, batch_size=2)
    assert ids == test.ids[:3]
    assert sorted(p.name for p in (tmp_path / "preds").iterdir()) == [f"{i}.npy" for i in ids]
    gts = np.load(tmp_path / "gts" / f"{ids[0]}.npy")
    assert np.array_equal(gts, test.masks[0].numpy().astype(np.uint8))


def test_case_ids_are_safe_and_unique():
    ds = ArrayDataset(np.zeros((3, 1, 4, 4)), np.zeros((3, 2, 4, 4)), ["a/b c", "a/b c", "../x"])
    assert ds.ids == ["a_b_c", "a_b_c-1", "x"]


def test_cli_train_resume_and_sample(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--model", "prob_unet", "--data", "ambiblobs-ct", "--out", str(out), "--steps", "2"]
    argv += ["--batch-size", "2", "--no-progress", *DATA_ARGS]
    for key, value in TINY.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    assert train_main(argv) == 0
    assert load_checkpoint(out)["step"] == 2
    assert train_main(argv) == 2  # exists, no --resume
    assert "resume" in capsys.readouterr().err
    assert train_main([*argv, "--resume", "--steps", "3"]) == 0
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["step"] == 3 and ckpt["run"]["data_kwargs"] == {"n": 8, "size": 32}
    preds, gts = tmp_path / "preds", tmp_path / "gts"
    rc = sample_main(
        ["--checkpoint", str(out / "checkpoint.pt"), "--n", "3", "--out", str(preds), "--gts-out", str(gts)]
        + ["--limit", "4", "--no-progress", "--data-arg", "n=6"]
    )
    assert rc == 0
    files = sorted(preds.glob("*.npy"))
    assert len(files) == 4 and sorted(gts.glob("*.npy"))
    arr = np.load(files[0])
    assert arr.shape == (3, 32, 32) and arr.dtype == np.float32
    model, _ = load_model(out / "checkpoint.pt")
    assert model.name == "prob_unet"


def test_cli_errors(tmp_path, capsys):
    base = ["--model", "prob_unet", "--out", str(tmp_path / "x"), "--no-progress"]
    assert train_main([*base, "--data", "lidc-pickle:/nope/x.pickle"]) == 2
    assert "/nope/x.pickle" in capsys.readouterr().err
    assert train_main([*base, "--data", "ambiblobs-ct", "--set", "no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err
    assert train_main([*base, "--data", "ambiblobs-ct", "--config", "huge"]) == 2
    assert sample_main(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "p")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["--model", "nope", "--data", "ambiblobs-ct", "--out", str(tmp_path)])


def test_config_helpers():
    assert parse_assignments(["a=1", "b=[1, 2]", "c=x", "d=true"], "--set") == {
        "a": 1,
        "b": [1, 2],
        "c": "x",
        "d": True,
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_assignments(["oops"], "--set")
    cfg = resolve_config("phiseg", "cpu-small", {"zdim": 3}, steps=5, batch_size=2)
    assert cfg["zdim"] == 3 and cfg["steps"] == 5 and cfg["batch_size"] == 2


def test_cli_training_is_reproducible(tmp_path):
    argv = [
        "--model",
        "prob_unet",
        "--data",
        "ambiblobs-ct",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--no-progress",
    ]
    argv += DATA_ARGS
    for key, value in TINY.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    assert train_main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert train_main([*argv, "--out", str(tmp_path / "b")]) == 0
    a = load_checkpoint(tmp_path / "a")["model_state"]
    b = load_checkpoint(tmp_path / "b")["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_sampler_flags_reach_models_that_have_them(tmp_path, monkeypatch, capsys):
    import cimd_model.train as train_mod

    calls = []
    model = _model()
    model.config.update({"sampler": "ddpm", "sampling_steps": 1000})
    ckpt = {"run": {"data": "ambiblobs-ct", "data_kwargs": {"size": 32}, "seed": 0}}
    monkeypatch.setattr(train_mod, "load_model", lambda path, map_location="cpu": (model, ckpt))
    argv = ["--checkpoint", "x.pt", "--n", "2", "--limit", "1", "--no-progress", "--data-arg", "n=1"]
    assert sample_main([*argv, "--out", str(tmp_path / "a"), "--sampling-steps", "25"]) == 2
    assert "no sampler options" in capsys.readouterr().err
    model.set_sampling = lambda sampler, steps, eta=None: calls.append((sampler, steps, eta))
    assert sample_main([*argv, "--out", str(tmp_path / "b"), "--sampling-steps", "25"]) == 0
    assert sample_main([*argv, "--out", str(tmp_path / "c"), "--sampler", "ddim"]) == 0
    assert sample_main([*argv, "--out", str(tmp_path / "d"), "--eta", "0.5"]) == 0
    assert calls == [("ddpm", 25, None), ("ddim", 1000, None), ("ddpm", 1000, 0.5)]
    assert len(list((tmp_path / "b").glob("*.npy"))) == 1


def test_log_of_an_interrupted_run_is_trimmed_on_resume(tmp_path, tiny_blobs):
    out = tmp_path / "run"
    train(_model(), tiny_blobs, out, steps=4, batch_size=2, log_every=1, ckpt_every=2, progress=False)
    ckpt = out / "checkpoint.pt"
    ckpt.unlink()
    (out / "checkpoint_step0000002.pt").rename(ckpt)  # as if killed after step 4's log but before its save
    train(_model(), tiny_blobs, out, steps=5, batch_size=2, log_every=1, resume=True, progress=False)
    steps = [json.loads(x)["step"] for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]
