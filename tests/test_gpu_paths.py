"""GPU code paths checked on a CPU: host syncs in the hot loops, the device a profile uses, the
1-process launcher path of the trainer.

A host sync cannot be observed without a GPU, but its cause can: every operation that stalls
the host on CUDA shows up on any device as one of a few ATen calls. ``_local_scalar_dense`` is a
device-to-host read (``float(t)``, ``t.item()``, ``if t:``); ``lift_fresh`` builds a tensor
from Python data, which on CUDA is a blocking host-to-device copy; ``nonzero`` and
``masked_select`` (and indexing with a boolean mask) have data-dependent shapes. Counting them under a dispatch mode on CPU finds
what would stall a GPU run, step by step.
"""

from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import ihdm_core.model.gaussian as gaussian_mod
import ihdm_core.model.heat as heat_mod
from ihdm_core import get_preset
from ihdm_core.model.diffusion import DDPM, BlurringDiffusion
from ihdm_core.model.heat import HeatDissipation
from ihdm_core.model.losses import denoising_loss
from ihdm_core.model.sampling import ddim_sample, sample

ROOT = Path(__file__).resolve().parent.parent
SYNCING = {"aten._local_scalar_dense.default", "aten.lift_fresh.default", "aten.nonzero.default",
           "aten.masked_select.default", "aten.is_nonzero.default"}


class _SyncCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.hits: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func) in SYNCING:
            self.hits.append(str(func))
        elif str(func).startswith("aten.index.") and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] if len(args) > 1 else [])):
            self.hits.append("boolean-mask index")
        return func(*args, **(kwargs or {}))


def syncs(fn) -> list[str]:
    with _SyncCounter() as mode:
        fn()
    return mode.hits


class _Net(torch.nn.Module):
    """A stand-in network with parameters and a level input, like the U-Net's signature."""

    def __init__(self, c):
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((1, c, 1, 1), 0.1))

    def forward(self, x, k):
        return self.w * x + 1e-3 * k.float()[:, None, None, None]


def test_the_counter_sees_what_would_sync():
    """The detector itself: each kind of syncing call is caught, plain arithmetic is not."""
    a = torch.arange(5.0)
    assert syncs(lambda: float(a[2])) == ["aten._local_scalar_dense.default"]
    assert syncs(lambda: torch.as_tensor(3, device="cpu")) == ["aten.lift_fresh.default"]
    assert syncs(lambda: a[a > 2]) != []
    assert syncs(lambda: (a * 2 + torch.full((5,), 1.0)).sum()) == []


@pytest.mark.parametrize("make", [
    lambda: DDPM(8, 1, K=10, schedule="cosine"),                               # clips x_hat
    lambda: DDPM(8, 1, K=10, schedule="cosine", prediction="v"),
    lambda: BlurringDiffusion(8, 1, K=10, sigma_B_max=4.0),
    lambda: BlurringDiffusion(8, 1, K=10, sigma_B_max=4.0, prediction="x", clip_denoised=True),
    lambda: BlurringDiffusion(8, 1, K=10, sigma_B_max=4.0, continuous=True, prediction="v"),
], ids=["ddpm-eps-clip", "ddpm-v", "blurring-eps", "blurring-x-clip", "blurring-continuous-v"])
def test_diffusion_sampling_steps_do_not_sync(make):
    """Regression: x_hat read a_t and sigma_t with float() from the schedule on the device (one
    device-to-host read per sampling step) and every step built its level tensors from Python
    ints (a blocking host-to-device copy on CUDA)."""
    p = make()
    net = _Net(1)
    z = torch.randn(4, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    p.reverse_step(net, z, 5, None)  # builds the cached DCT matrices once (set-up, not the loop)
    assert syncs(lambda: p.reverse_step(net, z, 5, torch.randn(4, 1, 8, 8))) == []
    assert syncs(lambda: p.ddim_step(net, z, 6, 3, eta=0.5, noise=torch.randn(4, 1, 8, 8))) == []
    # The whole samplers, apart from their set-up (ddim_levels is host-side on purpose).
    assert syncs(lambda: sample(net, p, z.clone(), generator=g)) == []
    hits = syncs(lambda: ddim_sample(net, p, z.clone(), steps=5))
    assert hits == [], hits


def test_ihdm_sampling_step_and_prior_blur_do_not_sync():
    p = HeatDissipation(8, K=10, sigma_max=4.0)
    net = _Net(1)
    u = torch.rand(4, 1, 8, 8)
    assert syncs(lambda: sample(net, p, u, generator=torch.Generator().manual_seed(0))) == []
    # A blur to one shared level (what the prior does once per batch) validates the level on the host.
    assert syncs(lambda: p.blur(u, 10)) == []
    with pytest.raises(ValueError, match="0..10"):
        p.blur(u, 11)


@pytest.mark.parametrize("preset", ["mnist-smoke", "mnist-ddpm-smoke", "mnist-blurring-smoke",
                                    "mnist-blurring-ref"])
def test_training_step_does_not_sync(preset, monkeypatch):
    """One training step (levels, forward process, loss, backward) reads nothing back to the
    host. The level check's CPU branch is a plain ``if`` by design; on CUDA it is an async
    device assert, so the test runs the device branch."""
    def device_check(k, K):
        torch._assert_async(((k >= 0) & (k <= K)).all(), "levels out of range")
        return k

    monkeypatch.setattr(heat_mod, "check_levels", device_check)
    monkeypatch.setattr(gaussian_mod, "check_levels", device_check)
    from ihdm_core.training.build import build_process

    cfg = get_preset(preset)
    p = build_process(cfg, "cpu")
    net = _Net(cfg.data.channels)
    x0 = torch.rand(4, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    g = torch.Generator().manual_seed(0)

    def step():
        per, _ = denoising_loss(net, p, x0, generator=g)
        per.mean().backward()

    step()  # the first step fills the cached DCT matrices (set-up, not the loop)
    assert syncs(step) == []
