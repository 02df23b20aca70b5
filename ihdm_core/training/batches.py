"""The data order: which training images each step sees, recomputable for any step.

The order is a pure function of (seed, step), so a resumed run reads exactly the batches the
uninterrupted run would have read, without replaying the steps before it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..model.images import to_float

__all__ = ["IndexStream", "batches"]


class IndexStream:
    """An endless stream of sample indices: epoch e is a permutation seeded by (seed, e).

    Global batch s is positions [s*B, (s+1)*B) of the stream, so any step's batch can be
    recomputed without replaying the ones before it; rank r takes its contiguous share.
    """

    def __init__(self, n: int, seed: int):
        if n < 1:
            raise ValueError("empty data set")
        self.n, self.seed = n, seed
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._perm, self._epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def batch(self, step: int, batch_size: int, rank: int = 0, world: int = 1) -> Tensor:
        per = batch_size // world
        start = step * batch_size + rank * per
        out, pos = [], start
        while pos < start + per:
            epoch, off = divmod(pos, self.n)
            take = min(self.n - off, start + per - pos)
            out.append(self._permutation(epoch)[off:off + take])
            pos += take
        return torch.cat(out)


class _BatchSampler:
    def __init__(self, stream: IndexStream, start: int, batch_size: int, rank: int, world: int):
        self.stream, self.start, self.bs = stream, start, batch_size
        self.rank, self.world = rank, world

    def __iter__(self):
        step = self.start
        while True:
            yield self.stream.batch(step, self.bs, self.rank, self.world).tolist()
            step += 1


def batches(images, stream, start, batch_size, rank, world, device, num_workers):
    """Yields float [0, 1] batches on ``device`` for steps start, start+1, ..."""
    if isinstance(images, Tensor):
        # Small data sets live on the device whole: no loader, no host-device copy per step.
        data = images.to(device, non_blocking=True)
        step = start
        while True:
            idx = stream.batch(step, batch_size, rank, world).to(device, non_blocking=True)
            yield to_float(data[idx])
            step += 1
    loader = torch.utils.data.DataLoader(
        images, batch_sampler=_BatchSampler(stream, start, batch_size, rank, world),
        num_workers=num_workers, pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0)
    for batch in loader:
        yield to_float(batch.to(device, non_blocking=True))

