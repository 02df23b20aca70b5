"""How a trained reverse process behaves: per-level loss, noise gain, branching and interpolation
smoothness.

The measurements of chapters 3-5, as functions of (net, process, images) or of sampled tensors,
so the chapters show the figures and the package holds (and tests) the arithmetic:

* :func:`loss_curve`: the per-step training losses of a run's log;
* :func:`loss_per_level`: Alg. 1's squared error at every level k, and that of the skip
  connection alone (mu = u_k + eps), on fixed images;
* :func:`noise_gain`: ||mu(u_k + eta, k) - mu(u_k, k)|| / ||eta|| per level (App. C.3);
* :func:`continue_from` and :func:`branch_spread`: Alg. 2 restarted from one state with fresh
  noise, and how far the continuations spread, coarse and fine (Fig. 5b);
* :func:`states_at`: the states u_k of one run of Alg. 2 at chosen levels (Figs. 5a, 13b);
* :func:`frame_steps` and :func:`smoothness`: distances between consecutive interpolation
  frames (Fig. 7b).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..model._util import randn_like
from ..model.losses import squared_error, training_batch
from ..model.sampling import Recorder, sample
from ..training.log import read_metrics

__all__ = ["loss_curve", "smoothed", "loss_per_level", "noise_gain", "states_at", "continue_from",
           "pair_spread", "branch_spread", "frame_steps", "smoothness", "path_norms"]


def loss_curve(run_dir) -> tuple[np.ndarray, np.ndarray]:
    """(steps, losses) of every logged training step; each log record holds the losses of the
    steps up to and including its ``step``."""
    log = read_metrics(run_dir)
    if not log:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    steps = np.concatenate([np.arange(r["step"] - len(r["losses"]) + 1, r["step"] + 1)
                            for r in log])
    return steps, np.concatenate([np.asarray(r["losses"], dtype=np.float64) for r in log])


def smoothed(steps: np.ndarray, values: np.ndarray, parts: int = 40) -> tuple[np.ndarray,
                                                                              np.ndarray, int]:
    """Moving average over windows of len // parts steps (at least 1): (steps at each window's end,
    averages, window length)."""
    win = max(1, len(values) // parts)
    return steps[win - 1:], np.convolve(values, np.ones(win) / win, mode="valid"), win


def _levels(k: int, n: int, device) -> Tensor:
    return torch.full((n,), k, dtype=torch.long, device=device)


@torch.no_grad()
def loss_per_level(net, process, x0: Tensor,
                   generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Alg. 1 at every level k = 1..K on the images ``x0``: the mean over images of
    ||mu_theta(u_k + eps, k) - u_{k-1}||^2 and of ||(u_k + eps) - u_{k-1}||^2 (the skip connection
    alone, f_theta = 0). Arrays of length K, entry k-1 for level k; one draw of eps per level."""
    mse, skip = np.zeros(process.K), np.zeros(process.K)
    for k in range(1, process.K + 1):
        kk = _levels(k, len(x0), x0.device)
        u_hat, target, _ = training_batch(process, x0, generator, kk)
        mse[k - 1] = squared_error(net, process, u_hat, target, kk).mean().item()
        skip[k - 1] = (u_hat - target).pow(2).flatten(1).sum(1).mean().item()
    return mse, skip


@torch.no_grad()
def noise_gain(net, process, x0: Tensor, eta: Tensor) -> np.ndarray:
    """How much one reverse step amplifies a perturbation, per level k = 1..K: the mean over images
    of
    ||mu(F(t_k) x0 + eta, k) - mu(F(t_k) x0, k)|| / ||eta||. Below 1 the step contracts noise."""
    n = len(x0)
    gain = np.zeros(process.K)
    for k in range(1, process.K + 1):
        u = process.blur(x0, k)
        mu = process.predict(net, torch.cat([u, u + eta]), _levels(k, 2 * n, x0.device))
        ratio = (mu[n:] - mu[:n]).flatten(1).norm(dim=1) / eta.flatten(1).norm(dim=1)
        gain[k - 1] = float(ratio.mean())
    return gain


