"""Natural photographs that ship with scikit-image and scikit-learn (no downloads), for chapters
1-2.

``photograph(name, size)`` is the luminance in [0, 1], centre-cropped to a square and resized with
anti-aliasing, as a float32 tensor (size, size); ``gray=False`` keeps RGB as (3, size, size).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["PHOTOS", "load_photo", "photograph"]


def _sklearn(i: int):
    def load():
        from sklearn.datasets import load_sample_images  # imported only when needed: slow to import

        return load_sample_images().images[i]
    return load


def _skimage(name: str, index: int | None = None):
    def load():
        from skimage import data

        img = getattr(data, name)()
        return img if index is None else img[index]
    return load


# A fixed order: profiles take the first ``psd_images``.
PHOTOS = {
    "astronaut": _skimage("astronaut"), "camera": _skimage("camera"),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"), "china": _sklearn(0), "flower": _sklearn(1),
    "rocket": _skimage("rocket"),
    "motorcycle": _skimage("stereo_motorcycle", 0), "coins": _skimage("coins"),
    "clock": _skimage("clock"), "grass": _skimage("grass"), "gravel": _skimage("gravel"),
}


def load_photo(name: str) -> np.ndarray:
    """The photograph as stored: uint8, (H, W) or (H, W, 3)."""
    if name not in PHOTOS:
        raise KeyError(f"unknown photograph {name!r}; choose from {', '.join(PHOTOS)}")
    return np.asarray(PHOTOS[name]())


def photograph(image, size: int, *, gray: bool = True) -> torch.Tensor:
    """A photograph (a name in PHOTOS or a uint8 array) in [0, 1], centre square, resized to size x
    size.

    gray=True: luminance (skimage's rgb2gray), (size, size); gray=False: RGB, (3, size, size).
    """
    from skimage import color
    from skimage.transform import resize

    img = load_photo(image) if isinstance(image, str) else np.asarray(image)
    if gray:
        img = color.rgb2gray(img[..., :3]) if img.ndim == 3 else img / 255.0
    else:
        if img.ndim != 3:
            raise ValueError(f"gray=False needs an RGB image, got shape {img.shape}")
        img = img[..., :3] / 255.0
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    out = torch.from_numpy(resize(img, (size, size) + img.shape[2:], anti_aliasing=True)).float()
    return out if gray else out.permute(2, 0, 1).contiguous()
