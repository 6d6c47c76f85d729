"""Fair baselines: the U-Net's receptive field (computed = measured), circular padding (exact shift
equivariance on periodic input), the config check on unconditional models that cannot see their
whole input, and the prior mismatch of the forward process (wsgm.prior)."""

import copy
import math

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from wsgm import config as config_lib
from wsgm import prior
from wsgm.config import ConfigError
from wsgm.data.gaussian import power_spectrum, sample
from wsgm.decompose import decompose
from wsgm.nets import receptive_field as rf
from wsgm.nets.unet import UNet

from .helpers import REPO


def _random_net(levels: int, num_res_blocks: int, padding: str = "zeros", attn=(), size: int = 32) -> UNet:
    """A UNet with random (nonzero) weights, GroupNorm replaced by the identity (its spatial
    statistics are global scalars, left out of the receptive field), in float64."""
    torch.manual_seed(0)
    net = UNet(1, 1, channels=4, channel_mult=(1,) + (2,) * (levels - 1), num_res_blocks=num_res_blocks,
               attn_resolutions=attn, image_size=size, padding=padding).double().eval()
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.GroupNorm):
                setattr(module, name, nn.Identity())
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
    return net


def _support_rows(net: UNet, height: int, width: int, row: int) -> list[int]:
    """Rows of the input on which output pixel (row, width // 2) has a nonzero gradient."""
    x = torch.randn(1, 1, height, width, dtype=torch.float64, requires_grad=True)
    net(x, torch.tensor([0.5]))[0, 0, row, width // 2].backward()
    return (x.grad[0, 0].abs().sum(dim=1) > 0).nonzero().flatten().tolist()


@pytest.mark.parametrize("levels, blocks", [(1, 1), (2, 1), (2, 2), (3, 1)])
def test_receptive_field_equals_the_measured_one(levels, blocks):
    """Zero padding on an input tall enough that nothing reaches the edges: the gradient of one
    output pixel is nonzero exactly on the computed interval, at every phase of the strides."""
    net = _random_net(levels, blocks, size=8)
    height = 256
    for row in range(128, 128 + 2 ** levels):
        lo, hi = rf.interval(levels, blocks, row)
        assert 0 < lo and hi < height - 1
        assert _support_rows(net, height, 8, row) == list(range(lo, hi + 1)), (levels, blocks, row)


def test_receptive_field_formula():
    """The documented closed form (exact at the centre of these nets) and the default SGM net."""
    for levels in (1, 2, 3, 4):
        for blocks in (1, 2):
            radius = 2 + (4 * blocks + 2) * (2**levels - 1) + 2 * (2 ** (levels - 1) - 1) + 4 * 2 ** (levels - 1)
            assert abs(rf.receptive_field(levels, blocks, 2**levels * 16) - (2 * radius + 1)) <= 2 ** levels
    assert rf.receptive_field(3, 1, 32) == 133  # channel_mult [1, 2, 2], num_res_blocks 1
    assert rf.receptive_field(1, 1, 32) == 25


def test_circular_receptive_field_wraps():
    """With circular padding the measured support is the computed interval taken modulo the side:
    a local net (25 px on 32) sees a wrapped band of rows, a wide one (133 px) every row."""
    side, row = 32, 1
    lo, hi = rf.interval(1, 1, row)
    assert hi - lo + 1 == 25 < side
    assert _support_rows(_random_net(1, 1, "circular"), side, side, row) == sorted({r % side for r in range(lo, hi + 1)})
    assert _support_rows(_random_net(3, 1, "circular"), side, side, row) == list(range(side))


def test_attention_is_global():
    net = {"channel_mult": [1], "num_res_blocks": 1, "attn_resolutions": [32]}
    assert rf.sees_whole_input(net, 32) and not rf.sees_whole_input({**net, "attn_resolutions": []}, 32)
    assert not rf.sees_whole_input({**net, "attn_resolutions": [16]}, 32)  # not one of its resolutions
    measured = _support_rows(_random_net(1, 1, attn=(64,), size=64), 64, 64, 5)
    assert measured == list(range(64))


@pytest.mark.parametrize("attn", [(), (8,)])
def test_circular_padding_is_shift_equivariant(attn):
    """Rolling a periodic input by multiples of the total downsampling factor (4 for 3 levels) rolls
    the output the same way, exactly with circular padding, not with zero padding."""
    x = torch.randn(2, 1, 32, 32, dtype=torch.float64)
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    for padding, equivariant in (("circular", True), ("zeros", False)):
        net = _random_net(3, 1, padding, attn)
        for dy, dx in ((4, 0), (0, 8), (12, -4)):
            out = net(torch.roll(x, (dy, dx), dims=(2, 3)), t)
            diff = ((out - torch.roll(net(x, t), (dy, dx), dims=(2, 3))).abs().max() / out.abs().max()).item()
            assert diff < 1e-12 if equivariant else diff > 1e-3, (padding, dy, dx, diff)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 1, 5, 7), (3, 4, 2, 2), (2, 2, 16, 4)])
