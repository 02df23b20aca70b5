"""Two small tools the model, training and evaluation code share: seeded normal draws and eval
mode."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor

__all__ = ["randn", "randn_like", "eval_mode"]


def randn(shape, generator: torch.Generator | None = None, device=None,
          dtype: torch.dtype | None = None) -> Tensor:
    """N(0, I) of ``shape`` on ``device``, drawn from ``generator`` when one is given.

    The draw happens on the generator's device and is then moved, so a seeded CPU generator
    gives the same numbers whichever device the result lives on.
    """
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    z = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
    return z if device is None else z.to(device)


def randn_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """N(0, I) with the shape, dtype and device of ``x``, drawn from ``generator`` when one is
    given."""
    if generator is None:
        return torch.randn_like(x)  # also keeps x's memory format (channels_last batches)
    return randn(x.shape, generator, x.device, x.dtype)


def _training_modes(net) -> list | None:
    """The train/eval flag of every submodule. Restoring only the top module's flag would switch
    a wrapped eval-mode network (Autocast(net), a compiled module) back to training, dropout on."""
    return [m.training for m in net.modules()] if hasattr(net, "modules") else None


def _restore_modes(net, modes: list | None) -> None:
    if modes is not None:
        for m, flag in zip(net.modules(), modes):
            m.training = flag


@contextmanager
def eval_mode(net):
    """Run the block with ``net`` in eval mode (dropout off), then give every submodule back
    the train/eval flag it had; ``net`` may also be a plain function, which is left alone."""
    modes = _training_modes(net)
    if hasattr(net, "eval"):
        net.eval()
    try:
        yield net
    finally:
        _restore_modes(net, modes)
