"""The shared seeded-normal helpers and the eval-mode context manager (ihdm_core.model._util)."""

import pytest
import torch

from ihdm_core.model._util import eval_mode, randn, randn_like


def test_randn_is_the_generators_stream_whatever_the_target():
    want = torch.randn(3, 4, generator=torch.Generator().manual_seed(5))
    got = randn((3, 4), torch.Generator().manual_seed(5), device="cpu")
    assert torch.equal(got, want)
    # No device: stays where the generator drew it.
    assert torch.equal(randn((3, 4), torch.Generator().manual_seed(5)), want)
    x = torch.zeros(2, 3, dtype=torch.float64)
    z = randn_like(x, torch.Generator().manual_seed(1))
    assert z.dtype == torch.float64 and z.shape == x.shape
    assert torch.equal(z, torch.randn(2, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64))


def test_randn_without_generator_follows_the_global_seed():
    torch.manual_seed(11)
    want = torch.randn(2, 5)
    torch.manual_seed(11)
    assert torch.equal(randn((2, 5)), want)
    x = torch.zeros(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    z = randn_like(x)
    assert z.is_contiguous(memory_format=torch.channels_last) and z.dtype == x.dtype


def _net():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5), torch.nn.Sequential(torch.nn.Dropout(0.1)))
    net.train()
    net[1].eval()  # a mixed state: restoring only the top flag, or net.train(), would lose it
    return net


def test_eval_mode_restores_every_submodule_flag():
    net = _net()
    before = [m.training for m in net.modules()]
    with eval_mode(net) as inner:
        assert inner is net and not any(m.training for m in net.modules())
    assert [m.training for m in net.modules()] == before
    with pytest.raises(RuntimeError), eval_mode(net):
        raise RuntimeError("boom")
    assert [m.training for m in net.modules()] == before


def test_eval_mode_accepts_a_plain_function():
    def f(x):
        return x

    with eval_mode(f) as g:
        assert g is f
