"""Colour/shape disentanglement (Sec. 4, Fig. 7a, App. D.3): sample a grid and measure it.

With sigma_B,max about the image size the prior state u_K is (nearly) a flat image of the mean
colour, so a sample has two sources: u_K and the sampling noise (the prior's N(0, delta^2) draw
and the K step noises of Alg. 2). The grid crosses them: row p uses prior centre p, column n uses
noise set n, shared by every row. The paper's claim, read along the grid:

* down a column (same noise, different priors): the same shape in different colours;
* along a row (same prior, different noise): the same colour, different shapes.

The measures work on any number of channels (for grayscale, "colour" is the intensity):

* mean colour (per channel) and its error against the prior's mean colour; the heat equation
  conserves the mean, so an exact inverse would make the error zero;
* a two-colour split of each image: the pixels are projected on their first principal colour
  axis and split by Otsu's threshold, the smaller side being the foreground; from it the
  foreground and background colours, a foreground mask (IoU between two images), and a shape
  map (the signed projection, foreground positive, centred and normalised: the correlation of
  two shape maps does not change when either image is recoloured).

Pairs are grouped as same noise / same prior / neither, so every measure has its baseline.
"""

from __future__ import annotations

import torch
from torch import Tensor


__all__ = ["mean_colour", "principal_projection", "otsu_threshold", "split_colours", "shape_maps",
           "shape_correlation", "mask_iou", "colour_distance", "pair_kinds", "grouped_means",
           "prior_centres", "sample_grid", "same_grid", "grid_scores", "shape_correlations",
           "unrelated_shape_correlation", "PAIR_KINDS", "images_at", "spread_colours",
           "score_tables", "summary", "comparison_rows"]

PAIR_KINDS = ("same noise", "same prior", "neither")


def _check_batch(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"expected a float (B, C, H, W) batch, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")


def mean_colour(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C): the per-channel mean, which the heat equation conserves."""
    _check_batch(x)
    return x.mean(dim=(-2, -1))


def principal_projection(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H*W): each pixel's colour minus the image mean, projected on the image's
    first principal colour axis (the direction in which its pixel colours vary most). For a
    two-colour image this is, up to sign and scale, the mixing weight of the two colours."""
    _check_batch(x)
    b, c = x.shape[:2]
    pix = x.reshape(b, c, -1).double()
    pix = pix - pix.mean(dim=2, keepdim=True)
    cov = pix @ pix.transpose(1, 2)                       # (B, C, C)
    axis = torch.linalg.eigh(cov)[1][:, :, -1]            # eigenvector of the largest eigenvalue
    return torch.einsum("bc,bcn->bn", axis, pix).to(x.dtype)


def otsu_threshold(v: Tensor) -> Tensor:
    """(B, N) -> (B,): Otsu's threshold per row, the cut between two sorted values that maximises
    the between-class variance w0 w1 (mu0 - mu1)^2; exact (no histogram), halfway between the
    two values it separates. A constant row gets its value as threshold."""
    if v.dim() != 2:
        raise ValueError(f"expected (B, N) values, got shape {tuple(v.shape)}")
    s = v.double().sort(dim=1).values
    n = s.shape[1]
    csum = s.cumsum(dim=1)[:, :-1]                         # class 0 = the i + 1 smallest values
    i = torch.arange(1, n, dtype=s.dtype, device=s.device)
    w0, w1 = i / n, (n - i) / n
    mu0 = csum / i
    mu1 = (s.sum(dim=1, keepdim=True) - csum) / (n - i)
    between = w0 * w1 * (mu0 - mu1) ** 2
    # a cut between two equal values is not a threshold
    between = between.masked_fill(s[:, 1:] <= s[:, :-1], -1.0)
    k = between.argmax(dim=1, keepdim=True)
    t = 0.5 * (s.gather(1, k) + s.gather(1, k + 1)).squeeze(1)
    flat = between.max(dim=1).values < 0
    return torch.where(flat, s[:, 0], t).to(v.dtype)


def _foreground(x: Tensor) -> tuple[Tensor, Tensor]:
    """(mask (B, H*W) bool, signed projection (B, H*W) with the foreground side positive)."""
    v = principal_projection(x)
    above = v > otsu_threshold(v)[:, None]
    flip = above.float().mean(dim=1) > 0.5                 # the foreground is the smaller side
    mask = torch.where(flip[:, None], ~above, above)
    signed = torch.where(flip[:, None], -v, v)
    return mask, signed