@pytest.mark.parametrize("pad", [1, 2])
def test_circular_pad_equals_torch_circular_mode(shape, pad):
    """The U-Net's periodic padding is F.pad(mode="circular") exactly (values and gradients), and its
    CircularConv2d the same function as nn.Conv2d(padding_mode="circular") with the same weights."""
    import torch.nn.functional as F

    from wsgm.nets.unet import CircularConv2d, circular_pad

    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn(shape[0], shape[1], shape[2] + 2 * pad, shape[3] + 2 * pad, dtype=torch.float64)
    ours, theirs = circular_pad(x, pad), F.pad(x, (pad,) * 4, mode="circular")
    assert torch.equal(ours, theirs)
    assert torch.equal(*(torch.autograd.grad(y, x, g)[0] for y in (ours, theirs)))
    for stride in (1, 2):
        conv = CircularConv2d(shape[1], 5, 3, stride=stride).double()
        ref = nn.Conv2d(shape[1], 5, 3, stride=stride, padding=1, padding_mode="circular").double()
        ref.load_state_dict(conv.state_dict())
        assert torch.equal(conv(x), ref(x))


def _cfg(size, J, net, kind="gaussian"):
    ds = {"kind": kind, "size": size, "n": 64}
    return {"datasets": {"d": ds}, "experiments": {"e": {"dataset": "d", "J": J, "net": net}},
            "report": {"metrics": ["spectrum_log_error"]}}


def test_check_refuses_an_unconditional_model_that_cannot_see_its_input():
    """A one-level net on 32×32 (receptive field 25): refused with both fixes named."""
    with pytest.raises(ConfigError, match=r"experiments\.e\.net.*receptive field of its centre pixel is 25 "
                                          r"pixels.*add a level to channel_mult \(e\.g\. \[1, 1\]\).*"
                                          r"attn_resolutions: \[32\]"):
        config_lib.check(_cfg(32, 0, {"channel_mult": [1]}))
    # WSGM's coarsest model is unconditional too: 64×64 with J = 1 gives it a 32×32 low-pass
    with pytest.raises(ConfigError, match=r"coarsest low-pass x_1, 32x32"):
        config_lib.check(_cfg(64, 1, {"channel_mult": [1]}))
    # either fix passes
    config_lib.check(_cfg(32, 0, {"channel_mult": [1, 1]}))
    config_lib.check(_cfg(32, 0, {"channel_mult": [1], "attn_resolutions": [32]}))


def test_check_accepts_local_conditional_models():
    """J = 2 on 128×128 with one level and attention at 32: the coarsest model (32×32) sees its
    input through attention; the conditional ones (32×32 and 64×64, no attention at 64) are local."""
    cfg = config_lib.check(_cfg(128, 2, {"channel_mult": [1], "attn_resolutions": [32]}), warn=None)
    from wsgm import specs

    views = {m["scale"]: m for m in specs.models_view(cfg, "e")}
    assert views[2]["sees_whole_input"] and views[2]["attention"] == [32]
    assert not views[0]["sees_whole_input"] and views[0]["side"] == 64 and views[0]["receptive_field"] == 25


def test_padding_auto_resolves_by_dataset_kind():
    cfg = config_lib.check(_cfg(16, 1, {}), warn=None)
    assert cfg["experiments"]["e"]["net"]["padding"] == "circular"
    raw = {"datasets": {"d": {"kind": "npz", "path": "x.npz", "size": 16}},
           "experiments": {"e": {"dataset": "d", "J": 1}}}
    assert config_lib.check(raw, warn=None)["experiments"]["e"]["net"]["padding"] == "zeros"
    explicit = _cfg(16, 1, {"padding": "zeros"})
    assert config_lib.check(explicit, warn=None)["experiments"]["e"]["net"]["padding"] == "zeros"


