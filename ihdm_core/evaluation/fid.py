"""FID as clean-fid computes it (mode "clean", App. B.3): reference statistics and the distance.

The features come from :mod:`ihdm_core.evaluation.inception`.

* Reference statistics. CIFAR-10 uses clean-fid's published statistics when they can be
  downloaded (``cifar10``, "clean", train split, as in the paper); otherwise, and for
  every other data set, custom statistics are computed from the local data and cached in
  ``<data root>/fid/stats/``.
* Distance. ||mu1 - mu2||^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2), with tr sqrt(S1 S2)
  computed exactly as the nuclear norm of B F^T, where S1 = F^T F and S2 = B^T B are
  factorisations (centred features, or scaled eigenvectors). clean-fid's
  ``scipy.linalg.sqrtm`` of a 2048 x 2048 product takes about a minute on 2 CPU cores and
  is inaccurate for the singular covariances of small sample sets; both compute the same
  quantity (checked against clean-fid's ``frechet_distance`` in the tests).

"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .inception import _fid_dir, _offline, feature_extractor, inception_features

__all__ = [
    "FIDStats",
    "stats_from_features",
    "reference_stats",
    "frechet_distance",
    "fid_from_features",
    "fid_between",
    "reference_features_name",
    "export_reference_features",
]


@dataclass
class FIDStats:
    """mu, sigma (clean-fid's format) and a factor F with sigma = F^T F, plus metadata."""

    mu: np.ndarray
    sigma: np.ndarray
    factor: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n(self) -> int | None:
        return self.meta.get("n")

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
        np.savez(tmp, mu=self.mu, sigma=self.sigma, factor=self.factor, meta=json.dumps(self.meta))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path) -> "FIDStats":
        with np.load(path) as z:
            return cls(z["mu"], z["sigma"], z["factor"], json.loads(str(z["meta"])))


