"""Tests for the U-Net score network."""

from __future__ import annotations

import pytest
import torch

from wsgm.nets import UNet, count_parameters

SIZE_MULTS = [(4, (1, 2)), (8, (1, 2)), (16, (1, 2, 2)), (32, (1, 2, 2))]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors run fastest and most predictably on one intra-op thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _train(model: UNet, x: torch.Tensor, t: torch.Tensor, target: torch.Tensor,
           cond: torch.Tensor | None = None, steps: int = 5, lr: float = 1e-2) -> list[float]:
    """Run ``steps`` Adam steps of MSE regression onto ``target``; return the losses."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = (model(x, t, cond) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("size,mult", SIZE_MULTS)
@pytest.mark.parametrize("cond_channels", [0, 3])
def test_output_shape(size: int, mult: tuple[int, ...], cond_channels: int) -> None:
    torch.manual_seed(0)
    model = UNet(2, 5, cond_channels=cond_channels, channels=8, channel_mult=mult,
                 attn_resolutions=(size // 2,), image_size=size)
    x = torch.randn(3, 2, size, size)
    cond = torch.randn(3, cond_channels, size, size) if cond_channels else None
    out = model(x, torch.rand(3) * 5, cond)
    assert out.shape == (3, 5, size, size)
    assert torch.isfinite(out).all()


def test_zero_init_output_and_cond_gradient() -> None:
    torch.manual_seed(0)
    model = UNet(1, 1, cond_channels=2, channels=8, channel_mult=(1, 2), image_size=8)
    x, cond = torch.randn(2, 1, 8, 8), torch.randn(2, 2, 8, 8, requires_grad=True)
    out = model(x, torch.rand(2), cond)
    assert torch.count_nonzero(out) == 0  # zero-initialised output conv
    _train(model, x, torch.rand(2), torch.randn(2, 1, 8, 8), cond.detach(), steps=3)
    model(x, torch.rand(2), cond).pow(2).sum().backward()
    assert cond.grad is not None and cond.grad.abs().sum() > 0


def test_output_depends_on_cond_and_t() -> None:
    torch.manual_seed(0)
    model = UNet(1, 1, cond_channels=1, channels=8, channel_mult=(1, 2), image_size=8)
    x, t, cond = torch.randn(4, 1, 8, 8), torch.rand(4) * 5, torch.randn(4, 1, 8, 8)
    _train(model, x, t, torch.randn(4, 1, 8, 8), cond)
    model.eval()
    with torch.no_grad():
        base = model(x, t, cond)
        assert not torch.allclose(base, model(x, t, torch.randn_like(cond)), atol=1e-5)
        assert not torch.allclose(base, model(x, t + 0.5, cond), atol=1e-5)
        assert not torch.allclose(base, model(x, torch.full_like(t, 1e-3), cond), atol=1e-5)
        assert torch.equal(base, model(x, t, cond))


def test_deterministic_given_seed() -> None:
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = UNet(1, 1, channels=8, channel_mult=(1, 2), attn_resolutions=(4,), image_size=8)
        x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
        _train(model, x, t, torch.randn(2, 1, 8, 8), steps=3)
        outs.append(model(x, t).detach())
    assert torch.equal(outs[0], outs[1])


def test_overfits_fixed_batch() -> None:
    torch.manual_seed(0)
    model = UNet(1, 1, channels=8, channel_mult=(1, 2), attn_resolutions=(4,), image_size=8)
    x, t, target = torch.randn(4, 1, 8, 8), torch.rand(4), torch.randn(4, 1, 8, 8)
    losses = _train(model, x, t, target, steps=100, lr=3e-3)
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_bad_sizes_and_cond_raise() -> None:
    with pytest.raises(ValueError, match="6"):
        UNet(1, 1, channel_mult=(1, 2, 2), image_size=6)
    model = UNet(1, 1, channels=8, channel_mult=(1, 2, 2), image_size=8)
    with pytest.raises(ValueError, match="10x10"):
        model(torch.randn(1, 1, 10, 10), torch.rand(1))
    with pytest.raises(ValueError, match="cond"):
        model(torch.randn(1, 1, 8, 8), torch.rand(1), torch.randn(1, 1, 8, 8))
    cond_model = UNet(1, 1, cond_channels=2, channels=8, channel_mult=(1, 2), image_size=8)
    with pytest.raises(ValueError, match="cond"):
        cond_model(torch.randn(1, 1, 8, 8), torch.rand(1))
    with pytest.raises(ValueError, match="cond shape"):
        cond_model(torch.randn(1, 1, 8, 8), torch.rand(1), torch.randn(1, 2, 4, 4))


def test_parameter_counts() -> None:
    counts = [count_parameters(UNet(1, 1, channels=c, channel_mult=(1, 2))) for c in (8, 16, 32)]
    assert counts[0] < counts[1] < counts[2]
    tiny = count_parameters(UNet(1, 1, channels=8, channel_mult=(1,)))
    assert 1000 < tiny < 20000


def test_config_builds_the_default_and_the_paper_sized_nets() -> None:
    """The CPU default (~10⁵ parameters) and the paper's 128-channel CIFAR-10 net (~35.5M, DDPM's
    35.7M) come out of the same config path; finer scales are conditional on the low-pass."""
    from pathlib import Path

    from wsgm import config as config_lib
    from wsgm.nets.load import build_net

    cfg = config_lib.load(Path(__file__).resolve().parents[1] / "config" / "config.yaml")
    wsgm_exp = cfg["experiments"]["wsgm"]
    coarse, kw_coarse = build_net(wsgm_exp["net"], 1, 32, wsgm_exp["J"], wsgm_exp["J"])
    fine, kw_fine = build_net(wsgm_exp["net"], 1, 32, wsgm_exp["J"], 0)
    assert kw_coarse["cond_channels"] == 0 and kw_coarse["in_channels"] == 1 and kw_coarse["image_size"] == 8
    assert kw_fine["cond_channels"] == 1 and kw_fine["in_channels"] == 3 and kw_fine["image_size"] == 16
    assert 1e4 < count_parameters(coarse) < 1e6
    paper = {**wsgm_exp["net"], "channels": 128, "channel_mult": [1, 2, 2, 2], "num_res_blocks": 2,
             "attn_resolutions": [16], "dropout": 0.1}
    big, _ = build_net(paper, 3, 32, 0, 0)
    assert 35e6 < count_parameters(big) < 36e6
    tiny = {**paper, "channels": 4, "channel_mult": [1], "num_res_blocks": 1, "attn_resolutions": []}
    assert count_parameters(build_net(tiny, 1, 8, 0, 0)[0]) < 5000


@pytest.mark.parametrize("kind", ["eps", "score", "x0"])
def test_parameterizations_convert_to_eps(kind: str) -> None:
    """EpsModel turns each parameterization's exact answer into the same ε."""
    from wsgm import sde as sde_lib
    from wsgm.nets.param import EpsModel, native_loss

    sde = sde_lib.VP(beta_min=0.1, beta_max=20.0, T=1.0, eps=1e-3)
    x0, z = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    t = torch.tensor([0.1, 0.3, 0.6, 0.9])
    m, s = (v.float().view(-1, 1, 1, 1) for v in sde.marginal(t.double()))
    xt = m * x0 + s * z
    oracle = {"eps": z, "score": -z / s, "x0": x0}[kind]

    class Oracle(torch.nn.Module):
        def forward(self, x, t, cond=None):
            return oracle

    assert torch.allclose(EpsModel(Oracle(), sde, kind)(xt, t), z, atol=1e-5)
    assert float(native_loss(kind, oracle, x0, z, s.flatten()).max()) < 1e-10
