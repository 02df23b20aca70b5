"""The variational bound on -log p(u_0) (Eq. 5-11, App. A.2-A.3) and bits per dimension.

Per image, with D = C*H*W dimensions, the negative ELBO is (Eq. 7, 32)

    -log p(u_0) <= L_K + sum_{k=2..K} E_{q(u_k|u_0)} L_{k-1} + E_{q(u_1|u_0)} L_0

* L_{k-1} = KL[ N(F(t_{k-1}) u_0, sigma^2 I) || N(mu_theta(u_k, k), delta^2 I) ]   (Eq. 10),
  the transition k -> k-1, for k = 2..K (so K -> K-1 is included);
* L_0 = -log N(u_0 | mu_theta(u_1, 1), delta^2 I)                                  (Eq. 11),
  the transition 1 -> 0;
* L_K = KL[ N(F(t_K) u_0, sigma^2 I) || p(u_K) ] with p(u_K) the KDE
  (1/N_T) sum_i N(u_K^i, delta^2 I) over blurred training images, bounded above as in
  App. A.3: with KL_i = KL[q(u_K|u_0) || N(u_K^i, delta^2 I)],

      L_K <= log N_T - logsumexp_i(-KL_i).

  (Jensen with weights phi_i, minimised at phi_i = softmax(-KL_i), Eq. 38-42. The paper's
  Eq. 37 writes the KDE bandwidth as sigma^2; the prior, Sec. 3.2, has variance delta^2.)

Every one of the K transitions is counted exactly once; the 2023 release counted one twice
and dropped K -> K-1. Each expectation over q(u_k|u_0) uses one Monte Carlo draw, as in the
paper (the estimate is unbiased; average over images or repeats to reduce its variance).

Dequantisation: the model is a density on [0, 1]^D. For 8-bit data x in {0..255}^D let
u_0 = (x + U) / 256, U ~ Uniform[0, 1)^D. The bin of x has volume 256^-D in u-space, so
P(x) = int_bin p(u) du >= 256^-D exp(E_U log p(u_0)) by Jensen, i.e.

    -log2 P(x) / D <= (E_U[-log p(u_0)] / (D ln 2)) + log2(256)       [bits/dim]

and with -log p(u_0) <= NELBO(u_0) the reported figure is an upper bound on the discrete
code length. A model uniform on [0, 1]^D has -log p = 0: exactly 8 bits/dim.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import Tensor

from ._util import eval_mode, randn_like

__all__ = ["dequantize", "bin_centres", "bits_per_dim", "gaussian_kl", "gaussian_nll", "kl_floor",
           "prior_kl_bound", "prior_kl_bounds", "elbo_terms", "negative_elbo", "transition_errors",
           "terms_at_delta", "elbo_against_delta", "elbo_optimal_delta"]

N_BINS = 256


def dequantize(x: Tensor, generator: torch.Generator | None = None, n_bins: int = N_BINS) -> Tensor:
    """Uniform dequantisation of integer data: u = (x + U) / n_bins in [0, 1)."""
    if x.is_floating_point():
        raise TypeError(f"dequantize expects integer data (uint8 for 8-bit images), got {x.dtype}")
    if int(x.min()) < 0 or int(x.max()) >= n_bins:
        raise ValueError(f"values must lie in 0..{n_bins - 1}")
    noise = torch.rand(x.shape, generator=generator,
                       device=generator.device if generator else "cpu")
    return (x.float() + noise.to(x.device)) / n_bins


def bin_centres(x: Tensor, n_bins: int = N_BINS) -> Tensor:
    """The mean of the dequantised image, (x + 1/2) / n_bins: deterministic KDE centres."""
    if x.is_floating_point():
        raise TypeError(f"bin_centres expects integer data, got {x.dtype}")
    return (x.float() + 0.5) / n_bins


def bits_per_dim(nll_nats, dims: int, n_bins: int | None = N_BINS):
    """Convert -log p(u_0) in nats (density on [0, 1]^D) to bits per dimension of the discrete data.

    Adds log2(n_bins) for the Jacobian of the map x -> x / n_bins (see the module docstring);
    ``n_bins=None`` returns the continuous-space figure without that offset.
    """
    if dims < 1:
        raise ValueError(f"dims must be positive, got {dims}")
    offset = 0.0 if n_bins is None else math.log2(n_bins)
    return nll_nats / (dims * math.log(2.0)) + offset


def _flat_sq(x: Tensor) -> Tensor:
    return x.double().flatten(1).pow(2).sum(1)


def gaussian_kl(mean_q: Tensor, std_q: float, mean_p: Tensor, std_p: float) -> Tensor:
    """KL[N(mean_q, std_q^2 I) || N(mean_p, std_p^2 I)] per sample (summed over D), float64.

    = 1/2 (D s_q^2/s_p^2 - D + ||m_q - m_p||^2 / s_p^2 + 2 D log(s_p/s_q))   (Eq. 10)
    """
    if std_q <= 0 or std_p <= 0:
        raise ValueError(f"standard deviations must be positive, got {std_q}, {std_p}")
    return kl_floor(std_q, std_p, mean_q[0].numel()) + 0.5 * _flat_sq(mean_q - mean_p) / std_p ** 2


def kl_floor(sigma: float, delta: float, dims: int) -> float:
    """The distance-free part of KL[N(m, sigma^2 I) || N(m', delta^2 I)] over ``dims`` dimensions:
    1/2 D (sigma^2/delta^2 - 1 - log(sigma^2/delta^2)), zero at delta = sigma (Eq. 10, App. C.1)."""
    if sigma <= 0 or delta <= 0:
        raise ValueError(f"standard deviations must be positive, got sigma={sigma}, delta={delta}")
    r = (sigma / delta) ** 2
    return 0.5 * dims * (r - 1.0 - math.log(r))


def gaussian_nll(x: Tensor, mean: Tensor, std: float) -> Tensor:
    """-log N(x | mean, std^2 I) per sample, float64 (Eq. 11)."""
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    D = x[0].numel()
    return 0.5 * _flat_sq(x - mean) / std ** 2 + D * math.log(std * math.sqrt(2 * math.pi))


@torch.no_grad()
def prior_kl_bound(mean_K: Tensor, centres: Tensor, sigma: float, delta: float, *,
                   chunk: int = 8192, dtype: torch.dtype = torch.float64) -> Tensor:
    """App. A.3 upper bound on L_K = KL[N(mean_K, sigma^2 I) || KDE(centres, delta^2)] per sample.

    ``mean_K``: F(t_K) u_0, shape (B, ...); ``centres``: the blurred training images (N_T, ...).
    One bandwidth of :func:`prior_kl_bounds`.
    """
    return prior_kl_bounds(mean_K, centres, sigma, [delta], chunk=chunk, dtype=dtype)[0]


@torch.no_grad()
def prior_kl_bounds(mean_K: Tensor, centres: Tensor, sigma: float, deltas, *,
                    chunk: int = 8192, dtype: torch.dtype = torch.float64) -> Tensor:
    """The A.3 bound on L_K for every KDE bandwidth in ``deltas``: (len(deltas), B) float64.

    The squared distances come from one matrix product per chunk of centres, after
    subtracting the centres' mean (which leaves distances unchanged and avoids the
    cancellation in |a|^2 + |b|^2 - 2 a.b), with a running log-sum-exp over chunks, so
    memory stays at B x chunk however large the training set is. The distances do not
    depend on delta, so a sweep over delta costs one pass over the centres.
    """
    if mean_K.shape[1:] != centres.shape[1:]:
        raise ValueError(f"centres have shape {tuple(centres.shape[1:])}, images "
                         f"{tuple(mean_K.shape[1:])}")
    n_train = centres.shape[0]
    if n_train < 1:
        raise ValueError("need at least one KDE centre")
    deltas = [float(d) for d in deltas]
    if not deltas or min(deltas) <= 0:
        raise ValueError(f"KDE bandwidths must be positive, got {deltas}")
    device = mean_K.device
    # The shift is applied in float64 before any cast to ``dtype``, so float32 runs stay accurate.
    shift = centres.flatten(1).to(device, torch.float64).mean(0)
    a = (mean_K.flatten(1).double() - shift).to(dtype)
    a_sq = a.pow(2).sum(1, keepdim=True)
    lse = torch.full((len(deltas), a.shape[0]), -math.inf, dtype=dtype, device=device)
    for start in range(0, n_train, chunk):
        c = (centres[start:start + chunk].flatten(1).to(device, torch.float64) - shift).to(dtype)
        d2 = (a_sq + c.pow(2).sum(1)[None] - 2.0 * a @ c.T).clamp_min_(0.0)
        for i, d in enumerate(deltas):
            lse[i] = torch.logaddexp(lse[i], torch.logsumexp(-0.5 * d2 / d ** 2, dim=1))
    D = a.shape[1]
    const = torch.tensor([kl_floor(sigma, d, D) + math.log(n_train) for d in deltas], dtype=dtype,
                         device=device)
    return (const[:, None] - lse).to(torch.float64)


def _check_ihdm(process) -> None:
    for attr in ("blur", "sigma", "delta", "K", "predict"):
        if not hasattr(process, attr):
            raise TypeError(f"the IHDM ELBO needs a heat-dissipation process (missing {attr!r}); "
                            f"got {type(process).__name__}")
    if process.sigma <= 0:
        raise ValueError("the ELBO needs sigma > 0: with sigma = 0 q(u_k|u_0) is a point mass")


@torch.no_grad()
def elbo_terms(net, process, u0: Tensor, centres: Tensor, *, delta: float | None = None,
               generator: torch.Generator | None = None, noise: Tensor | None = None) -> Tensor:
    """The terms of the negative ELBO per image: (B, K+1) float64, column k holds L_k (nats).

    Column 0 is L_0 = -log p(u_0 | u_1); column k in 1..K-1 is L_k = KL for the transition
    k+1 -> k; column K is the A.3 bound on the prior term. Their row sum is the negative ELBO
    of u_0 (a density on [0, 1]^D; see :func:`bits_per_dim`).

    u0:      (B, C, H, W) float in [0, 1] (dequantised data).
    centres: blurred training images at level K, the KDE centres of p(u_K).
    noise:   optional standard normals (K, B, C, H, W); level k uses noise[k-1] to draw
             u_k ~ q(u_k | u_0). Default: fresh draws from ``generator``.
    """
    _check_ihdm(process)
    K, sigma = process.K, process.sigma
    delta = process.delta if delta is None else float(delta)
    if delta <= 0:
        raise ValueError(f"the ELBO needs delta > 0, got {delta}")
    if noise is not None and (noise.shape[0] != K or noise.shape[1:] != u0.shape):
        raise ValueError(f"noise must have shape ({K}, {', '.join(map(str, u0.shape))}), got "
                         f"{tuple(noise.shape)}")
    B = u0.shape[0]
    terms = torch.zeros(B, K + 1, dtype=torch.float64, device=u0.device)
    with eval_mode(net):  # every submodule's flag comes back: a wrapped eval net stays in eval
        prev = u0  # F(t_{k-1}) u_0, carried down the loop
        for k in range(1, K + 1):
            mean_k = process.blur(u0, k)
            eps = noise[k - 1].to(u0) if noise is not None else randn_like(mean_k, generator)
            u_k = mean_k + sigma * eps
            levels = torch.full((B,), k, dtype=torch.long, device=u0.device)
            mu = process.predict(net, u_k, levels).float()
            if k == 1:
                terms[:, 0] = gaussian_nll(u0, mu, delta)
            else:
                terms[:, k - 1] = gaussian_kl(prev, sigma, mu, delta)
            prev = mean_k
        terms[:, K] = prior_kl_bound(prev, centres, sigma, delta)
    return terms


def _gather(images, start: int, stop: int) -> Tensor:
    if isinstance(images, Tensor):
        return images[start:stop]
    return torch.stack([images[i] for i in range(start, stop)])


@torch.no_grad()
def negative_elbo(net, process, images, train_images, *, delta: float | None = None,
                  batch_size: int = 250, seed: int = 0, progress: bool = False) -> dict:
    """Negative ELBO and bits/dim of 8-bit ``images`` (uint8 (N, C, H, W) or a Dataset of them).

    ``train_images`` (uint8) define the KDE prior: their bin centres blurred to level K.
    Returns per-image totals and per-term values (tensors) and summary figures:
    ``bits_per_dim`` (mean over images, with its standard error), ``nelbo_nats`` (continuous
    [0, 1] space), ``terms_nats`` (mean L_k for k = 0..K, plot them against k).
    """
    _check_ihdm(process)
    delta = process.delta if delta is None else float(delta)
    device = process.device
    n = len(images)
    if n == 0:
        raise ValueError("no images to evaluate")
    first = _gather(images, 0, 1)
    if first.dtype != torch.uint8:
        raise TypeError(f"negative_elbo needs 8-bit images (uint8) to dequantise; got "
                        f"{first.dtype}")
    t0 = time.perf_counter()
    centres = []
    for start in range(0, len(train_images), 1024):
        x = _gather(train_images, start, min(start + 1024, len(train_images))).to(device)
        centres.append(process.blur(bin_centres(x), process.K))
    centres = torch.cat(centres)
    gen = torch.Generator(device=device).manual_seed(seed)
    deq_gen = torch.Generator().manual_seed(seed + 1)
    steps = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="ELBO", leave=False)
    all_terms = []
    for start in steps:
        x = _gather(images, start, min(start + batch_size, n))
        u0 = dequantize(x, generator=deq_gen).to(device)
        all_terms.append(elbo_terms(net, process, u0, centres, delta=delta, generator=gen).cpu())
    terms = torch.cat(all_terms)
    dims = first[0].numel()
    total = terms.sum(1)
    bpd = bits_per_dim(total, dims)
    return {
        "bits_per_dim": float(bpd.mean()),
        "bits_per_dim_sem": float(bpd.std() / math.sqrt(n)) if n > 1 else float("nan"),
        "nelbo_nats": float(total.mean()),
        "terms_nats": terms.mean(0).tolist(),
        "prior_term_nats": float(terms[:, -1].mean()),
        "n_images": n,
        "n_train_centres": int(centres.shape[0]),
        "dims": dims,
        "delta": delta,
        "sigma": process.sigma,
        "K": process.K,
        "seed": seed,
        "dequantization": "uniform: u0 = (x + U) / 256; KDE centres at (x + 1/2) / 256",
        "time_s": time.perf_counter() - t0,
        "per_image_bits_per_dim": bpd,
        "per_image_terms": terms,
    }


# --- the ELBO as a function of delta ------------------------------------------------------
# Training never sees delta, and the network evaluations of the ELBO do not depend on it: with
# m_k = E||mu_theta(u_k, k) - F(t_{k-1}) u_0||^2, Eqs. 10-11 are
#     L_{k-1} = kl_floor(sigma, delta, N) + m_k / (2 delta^2)          (k >= 2)
#     L_0     = m_1 / (2 delta^2) + N log(delta sqrt(2 pi)),
# so one evaluation at delta_0 gives every m_k, and with them the whole curve in delta.

def transition_errors(terms, delta: float, sigma: float, dims: int) -> np.ndarray:
    """Invert Eqs. 10-11: the mean squared errors m_1..m_K of the transitions k -> k-1 from the
    mean ELBO terms L_0..L_K (nats, as ``negative_elbo(...)["terms_nats"]``) evaluated at
    ``delta``."""
    terms = np.asarray(terms, dtype=np.float64)
    K = len(terms) - 1
    if K < 1:
        raise ValueError(f"need the K+1 terms L_0..L_K, got {len(terms)}")
    m = np.empty(K)
    m[0] = 2 * delta ** 2 * (terms[0] - dims * math.log(delta * math.sqrt(2 * math.pi)))
    m[1:] = 2 * delta ** 2 * (terms[1:K] - kl_floor(sigma, delta, dims))
    return m


def terms_at_delta(m, sigma: float, delta: float, dims: int, prior: float) -> np.ndarray:
    """Mean ELBO terms L_0..L_K (nats per image) at sampling noise ``delta`` from the transition
    errors ``m`` (:func:`transition_errors`) and the prior term ``prior`` = L_K at that delta."""
    m = np.asarray(m, dtype=np.float64)
    first = m[0] / (2 * delta ** 2) + dims * math.log(delta * math.sqrt(2 * math.pi))
    return np.concatenate([[first], kl_floor(sigma, delta, dims) + m[1:] / (2 * delta ** 2),
                           [prior]])


def elbo_against_delta(terms, delta0: float, deltas, *, sigma: float, mean_K: Tensor,
                       centres: Tensor) -> dict:
    """The negative ELBO at every delta in ``deltas`` from one evaluation at ``delta0``.

    ``terms``: mean L_0..L_K at delta0; ``mean_K``: F(t_K) u_0 of the same images (their bin
    centres); ``centres``: the KDE centres. Returns ``bits_per_dim`` (len(deltas),), ``terms``
    (len(deltas), K+1) in nats, ``prior`` (the mean A.3 bound per delta) and ``m`` (the
    transition errors). Same Monte-Carlo draws as the evaluation at delta0, so exact.
    """
    dims = mean_K[0].numel()
    m = transition_errors(terms, delta0, sigma, dims)
    deltas = [float(d) for d in deltas]
    prior = prior_kl_bounds(mean_K, centres, sigma, deltas).mean(1).cpu().numpy()
    rows = np.stack([terms_at_delta(m, sigma, d, dims, p) for d, p in zip(deltas, prior)])
    return {"bits_per_dim": bits_per_dim(rows.sum(1), dims), "terms": rows, "prior": prior, "m": m}


def elbo_optimal_delta(m, sigma: float, dims: int) -> float:
    """The delta that minimises the K transition terms (App. C.1), prior term left out:
    d/d delta of sum_k L_{k-1} = 0 gives delta^2 = (K-1)/K sigma^2 + mean(m) / N."""
    m = np.asarray(m, dtype=np.float64)
    K = len(m)
    return math.sqrt((K - 1) / K * sigma ** 2 + m.mean() / dims)
