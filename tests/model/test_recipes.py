"""The baselines' training recipes (issue 18): optimizer and L2, learning-rate schedule, augmentation,
PHiSeg's KL weighting / z convolutions / mask centring, the Monte-Carlo mixture KL, and that configs written
before these keys existed keep their earlier behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="cimd_model tests need torch (pip install .[model])")

from torch import distributions as D  # noqa: E402

from cimd_model.augment import augment_batch, check_spec  # noqa: E402
from cimd_model.baselines.prob_unet import mixture_kl_estimate  # noqa: E402
from cimd_model.registry import build_model, model_configs  # noqa: E402
from cimd_model.train import _Batcher, train  # noqa: E402

BASELINES = ("prob_unet", "phiseg", "gen_prob_unet")


# ------------------------------------------------------------------------------------------ optimizer
def test_optimizer_default_is_the_earlier_adamw_and_adam_puts_l2_on_the_weights(tiny_configs):
    old = build_model("prob_unet", tiny_configs["prob_unet"], 1)
    opt = old.make_optimizer()
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 0.01
    new = build_model("prob_unet", {**tiny_configs["prob_unet"], "optimizer": "adam", "l2": 1e-5}, 1)
    opt = new.make_optimizer()
    assert type(opt) is torch.optim.Adam
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 1e-5 for p in g["params"]}
    for name, p in new.named_parameters():
        assert (id(p) in decayed) == (p.dim() > 1), name  # kernels yes, biases / norm scales no
    every = build_model(
        "prob_unet", {**tiny_configs["prob_unet"], "optimizer": "adam", "l2": 1e-5, "l2_on": "all"}, 1
    )
    assert [g["weight_decay"] for g in every.make_optimizer().param_groups] == [1e-5]
    with pytest.raises(ValueError, match="optimizer"):
        build_model("prob_unet", {**tiny_configs["prob_unet"], "optimizer": "sgd"}, 1).make_optimizer()


def test_coupled_l2_step_equals_adam_on_the_loss_with_the_penalty():
    """Adam(weight_decay=l2) on one weight = Adam on loss + l2/2 * w**2 (what tf l2_loss regularisers do)."""
    w1 = torch.nn.Parameter(torch.tensor([0.7, -1.3]))
    w2 = torch.nn.Parameter(w1.detach().clone())
    o1, o2 = torch.optim.Adam([w1], lr=0.1, weight_decay=0.3), torch.optim.Adam([w2], lr=0.1)
    for _ in range(5):
        for w, o, extra in ((w1, o1, 0.0), (w2, o2, 1.0)):
            o.zero_grad()
            ((w**3).sum() + extra * 0.15 * (w**2).sum()).backward()
            o.step()
    torch.testing.assert_close(w1, w2)


def test_piecewise_constant_schedule_matches_tf_semantics(tiny_configs):
    cfg = {**tiny_configs["prob_unet"], "steps": 30}
    cfg["lr_schedule"] = {"boundaries": [10, 20], "values": [1.0, 0.5, 0.25]}
    m = build_model("prob_unet", cfg, 1)
    assert [m.learning_rate(s) for s in (0, 10, 11, 20, 21, 29)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    rel = build_model(
        "prob_unet",
        {**cfg, "lr_schedule": {**cfg["lr_schedule"], "boundaries": [1 / 3, 2 / 3], "relative": True}},
        1,
    )
    assert [rel.learning_rate(s) for s in (10, 11, 21)] == [1.0, 0.5, 0.25]
    assert (
        build_model("prob_unet", tiny_configs["prob_unet"], 1).learning_rate(5)
        == tiny_configs["prob_unet"]["lr"]
    )
    with pytest.raises(ValueError, match="lr_schedule"):
        build_model(
            "prob_unet", {**cfg, "lr_schedule": {"boundaries": [5], "values": [1.0]}}, 1
        ).learning_rate(0)


def test_training_applies_the_schedule(tiny_blobs, tiny_configs, tmp_path):
    cfg = {
        **tiny_configs["prob_unet"],
        "optimizer": "adam",
        "lr_schedule": {"boundaries": [1], "values": [1e-3, 0.0]},
    }
    torch.manual_seed(0)
    model = build_model("prob_unet", cfg, 1)
    train(model, tiny_blobs, tmp_path / "a", steps=2, batch_size=2, progress=False)
    after_two = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    model2 = build_model("prob_unet", cfg, 1)
    train(model2, tiny_blobs, tmp_path / "b", steps=4, batch_size=2, progress=False)  # steps 2, 3 have lr 0
    for k, v in model2.state_dict().items():
        if v.is_floating_point() and "running" not in k:
            torch.testing.assert_close(v, after_two[k], msg=k)


# ------------------------------------------------------------------------------------------ augmentation
def _disk(size=32, r=6.0, cx=16.0, cy=16.0):
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    return (((xx - cx) ** 2 + (yy - cy) ** 2) <= r**2).float()


def test_flips_are_exact_and_off_means_identity():
    g = torch.Generator().manual_seed(0)
    images, masks = (
        torch.rand(5, 2, 16, 16, generator=g),
        (torch.rand(5, 1, 16, 16, generator=g) > 0.5).float(),
    )
    a, b = augment_batch(images, masks, {"flip_lr": 1.0, "flip_ud": 1.0}, torch.Generator().manual_seed(1))
    assert torch.equal(a, images.flip(-1).flip(-2)) and torch.equal(b, masks.flip(-1).flip(-2))
    a, b = augment_batch(images, masks, None)
    assert a is images and b is masks
    a, b = augment_batch(images, masks, {"flip_lr": 0.5}, torch.Generator().manual_seed(2))
    flipped = [torch.equal(a[i], images[i].flip(-1)) for i in range(5)]
    kept = [torch.equal(a[i], images[i]) for i in range(5)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)
    for i in range(5):  # image and annotation always move together
        assert torch.equal(b[i], masks[i].flip(-1) if flipped[i] else masks[i])


def test_rotation_and_zoom_move_image_and_mask_together():
    disk = _disk()
    images, masks = disk[None, None].repeat(8, 1, 1, 1), disk[None, None].repeat(8, 1, 1, 1)
    # a centred disk is rotation invariant: the mask stays (nearly) the disk, the image stays its mask
    a, b = augment_batch(images, masks, {"rotate_deg": 180.0}, torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert ((b - disk).abs().sum(dim=(1, 2, 3)) <= 16).all()  # boundary pixels only (area 113)
    assert torch.equal(b, (a > 0.5).float())
    # zooming in by 2 (centred) doubles the radius: 4x the area
    a, b = augment_batch(images, masks, {"scale": [0.5, 0.5]}, torch.Generator().manual_seed(0))
    area = b.sum(dim=(1, 2, 3)) / disk.sum()
    assert ((area > 3.6) & (area < 4.4)).all()
    # zooming out by 2 shrinks it to a quarter and pads with zeros
    a, b = augment_batch(torch.ones(2, 1, 32, 32), masks[:2], {"scale": [2.0, 2.0]})
    assert a[0, 0, 0, 0] == 0 and a[0, 0, 16, 16] == 1
    assert ((b.sum(dim=(1, 2, 3)) / disk.sum() - 0.25).abs() < 0.1).all()


def test_crop_inside_never_samples_outside_the_image():
    ones = torch.ones(16, 1, 32, 32)
    spec = {"p_spatial": 1.0, "scale": [98 / 128, 1.0], "translate": "inside"}
    a, _ = augment_batch(ones, ones.clone(), spec, torch.Generator().manual_seed(3))
    assert torch.allclose(a, ones)  # a random crop of a constant image, no zero padding
    disk = _disk(cx=10.0, cy=22.0)
    a, b = augment_batch(
        disk[None, None].repeat(16, 1, 1, 1),
        disk[None, None].repeat(16, 1, 1, 1),
        spec,
        torch.Generator().manual_seed(4),
    )
    centres = [(b[i, 0].nonzero().float().mean(0)).tolist() for i in range(16)]
    assert len({tuple(round(c, 1) for c in xy) for xy in centres}) > 4  # the crop position varies


def test_augmentation_probability_and_spec_errors():
    images = torch.rand(400, 1, 8, 8)
    a, _ = augment_batch(
        images,
        (images > 0.5).float(),
        {"p_spatial": 0.5, "rotate_deg": 30.0},
        torch.Generator().manual_seed(0),
    )
    changed = (a - images).abs().flatten(1).amax(1) > 1e-6
    assert 0.4 < float(changed.float().mean()) < 0.6
    for bad, match in (
        ({"rotate": 3}, "unknown"),
        ({"flip_lr": 2}, "probability"),
        ({"scale": [1.2, 0.8]}, "scale"),
        ({"translate": "x"}, "translate"),
    ):
        with pytest.raises(ValueError, match=match):
            check_spec(bad)


def test_batches_with_augmentation_depend_only_on_seed_and_step(tiny_blobs):
    spec = model_configs("phiseg")["cpu-small"]["augment"]
    b1 = _Batcher(tiny_blobs, 4, seed=3, device=torch.device("cpu"), augment=spec)
    b2 = _Batcher(tiny_blobs, 4, seed=3, device=torch.device("cpu"), augment=spec)
    plain = _Batcher(tiny_blobs, 4, seed=3, device=torch.device("cpu"))
    for step in (5, 0, 5):
        x1, m1 = b1(step)
        x2, m2 = b2(step)
        assert torch.equal(x1, x2) and torch.equal(m1, m2)
    x, _ = plain(5)
    assert not torch.equal(x, x1)


def test_per_batch_annotation_choice(tiny_blobs):
    ds = tiny_blobs
    b = _Batcher(ds, 6, seed=1, device=torch.device("cpu"), annotation="per-batch")
    for step in range(4):
        idx = [b._index(p) for p in range(step * 6, step * 6 + 6)]
        _, masks = b(step)
        picks = [
            [k for k in range(ds.n_annotators) if torch.equal(ds[i]["masks"][k], masks[j, 0])]
            for j, i in enumerate(idx)
        ]
        assert set.intersection(*(set(p) for p in picks)), picks  # one annotator index fits every image
    with pytest.raises(ValueError, match="annotation"):
        _Batcher(ds, 2, seed=0, device=torch.device("cpu"), annotation="all")


# ------------------------------------------------------------------------------------------ PHiSeg
def test_phiseg_exponential_kl_weights_and_mask_centring(tiny_configs):
    cfg = tiny_configs["phiseg"]
    assert build_model("phiseg", cfg, 1).kl_level_weights == [1.0, 1.0]  # earlier configs: equal weights
    cfg = {
        **cfg,
        "mults": [1, 2, 2, 2],
        "latent_levels": 3,
        "kl_weighting": "exponential",
        "mask_offset": 0.5,
    }
    model = build_model("phiseg", cfg, 1)
    assert model.kl_level_weights == [1.0, 4.0, 16.0]  # phiseg_model.py: 4**level, level 0 finest
    assert model.posterior.seg_offset == 0.5 and model.prior.seg_offset == 0.0
    # the posterior's first convolution sees mask - 0.5: an all-0.5 mask equals no annotation channel
    x = torch.rand(1, 1, 32, 32)
    seen = {}
    model.posterior.encoder.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0]))
    model.posterior.features(x, torch.full((1, 1, 32, 32), 0.5))
    assert torch.equal(seen["x"][:, 1], torch.zeros(1, 32, 32))
    with pytest.raises(ValueError, match="kl_weighting"):
        build_model("phiseg", {**cfg, "kl_weighting": "linear"}, 1)


def test_phiseg_loss_weights_each_level_kl(tiny_configs, monkeypatch):
    cfg = {**tiny_configs["phiseg"], "mults": [1, 2, 2, 2], "latent_levels": 3}
    images, masks = torch.rand(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.7).float()
    logs = {}
    for weighting in ("equal", "exponential"):
        torch.manual_seed(0)
        model = build_model("phiseg", {**cfg, "kl_weighting": weighting}, 1)
        calls: list[float] = []
        real = D.kl_divergence

        def spy(q, p, calls=calls, real=real):
            out = real(q, p)
            calls.append(float(out.detach().mean()))
            return out

        monkeypatch.setattr(D, "kl_divergence", spy)
        torch.manual_seed(1)
        _, logs[weighting] = model.training_loss(images, masks)
        monkeypatch.setattr(D, "kl_divergence", real)
        expected = sum(w * k for w, k in zip(model.kl_level_weights, calls, strict=True))
        assert logs[weighting]["kl"] == pytest.approx(expected, rel=1e-5)
    assert logs["exponential"]["kl"] != pytest.approx(logs["equal"]["kl"], rel=1e-3)


def test_phiseg_z_convolutions_exist_only_when_configured(tiny_configs):
    cfg = tiny_configs["phiseg"]
    assert len(build_model("phiseg", cfg, 1).prior.z_up) == 0
    model = build_model("phiseg", {**cfg, "z_up_convs": 2, "z_up_channels": 8}, 1)
    assert len(model.prior.z_up) == len(model.posterior.z_up) == cfg["latent_levels"] - 1
    convs = [m for m in model.prior.z_up[0].modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(cfg["zdim"], 8), (8, 8)]


def test_old_phiseg_checkpoint_configs_still_load(tiny_configs, tmp_path):
    """A config without the new keys builds the network it built before (same parameter names)."""
    from cimd_model.train import load_model, save_checkpoint

    model = build_model("phiseg", tiny_configs["phiseg"], 1)
    path = save_checkpoint(tmp_path / "c.pt", model, None, 0, 0)
    again, _ = load_model(path)
    assert list(again.state_dict()) == list(model.state_dict())


# ------------------------------------------------------------------------------------------ mixture KL
def test_monte_carlo_mixture_kl_converges_to_the_closed_form_of_one_component():
    """With every component identical the mixture is a Gaussian: the MC estimate approaches the exact KL."""
    loc_q, loc_p = torch.tensor([[0.3, -0.2]]), torch.tensor([[0.0, 0.5]])
    sq, sp = torch.tensor([[0.8, 1.1]]), torch.tensor([[1.0, 0.7]])

    def mix(loc, scale, k=3):
        return D.MixtureSameFamily(
            D.Categorical(logits=torch.zeros(1, k)),
            D.Independent(D.Normal(loc[:, None].expand(1, k, 2), scale[:, None].expand(1, k, 2)), 1),
        )

    exact = D.kl_divergence(D.Independent(D.Normal(loc_q, sq), 1), D.Independent(D.Normal(loc_p, sp), 1))
    torch.manual_seed(0)
    est = mixture_kl_estimate(mix(loc_q, sq), mix(loc_p, sp), 20000, tau=0.1)
    assert est.shape == (1,)
    assert float(est) == pytest.approx(float(exact), abs=0.02)


# ------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("name", BASELINES)
def test_paper_configs_carry_the_papers_recipe(name):
    for cfg_name in ("cpu-small", "paper"):
        cfg = model_configs(name)[cfg_name]
        assert cfg["optimizer"] == "adam"
        model = build_model(name, {**cfg, "base_channels": 4, "encoder_base_channels": 4}, 1)
        assert type(model.make_optimizer()) is torch.optim.Adam
        check_spec(cfg.get("augment"))
    paper = model_configs(name)["paper"]
    if name == "prob_unet":
        assert paper["l2"] == 1e-5 and paper["l2_on"] == "weights" and paper["batch_size"] == 32
        m = build_model(name, {**paper, "base_channels": 4, "encoder_base_channels": 4}, 1)
        assert [m.learning_rate(s) for s in (0, 80_000, 80_001, 160_001)] == [1e-4, 1e-4, 0.5e-4, 1e-5]
    if name == "phiseg":
        assert (paper["kl_weighting"], paper["z_up_convs"], paper["mask_offset"]) == ("exponential", 2, 0.5)
        assert paper["l2"] == 0.0 and paper["lr"] == 1e-3 and paper["batch_size"] == 12
        assert paper["augment"]["flip_lr"] == 0.0  # the released config's flip keys were never read
    if name == "gen_prob_unet":
        assert paper["beta"] == 1.0 and paper["annotation"] == "per-batch" and paper["kl_samples"] == 1000
        assert paper["l2_on"] == "all" and paper["l2_norm_penalty"] == 1e-5 and paper["n_comb"] == 4
    assert math.isfinite(float(np.float64(paper["lr"])))