def _factor_from_sigma(sigma: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(sigma)
    keep = w > w.max() * 1e-12
    return (v[:, keep] * np.sqrt(w[keep])).T


def stats_from_features(feats: np.ndarray, meta: dict | None = None) -> FIDStats:
    feats = np.asarray(feats, dtype=np.float64)
    n, d = feats.shape
    mu = feats.mean(0)
    centred = (feats - mu) / math.sqrt(n - 1)
    sigma = centred.T @ centred  # == np.cov(feats, rowvar=False)
    factor = centred if n <= d else _factor_from_sigma(sigma)
    return FIDStats(mu, sigma, factor, dict(meta or {}, n=n))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) from means and covariances (eigh-based,
    exact)."""
    f1 = _factor_from_sigma(np.asarray(sigma1, dtype=np.float64))
    f2 = _factor_from_sigma(np.asarray(sigma2, dtype=np.float64))
    return _frechet(np.asarray(mu1, np.float64), f1, np.asarray(mu2, np.float64), f2)


def _frechet(mu1, f1, mu2, f2) -> float:
    # The nonzero eigenvalues of S1 S2 = F1^T F1 F2^T F2 are those of (F2 F1^T)(F2 F1^T)^T:
    # tr sqrt(S1 S2) is the sum of the singular values of F2 F1^T.
    cross = np.linalg.svd(f2 @ f1.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + (f1 * f1).sum() + (f2 * f2).sum() - 2.0 * cross)


def fid_from_features(feats: np.ndarray, ref: FIDStats | np.ndarray) -> float:
    """FID between features (n, 2048) and reference statistics (or reference features)."""
    gen = stats_from_features(feats)
    ref = stats_from_features(ref) if isinstance(ref, np.ndarray) else ref
    if gen.mu.shape != ref.mu.shape:
        raise ValueError(f"feature dims differ: {gen.mu.shape} vs {ref.mu.shape}")
    return _frechet(gen.mu, gen.factor, ref.mu, ref.factor)


def fid_between(a: FIDStats, b: FIDStats) -> float:
    """FID between two sets of statistics (e.g. a whole held-out split's and the reference's)."""
    if a.mu.shape != b.mu.shape:
        raise ValueError(f"feature dims differ: {a.mu.shape} vs {b.mu.shape}")
    return _frechet(a.mu, a.factor, b.mu, b.factor)


def _subset(n_total: int, n: int | None, seed: int) -> Tensor | None:
    if n is None or n >= n_total:
        return None
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def _reference_images(dataset: str, split: str, n: int | None, seed: int):
    """(the reference images, the subset's indices or None for the whole split)."""
    from ..training.data import load_dataset

    images = load_dataset(dataset, split=split)
    idx = _subset(len(images), n, seed)
    if idx is not None and isinstance(images, Tensor):
        images = images[idx]
    elif idx is not None:
        images = torch.utils.data.Subset(images, idx.tolist())
    return images, idx

def _published_cifar10(split: str) -> FIDStats | None:
    """clean-fid's published CIFAR-10 statistics (as the paper used), or None when offline."""
    try:
        from cleanfid.features import get_reference_statistics

        mu, sigma = get_reference_statistics("cifar10", 32, mode="clean", split=split)
    except Exception as err:  # offline or not published: the caller computes them here
        print(f"[ihdm] clean-fid's published CIFAR-10 statistics unavailable "
              f"({type(err).__name__}); computing custom statistics", file=sys.stderr)
        return None
    meta = {"reference": f"clean-fid published cifar10 clean {split} 32", "n": None,
            "dataset": "cifar10", "split": split}
    return FIDStats(mu, sigma, _factor_from_sigma(sigma), meta)



def reference_stats(
    dataset: str,
    split: str = "train",
    n: int | None = None,
    *,
    seed: int = 0,
    device="cpu",
    batch_size: int = 50,
    allow_download: bool | None = None,
    progress: bool = True,
) -> FIDStats:
    """FID reference statistics of a data set, cached under ``<data root>/fid/stats/``, or from
    the reference features shipped in ``models/evaluators/`` when they exist for this set.

    ``n``: use a seeded random subset of n images (mnist5k is stored class by class, so a
    prefix would not do). CIFAR-10 with the whole split uses clean-fid's published statistics
    when they can be downloaded (as the paper did); everything else is computed here.
    """
    allow_download = (not _offline()) if allow_download is None else allow_download
    tag = "all" if n is None else f"n{n}-seed{seed}"
    path = _fid_dir() / "stats" / f"{dataset}_clean_{split}_{tag}.npz"
    # Shipped features first, so every checkout scores against the same reference.
    if reference_features_name(dataset, split, n, seed) in _evaluator_names():
        return _shipped_reference(dataset, split, n, seed)
    if path.exists():
        return FIDStats.load(path)
    if dataset == "cifar10" and n is None and allow_download:
        stats = _published_cifar10(split)
        if stats is not None:
            stats.save(path)
            return stats
    images, idx = _reference_images(dataset, split, n, seed)
    extractor = feature_extractor(device)
    t0 = time.perf_counter()
    feats = inception_features(
        images, batch_size=batch_size, device=device, extractor=extractor, progress=progress
    )
    stats = stats_from_features(
        feats,
        {
            "reference": f"custom {dataset} {split} "
            f"({'all' if idx is None else f'{n} random, seed {seed}'})",
            "dataset": dataset,
            "split": split,
            "subset_seed": None if idx is None else seed,
            "inception": extractor.provenance,
            "time_s": time.perf_counter() - t0,
            "mode": "clean",
        },
    )
    stats.save(path)
    return stats


# --- shipped reference features --------------------------------------------------------------


def reference_features_name(dataset: str, split: str, n: int | None, seed: int) -> str:
    """The file name of shipped reference features in ``models/evaluators/``: their identity."""
    tag = "all" if n is None else f"n{n}-seed{seed}"
    return f"fid_ref_{dataset}_clean_{split}_{tag}.safetensors"


def _reference_identity(dataset: str, split: str, n: int | None, seed: int) -> dict:
    return {
        "kind": "clean-fid InceptionV3 pool features",
        "dataset": dataset,
        "split": split,
        "n": n,
        "subset_seed": None if n is None else seed,
    }


def _subset_text(n, seed) -> str:
    return "all" if n is None else f"{n} random, seed {seed}"


def _images_tensor(images) -> Tensor:
    if isinstance(images, Tensor):
        return images
    return torch.stack([images[i] for i in range(len(images))])


def _evaluator_names() -> set:
    from .evaluators import evaluators_dir

    folder = evaluators_dir()
    if folder is None or not folder.exists():
        return set()
    return {p.name for p in folder.glob("*.safetensors")}


_SHIPPED_STATS: dict = {}


def _shipped_reference(dataset, split, n, seed) -> FIDStats | None:
    """Statistics from the shipped features of this reference set, checked to belong to exactly
    these images (the features were computed from them; another version of the data set would
    not match)."""
    from .evaluators import read_shipped, tensor_sha256
    from ..training.shipped import ShippedModelError

    name = reference_features_name(dataset, split, n, seed)
    from .evaluators import shipped_file

    path = shipped_file(name)  # checks the SHA-256 on every call: a changed byte is an error
    if path is not None and (str(path), name) in _SHIPPED_STATS:
        return _SHIPPED_STATS[str(path), name]
    found = read_shipped(name, _reference_identity(dataset, split, n, seed))
    if found is None:
        return None
    tensors, meta = found
    info = json.loads(meta["meta"])
    digest = tensor_sha256(_images_tensor(_reference_images(dataset, split, n, seed)[0]))
    if digest != info["images_sha256"]:
        raise ShippedModelError(
            f"{name} was computed from other {dataset} {split} images than the local ones "
            f"(SHA-256 {digest[:16]}... != {info['images_sha256'][:16]}...)"
        )
    stats = stats_from_features(
        tensors["features"].double().numpy(),
        dict(
            info,
            reference=f"custom {dataset} {split} ({_subset_text(n, seed)})",
            source=f"shipped {name} ({tensors['features'].dtype})",
        ),
    )
    _SHIPPED_STATS[str(path), name] = stats
    return stats


def export_reference_features(
    dataset: str,
    split: str = "train",
    n: int | None = 1000,
    *,
    seed: int = 0,
    dtype=torch.float16,
    device="cpu",
    folder=None,
):
    """Compute the reference set's InceptionV3 features and ship them into ``models/evaluators/``.

    float16 halves the size (1,000 digits: 4 MB); the statistics are computed from the stored
    values in float64, so every checkout scores against the same reference."""
    from .evaluators import save_shipped, tensor_sha256

    images, idx = _reference_images(dataset, split, n, seed)
    tag = "all" if n is None else f"n{n}-seed{seed}"
    cached = _fid_dir() / "stats" / f"{dataset}_clean_{split}_{tag}.npz"
    if cached.exists() and FIDStats.load(cached).factor.shape[0] == FIDStats.load(cached).n:
        # The cached factor of n <= 2048 features is the centred features / sqrt(n - 1).
        stats = FIDStats.load(cached)
        feats = stats.factor * math.sqrt(stats.n - 1) + stats.mu
        provenance, seconds = stats.meta.get("inception"), stats.meta.get("time_s")
    else:
        extractor = feature_extractor(device)
        t0 = time.perf_counter()
        feats = inception_features(images, batch_size=50, device=device, extractor=extractor)
        provenance, seconds = extractor.provenance, time.perf_counter() - t0
    info = {
        "dataset": dataset,
        "split": split,
        "subset_seed": None if idx is None else seed,
        "inception": provenance,
        "time_s": seconds,
        "mode": "clean",
        "images_sha256": tensor_sha256(_images_tensor(images)),
        "dtype": str(dtype),
    }
    return save_shipped(
        reference_features_name(dataset, split, n, seed),
        {"features": torch.from_numpy(np.asarray(feats)).to(dtype)},
        _reference_identity(dataset, split, n, seed),
        info,
        folder,
    )
