"""Input-gradient probes of a trained process (chapter 7, paper Fig. 8 and App. C.3).

The probed output is the process's own estimate ``process.denoised(net, x, k)``: mu_theta(u_k, k)
for IHDM, x_hat(z_k, k) for the diffusions. Both are taken without the sampler's clip or DCT clamp
(a clip has no gradient) and differentiated with respect to the input in [0, 1] data units, so
the map z = 2x - 1 of the diffusions cancels and the rows of IHDM and DDPM compare directly.

The estimate is affine in the network output, so its Jacobian splits into the part that does not
involve the network (the *identity*: a single pixel 1 for IHDM, 1/alpha_k for an eps-predicting
DDPM, alpha_k for a v-predicting one) and the network's own dependence on the input (the
*correction*). :func:`identity_rows` gets the first by probing with a network that outputs zeros.

Locality measures of a Jacobian row g around a pixel c (all batched over rows):
``mass_share`` (share of |g|^p within radius r), ``radius_at``, ``radial_profile``,
``anisotropy`` (0 for a circularly symmetric pattern) and ``centre_and_ring``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor

from ..model.heat import heat_matrix
from ..model.sampling import Recorder, sample

__all__ = ["trajectory_states", "probe", "jacobian_rows", "identity_rows", "correction_rows",
           "euler_row", "exact_inverse_row", "R_GRID", "distances2", "mass_share", "radius_at",
           "radial_profile", "anisotropy", "centre_and_ring", "locality_stats"]


def trajectory_states(run, x_K: Tensor, keep, seed: int) -> tuple[dict[int, Tensor], Tensor]:
    """Sample from ``x_K`` and return ({k: state at level k} for k in ``keep``, final samples), on
    the
    CPU and in [0, 1] data units (the diffusions' states z are mapped by ``to_data``)."""
    to_data = getattr(run.process, "to_data", lambda x: x)
    rec = Recorder(keep, clamp=False)
    g = torch.Generator(device=run.process.device).manual_seed(seed)
    final = sample(run.net, run.process, x_K, generator=g, callback=rec)
    return {k: to_data(x) for k, x in rec.states.items()}, final.cpu()


def _unclipped(process):
    """A shallow copy of ``process`` whose x_hat is neither clipped nor DCT-clamped (no gradient
    there)."""
    p = copy.copy(process)
    if hasattr(p, "clip_denoised"):
        p.clip_denoised = False
    if hasattr(p, "dct_range"):
        p.dct_range = None
    return p


def probe(process, net, u: Tensor, k: int) -> Tensor:
    """The probed output: ``denoised`` at level k of the state whose data-space image is ``u``."""
    x = process.from_data(u) if hasattr(process, "from_data") else u
    return _unclipped(process).denoised(net, x, k)


def _zero_net(x, k):
    return torch.zeros_like(x)


def jacobian_rows(process, net, u: Tensor, k: Tensor, pix: Tensor, chunk: int = 64) -> Tensor:
    """d probe(u)[b, 0, i_b, j_b] / d u[b] for states ``u`` (N, C, H, W) in data units, levels ``k``
    (N,) and pixels ``pix`` (N, 2) as (row, column). Returns (N, C, H, W) on the CPU.

    One backward pass per level and chunk: the network treats batch items independently in eval
    mode."""
    u, k, pix = u.cpu(), torch.as_tensor(k).cpu(), torch.as_tensor(pix).cpu()
    out = torch.empty_like(u, dtype=torch.float32)
    dev = process.device
    for level in torch.unique(k).tolist():
        for sl in torch.nonzero(k == level).flatten().split(chunk):
            ub = u[sl].to(dev).float().clone().requires_grad_(True)
            pb = pix[sl].to(dev)
            with torch.enable_grad():
                y = probe(process, net, ub, int(level))
                picked = y[torch.arange(len(sl), device=dev), 0, pb[:, 0], pb[:, 1]]
                (g,) = torch.autograd.grad(picked.sum(), ub)
            out[sl] = g.detach().float().cpu()
    return out


def identity_rows(process, u: Tensor, k: Tensor, pix: Tensor) -> Tensor:
    """The Jacobian rows of the estimate with the network output held at zero: the identity part."""
    return jacobian_rows(process, _zero_net, u, k, pix)


def correction_rows(process, net, u: Tensor, k: Tensor, pix: Tensor) -> tuple[Tensor, Tensor]:
    """(full Jacobian rows, the rows minus their identity part): (N, C, H, W) each."""
    full = jacobian_rows(process, net, u, k, pix)
    return full, full - identity_rows(process, u, k, pix)


# --- the ideal reverse heat step
# -------------------------------------------------------------------

def euler_row(H: int, W: int, pix, dt: float) -> Tensor:
    """Jacobian row of one explicit Euler step of the reverse heat equation (Eq. 13) at pixel
    ``pix``:
    1 + 4 dt at the pixel, -dt at its four neighbours (inside the image)."""
    i, j = int(pix[0]), int(pix[1])
    row = torch.zeros(H, W)
    row[i, j] = 1 + 4 * dt
    for di, dj in [(-1, 0), (1, 0), (0, -1), (0, 1)]:
        if 0 <= i + di < H and 0 <= j + dj < W:
            row[i + di, j + dj] = -dt
    return row


def exact_inverse_row(H: int, W: int, pix, dt: float) -> Tensor:
    """Row ``pix`` of the exact inverse step F(-dt): separable, the outer product of row i of
    A_H(-dt) and row j of A_W(-dt) (the 1-D heat matrices at negative time)."""
    i, j = int(pix[0]), int(pix[1])
    return torch.outer(heat_matrix(H, -dt, dtype=torch.float64)[i],
                       heat_matrix(W, -dt, dtype=torch.float64)[j]).float()


# --- locality measures
# -----------------------------------------------------------------------------

R_GRID = torch.arange(0, 512, 0.25, dtype=torch.float64)  # radii at which mass shares are evaluated


def distances2(pix: Tensor, H: int, W: int) -> Tensor:
    """Squared distances (N, H, W) of every pixel from each pixel in ``pix`` (N, 2)."""
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    pix = torch.as_tensor(pix)
    return (yy[None] - pix[:, 0, None, None]) ** 2 + (xx[None] - pix[:, 1, None, None]) ** 2


def r_grid(H: int, W: int) -> Tensor:
    """The radii up to half the image diagonal."""
    return R_GRID[R_GRID < math.hypot(H, W) / 2]


def mass_share(g: Tensor, pix: Tensor, power: int = 1) -> Tensor:
    """Share of |g|^power within radius r of the pixel, for r in ``r_grid``: (N, len(r_grid)).
    A zero row has share 0 everywhere."""
    d2 = distances2(pix, *g.shape[-2:]).double()
    a = g.abs().double() ** power
    tot = a.flatten(1).sum(1).clamp_min(1e-30)
    return torch.stack([(a * (d2 <= r * r)).flatten(1).sum(1) / tot for r in r_grid(*g.shape[-2:])],
                       1)


def radius_at(share: Tensor, level: float) -> Tensor:
    """Smallest radius of ``r_grid`` whose share reaches ``level``: (N,)."""
    hit = share >= level - 1e-9
    return R_GRID[: share.shape[1]][hit.float().argmax(1)]


def radial_profile(g: Tensor, pix: Tensor) -> tuple[Tensor, Tensor]:
    """Mean |g| per rounded distance 0, 1, 2, ... from the pixel: (distances, (N, n_bins)), NaN
    where a bin is empty."""
    d = distances2(pix, *g.shape[-2:]).double().sqrt().round().long()
    n_bins = int(d.max()) + 1
    a = g.abs().double().flatten(1)
    d = d.flatten(1)
    sums = torch.zeros(len(g), n_bins, dtype=torch.float64).scatter_add_(1, d, a)
    counts = torch.zeros(len(g), n_bins, dtype=torch.float64).scatter_add_(1, d, torch.ones_like(a))
    return torch.arange(n_bins, dtype=torch.float64), torch.where(counts > 0,
                                                                  sums / counts.clamp_min(1),
                                                                  float("nan"))


def anisotropy(g: Tensor, pix: Tensor) -> Tensor:
    """Share of the off-centre energy of g not explained by its ring means (rings: pixels at exactly
    the same distance from the pixel): 0 for a circularly symmetric pattern. (N,)."""
    d2 = distances2(pix, *g.shape[-2:])
    gd = g.double()
    ring_mean = torch.zeros_like(gd)
    for q in torch.unique(d2):
        m = (d2 == q).double()
        ring_mean += m * ((gd * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1))[:, None,
            None]
    off = (d2 > 0).double()
    total = (gd ** 2 * off).flatten(1).sum(1).clamp_min(1e-30)
    return ((gd - ring_mean) ** 2 * off).flatten(1).sum(1) / total


def centre_and_ring(g: Tensor, pix: Tensor) -> tuple[Tensor, Tensor]:
    """(g at the pixel, mean g over its nearest neighbours at distance 1): (N,), (N,)."""
    pix = torch.as_tensor(pix)
    m = (distances2(pix, *g.shape[-2:]) == 1).double()
    centre = g[torch.arange(len(g)), pix[:, 0], pix[:, 1]].double()
    return centre, (g.double() * m).flatten(1).sum(1) / m.flatten(1).sum(1)


def locality_stats(g: Tensor, pix: Tensor) -> dict[str, float]:
    """The chapter's table columns for rows g (N, H, W) around pixels pix (N, 2), averaged over
    rows."""
    share = mass_share(g, pix)
    centre, ring = centre_and_ring(g, pix)
    within_2 = int(torch.searchsorted(R_GRID, torch.tensor(2.0, dtype=torch.float64)))
    return {"r50": float(radius_at(share, 0.5).mean()), "r90": float(radius_at(share, 0.9).mean()),
            "r90 (energy)": float(radius_at(mass_share(g, pix, 2), 0.9).mean()),
            "mass share r <= 2": float(share[:, within_2].mean()),
            "anisotropy": float(anisotropy(g, pix).mean()),
            "correction at pixel": float(centre.mean()),
            "correction, 4 neighbours": float(ring.mean())}
