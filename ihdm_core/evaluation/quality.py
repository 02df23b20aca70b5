"""Sample quality and likelihood in context: real held-out images scored like samples, scores along
a delta sweep, and a check of the ELBO's closed form in delta.

A FID of a few hundred samples is biased far upward and a recognisability means little without a
ceiling, so chapters 3 and 4 place a model's scores next to those of *real* held-out images with
the same n and the same reference (:func:`real_image_scores`). Chapter 4 scores one network at
several sampling noises delta (:func:`scores_against_delta`); the scores are recorded in the run
folder by :func:`ihdm_core.evaluation.scores.score`, so chapters that ask again reuse them.
:func:`elbo_identity_check` evaluates the ELBO directly at a second delta and compares it with the
closed form built from an evaluation at the first.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..model.likelihood import dequantize, elbo_terms, terms_at_delta, transition_errors
from ..training.data import load_dataset
from .digits import digit_classifier, recognisability
from .fid import fid_between, fid_from_features, reference_stats
from .inception import inception_features
from .scores import REFERENCE_SPLIT, score

__all__ = ["real_image_scores", "scores_against_delta", "elbo_identity_check"]


def real_image_scores(dataset: str, *, n_fid: int | None = None, seed: int = 0,
                      ref_n: int | None = None,
                      device="cpu", classifier=None, digits: bool = True) -> dict:
    """Scores of the real held-out (test) images of ``dataset``, the floor and ceiling for samples.

    recognisability: :func:`~ihdm_core.evaluation.digits.recognisability` of the whole test split
    (``digits=False`` skips it, for data that are not 28 x 28 digits). FID: ``n_fid`` test images
    drawn at random with ``seed`` (the offline test split is stored class by class) against the
    reference statistics that the samples' FID uses (``ref_n`` of the training split);
    ``n_fid=0`` skips it, ``None`` takes the whole split. Returns {"n_images", "recognisability",
    "fid", "fid_n", "fid_seconds", "reference"}, the FID entries None when skipped.
    """
    if n_fid is not None and n_fid < 0:
        raise ValueError(f"n_fid must be >= 0 or None, got {n_fid}")
    images = load_dataset(dataset, split="test")
    out = {"n_images": len(images), "recognisability": None, "fid": None, "fid_n": 0,
           "fid_seconds": None, "reference": None}
    if digits:
        out["recognisability"] = recognisability(images,
                                                 classifier=classifier or digit_classifier())
    if n_fid == 0:
        return out
    ref = reference_stats(dataset, REFERENCE_SPLIT, ref_n, device=device, progress=False)
    n = len(images) if n_fid is None else min(n_fid, len(images))
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    t0 = time.perf_counter()
    if n == len(images):  # the whole split: statistics cached (or shipped) like a reference's
        whole = reference_stats(dataset, "test", None, device=device, progress=False)
        out["fid"] = fid_between(whole, ref)
    else:
        out["fid"] = fid_from_features(inception_features(images[idx], n, device=device), ref)
    out.update(fid_n=n, fid_seconds=time.perf_counter() - t0, reference=ref)
    return out


def scores_against_delta(run, deltas, *, n: int, seed: int = 0, ref_n: int | None = None,
                         device="cpu") -> dict:
    """Recognisability and FID of ``n`` samples of ``run`` at every sampling noise in ``deltas``:
    {delta: {"recognisability": record, "fid": record}} with the records of
    :func:`~ihdm_core.evaluation.scores.score` (both scores use the same samples per delta)."""
    out = {}
    for d in deltas:
        out[float(d)] = {
            "recognisability": score(run, "recognisability", n=n, delta=float(d), seed=seed,
                                     progress=False),
            "fid": score(run, "fid", n=n, delta=float(d), seed=seed, ref_n=ref_n, device=device,
                         progress=False)}
    return out


def elbo_identity_check(net, process, images, centres, delta0: float, delta1: float, *, n: int = 4,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The mean ELBO terms L_0..L_K (nats) of ``n`` held-out ``images`` (uint8, drawn and
    dequantised with ``seed``) at ``delta1``, (closed form from the terms at ``delta0``, direct
    evaluation), both with the same draws u_k ~ q(u_k | u_0). The prior term L_K of the closed form
    is taken from the direct evaluation: only L_0..L_{K-1} are a function of the transition
    errors."""
    g = torch.Generator().manual_seed(seed)
    dev = centres.device
    few = dequantize(images[torch.randperm(len(images), generator=g)[:min(n, len(images))]],
                     generator=g).to(dev)
    eps = torch.randn((process.K, *few.shape), generator=g).to(dev)
    t0, t1 = (elbo_terms(net, process, few, centres, delta=d, noise=eps).mean(0).cpu().numpy()
              for d in (delta0, delta1))
    dims = few[0].numel()
    pred = terms_at_delta(transition_errors(t0, delta0, process.sigma, dims), process.sigma, delta1,
                          dims, t1[-1])
    return pred, t1
