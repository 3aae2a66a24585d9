"""Tests of the CIMD diffusion model: schedule math, samplers, the model class, checkpoints."""

from __future__ import annotations

import io
import math

import pytest

torch = pytest.importorskip("torch", reason="cimd_model tests need torch (pip install .[model])")

from cimd_model.diffusion.cimd import CIMD, CONFIGS, build  # noqa: E402
from cimd_model.diffusion.sampler import DiffusionSampler, timestep_sequence  # noqa: E402
from cimd_model.diffusion.schedule import (  # noqa: E402
    DiffusionSchedule,
    discretized_gaussian_log_likelihood,
    normal_kl,
)

torch.set_num_threads(1)

TINY = {
    "image_size": 16,
    "base_channels": 8,
    "channel_mult": [1, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [8],
    "encoder_channels": 4,
    "encoder_mults": [1, 2],
    "encoder_convs": 1,
    "sampling_steps": 4,
    "sampler": "ddim",
    "lr": 1e-3,
}


def tiny_model(seed: int = 0, **overrides) -> CIMD:
    torch.manual_seed(seed)
    return build({**TINY, **overrides}, in_channels=1)


def tiny_batch(b: int = 2, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    images = torch.randn(b, 1, size, size, generator=g)
    masks = (torch.rand(b, 1, size, size, generator=g) > 0.5).float()
    return images, masks


# ---------------------------------------------------------------------------------------------- schedule
def test_alpha_bar_matches_closed_form() -> None:
    s = DiffusionSchedule(1000, 1e-4, 0.02)
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    abar = 1.0
    for t in (0, 1, 10, 500, 999):
        expected = math.prod(1.0 - b for b in betas[: t + 1])
        assert float(s.alphas_cumprod[t]) == pytest.approx(expected, rel=1e-10)
    for b in betas:
        abar *= 1.0 - b
    assert float(s.alphas_cumprod[-1]) == pytest.approx(abar, rel=1e-10)
    assert float(s.alphas_cumprod[-1]) < 1e-4  # x_T is (nearly) pure noise
    assert float(s.alphas_cumprod_prev[0]) == 1.0


def test_posterior_matches_gaussian_conditioning() -> None:
    """q(x_{t-1}|x_t,x_0) from the product of q(x_t|x_{t-1}) and q(x_{t-1}|x_0), in precision form."""
    s = DiffusionSchedule(100, 1e-3, 0.05)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(5, 1, 3, 3, generator=g, dtype=torch.float64) * 2 - 1
    xt = torch.randn(5, 1, 3, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 2, 17, 50, 99])
    mean, var, logvar = s.q_posterior(x0, xt, t)
    for i, ti in enumerate(t.tolist()):
        beta = float(s.betas[ti])
        abar_prev = float(s.alphas_cumprod[ti - 1])
        precision = (1 - beta) / beta + 1 / (1 - abar_prev)
        exp_var = 1 / precision
        exp_mean = exp_var * (
            math.sqrt(1 - beta) / beta * xt[i] + math.sqrt(abar_prev) / (1 - abar_prev) * x0[i]
        )
        torch.testing.assert_close(mean[i], exp_mean, rtol=1e-9, atol=1e-12)
        assert float(var[i].flatten()[0]) == pytest.approx(exp_var, rel=1e-9)
        assert float(logvar[i].flatten()[0]) == pytest.approx(math.log(exp_var), rel=1e-9)
    # t = 0: the posterior collapses onto x0, the clipped log-variance is that of t = 1
    mean0, var0, logvar0 = s.q_posterior(x0[:1], xt[:1], torch.tensor([0]))
    torch.testing.assert_close(mean0, x0[:1])
    assert float(var0.max()) == 0.0
    assert float(logvar0.flatten()[0]) == pytest.approx(math.log(float(s.posterior_variance[1])))


def test_step_coefficients_agree_with_schedule_arrays() -> None:
    s = DiffusionSchedule(50)
    for t in (1, 7, 49):
        c = s.step_coefficients(t, t - 1)
        assert c["beta"] == pytest.approx(float(s.betas[t]), rel=1e-9)
        assert c["post_var"] == pytest.approx(float(s.posterior_variance[t]), rel=1e-9)
        assert c["coef_x0"] == pytest.approx(float(s.posterior_mean_coef1[t]), rel=1e-9)
        assert c["coef_xt"] == pytest.approx(float(s.posterior_mean_coef2[t]), rel=1e-9)
    c = s.step_coefficients(30, -1)
    assert c["abar_s"] == 1.0 and c["coef_x0"] == pytest.approx(1.0) and c["coef_xt"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="t="):
        s.step_coefficients(5, 5)


def test_q_sample_predict_x0_round_trip_and_moments() -> None:
    s = DiffusionSchedule(1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(4, 1, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    xt = s.q_sample(x0, t, noise)
    torch.testing.assert_close(s.predict_x0(xt, t, noise), x0, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(s.predict_eps(xt, t, x0), noise, rtol=1e-4, atol=1e-4)
    # empirical moments of q(x_t | x_0)
    n = 20000
    x0c = torch.full((n, 1), 0.7)
    tc = torch.full((n,), 300)
    samples = s.q_sample(x0c, tc, torch.randn(n, 1, generator=g))
    mean, var = s.q_mean_variance(x0c[:1], tc[:1])
    assert float(samples.mean()) == pytest.approx(float(mean), abs=0.02)
    assert float(samples.var()) == pytest.approx(float(var), rel=0.05)


def test_bad_timesteps_and_schedule_raise() -> None:
    s = DiffusionSchedule(10)
    x = torch.zeros(2, 1, 2, 2)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        s.q_sample(x, torch.tensor([0, 10]), x)
    with pytest.raises(ValueError, match="shape"):
        s.q_sample(x, torch.tensor([0]), x)
    with pytest.raises(ValueError, match="beta_start"):
        DiffusionSchedule(10, 0.5, 0.1)
    with pytest.raises(ValueError, match="T must be"):
        DiffusionSchedule(0)


def test_learned_variance_interpolates_between_posterior_and_beta() -> None:
    s = DiffusionSchedule(100)
    t = torch.tensor([5, 60])
    ones = torch.ones(2, 1, 1, 1)
    lo = s.learned_log_variance(-ones, t).flatten()
    hi = s.learned_log_variance(ones, t).flatten()
    mid = s.learned_log_variance(0 * ones, t).flatten()
    torch.testing.assert_close(lo, s.posterior_log_variance_clipped[t].float())
    torch.testing.assert_close(hi, torch.log(s.betas[t]).float())
    torch.testing.assert_close(mid, (lo + hi) / 2)


def test_vlb_terms() -> None:
    s = DiffusionSchedule(100)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(3, 1, 4, 4, generator=g) > 0.5).float() * 2 - 1
    noise = torch.randn(3, 1, 4, 4, generator=g)
    t = torch.tensor([0, 5, 80])
    xt = s.q_sample(x0, t, noise)
    v = torch.zeros_like(x0)
    # the true noise and the posterior variance (v = -1): KL is zero for t > 0
    exact = s.vlb_terms(x0, xt, t, noise, -torch.ones_like(x0))
    assert float(exact[1:].abs().max()) < 1e-4
    assert torch.isfinite(exact[0]) and float(exact[0]) >= 0
    wrong = s.vlb_terms(x0, xt, t, noise + 0.5, v)
    assert bool((wrong[1:] > exact[1:]).all())
    assert float(normal_kl(torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3)).abs().max()) == 0
    # a sharp discretised Gaussian centred on a binary value has likelihood ~1
    ll = discretized_gaussian_log_likelihood(x0, x0, torch.full_like(x0, -8.0))
    assert float(ll.min()) > -1e-3


# ---------------------------------------------------------------------------------------------- samplers
def test_timestep_sequence() -> None:
    assert timestep_sequence(1000, 1000) == list(range(999, -1, -1))
    for steps in (1, 2, 10, 25, 50, 333):
        seq = timestep_sequence(1000, steps)
        assert len(seq) == steps and seq[0] == 999 and (steps == 1 or seq[-1] == 0)
        assert all(a > b for a, b in zip(seq, seq[1:], strict=False))
    with pytest.raises(ValueError, match="steps"):
        timestep_sequence(10, 11)
    with pytest.raises(ValueError, match="steps"):
        timestep_sequence(10, 0)


@pytest.mark.parametrize("method,steps", [("ddpm", 1000), ("ddpm", 10), ("ddim", 50), ("ddim", 3)])
def test_sampler_with_oracle_noise_recovers_x0(method: str, steps: int) -> None:
    """A model that knows x0 predicts the exact noise; every sampler must then end at x0."""
    s = DiffusionSchedule(1000)
    x0 = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 1.8 - 0.9

    def oracle(x, t):
        return s.predict_eps(x, t, x0), torch.zeros_like(x)

    out = DiffusionSampler(s, method, steps, eta=1.0).sample(
        oracle, x0.shape, torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(out, x0, rtol=1e-4, atol=1e-4)


def _gaussian_data_std(method: str, steps: int, sd: float = 0.5) -> float:
    """Std of samples drawn with the Bayes-optimal noise predictor for data x0 ~ N(0, sd^2)."""
    sched = DiffusionSchedule(1000)

    def optimal(x, t):
        abar = sched.alphas_cumprod[t].float().reshape(-1, 1)
        return (1 - abar).sqrt() * x / (abar * sd**2 + 1 - abar), None

    sampler = DiffusionSampler(sched, method, steps, eta=0.0, clip_x0=False)
    out = sampler.sample(optimal, (8000, 1), torch.Generator().manual_seed(0))
    assert float(out.mean()) == pytest.approx(0.0, abs=0.03)
    return float(out.std())


@pytest.mark.parametrize("method,steps", [("ddpm", 1000), ("ddim", 1000), ("ddim", 100)])
def test_sampler_reproduces_gaussian_data_distribution(method: str, steps: int) -> None:
    """With the exact noise predictor, DDPM (ancestral) and DDIM (deterministic ODE) reproduce the data."""
    assert _gaussian_data_std(method, steps) == pytest.approx(0.5, rel=0.05)


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_sampler_discretisation_error_shrinks_with_steps(method: str) -> None:
    errors = [abs(_gaussian_data_std(method, steps) - 0.5) for steps in (10, 50, 250)]
    assert errors[0] > errors[1] > errors[2]


def test_sampler_determinism_and_errors() -> None:
    s = DiffusionSchedule(100)

    def model(x, t):
        return 0.1 * x, torch.zeros_like(x)

    for method, eta in (("ddpm", 0.0), ("ddim", 0.5)):
        sampler = DiffusionSampler(s, method, 20, eta=eta)
        a = sampler.sample(model, (2, 1, 3, 3), torch.Generator().manual_seed(5))
        b = sampler.sample(model, (2, 1, 3, 3), torch.Generator().manual_seed(5))
        c = sampler.sample(model, (2, 1, 3, 3), torch.Generator().manual_seed(6))
        assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="sampler must be"):
        DiffusionSampler(s, "plms", 10)
    with pytest.raises(ValueError, match="steps"):
        DiffusionSampler(s, "ddim", 101)
    with pytest.raises(ValueError, match="eta"):
        DiffusionSampler(s, "ddim", 10, eta=-1)
    with pytest.raises(ValueError, match="x_T"):
        DiffusionSampler(s, "ddim", 10).sample(model, (2, 1), x_T=torch.zeros(3, 1))


# ---------------------------------------------------------------------------------------------- model
def test_configs_are_json_and_build() -> None:
    import json

    for name, cfg in CONFIGS.items():
        assert json.loads(json.dumps(cfg)) == cfg, name
        for key in ("lr", "batch_size", "steps", "sampling_steps", "sampler", "T"):
            assert key in cfg, (name, key)
    assert CONFIGS["paper"]["channel_mult"] == [1, 1, 2, 3, 4] and CONFIGS["paper"]["base_channels"] == 128
    model = build(CONFIGS["cpu-small"], in_channels=1)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    with pytest.raises(ValueError, match="sampler"):
        build({**TINY, "sampler": "euler"}, 1)
    with pytest.raises(ValueError, match="sampling_steps"):
        build({**TINY, "sampling_steps": 2000}, 1)


def test_optimizer_covers_denoiser_and_both_encoders_but_not_ema() -> None:
    model = tiny_model()
    opt_ids = {id(p) for group in model.make_optimizer().param_groups for p in group["params"]}
    assert opt_ids == {id(p) for p in model.parameters()}
    for enc in (model.mask_encoder, model.eps_encoder):
        assert all(id(p) in opt_ids for p in enc.parameters())
    ema_ids = {id(b) for b in model.ema.buffers()}
    assert not ema_ids & opt_ids
    assert any(k.startswith("ema.") for k in model.state_dict())


def test_training_step_decreases_loss_on_fixed_batch() -> None:
    model = tiny_model()
    images, masks = tiny_batch(4)
    x0 = masks * 2 - 1
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 1000, (4,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    opt = model.make_optimizer()
    before = float(model.loss_terms(images, x0, t, noise)["loss"].detach())
    for _ in range(5):
        opt.zero_grad()
        model.loss_terms(images, x0, t, noise)["loss"].backward()
        opt.step()
        model.on_train_step_end()
    after = float(model.loss_terms(images, x0, t, noise)["loss"].detach())
    assert after < before
    # training_loss (random t and noise) returns a scalar and float logs
    loss, logs = model.training_loss(images, masks)
    assert loss.ndim == 0 and set(logs) == {"loss", "mse", "vlb", "kl", "kl_term"}
    assert all(isinstance(v, float) for v in logs.values())


def test_kl_term_reaches_both_encoders_and_can_be_disabled() -> None:
    model = tiny_model()
    images, masks = tiny_batch(2)
    terms = model.loss_terms(images, masks * 2 - 1, torch.tensor([10, 700]), torch.randn(2, 1, 16, 16))
    terms["kl"].backward()
    for enc in (model.mask_encoder, model.eps_encoder):
        grads = [p.grad for p in enc.parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    # the KL also feeds back into the denoiser through the predicted noise
    assert sum(float(p.grad.abs().sum()) for p in model.denoiser.parameters() if p.grad is not None) > 0
    off = tiny_model(kl_weight=0.0)
    assert off.mask_encoder is None and off.eps_encoder is None
    loss, logs = off.training_loss(images, masks)
    assert logs["kl"] == 0.0
    loss.backward()


def test_ema_tracks_weights_and_is_used_for_sampling() -> None:
    model = tiny_model()
    ema = model.ema_parameters()
    params = dict(model.denoiser.named_parameters())
    assert set(ema) == set(params)
    for name, p in params.items():
        torch.testing.assert_close(ema[name], p.detach())
    g = torch.Generator().manual_seed(0)
    deltas = {name: torch.randn(p.shape, generator=g) for name, p in params.items()}
    with torch.no_grad():
        for name, p in params.items():
            p.add_(deltas[name])
    model.on_train_step_end()
    assert int(model.ema.num_updates) == 1
    # decay at the first update is 1/10: the EMA moves 90% of the way to the new weights
    for name, p in params.items():
        torch.testing.assert_close(ema[name], p.detach() - 0.1 * deltas[name], rtol=1e-5, atol=1e-5)
    images, _ = tiny_batch(1)
    a = model.sample(images, 2, torch.Generator().manual_seed(0), use_ema=True)
    b = model.sample(images, 2, torch.Generator().manual_seed(0), use_ema=False)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_sample_shapes_range_determinism_diversity(sampler: str) -> None:
    model = tiny_model()
    model.set_sampling(sampler, 5)
    images, _ = tiny_batch(2)
    out = model.sample(images, 3, torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 16, 16)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    again = model.sample(images, 3, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    other = model.sample(images, 3, torch.Generator().manual_seed(1))
    assert not torch.equal(out, other)
    for b in range(2):
        flat = out[b].reshape(3, -1)
        assert not torch.allclose(flat[0], flat[1]) and not torch.allclose(flat[1], flat[2])
    assert model.training  # sampling restores the train/eval mode


def test_sample_is_one_batch_of_b_times_n_per_step() -> None:
    model = tiny_model(sampling_steps=3)
    sizes = []
    handle = model.denoiser.register_forward_hook(lambda mod, inp, out: sizes.append(inp[0].shape[0]))
    try:
        model.sample(tiny_batch(2)[0], 4, torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    assert sizes == [8, 8, 8]


def test_odd_image_sizes_are_padded() -> None:
    model = tiny_model()
    images, masks = tiny_batch(2, size=13)
    loss, _ = model.training_loss(images, masks)
    assert torch.isfinite(loss)
    assert model.sample(images, 2, torch.Generator().manual_seed(0)).shape == (2, 2, 13, 13)


def test_bad_inputs_raise() -> None:
    model = tiny_model()
    images, masks = tiny_batch(2)
    with pytest.raises(ValueError, match="images"):
        model.training_loss(images[:, :, 0], masks)
    with pytest.raises(ValueError, match="masks"):
        model.training_loss(images, masks[:1])
    with pytest.raises(ValueError, match="n must be"):
        model.sample(images, 0)
    with pytest.raises(ValueError, match="sampler"):
        model.set_sampling("ddpx", 10)


def test_checkpoint_round_trip() -> None:
    model = tiny_model()
    images, masks = tiny_batch(2)
    opt = model.make_optimizer()
    for _ in range(2):
        opt.zero_grad()
        model.training_loss(images, masks)[0].backward()
        opt.step()
        model.on_train_step_end()
    buf = io.BytesIO()
    torch.save({"config": model.config, "in_channels": 1, "state_dict": model.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    clone = build(ckpt["config"], ckpt["in_channels"])
    clone.load_state_dict(ckpt["state_dict"])
    for key, value in model.state_dict().items():
        assert torch.equal(value, clone.state_dict()[key]), key
    a = model.sample(images, 2, torch.Generator().manual_seed(0))
    b = clone.sample(images, 2, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------- integration
def test_train_loop_resume_and_cli_sampling(tmp_path) -> None:
    """CIMD through the generic training loop (bit-exact resume, EMA included) and ``cimd-sample``."""
    import numpy as np

    from cimd_model.cli import sample_main
    from cimd_model.data import load_dataset
    from cimd_model.train import load_model, train

    data = load_dataset("ambiblobs-ct", "train", n=4, size=16)
    full = tiny_model(seed=3)
    train(full, data, tmp_path / "full", steps=4, batch_size=2, seed=1, progress=False)
    part = tiny_model(seed=3)
    train(part, data, tmp_path / "part", steps=2, batch_size=2, seed=1, progress=False)
    resumed = tiny_model(seed=99)
    train(resumed, data, tmp_path / "part", steps=4, batch_size=2, seed=1, resume=True, progress=False)
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert int(resumed.ema.num_updates) == 4

    model, _ = load_model(tmp_path / "full" / "checkpoint.pt")
    assert isinstance(model, CIMD)
    for key, value in full.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    preds = tmp_path / "preds"
    ckpt = str(tmp_path / "full" / "checkpoint.pt")
    argv = f"--checkpoint {ckpt} --data ambiblobs-ct --data-arg size=16 --n 3 --out {preds} --limit 2"
    argv += " --sampler ddpm --sampling-steps 3 --no-progress"
    assert sample_main(argv.split()) == 0
    files = sorted(preds.glob("*.npy"))
    assert len(files) == 2
    arr = np.load(files[0])
    assert arr.shape == (3, 16, 16) and arr.dtype == np.float32 and 0 <= arr.min() <= arr.max() <= 1
