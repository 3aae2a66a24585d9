"""DPM-Solver++(2M) against closed forms, and the sampler comparison on a Gaussian toy with the exact noise.

Toy: data x0 ~ N(0, 0.25) (one dimension); the Bayes-optimal noise predictor is
eps*(x_t, t) = sqrt(1 - abar_t) x_t / (abar_t 0.25 + 1 - abar_t). A perfect sampler returns variance 0.25;
whatever it returns is the sampler's own discretisation error.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="cimd_model tests need torch (pip install .[model])")

from cimd_model.diffusion.dpm_solver import DPMSolverPP2M, logsnr_timesteps  # noqa: E402
from cimd_model.diffusion.sampler import DiffusionSampler, timestep_sequence  # noqa: E402
from cimd_model.diffusion.schedule import DiffusionSchedule  # noqa: E402

torch.set_num_threads(1)
SCHED = DiffusionSchedule(1000)
VAR = 0.25


def _optimal(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, None]:
    abar = SCHED.alphas_cumprod[t].float().reshape(-1, 1)
    return (1 - abar).sqrt() * x / (abar * VAR + 1 - abar), None


def _toy_variance(method: str, steps: int, eta: float = 0.0) -> float:
    sampler = DiffusionSampler(SCHED, method, steps, eta=eta, clip_x0=False)
    out = sampler.sample(_optimal, (20000, 1), torch.Generator().manual_seed(0))
    return float(out.var())


def test_logsnr_timesteps() -> None:
    lam = 0.5 * torch.log(SCHED.alphas_cumprod / (1 - SCHED.alphas_cumprod))
    for steps in (1, 2, 5, 10, 37, 250, 999, 1000):
        seq = logsnr_timesteps(SCHED, steps)
        assert len(seq) == steps and len(set(seq)) == steps
        assert seq == sorted(seq, reverse=True) and seq[0] == 999
        if steps > 1:
            assert seq[-1] == 0
    assert logsnr_timesteps(SCHED, 1000) == list(range(999, -1, -1))

    # 10 steps: the log-SNR gaps are equal up to the rounding to integer steps; time-uniform steps end
    # with one gap (into t = 0) several times the others
    def gaps(seq: list[int]) -> list[float]:
        return [float(lam[b] - lam[a]) for a, b in zip(seq, seq[1:], strict=False)]

    g = gaps(logsnr_timesteps(SCHED, 10))
    assert max(g) / min(g) < 1.3
    g = gaps(timestep_sequence(1000, 10))
    assert max(g) / min(g) > 6
    with pytest.raises(ValueError, match="steps"):
        logsnr_timesteps(SCHED, 0)
    with pytest.raises(ValueError, match="steps"):
        logsnr_timesteps(SCHED, 1001)


def test_first_step_is_ddim_and_second_order_formula() -> None:
    """Step 1 is DDIM (eta 0); later steps extrapolate x0 linearly in lambda, as in Algorithm 2."""
    solver = DPMSolverPP2M(SCHED, [900, 600, 300], clip_x0=False)
    g = torch.Generator().manual_seed(0)
    x, x0a, x0b = (torch.randn(4, 1, 3, 3, generator=g) for _ in range(3))
    out1 = solver.step(x, x0a, 900, 600, None)
    a_t, a_s = float(SCHED.alphas_cumprod[900]), float(SCHED.alphas_cumprod[600])
    eps = (x - math.sqrt(a_t) * x0a) / math.sqrt(1 - a_t)
    ddim = math.sqrt(a_s) * x0a + math.sqrt(1 - a_s) * eps
    torch.testing.assert_close(out1, ddim, rtol=1e-5, atol=1e-5)

    def lam(t: int) -> float:
        a = float(SCHED.alphas_cumprod[t])
        return 0.5 * math.log(a / (1 - a))

    out2 = solver.step(x, x0b, 600, 300, (x0a, 900))
    h, h_prev = lam(300) - lam(600), lam(600) - lam(900)
    r = h_prev / h
    d = (1 + 1 / (2 * r)) * x0b - 1 / (2 * r) * x0a
    a_u = float(SCHED.alphas_cumprod[300])
    expected = math.sqrt((1 - a_u) / (1 - a_s)) * x - math.sqrt(a_u) * (math.exp(-h) - 1) * d
    torch.testing.assert_close(out2, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(solver.step(x, x0b, 0, -1, (x0a, 5)), x0b)  # to the data: x0 itself
    with pytest.raises(ValueError, match="descending"):
        DPMSolverPP2M(SCHED, [3, 5])
    with pytest.raises(ValueError, match="lie in"):
        DPMSolverPP2M(SCHED, [1000, 5])


@pytest.mark.parametrize("steps", [3, 10, 50])
def test_dpm_solver_with_oracle_noise_recovers_x0(steps: int) -> None:
    x0 = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 1.8 - 0.9

    def oracle(x, t):
        return SCHED.predict_eps(x, t, x0), None

    out = DiffusionSampler(SCHED, "dpm++", steps).sample(oracle, x0.shape, torch.Generator().manual_seed(3))
    torch.testing.assert_close(out, x0, rtol=1e-4, atol=1e-4)


def test_gaussian_toy_variances_of_the_samplers() -> None:
    """The measured figures quoted in docs/cimd_sampling.md (20 000 samples, seed 0)."""
    ddpm_1000 = _toy_variance("ddpm", 1000)
    ddim_10_eta1 = _toy_variance("ddim", 10, eta=1.0)
    ddim_10 = _toy_variance("ddim", 10)
    ddim_50 = _toy_variance("ddim", 50)
    dpm = {s: _toy_variance("dpm++", s) for s in (10, 25, 50)}
    assert ddpm_1000 == pytest.approx(VAR, abs=0.01)
    assert 0.08 < ddim_10_eta1 < 0.13  # DDIM-10 at eta 1 under-disperses badly
    assert 0.11 < ddim_10 < 0.15
    assert 0.21 < ddim_50 < 0.24
    for steps, var in dpm.items():
        assert var == pytest.approx(VAR, abs=0.025), steps
    assert abs(dpm[10] - VAR) < abs(ddim_10 - VAR) / 4
    assert abs(dpm[50] - VAR) < abs(dpm[10] - VAR)


def test_dpm_solver_is_deterministic_given_x_T() -> None:
    def model(x, t):
        return 0.1 * x, None

    sampler = DiffusionSampler(SCHED, "dpm++", 7)
    a = sampler.sample(model, (2, 1, 3, 3), torch.Generator().manual_seed(5))
    b = sampler.sample(model, (2, 1, 3, 3), torch.Generator().manual_seed(5))
    c = sampler.sample(model, (2, 1, 3, 3), torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sampler.timesteps == logsnr_timesteps(SCHED, 7)