def states_at(net, process, u_K: Tensor, levels, **sample_kw) -> Tensor:
    """The states u_k of one run of Alg. 2 from ``u_K`` at each level in ``levels`` (K..0, the
    final sample at 0), in the order given: (len(levels), B, C, H, W) on the CPU, not clamped.
    ``sample_kw`` go to :func:`ihdm_core.model.sampling.sample` (delta, noise, generator)."""
    bad = sorted(int(k) for k in levels if not 0 <= int(k) <= process.K)
    if bad:
        raise ValueError(f"levels must lie in 0..{process.K}, got {bad}")
    rec = Recorder(levels, clamp=False)
    sample(net, process, u_K, callback=rec, **sample_kw)
    return torch.stack([rec.states[int(k)] for k in levels])


@torch.no_grad()
def continue_from(net, process, u: Tensor, k_from: int, generator: torch.Generator | None = None,
                  delta: float | None = None) -> Tensor:
    """Alg. 2 from the state ``u`` at level ``k_from`` down to level 0, with fresh sampling
    noise."""
    for k in range(k_from, 0, -1):
        u = process.reverse_step(net, u, k, randn_like(u, generator), delta).x
    return u


def pair_spread(x: Tensor) -> float:
    """Mean over sources and over ordered pairs of distinct branches of the RMS difference between
    branches: ``x`` is (sources, branches, C, H, W)."""
    b = x.shape[1]
    if b < 2:
        raise ValueError(f"need at least two branches per source, got {b}")
    d = (x[:, :, None] - x[:, None]).pow(2).flatten(3).mean(3).sqrt()  # (S, B, B), zero diagonal
    return float(d.sum((1, 2)).mean() / (b * (b - 1)))


@torch.no_grad()
def branch_spread(net, process, u_k: Tensor, k: int, n_branch: int, k_coarse: int,
                  generator: torch.Generator | None = None) -> dict:
    """Continue each state of ``u_k`` (sources at level k) ``n_branch`` times with fresh noise
    (Fig. 5b).

    Returns the continuations (sources, n_branch, C, H, W) clamped to [0, 1], and the spread between
    them split into a coarse part (the continuations blurred to level ``k_coarse``) and the fine
    remainder, each as :func:`pair_spread`.
    """
    x = continue_from(net, process, u_k.repeat_interleave(n_branch, 0), k, generator).clamp(0, 1)
    coarse = process.blur(x, k_coarse)
    shape = (len(u_k), n_branch, *x.shape[1:])
    xs, cs = x.view(shape), coarse.view(shape)
    return {"x": xs, "coarse": pair_spread(cs), "fine": pair_spread(xs - cs)}


def frame_steps(x: Tensor, n_frames: int) -> Tensor:
    """L2 distance between consecutive frames: ``x`` is (pairs * n_frames, ...) pair-major;
    returns (pairs, n_frames - 1)."""
    x = x.reshape(-1, n_frames, x[0].numel())
    return (x[:, 1:] - x[:, :-1]).norm(dim=-1)


def smoothness(x: Tensor, n_frames: int) -> dict:
    """Summaries of interpolation paths ``x`` (pairs * n_frames, ...), pair-major.

    ``steps`` (pairs, n_frames - 1); ``ends``: the distance between a path's endpoints;
    ``jump``: max step / mean step per pair (1 for evenly spaced frames, n_frames - 1 when one step
    does everything); ``detour``: path length / endpoint distance per pair (1 for a straight path).
    """
    d = frame_steps(x, n_frames)
    flat = x.reshape(-1, n_frames, x[0].numel())
    ends = (flat[:, -1] - flat[:, 0]).norm(dim=-1)
    return {"steps": d, "ends": ends, "jump": d.max(1).values / d.mean(1).clamp_min(1e-12),
            "detour": d.sum(1) / ends.clamp_min(1e-12)}


def path_norms(path: Tensor, n_frames: int) -> Tensor:
    """Norm of each frame's whole noise set along interpolation paths, relative to the path's first
    frame: ``path`` is (K, pairs * n_frames, ...) pair-major; returns (pairs, n_frames)."""
    K = path.shape[0]
    v = path.reshape(K, -1, n_frames, path[0, 0].numel()).permute(1, 2, 0, 3).flatten(2)
    n = v.norm(dim=-1)
    return n / n[:, :1]