def split_colours(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(foreground colour (B, C), background colour (B, C), foreground mask (B, H, W)).

    The colours are the mean colours of the two sides; an empty side gets the image mean."""
    mask, _ = _foreground(x)
    b, c, h, w = x.shape
    pix = x.reshape(b, c, -1)
    m = mask[:, None].to(x.dtype)
    mean = pix.mean(dim=2)
    nf, nb = m.sum(dim=2), (1 - m).sum(dim=2)
    fg = torch.where(nf > 0, (pix * m).sum(dim=2) / nf.clamp_min(1), mean)
    bg = torch.where(nb > 0, (pix * (1 - m)).sum(dim=2) / nb.clamp_min(1), mean)
    return fg, bg, mask.reshape(b, h, w)


def shape_maps(x: Tensor) -> Tensor:
    """(B, H*W) unit vectors: the signed principal projection (foreground positive), centred."""
    _, signed = _foreground(x)
    z = signed - signed.mean(dim=1, keepdim=True)
    return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)


def shape_correlation(x: Tensor) -> Tensor:
    """(B, B): correlation of the shape maps of every pair (1: the same shape, whatever colours)."""
    v = shape_maps(x)
    return v @ v.T


def mask_iou(x: Tensor) -> Tensor:
    """(B, B): intersection over union of the foreground masks of every pair (1 for two empty
    masks)."""
    m = split_colours(x)[2].flatten(1).to(torch.float64)
    inter = m @ m.T
    union = m.sum(1)[:, None] + m.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter)).to(x.dtype)


def colour_distance(colours: Tensor) -> Tensor:
    """(B, C) -> (B, B) Euclidean distances."""
    return torch.cdist(colours.double()[None], colours.double()[None])[0].to(colours.dtype)


def pair_kinds(n_priors: int, n_noises: int) -> dict[str, Tensor]:
    """For a grid flattened row-major (index p * n_noises + n), a (PN, PN) bool mask per kind of
    pair i < j: "same noise" (same column, different rows), "same prior" (same row, different
    columns) and "neither"."""
    if n_priors < 1 or n_noises < 1:
        raise ValueError(f"the grid needs at least one prior and one noise, got {n_priors} x "
                         f"{n_noises}")
    p = torch.arange(n_priors).repeat_interleave(n_noises)
    n = torch.arange(n_noises).repeat(n_priors)
    upper = torch.ones(len(p), len(p), dtype=torch.bool).triu(1)
    same_p, same_n = p[:, None] == p[None, :], n[:, None] == n[None, :]
    return {"same noise": upper & same_n & ~same_p, "same prior": upper & same_p & ~same_n,
            "neither": upper & ~same_p & ~same_n}


def grouped_means(matrix: Tensor, n_priors: int, n_noises: int) -> dict[str, tuple[float, int]]:
    """Mean of a symmetric (PN, PN) pair matrix over each kind of pair: {kind: (mean, n pairs)}."""
    out = {}
    for kind, m in pair_kinds(n_priors, n_noises).items():
        vals = matrix[m.to(matrix.device)]
        out[kind] = (float(vals.double().mean()) if len(vals) else float("nan"), int(len(vals)))
    return out


# --- sampling the grid ------------------------------------------------------------------------
def prior_centres(process, images, indices) -> Tensor:
    """The noise-free part of the prior state, F(t_K) u_0, for the training images ``indices``."""
    from ..model.prior import kde_prior_sample

    return kde_prior_sample(process, images, indices=torch.as_tensor(indices), delta=0.0)[0]


@torch.no_grad()
def sample_grid(net, process, centres: Tensor, n_noises: int, *, delta: float | None = None,
                generator: torch.Generator | None = None, batch_size: int = 256,
                progress: bool = False) -> tuple[Tensor, Tensor]:
    """Samples (P, N, C, H, W) in [0, 1] and their prior states (P, N, C, H, W), on the CPU."""
    from ..model.latents import shared_noise_grid
    from ..model.sampling import sample

    if getattr(process, "name", None) != "ihdm":
        raise ValueError(f"the colour grid needs an IHDM process (its prior state is a blurred "
                         f"image), got {type(process).__name__}")
    d = process.delta if delta is None else float(delta)
    centres = centres.to(process.device)
    lat = shared_noise_grid(centres, process.K, n_noises, d, generator=generator)
    out = []
    starts = range(0, len(lat.x_K), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="colour grid", leave=False)
    for s in starts:
        part = lat.batch(s, s + batch_size)
        out.append(sample(net, process, part.x_K, delta=d, noise=part.noise).cpu())
    P = centres.shape[0]
    shape = tuple(centres.shape[1:])
    return (torch.cat(out).clamp(0, 1).reshape(P, n_noises, *shape),
            lat.x_K.cpu().reshape(P, n_noises, *shape))


def same_grid(net, process, images, prior_idx, n_noises: int, *, delta: float | None = None,
              generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
    """The grid of the training images ``prior_idx`` as priors x ``n_noises`` seeded noise sets,
    sampled by one model: (samples, :func:`grid_scores`). The same ``prior_idx`` and generator
    seed give every model and delta the same priors and the same noise, so grids compare."""
    centres = prior_centres(process, images, prior_idx)
    samples, _ = sample_grid(net, process, centres, n_noises, delta=delta, generator=generator)
    return samples, grid_scores(samples, centres.cpu())


def unrelated_shape_correlation(x: Tensor) -> tuple[float, int]:
    """(mean shape correlation, number of pairs) over every pair of distinct images of ``x``: the
    level at which two unrelated images already resemble each other under this measure."""
    corr = shape_correlation(x.double())
    pairs = corr[~torch.eye(len(corr), dtype=torch.bool)]
    return float(pairs.mean()), len(pairs) // 2


def grid_scores(samples: Tensor, centres: Tensor) -> dict:
    """All measures of a sampled grid. ``samples``: (P, N, C, H, W); ``centres``: (P, C, H, W).

    Returns {"colour error": {"own prior": (mean, n), "other priors": (mean, n)},
             measure: {pair kind: (mean, n pairs)}} for the measures "shape correlation",
    "mask IoU", "mean-colour distance", "foreground-colour distance", "background-colour distance".
    """
    if samples.dim() != 5 or centres.dim() != 4 or samples.shape[0] != centres.shape[0]:
        raise ValueError(f"expected samples (P, N, C, H, W) and centres (P, C, H, W), got "
                         f"{tuple(samples.shape)} and {tuple(centres.shape)}")
    P, N = samples.shape[:2]
    x = samples.reshape(P * N, *samples.shape[2:]).double()
    c = mean_colour(centres.double().cpu())                            # (P, C)
    own = (mean_colour(x).reshape(P, N, -1) - c[:, None]).norm(dim=2)  # (P, N)
    # baseline: the same samples against every other row's prior colour
    allp = (mean_colour(x).reshape(P, N, 1, -1) - c[None, None]).norm(dim=3)  # (P, N, P)
    other = allp[~torch.eye(P, dtype=torch.bool)[:, None, :].expand(P, N, P)]
    fg, bg, _ = split_colours(x)
    out = {"colour error": {"own prior": (float(own.mean()), int(own.numel())),
                            "other priors": (float(other.mean()) if len(other) else float("nan"),
                                             int(len(other)))}}
    mats = {"shape correlation": shape_correlation(x), "mask IoU": mask_iou(x),
            "mean-colour distance": colour_distance(mean_colour(x)),
            "foreground-colour distance": colour_distance(fg),
            "background-colour distance": colour_distance(bg)}
    for name, m in mats.items():
        out[name] = grouped_means(m, P, N)
    return out


def shape_correlations(net, process, images, delta: float | None = None, *, priors: int = 8,
                       noises: int = 8, seed: int = 0) -> dict[str, float]:
    """{pair kind: mean shape correlation} of one seeded grid: ``priors`` training images whose
    mean colours spread out (farthest-point sampling over a seeded subset of 64) x ``noises``
    shared noise sets, sampled at ``delta`` (None: the process's own). The same seed gives the
    same priors and noises at every delta and for every model of the same data, so rows compare
    like with like."""
    subset = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:64]
    colours = prior_centres(process, images, subset).cpu()
    chosen = subset[spread_colours(colours, priors)]
    _, scores = same_grid(net, process, images, chosen, noises, delta=delta,
                          generator=torch.Generator().manual_seed(seed + 1))
    return {kind: float(scores["shape correlation"][kind][0]) for kind in PAIR_KINDS}


# --- choosing priors and tabulating (chapter 6)
# -------------------------------------------------------
def images_at(images, indices) -> Tensor:
    """The images ``indices`` of a tensor or an indexable data set, as floats in [0, 1]."""
    from ..model.images import to_float

    idx = torch.as_tensor(indices).long()
    x = images[idx] if isinstance(images, Tensor) else torch.stack([images[int(i)] for i in idx])
    return to_float(x)


def spread_colours(x: Tensor, n: int) -> list[int]:
    """Indices of ``n`` images of ``x`` whose mean colours spread out: farthest-point sampling on
    the mean colours, starting from the image closest to the average colour."""
    _check_batch(x)
    if not 1 <= n <= len(x):
        raise ValueError(f"need 1 <= n <= {len(x)} images, got n={n}")
    means = mean_colour(x.double())
    chosen = [int(torch.argmin((means - means.mean(0)).norm(dim=1)))]
    for _ in range(n - 1):
        chosen.append(int(torch.cdist(means, means[chosen]).min(dim=1).values.argmax()))
    return chosen


_MEASURES = ("shape correlation", "mask IoU", "mean-colour distance", "foreground-colour distance",
             "background-colour distance")
_KIND_LABELS = {"same noise": "same noise, different u_K",
                "same prior": "same u_K, different noise",
                "neither": "different both"}


def score_tables(scores: dict) -> tuple[list[dict], list[dict]]:
    """The two tables of :func:`grid_scores`: (one row per measure with a column per kind of pair,
    labelled with its number of pairs; the mean-colour error against the sample's own prior and
    against the other rows' priors)."""
    n_pairs = {k: scores["shape correlation"][k][1] for k in _KIND_LABELS}
    rows = [{"measure": m} | {f"{label} (n = {n_pairs[k]} pairs)": scores[m][k][0] for k,
                              label in _KIND_LABELS.items()}
            for m in _MEASURES]
    own, other = scores["colour error"]["own prior"], scores["colour error"]["other priors"]
    err = [{"mean-colour error against": "its own prior u_K", "mean": own[0],
            "n (sample, prior) pairs": own[1]},
           {"mean-colour error against": "the other rows' priors", "mean": other[0],
            "n (sample, prior) pairs": other[1]}]
    return rows, err


def summary(scores: dict) -> str:
    """The :func:`grid_scores` of one grid in two sentences of Markdown: same-noise pairs (shape
    measures against unrelated pairs, mean-colour distance), same-prior pairs (colour distances,
    shape correlation), and a sample's mean-colour error against its own and the other priors."""
    own, other = scores["colour error"]["own prior"], scores["colour error"]["other priors"]
    sc, col = scores["shape correlation"], scores["mean-colour distance"]
    fgd, bgd = scores["foreground-colour distance"], scores["background-colour distance"]
    iou = scores["mask IoU"]
    gain = sc["same noise"][0] - sc["neither"][0]
    gain_prior = sc["same prior"][0] - sc["neither"][0]
    return (f"*Same noise, different priors:* shape correlation {sc['same noise'][0]:.3f} against "
            f"{sc['neither'][0]:.3f} for unrelated pairs ({'+' if gain >= 0 else ''}{gain:.3f}), "
            f"mask IoU {iou['same noise'][0]:.3f} against {iou['neither'][0]:.3f}; their mean "
            f"colours are {col['same noise'][0]:.3f} apart (unrelated: {col['neither'][0]:.3f}). "
            f"*Same prior, different noise:* mean colours {col['same prior'][0]:.3f} apart, "
            f"background colours {bgd['same prior'][0]:.3f} (unrelated: {bgd['neither'][0]:.3f}), "
            f"foreground colours {fgd['same prior'][0]:.3f} (unrelated: {fgd['neither'][0]:.3f}); "
            f"shape correlation {sc['same prior'][0]:.3f} "
            f"({'+' if gain_prior >= 0 else ''}{gain_prior:.3f} over unrelated). A sample's mean "
            f"colour is {own[0]:.3f} from its own prior's and {other[0]:.3f} from the other "
            f"priors'.")


def comparison_rows(scores_by_label: dict[str, dict]) -> list[dict]:
    """One row per labelled :func:`grid_scores`: the mean shape correlation of each kind of pair,
    and same noise minus same prior (disentangled: large)."""
    rows = []
    for label, scores in scores_by_label.items():
        sc = scores["shape correlation"]
        rows.append({"model and delta": label} | {k: sc[k][0] for k in PAIR_KINDS}
                    | {"same noise - same prior": sc["same noise"][0] - sc["same prior"][0],
                       "pairs (same noise / same prior / neither)":
                           " / ".join(str(sc[k][1]) for k in PAIR_KINDS)})
    return rows
