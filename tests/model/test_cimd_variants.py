"""The four CIMD variants on one diffusion core, and the diagnostics that tell whether a latent is used."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="cimd_model tests need torch (pip install .[model])")

from cimd_model.diffusion.cimd import CIMD  # noqa: E402
from cimd_model.diffusion.diagnostics import latent_diagnostics  # noqa: E402
from cimd_model.registry import MODELS, build_model  # noqa: E402

torch.set_num_threads(1)

VARIANT_NAMES = ("cimd-official", "cimd-paper", "cimd-latent", "cond-ddpm")
TINY = {
    "image_size": 8,
    "base_channels": 8,
    "channel_mult": [1, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [],
    "encoder_channels": 4,
    "encoder_mults": [1, 2],
    "encoder_convs": 1,
    "official_encoder_filters": [8, 16],
    "official_encoder_convs": 2,
    "latent_dim": 2,
    "kl_anneal_steps": 100,
    "sampling_steps": 4,
    "sampler": "ddim",
    "lr": 2e-3,
}


def tiny(name: str, seed: int = 0, **overrides) -> CIMD:
    torch.manual_seed(seed)
    return build_model(name, {**TINY, **overrides}, 1)


def toy_batch(b: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 toy whose ambiguity the image cannot resolve: a 2x2 or a 6x6 centred square, 50/50."""
    images = torch.randn(b, 1, 8, 8, generator=g) * 0.1
    big = torch.randint(0, 2, (b,), generator=g).bool()
    masks = torch.zeros(b, 1, 8, 8)
    masks[~big, :, 3:5, 3:5] = 1
    masks[big, :, 1:7, 1:7] = 1
    return images, masks


