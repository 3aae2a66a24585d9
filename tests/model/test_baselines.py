"""The three baselines: shapes, determinism, gradients, learning, checkpoint round trips, encoders."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="cimd_model tests need torch (pip install .[model])")

from cimd_model.baselines import gen_prob_unet, phiseg, prob_unet  # noqa: E402
from cimd_model.nets.encoders import (  # noqa: E402
    GaussianEncoder,
    MixtureGaussianEncoder,
    kl_divergence,
    sample_with_generator,
)
from cimd_model.registry import build_model  # noqa: E402
from cimd_model.train import load_model, save_checkpoint  # noqa: E402


def _batch(b=3, c=1, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, c, size, size, generator=g)
    masks = (torch.rand(b, 1, size, size, generator=g) > 0.7).float()
    return images, masks


def test_sample_shape_range_and_determinism(variant):
    name, cfg = variant
    torch.manual_seed(0)
    model = build_model(name, cfg, in_channels=2).eval()
    images, _ = _batch(b=3, c=2)
    a = model.sample(images, 5, generator=torch.Generator().manual_seed(1))
    b = model.sample(images, 5, generator=torch.Generator().manual_seed(1))
    c = model.sample(images, 5, generator=torch.Generator().manual_seed(2))
    assert a.shape == (3, 5, 32, 32)
    assert a.dtype == torch.float32
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the n samples of one image differ from each other
    flat = a[0].reshape(5, -1)
    assert torch.cdist(flat, flat).fill_diagonal_(1.0).min() > 0


def test_training_loss_is_finite_and_reaches_every_parameter(variant):
    name, cfg = variant
    torch.manual_seed(0)
    model = build_model(name, cfg, in_channels=1)
    images, masks = _batch()
    loss, logs = model.training_loss(images, masks)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert {"loss", "rec", "kl"} <= set(logs)
    assert all(isinstance(v, float) for v in logs.values())
    assert logs["kl"] >= -1e-3 or name == "gen_prob_unet"  # MC estimate of a mixture KL can be negative
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reaches {missing[:5]}"


def test_a_few_steps_reduce_the_loss(variant, tiny_blobs):
    name, cfg = variant
    torch.manual_seed(0)
    model = build_model(name, cfg, in_channels=1)
    opt = model.make_optimizer()
    images = tiny_blobs.images[:8]
    masks = tiny_blobs.masks[:8, :1]
    recs = []
    for _ in range(25):
        loss, logs = model.training_loss(images, masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.on_train_step_end()
        recs.append(logs["rec"])
    assert sum(recs[-5:]) / 5 < 0.85 * sum(recs[:5]) / 5, recs


def test_checkpoint_round_trip_is_exact(variant, tmp_path):
    name, cfg = variant
    torch.manual_seed(0)
    model = build_model(name, cfg, in_channels=1)
    # move the weights away from their init so the test sees real state
    loss, _ = model.training_loss(*_batch())
    loss.backward()
    opt = model.make_optimizer()
    opt.step()
    path = save_checkpoint(tmp_path / "c.pt", model, opt, step=1, seed=0, run={"data": "ambiblobs-ct"})
    loaded, ckpt = load_model(path)
    assert type(loaded) is type(model)
    assert ckpt["config"] == model.config and ckpt["step"] == 1
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    images, _ = _batch()
    sa = model.eval().sample(images, 3, generator=torch.Generator().manual_seed(5))
    sb = loaded.eval().sample(images, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(sa, sb)


@pytest.mark.parametrize("module", [prob_unet, phiseg, gen_prob_unet])
def test_configs_are_json_and_buildable(module):
    import json

    assert set(module.CONFIGS) == {"cpu-small", "cpu-small-v0", "paper"}  # v0: the pre-recipe config
    for cfg in module.CONFIGS.values():
        assert json.loads(json.dumps(cfg)) == cfg
        assert {"lr", "batch_size", "steps"} <= set(cfg)
    module.build(module.CONFIGS["cpu-small"], 1)  # builds and is small
    n_params = sum(p.numel() for p in module.build(module.CONFIGS["cpu-small"], 1).parameters())
    assert n_params < 1_000_000


def test_paper_phiseg_has_five_latent_levels_on_128():
    cfg = phiseg.CONFIGS["paper"]
    assert cfg["latent_levels"] == 5 and len(cfg["mults"]) == 7
    assert prob_unet.CONFIGS["paper"]["latent_dim"] == 6


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="latent"):
        prob_unet.build({**prob_unet.CONFIGS["cpu-small"], "latent": "bogus"}, 1)
    with pytest.raises(ValueError, match="latent_levels"):
        phiseg.build({**phiseg.CONFIGS["cpu-small"], "latent_levels": 9}, 1)
    model = phiseg.build(phiseg.CONFIGS["cpu-small"], 1)
    with pytest.raises(ValueError, match="divisible"):
        model.sample(torch.zeros(1, 1, 30, 30), 2)
    with pytest.raises(ValueError, match="n must be"):
        model.sample(torch.zeros(1, 1, 32, 32), 0)


# ------------------------------------------------------------------------------------------ encoders
@pytest.mark.parametrize("covariance", ["diagonal", "full", "lowrank"])
def test_gaussian_encoder(covariance):
    torch.manual_seed(0)
    enc = GaussianEncoder(2, 6, base_channels=8, mults=(1, 2), covariance=covariance, rank=2)
    x = torch.rand(3, 1, 16, 16)
    seg = (torch.rand(3, 1, 16, 16) > 0.5).float()
    dist = enc(x, seg)
    assert dist.batch_shape == (3,) and dist.event_shape == (6,)
    if covariance == "diagonal":
        assert isinstance(dist, torch.distributions.Independent)
        assert isinstance(dist.base_dist, torch.distributions.Normal)
    z1 = sample_with_generator(dist, 4, torch.Generator().manual_seed(0))
    z2 = sample_with_generator(dist, 4, torch.Generator().manual_seed(0))
    assert z1.shape == (4, 3, 6) and torch.equal(z1, z2)
    other = GaussianEncoder(2, 6, base_channels=8, mults=(1, 2), covariance=covariance, rank=2)(x, seg)
    kl = kl_divergence(dist, other)
    assert kl.shape == (3,) and bool((kl >= -1e-5).all())
    with pytest.raises(ValueError, match="input"):
        enc(x)  # the posterior encoder needs the mask channel too


def test_sample_with_generator_matches_the_distribution():
    torch.manual_seed(0)
    enc = GaussianEncoder(1, 3, base_channels=4, mults=(1,), covariance="full")
    dist = enc(torch.rand(1, 1, 8, 8))
    z = sample_with_generator(dist, 20000, torch.Generator().manual_seed(0))[:, 0]
    assert torch.allclose(z.mean(0), dist.mean[0], atol=0.05)
    assert torch.allclose(torch.cov(z.T), dist.covariance_matrix[0], atol=0.08)


def test_mixture_encoder_samples_and_kl():
    torch.manual_seed(0)
    enc = MixtureGaussianEncoder(1, 6, n_components=3, base_channels=8, mults=(1, 2))
    dist = enc(torch.rand(2, 1, 16, 16))
    z = sample_with_generator(dist, 7, torch.Generator().manual_seed(0))
    assert z.shape == (7, 2, 6)
    kl = kl_divergence(dist, enc(torch.rand(2, 1, 16, 16)))
    assert kl.shape == (2,) and torch.isfinite(kl).all()
    with pytest.raises(ValueError, match="n_components"):
        MixtureGaussianEncoder(1, 6, n_components=0)
