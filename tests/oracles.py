"""Test oracles: exact answers that production code never needs, written out for the tests."""

import torch
from torch import Tensor


class ExactInverseNet(torch.nn.Module):
    """f with f(u_k, k) = F(t_{k-1}) u_0 - u_k on the forward trajectory of ``u0``, so IHDM's
    reverse step mu = u + f lands exactly on the less blurred level: with delta = 0 the sampler
    retraces the trajectory."""

    def __init__(self, process, u0: Tensor):
        super().__init__()
        self.trajectory = process.trajectory(u0)

    def forward(self, u: Tensor, k: Tensor) -> Tensor:
        if torch.any(k != k[0]):
            raise ValueError("the oracle expects one level per batch")
        return self.trajectory[int(k[0]) - 1] - u


def exact_inverse_net(process, u0: Tensor) -> ExactInverseNet:
    return ExactInverseNet(process, u0)


def colour_error(x: Tensor, prior: Tensor) -> Tensor:
    """(B,): Euclidean distance over channels between the mean colours of ``x`` and ``prior``."""
    return (x.mean(dim=(-2, -1)) - prior.mean(dim=(-2, -1))).norm(dim=1)