def train_steps(model: CIMD, steps: int, seed: int = 1) -> None:
    opt = model.make_optimizer()
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        loss, _ = model.training_loss(*toy_batch(16, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.on_train_step_end()


# ---------------------------------------------------------------------------------------------- structure
def test_registry_names_and_variants() -> None:
    expected = {
        "cimd": "paper",
        "cimd-paper": "paper",
        "cimd-official": "official",
        "cimd-latent": "latent",
        "cond-ddpm": "none",
    }
    for name, variant in expected.items():
        assert name in MODELS
        model = tiny(name)
        assert model.name == name and model.variant == variant
    with pytest.raises(ValueError, match="variant"):
        CIMD(TINY, 1, variant="nope")


def test_cimd_is_cimd_paper_with_the_old_state_dict() -> None:
    a, b = tiny("cimd"), tiny("cimd-paper")
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    prefixes = {k.split(".")[0] for k in sa}
    assert prefixes == {"denoiser", "mask_encoder", "eps_encoder", "ema"}


def test_encoders_and_optimizer_per_variant() -> None:
    for name in VARIANT_NAMES:
        model = tiny(name)
        opt_ids = {id(p) for group in model.make_optimizer().param_groups for p in group["params"]}
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        assert opt_ids == trainable, name
        assert {id(p) for p in model.denoiser.parameters()} <= opt_ids
        has = {k for k in ("mask_encoder", "eps_encoder", "prior_encoder") if getattr(model, k) is not None}
        assert (
            has
            == {
                "cimd-official": {"mask_encoder", "eps_encoder"},
                "cimd-paper": {"mask_encoder", "eps_encoder"},
                "cimd-latent": {"mask_encoder", "prior_encoder"},
                "cond-ddpm": set(),
            }[name]
        )
    official = tiny("cimd-official")
    for enc in (official.mask_encoder, official.eps_encoder):
        assert not any(p.requires_grad for p in enc.parameters())
        assert not any(isinstance(m, torch.nn.GroupNorm) for m in enc.modules())
        convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
        assert [c.out_channels for c in convs] == [8, 8, 16, 16]  # filters [8, 16], 2 convs per level
    assert tiny("cimd-latent").denoiser.latent_dim == 2 and tiny("cond-ddpm").denoiser.latent_embed is None


def test_official_encoders_start_as_different_random_gaussians_and_stay_frozen() -> None:
    """Released init (N(0, 1) head biases): the KL is far from 0 at init, and it does not change the
    encoders; the paper variant starts with both encoders at ~N(0, I) (KL ~ 0)."""
    g = torch.Generator().manual_seed(0)
    images, masks = toy_batch(8, g)
    x0 = masks * 2 - 1
    t = torch.randint(0, 1000, (8,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    official, paper = tiny("cimd-official"), tiny("cimd-paper")
    kl_official = float(official.loss_terms(images, x0, t, noise)["kl"].detach())
    kl_paper = float(paper.loss_terms(images, x0, t, noise)["kl"].detach())
    assert kl_official > 1.0 and kl_paper < 1e-2
    before = {k: v.clone() for k, v in official.mask_encoder.state_dict().items()}
    train_steps(official, 3)
    after = official.mask_encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_cond_ddpm_has_no_kl_and_refuses_z() -> None:
    model = tiny("cond-ddpm", kl_weight=1e-3)
    images, masks = toy_batch(2, torch.Generator().manual_seed(0))
    loss, logs = model.training_loss(images, masks)
    assert logs["kl"] == 0.0 and logs["kl_term"] == 0.0
    with pytest.raises(ValueError, match="no latent"):
        model.sample(images, 2, z=torch.zeros(4, 2))
    with pytest.raises(ValueError, match="z must have shape"):
        tiny("cimd-latent").denoiser(torch.zeros(2, 2, 8, 8), torch.zeros(2, dtype=torch.long))


def test_latent_kl_warm_up_and_free_bits() -> None:
    model = tiny("cimd-latent", free_bits=10.0)
    g = torch.Generator().manual_seed(0)
    images, masks = toy_batch(4, g)
    x0 = masks * 2 - 1
    t = torch.randint(0, 1000, (4,), generator=g)
    terms = model.loss_terms(images, x0, t, torch.randn(x0.shape, generator=g))
    assert float(terms["kl_anneal"]) == 0.0
    # with free bits far above the KL, the posterior gets no gradient from the KL term (only the prior)
    terms["kl_term"].backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in model.mask_encoder.parameters())
    assert sum(float(p.grad.abs().sum()) for p in model.prior_encoder.parameters() if p.grad is not None) > 0
    model.ema.num_updates.fill_(50)
    assert float(model.loss_terms(images, x0, t, torch.randn(x0.shape))["kl_anneal"]) == 0.5


def test_sampling_is_one_batch_per_step_under_inference_mode() -> None:
    for name in VARIANT_NAMES:
        model = tiny(name, sampling_steps=3)
        seen = []

        def hook(mod, inp, out, seen=seen):
            seen.append((inp[0].shape[0], torch.is_inference_mode_enabled()))

        handle = model.denoiser.register_forward_hook(hook)
        try:
            out = model.sample(toy_batch(2, torch.Generator().manual_seed(0))[0], 4, torch.Generator())
        finally:
            handle.remove()
        assert seen == [(8, True)] * 3, name
        assert not out.is_inference() and out.shape == (2, 4, 8, 8)
        out.clamp_(0, 1)  # callers may work in place


# ---------------------------------------------------------------------------------------------- diagnostics
def test_latent_is_used_after_a_short_training() -> None:
    """The issue's assertion: for cimd-latent after a short training, shuffling z across the batch raises
    the diffusion loss measurably, and two prior draws of z with the same x_T give different masks."""
    model = tiny("cimd-latent")
    train_steps(model, 400)
    images, masks = toy_batch(32, torch.Generator().manual_seed(5))
    diag = latent_diagnostics(model, images, masks, n_bins=5, repeats=4)
    assert diag.active_units >= 1
    inc, se = diag.shuffle_increase, diag.shuffle_se
    # pooled over the bins, the increase is many standard errors above zero
    total, total_se = sum(inc), sum(s**2 for s in se) ** 0.5
    assert total > 4 * total_se, (inc, se)
    assert max(i / s for i, s in zip(inc, se, strict=True) if s > 0) > 3
    assert diag.kl_grad_share == 0.0 and diag.mse_grad_posterior > 0
    assert diag.z_mask_change > 0.01
    # directly: same x_T, two z from the prior
    x_T = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(10)
    za, zb = model.prior_latents(images[:4], 1, g), model.prior_latents(images[:4], 1, g)
    a = model.sample(images[:4], 1, x_T=x_T, z=za) > 0.5
    b = model.sample(images[:4], 1, x_T=x_T, z=zb) > 0.5
    assert not torch.equal(a, b)
    assert torch.equal(a, model.sample(images[:4], 1, x_T=x_T, z=za) > 0.5)


def test_official_kl_gradient_reaches_the_denoiser_and_cond_ddpm_has_none() -> None:
    images, masks = toy_batch(8, torch.Generator().manual_seed(2))
    official = latent_diagnostics(tiny("cimd-official"), images, masks)
    assert official.kl_grad_share > 1e-3 and official.kl_nats > 1.0
    assert official.shuffle_increase is None and official.z_mask_change is None
    assert official.active_units is not None
    none = latent_diagnostics(tiny("cond-ddpm"), images, masks)
    assert none.kl_grad_share == 0.0 and none.active_units is None and none.kl_nats is None
    paper = latent_diagnostics(tiny("cimd-paper"), images, masks)
    assert paper.kl_grad_share < official.kl_grad_share / 100  # near-N(0, I) start: a vanishing KL
    with pytest.raises(ValueError, match="at least 2"):
        latent_diagnostics(tiny("cond-ddpm"), images[:1], masks[:1])


# ---------------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("name", ["cimd-latent", "cimd-official", "cond-ddpm"])
def test_variants_train_and_sample_from_the_cli(tmp_path, name: str) -> None:
    import numpy as np

    from cimd_model.cli import sample_main, train_main
    from cimd_model.diffusion.diagnostics import main as diag_main

    out = tmp_path / "run"
    sets = {**TINY, "image_size": 16}
    argv = ["--model", name, "--data", "ambiblobs-ct", "--data-arg", "n=4", "--data-arg", "size=16"]
    argv += ["--out", str(out), "--steps", "2", "--batch-size", "2", "--no-progress"]
    for key, value in sets.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    assert train_main(argv) == 0
    preds = tmp_path / "preds"
    argv = f"--checkpoint {out} --data-arg size=16 --n 3 --out {preds} --limit 2"
    argv += " --sampler dpm++ --sampling-steps 3 --no-progress"
    assert sample_main(argv.split()) == 0
    files = sorted(preds.glob("*.npy"))
    arr = np.load(files[0])
    assert len(files) == 2 and arr.shape == (3, 16, 16) and 0 <= arr.min() <= arr.max() <= 1
    report = tmp_path / "diag.json"
    assert diag_main(["--checkpoint", str(out), "--n", "4", "--repeats", "1", "--json", str(report)]) == 0
    assert json.loads(report.read_text())["model"] == name
