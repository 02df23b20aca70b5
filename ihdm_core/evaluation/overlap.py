"""Prior overlap and nearest neighbours (chapter 8; paper App. A.3 / C.2 Fig. 12 and App. D.4).

* :func:`mixture_kl_mc`: a Monte Carlo KL[N(m, s^2 I) || (1/N) sum_i N(c_i, d^2 I)], the truth the
  App. A.3 upper bound (:func:`ihdm_core.model.likelihood.prior_kl_bound`) is checked against;
* :func:`bound_check_rows`: that check on toy 4-pixel cases;
* :func:`prior_overlap`: the bound on L_K for held-out and training images against sigma_B,max,
  with the KDE centres of :func:`ihdm_core.model.prior.kde_centres` at every grid value;
* :func:`nearest_training`: Euclidean nearest training images, optionally leave-one-out.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..model.likelihood import kl_floor, prior_kl_bound  # kl_floor: chapter 8 takes it from here
from ..model.prior import kde_centres
from ..training.build import build_process

__all__ = ["mixture_kl_mc", "bound_check_rows", "prior_overlap", "overlap_rows", "kl_floor",
           "nearest_training"]


def mixture_kl_mc(mean: Tensor, centres: Tensor, s: float, d: float, n: int = 200_000,
                  seed: int = 0) -> tuple[float, float]:
    """Monte Carlo KL[N(mean, s^2 I) || (1/N) sum_i N(c_i, d^2 I)] and its standard error
    (float64)."""
    g = torch.Generator().manual_seed(seed)
    mean, centres = mean.double().flatten(), centres.double().flatten(1)
    dim = mean.numel()
    u = mean + s * torch.randn((n, dim), generator=g, dtype=torch.float64)
    log_q = -0.5 * ((u - mean) ** 2).sum(1) / s ** 2 - dim * math.log(s * math.sqrt(2 * math.pi))
    log_comp = -0.5 * torch.cdist(u, centres) ** 2 / d ** 2 - dim * math.log(d * math.sqrt(2
        * math.pi))
    diff = log_q - (torch.logsumexp(log_comp, 1) - math.log(len(centres)))
    return float(diff.mean()), float(diff.std() / math.sqrt(n))


def bound_check_rows(sigma: float, delta: float, seed: int = 0, n: int = 200_000) -> list[dict]:
    """The A.3 bound against the Monte Carlo KL for a 4-pixel query at 0 and 1 or 3 kernel
    centres."""
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(1, 4, dtype=torch.float64)
    cases = {
        "one centre, 1 delta away": m + delta * torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64),
        "3 centres, overlapping": m + 0.7 * delta * torch.randn((3, 4), generator=g,
                                                                dtype=torch.float64),
        "3 centres, one at the mean":
            torch.cat([m, m + 4 * delta * torch.randn((2, 4), generator=g, dtype=torch.float64)]),
        "3 centres, all far, query between": m + 3 * delta * torch.randn((3, 4), generator=g,
                                                                         dtype=torch.float64),
    }
    rows = []
    for name, c in cases.items():
        bound = float(prior_kl_bound(m, c, sigma, delta))
        truth, se = mixture_kl_mc(m[0], c, sigma, delta, n=n, seed=seed)
        rows.append({"case": name, "bound": bound, "MC KL": truth, "MC s.e.": se,
                     "bound - KL": bound - truth})
    return rows


def prior_overlap(cfg, train_u8: Tensor, queries_u8: Tensor, train_idx: Tensor, grid,
                  device=None) -> list[tuple]:
    """For each sigma_B,max in ``grid``: (sigma_B,max, L_K bound per query image, per training image
    ``train_idx``), against the KDE over all of ``train_u8``. Images are taken at their bin centres,
    as the likelihood does; only sigma_B,max changes, sigma and delta are ``cfg``'s."""
    sigma, delta = cfg.process.sigma, cfg.process.delta
    out = []
    for s_B in grid:
        proc = build_process(cfg.replace(process={"sigma_max": float(s_B)}), device)
        centres = kde_centres(proc, train_u8, bin_centres=True)
        queries = kde_centres(proc, queries_u8, bin_centres=True)
        L_q = prior_kl_bound(queries, centres, sigma, delta).cpu()
        L_t = prior_kl_bound(centres[train_idx.to(centres.device)], centres, sigma, delta).cpu()
        out.append((float(s_B), L_q, L_t))
    return out


def overlap_rows(overlap: list[tuple], D: int) -> list[dict]:
    """Table rows of :func:`prior_overlap`: means, standard error, per-dimension values."""
    return [{"sigma_B,max": s_B, "L_K test (nats)": float(Lt.mean()),
             "s.e.": float(Lt.std() / math.sqrt(len(Lt))) if len(Lt) > 1 else float("nan"),
             "L_K train (nats)": float(Lr.mean()), "test nats/dim": float(Lt.mean()) / D,
             "train nats/dim": float(Lr.mean()) / D} for s_B, Lt, Lr in overlap]


def nearest_training(x: Tensor, train_flat: Tensor, k: int = 5, exclude: Tensor | None = None,
                     chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """Distances and indices (on the CPU) of the k nearest rows of ``train_flat`` (N, D) to each
    image
    of ``x``; ``exclude`` (one training index per image) leaves that image out (leave-one-out)."""
    dev = train_flat.device
    dists, idxs = [], []
    for s0 in range(0, len(x), chunk):
        d = torch.cdist(x[s0:s0 + chunk].flatten(1).to(dev).float(), train_flat.float())
        if exclude is not None:
            d[torch.arange(len(d), device=dev), exclude[s0:s0 + chunk].to(dev)] = float("inf")
        v, i = d.topk(k, dim=1, largest=False)
        dists.append(v.cpu())
        idxs.append(i.cpu())
    return torch.cat(dists), torch.cat(idxs)
