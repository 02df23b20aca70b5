"""Every process implements the Process protocol, and the samplers' callback hands out the
process's own denoised estimate without an extra network evaluation."""

import pytest
import torch

from ihdm_core.model.diffusion import DDPM, BlurringDiffusion
from ihdm_core.model.heat import HeatDissipation
from ihdm_core.model.process import Process
from ihdm_core.model.sampling import ddim_sample, sample


class CountingNet(torch.nn.Module):
    """A fixed random linear map per level, counting its calls."""

    def __init__(self, channels=1):
        super().__init__()
        self.calls = 0
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, k):
        self.calls += 1
        return 0.1 * self.conv(x) * (1 + torch.as_tensor(k, dtype=x.dtype).reshape(-1, 1, 1, 1) / 100)


def _processes():
    return {
        "ihdm": HeatDissipation(8, K=6, sigma_max=4.0, delta=0.01),
        "ddpm": DDPM(8, 1, K=6, schedule="cosine"),
        "blurring": BlurringDiffusion(8, 1, K=6, sigma_B_max=4.0),
        "blurring-ct": BlurringDiffusion(8, 1, K=6, sigma_B_max=4.0, continuous=True, prediction="v"),
    }


@pytest.mark.parametrize("name", list(_processes()))
def test_every_process_implements_the_protocol(name):
    p = _processes()[name]
    assert isinstance(p, Process)
    assert p.data_prior == (name == "ihdm")


@pytest.mark.parametrize("name", list(_processes()))
def test_callback_gets_the_denoised_estimate_at_no_extra_cost(name):
    torch.manual_seed(0)
    p, net = _processes()[name], CountingNet()
    x_K = torch.rand(3, 1, 8, 8) if p.data_prior else torch.randn(3, 1, 8, 8)
    seen = []
    g = torch.Generator().manual_seed(1)
    out = sample(net, p, x_K, generator=g, callback=lambda s: seen.append({k: v for k, v in s.items()}))
    assert net.calls == p.K  # one evaluation per step, callback included
    assert [s["k"] for s in seen] == list(range(p.K, -1, -1))
    assert torch.equal(seen[-1]["x"], out) and torch.equal(seen[-1]["denoised"], out)
    # the estimate handed out is the process's own, recomputed here independently
    for s in seen[:-1]:
        torch.testing.assert_close(s["denoised"], p.denoised(net, s["x"], s["k"]))
    # the same draws as without a callback
    net2 = CountingNet()
    net2.load_state_dict(net.state_dict())
    torch.testing.assert_close(sample(net2, p, x_K, generator=torch.Generator().manual_seed(1)), out)


def test_ihdm_denoised_is_the_mean_of_the_reverse_step():
    p, net = _processes()["ihdm"], CountingNet()
    u = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(p.denoised(net, u, 3), p.reverse_step(net, u, 3, None).x)
    torch.testing.assert_close(p.denoised(net, u, 3), u + net(u, torch.full((2,), 3)))


def test_ddim_callback_with_an_exact_eps_sees_the_data_at_every_level():
    p = DDPM(8, 1, K=20, schedule="cosine")
    x0 = torch.rand(2, 1, 8, 8)

    class EpsOracle(torch.nn.Module):
        def forward(self, u, k):  # the network sees (z + 1) / 2 and integer levels
            z = 2 * u - 1
            kk = torch.as_tensor(k, dtype=torch.long)
            a = p.a[kk].float().reshape(-1, 1, 1, 1)
            s = p.sigma[kk].float().reshape(-1, 1, 1, 1)
            return (z - a * (2 * x0 - 1)) / s

    seen = []
    zK = p.prior_sample(2, generator=torch.Generator().manual_seed(0))
    ddim_sample(EpsOracle(), p, zK, steps=5, callback=seen.append)
    assert [s["k"] for s in seen] == [20, 16, 12, 8, 4, 0]
    for s in seen:
        torch.testing.assert_close(s["denoised"], x0, atol=1e-4, rtol=0)


def test_kde_centres_are_the_training_images_blurred_to_level_K():
    from ihdm_core.model.prior import kde_centres

    p = HeatDissipation(8, K=5, sigma_max=3.0)
    x = torch.randint(0, 256, (7, 1, 8, 8), dtype=torch.uint8)
    want = torch.stack([p.blur(xi[None].double().div(255).float(), 5)[0] for xi in x])
    torch.testing.assert_close(kde_centres(p, x, batch_size=3), want)
    want_bins = torch.stack([p.blur(((xi[None].double() + 0.5) / 256).float(), 5)[0] for xi in x])
    torch.testing.assert_close(kde_centres(p, x, bin_centres=True, batch_size=4), want_bins)
    with pytest.raises(TypeError, match="integer"):
        kde_centres(p, x.float() / 255, bin_centres=True)
