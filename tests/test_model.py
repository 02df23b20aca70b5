"""U-Net, loss, sampler and prior."""

import pytest
import torch

from ihdm_core import build_model, get_preset
from ihdm_core.model.heat import HeatDissipation
from ihdm_core.model.losses import denoising_loss
from ihdm_core.model.prior import kde_prior_sample
from ihdm_core.model.latents import NoiseTable, draw_noise, shared_noise, slerp
from ihdm_core.model.sampling import sample
from ihdm_core.model.unet import UNet
from oracles import exact_inverse_net


@pytest.mark.parametrize("preset", ["mnist", "cifar10", "afhq64", "ffhq128", "afhq256", "lsun_church128"])
def test_paper_architectures_build_and_run(preset):
    cfg = get_preset(preset)
    # Full width for the small paper nets; the large ones at reduced width (same topology).
    if cfg.data.image_size > 32:
        cfg = cfg.replace(model={"base_channels": 8})
    net = build_model(cfg)
    x = torch.rand(1, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    out = net(x, torch.tensor([cfg.process.K]))
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # zero-initialised output: mu = u at initialisation
    n_attn = sum(type(m).__name__ == "AttnBlock" for m in net.modules())
    # per attention resolution: num_res_blocks (down) + num_res_blocks + 1 (up); plus one in the middle
    assert n_attn == len(cfg.model.attn_resolutions) * (2 * cfg.model.num_res_blocks + 1) + 1


def test_cifar10_paper_net_size():
    # DDPM's CIFAR-10 U-Net has 35.7M parameters with 2 blocks/level; with 4 blocks per level
    # (Table 1) and an extra attention level it is larger. Pin our count to catch silent changes.
    n = sum(p.numel() for p in build_model(get_preset("cifar10")).parameters())
    assert 50e6 < n < 70e6, n


def test_unet_uses_level_and_rejects_bad_channels():
    net = UNet(image_size=16, in_channels=3, base_channels=16, channel_mult=(1, 2), num_res_blocks=1,
               attn_resolutions=(8,), dropout=0.0)
    for p in net.parameters():  # leave zero-init behind so the output depends on its inputs
        torch.nn.init.normal_(p, std=0.05)
    x = torch.rand(2, 3, 16, 16)
    a, b = net(x, torch.tensor([1, 1])), net(x, torch.tensor([1, 50]))
    assert torch.allclose(a[0], b[0]) and not torch.allclose(a[1], b[1])
    with pytest.raises(ValueError, match="expected input"):
        net(torch.rand(2, 1, 16, 16), torch.tensor([1, 1]))


def test_oracle_sampler_retraces_forward_trajectory():
    """With f the exact inverse step and delta = 0, Alg. 2 walks the heat trajectory back."""
    p = HeatDissipation(28, K=20, sigma_max=10.0)
    u0 = torch.rand(3, 1, 28, 28)
    traj = p.trajectory(u0)
    seen = {}
    out = sample(exact_inverse_net(p, u0), p, traj[-1], delta=0.0, callback=lambda s: seen.__setitem__(s["k"], s["x"]))
    assert torch.allclose(out, u0, atol=1e-4)
    assert sorted(seen) == list(range(21))
    for k in (20, 13, 1):
        assert torch.allclose(seen[k], traj[k], atol=1e-4)
    # With delta > 0 every step but the last adds N(0, delta^2); the oracle's mean ignores
    # its input, so the states are trajectory + noise and the final one is noise-free.
    noisy = {}
    out = sample(exact_inverse_net(p, u0), p, traj[-1], delta=0.05, callback=lambda s: noisy.__setitem__(s["k"], s["x"]))
    for k in (19, 5, 1):
        assert abs(float((noisy[k] - traj[k]).std()) - 0.05) < 0.005
    assert torch.allclose(out, u0, atol=1e-5)


def test_sampler_noise_options():
    p = HeatDissipation(16, K=6, sigma_max=8.0, delta=0.02)
    net = UNet(image_size=16, in_channels=1, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
               attn_resolutions=(), dropout=0.5)
    uK = torch.full((4, 1, 16, 16), 0.5)
    g = torch.Generator().manual_seed(0)
    shared = sample(net, p, uK, noise=shared_noise(p.K, uK.shape, generator=g))
    assert torch.allclose(shared[0], shared[3])  # one noise draw for the whole batch
    fresh = sample(net, p, uK, generator=g)
    assert not torch.allclose(fresh[0], fresh[3])
    # Fixed noise with varying init: the same noise tensor reused with two different priors.
    z = NoiseTable(draw_noise(p.K, uK.shape, generator=torch.Generator().manual_seed(1)))
    a = sample(net, p, uK, noise=z)
    b = sample(net, p, uK + 0.1, noise=z)
    assert torch.allclose(a, sample(net, p, uK, noise=z))  # deterministic given the noise
    assert torch.allclose(b - a, torch.full_like(a, 0.1), atol=1e-5)  # f = 0: a pure shift
    assert net.training  # restored after sampling in eval mode
    with pytest.raises(ValueError, match=r"noise\(6\) must return a tensor"):
        sample(net, p, uK, noise=NoiseTable(torch.zeros(6, 4, 2, 16, 16)))
    with pytest.raises(TypeError, match="noise must be None or a callable"):
        sample(net, p, uK, noise=torch.zeros(6, 4, 1, 16, 16))


def test_slerp_keeps_norm():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(10_000, generator=g), torch.randn(10_000, generator=g)
    norms = torch.stack([slerp(z1, z2, phi).norm() for phi in torch.linspace(0, torch.pi / 2, 9)])
    assert torch.allclose(norms, norms[0].expand_as(norms), rtol=0.03)
    assert torch.equal(slerp(z1, z2, 0.0), z1)  # endpoints in order: phi = 0 gives the first
    assert torch.allclose(slerp(z1, z2, torch.pi / 2), z2, atol=1e-6)
    assert ((z1 + z2) / 2).norm() < 0.75 * norms[0]  # what linear interpolation would do


def test_loss_is_alg1_sum_of_squares():
    p = HeatDissipation(8, K=4, sigma_max=4.0)
    u0 = torch.rand(3, 1, 8, 8)

    class Const(torch.nn.Module):
        def forward(self, u, k):
            return torch.zeros_like(u)

    k = torch.tensor([1, 2, 4])
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    loss, kk = denoising_loss(Const(), p, u0, generator=g1, k=k)
    inp, target = p.training_pair(u0, k, generator=g2)
    assert torch.equal(kk, k)
    assert torch.allclose(loss, ((inp - target) ** 2).sum((1, 2, 3)))
    # With the exact inverse as the network the loss is only the noise that was added.
    per, _ = denoising_loss(exact_inverse_net(p, u0[:1]), p, u0[:1], k=torch.tensor([3]))
    assert float(per) < 1e-6 + 0.0


def test_kde_prior():
    p = HeatDissipation(28, K=10, sigma_max=20.0, delta=0.0125)
    images = (torch.rand(50, 1, 28, 28) * 255).to(torch.uint8)
    uK, idx = kde_prior_sample(p, images, 2000, generator=torch.Generator().manual_seed(0))
    centres = p.blur(images[idx].float() / 255, p.K)
    resid = uK - centres
    assert abs(float(resid.std()) - 0.0125) < 5e-4 and abs(float(resid.mean())) < 2e-4
    fixed, same = kde_prior_sample(p, images, indices=torch.tensor([3, 3, 7]), delta=0.0)
    assert torch.equal(same, torch.tensor([3, 3, 7])) and torch.allclose(fixed[0], fixed[1])
    with pytest.raises(IndexError):
        kde_prior_sample(p, images, indices=torch.tensor([50]))


def test_reduced_precision_touches_only_the_network():
    from ihdm_core.model.unet import Autocast

    p = HeatDissipation(28, K=50, sigma_max=20.0, sigma=0.0)
    u0 = torch.rand(4, 1, 28, 28)

    class Zero(torch.nn.Module):
        def forward(self, u, k):
            return torch.zeros_like(u)

    k = torch.tensor([1, 2, 3, 4])
    ref, _ = denoising_loss(Zero(), p, u0, k=k)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a caller's autocast must not reach the blur
        got, _ = denoising_loss(Zero(), p, u0, k=k)
    assert torch.allclose(got, ref, rtol=1e-5)
    net = UNet(image_size=28, in_channels=1, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
               attn_resolutions=(), dropout=0.0)
    out = Autocast(net, torch.bfloat16)(u0, k)
    assert out.dtype == torch.float32
    z = sample(net, p, p.blur(u0, p.K), delta=0.0, autocast_dtype=torch.bfloat16)
    assert z.dtype == torch.float32 and torch.allclose(z, p.blur(u0, p.K), atol=1e-5)  # f = 0 at init
