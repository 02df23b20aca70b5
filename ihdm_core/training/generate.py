"""Sampling by seed, and export: one PNG per seed, an npz, or a grid.

Seed i owns one CPU ``torch.Generator`` seeded with i, and every random draw of its sample
comes from it, in a fixed order (:func:`ihdm_core.model.latents.seed_latents`): the prior draw
u_K (for IHDM the training-image index, then its delta noise; for the Gaussian diffusions
z_K ~ N(0, I)), then one (C, H, W) noise draw per level k = K, ..., 1. The network runs on
whole batches, but no seed's draws depend on the others, so seed i gives the same image
whatever the batch size or the number of processes.
(The draws are identical; the network's kernels may round differently at different batch
sizes, about 1e-7 here, which can move a pixel across an 8-bit rounding edge only rarely:
none in 64 smoke-model samples at batch sizes 1, 7 and 64.)

    python -m ihdm_core sample --preset mnist-quick --outdir samples/ --seeds 0-49999
    python -m ihdm_core sample --preset mnist-quick --npz samples.npz --seeds 0-9999
    torchrun --standalone --nproc_per_node 4 -m ihdm_core sample --preset cifar10 --outdir s/ \
        --seeds 0-49999
    python -m ihdm_core sample --preset mnist-quick --n 64 --out grid.png        # one grid

Modes (those of the 2023 release):

* ``independent``: each seed its own prior draw and its own step noise.
* ``shared_noise``: each seed its own prior draw; the step noise of seed ``shared_seed`` for all.
* ``same_init``: the prior draw of seed ``shared_seed`` for all; each seed its own step noise.
* ``interpolate``: seeds form paths of ``frames`` images: seed i is frame i mod frames of the path
  from seed a = frames * (i // frames) to seed b = a + frames - 1, so the end frames are exactly
  the independent samples of a and b. In between, IHDM's prior states are interpolated linearly
  and all Gaussian draws (the step noise; for the diffusions also z_K) spherically (App. D.2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from .data import load_dataset
from ..model.latents import MODES, seed_latents
from ..model.sampling import sample

__all__ = ["MODES", "sample_seeds", "iter_sample_seeds", "parse_seeds", "to_uint8", "png_name",
           "write_pngs", "write_npz", "generate", "save_grid", "distributed", "barrier",
           "write_npz_ranks"]

def parse_seeds(text: str) -> list[int]:
    """ "0-49999", "3,7,11" or "0-9,100-109" -> the seeds in that order (ranges inclusive)."""
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (None, None)
                lo, hi = int(lo), int(hi)
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except (TypeError, ValueError):
            raise ValueError(f"bad seed list {text!r}: use e.g. 0-49999, 3,7,11 or 0-9,100-109 "
                             f"(non-negative integers, ranges inclusive)") from None
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative, got {text!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seed list {text!r} repeats a seed")
    return seeds


def _prepare(run, seeds, delta, steps, mode, frames):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "interpolate" and (int(frames) != frames or frames < 2):
        raise ValueError(f"interpolation needs frames >= 2 per path, got {frames}")
    if steps is not None:
        if not getattr(run.process, "continuous", False):
            time = getattr(run.cfg.process, "time", "discrete")
            raise ValueError(f"steps={steps}: {run.cfg.name} ({run.cfg.process.kind}, {time} time) "
                             f"samples on its own K = {run.process.K} levels; only continuous-time "
                             f"diffusions take --steps")
        run = run.sampled_with(steps=int(steps))
    if delta is not None and not run.process.data_prior:
        raise ValueError(f"delta={delta}: delta is IHDM's sampling noise; {run.cfg.name} is a "
                         f"Gaussian diffusion ({run.cfg.process.kind}) and has none")
    seeds = [int(s) for s in seeds]
    if any(s < 0 for s in seeds):
        raise ValueError("seeds must be non-negative")
    return run, seeds


def iter_sample_seeds(run, seeds: Iterable[int], *, batch_size: int = 64,
                      delta: float | None = None,
                      steps: int | None = None, mode: str = "independent", shared_seed: int = 0,
                      frames: int = 8, images=None, progress: bool = False,
                      autocast_dtype: torch.dtype | None = None, net=None,
                      clamp: bool = True) -> Iterator[tuple[list[int], Tensor]]:
    """Yield (seeds, images) per batch of at most ``batch_size`` seeds, in the given order; images
    (B, C, H, W) in [0, 1] on the CPU (``clamp=False``: as the chains ended). Arguments as
    :func:`sample_seeds`."""
    run, seeds = _prepare(run, seeds, delta, steps, mode, frames)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    images = load_dataset(run.cfg.data) if images is None and run.process.data_prior else images
    net = run.net if net is None else net
    batches = range(0, len(seeds), batch_size)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(seeds), desc="sampling", unit="img")
    for start in batches:
        chunk = seeds[start:start + batch_size]
        lat = seed_latents(run.process, chunk, images=images, delta=delta, mode=mode,
                           shared_seed=shared_seed, frames=frames)
        x = sample(net, run.process, lat.x_K, delta=delta, noise=lat.noise,
                   autocast_dtype=autocast_dtype)
        if bar is not None:
            bar.update(len(chunk))
        x = x.float().cpu()
        yield chunk, x.clamp(0, 1) if clamp else x
    if bar is not None:
        bar.close()


def sample_seeds(run, seeds: Iterable[int], *, batch_size: int = 64, delta: float | None = None,
                 steps: int | None = None, mode: str = "independent", shared_seed: int = 0,
                 frames: int = 8,
                 images=None, progress: bool = False, autocast_dtype: torch.dtype | None = None,
                 net=None) -> Tensor:
    """One sample per seed, (len(seeds), C, H, W) in [0, 1] on the CPU, in the order of ``seeds``.

    Seed i's image depends on i (and the run and options) only, not on the batch size or the
    other seeds (see the module docstring for the draw order).
    delta:  IHDM's sampling noise (default: the run's); not for the Gaussian diffusions.
    steps:  sampling steps of a continuous-time diffusion (default: its configured K).
    mode:   one of :data:`MODES`; ``shared_seed`` is the seed whose noise (``shared_noise``) or
            prior draw (``same_init``) every sample shares; ``frames`` the length of an
            interpolation path.
    images: the training images the IHDM prior draws from (default: the run's data set).
    net:    the network to run instead of ``run.net`` (e.g. a compiled one).
    """
    seeds = list(seeds)
    out = [x for _, x in iter_sample_seeds(
        run, seeds, batch_size=batch_size, delta=delta, steps=steps, mode=mode,
        shared_seed=shared_seed, frames=frames, images=images, progress=progress,
        autocast_dtype=autocast_dtype, net=net)]
    if not out:
        c, (h, w) = run.cfg.data.channels, (run.cfg.data.image_size,) * 2
        return torch.empty(0, c, h, w)
    return torch.cat(out)


# --- files ---------------------------------------------------------------------------------------
def to_uint8(x: Tensor) -> np.ndarray:
    """[0, 1] images (B, C, H, W) -> uint8 NHWC, rounded as the FID code rounds
    (ihdm_core.evaluation)."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def png_name(seed: int) -> str:
    return f"seed{int(seed):06d}.png"


def write_pngs(outdir, seeds: list[int], x: Tensor) -> list[Path]:
    """seedNNNNNN.png per image, grayscale (L) for one channel, RGB for three."""
    from PIL import Image

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for s, arr in zip(seeds, to_uint8(x)):
        path = outdir / png_name(s)
        tmp = path.with_suffix(".tmp.png")
        Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(tmp)
        os.replace(tmp, path)  # a killed export leaves no truncated PNG under a final name
        paths.append(path)
    return paths


def write_npz(path, x: np.ndarray, seeds: list[int]) -> Path:
    """``arr_0``: uint8 NHWC (what the guided-diffusion evaluator and dgm-eval read); ``seeds`` too.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, arr_0=x, seeds=np.asarray(seeds, dtype=np.int64))
    os.replace(tmp, path)
    return path


# --- the old API ---------------------------------------------------------------------------------
# A set seed s names the sample seeds s * SEED_STRIDE + i, so the sets of different s never overlap.
SEED_STRIDE = 1_000_000_000


def seed_range(seed: int, n: int) -> range:
    """The per-image seeds of the n-sample set ``seed`` (what generate and the scores draw)."""
    return range(seed * SEED_STRIDE, seed * SEED_STRIDE + n)


def generate(run, n: int, *, delta: float | None = None, seed: int = 0, batch_size: int = 256,
             images=None, progress: bool = False, autocast_dtype: torch.dtype | None = None,
             compile: bool = False) -> torch.Tensor:
    """n samples in [0, 1]: those of seeds ``SEED_STRIDE * seed + i``, i < n (:func:`sample_seeds`),
    the same images ``ihdm_core.evaluation.scores`` scores for that seed.

    On a GPU, ``autocast_dtype=torch.bfloat16`` runs the network in bf16 and ``compile=True``
    compiles it once for all K steps and batches (same shapes throughout).
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    net = torch.compile(run.net) if compile else None
    return sample_seeds(run, seed_range(seed, n), batch_size=batch_size, delta=delta, images=images,
                        progress=progress, autocast_dtype=autocast_dtype, net=net)


def save_grid(images: torch.Tensor, path, nrow: int | None = None, padding: int = 2) -> Path:
    """Write a batch of [0, 1] images as one PNG grid."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(round(len(images) ** 0.5)))
    save_image(images.clamp(0, 1), str(path), nrow=nrow, padding=padding, pad_value=1.0)
    return path


# --- torchrun: sample files written by several processes -------------------------------------
def distributed():
    """(rank, world, device or None) under torchrun; a process group only when world > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world == 1:
        return 0, 1, None
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return rank, world, (torch.device("cuda", local) if cuda else torch.device("cpu"))


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def write_npz_ranks(path, images, seeds: list[int], rank: int, world: int) -> None:
    """The samples of all ranks in one .npz, in the order of ``seeds``; rank r holds
    ``seeds[r::world]``. Each rank leaves its shard and rank 0 puts them back in seed order."""
    mine = seeds[rank::world]
    if world == 1:
        write_npz(path, images, mine)
        return
    write_npz(Path(f"{path}.rank{rank}.npz"), images, mine)
    barrier(world)
    if rank == 0:
        shards = [np.load(f"{path}.rank{r}.npz") for r in range(world)]
        pos = {s: i for i, s in enumerate(seeds)}
        arr = np.concatenate([sh["arr_0"] for sh in shards])
        got = np.concatenate([sh["seeds"] for sh in shards])
        order = np.argsort([pos[int(s)] for s in got], kind="stable")
        write_npz(path, arr[order], got[order].tolist())
        for r in range(world):
            Path(f"{path}.rank{r}.npz").unlink()