def test_prior_mismatch_of_the_default_vp_on_a_power_law_field():
    """32×32 power-law field (xi 32, eta 2) normalized to unit pixel variance: λ_max is the DC
    mode, P(0)/mean P; VP (beta 0.1..20, T = 1) keeps m(1)² = e^-10.05 of it: r ≈ 0.029."""
    spectrum = power_spectrum(32, 32.0, 2.0)
    lam = prior.exact_max_mode_variance(32, 32.0, 2.0, 0, "haar")["low0"]
    assert lam == pytest.approx(spectrum[0, 0] / spectrum.mean()) and 600 < lam < 700
    vp = config_lib.defaults("sde")
    m2 = math.exp(-0.5 * (vp["beta_max"] - vp["beta_min"]) - vp["beta_min"])
    assert prior.mismatch(vp, lam) == pytest.approx(m2 * lam, rel=1e-9)
    assert prior.mismatch(vp, lam) == pytest.approx(0.0291, abs=5e-4)
    assert prior.mismatch(vp, lam) > prior.THRESHOLD
    assert prior.kl_per_mode(0.0291) == pytest.approx(0.0291**2 / 4, rel=0.03)
    # the coarsest low-pass of J = 2 is 13x better conditioned: it passes
    assert prior.mismatch(vp, prior.exact_max_mode_variance(32, 32.0, 2.0, 2, "haar")["low2"]) < prior.THRESHOLD
    # VE: the prior variance is sigma_max², so the ratio is λ_max / sigma_max² (Song & Ermon's rule)
    ve = {**vp, "name": "ve"}
    assert prior.mismatch(ve, lam) == pytest.approx(lam / (ve["sigma_max"] ** 2 - ve["sigma_min"] ** 2 + 1), rel=1e-6)


def test_config_warns_about_the_prior_for_gaussian_data():
    cfg = _cfg(32, 0, {"channel_mult": [1, 2, 2]})
    cfg["datasets"]["d"].update(xi=32, eta=2)
    found = config_lib.warnings(cfg)
    assert any("does not reach its prior" in w and "0.0291" in w and "beta_max" in w for w in found)
    cfg["experiments"]["e"]["sde"] = {"beta_max": 25}
    assert not any("prior" in w for w in config_lib.warnings(cfg))


def test_decompose_stores_the_max_mode_variance(tmp_path):
    """The data estimate (decompose) matches the exact one for a simulated field, at every band."""
    import zarr

    from wsgm.data import split
    from wsgm.data.store import create_array

    spectrum = power_spectrum(16, 16.0, 2.0)
    x = sample(spectrum, 2048, 1, np.random.default_rng(0))
    group = zarr.open_group(str(tmp_path / "d.zarr"), mode="w")
    create_array(group, "x", x.shape, 512)[:] = x
    group.attrs["split"] = split.layout(len(x), 2, 2)  # train on all but 4
    for J in (0, 1):
        attrs = decompose({"wavelet": "haar", "J": J}, tmp_path / "d.zarr", tmp_path / f"s{J}.zarr")
        exact = prior.exact_max_mode_variance(16, 16.0, 2.0, J, "haar")
        for band, lam in attrs["max_mode_variance"].items():
            if band.startswith("detail"):  # single orientations: a lower bound of the 3x3 symbol's
                assert lam <= exact[band] * 1.1
            else:
                assert lam == pytest.approx(exact[band], rel=0.1), (J, band)


def test_shipped_configs_pass_the_fair_baseline_checks():
    """config.yaml and phi4.yaml: every unconditional model sees its whole input, periodic data
    gets circular padding, and no prior-mismatch warning; SGM and WSGM train on the same budget."""
    for name in ("config.yaml", "phi4.yaml"):
        raw = yaml.safe_load((REPO / "config" / name).read_text())
        found = []
        cfg = config_lib.check(copy.deepcopy(raw), warn=found.append)
        assert not [w for w in found if "prior" in w], found
        budgets = set()
        for exp_name, exp in cfg["experiments"].items():
            size = cfg["datasets"][exp["dataset"]]["size"]
            assert rf.sees_whole_input(exp["net"], rf.model_side(size, exp["J"], exp["J"])), (name, exp_name)
            assert exp["net"]["padding"] == "circular"
            budgets.add((exp["train"]["steps"], exp["train"]["batch_size"]))
        assert len(budgets) == 1, (name, budgets)
