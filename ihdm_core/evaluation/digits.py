"""Digit recognisability: the share of samples a small CNN classifies with confidence >= 0.9.

A small CNN trained on the 4,500 mnist5k training digits (shipped in ``models/evaluators/``,
else trained on first use and cached under ``<data root>/classifiers/``) scores samples: the
share classified with confidence >= 0.9.
FID on 28 x 28 digits is noisy at small sample counts; this keeps the quick profile honest.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time

import torch
from torch import Tensor, nn

from ..training.paths import data_root

__all__ = ["DigitCNN", "digit_classifier", "recognisability", "shipped_name", "export_classifier"]


class DigitCNN(nn.Module):
    """Two small conv blocks and a head; classes 0-9 and 10 = not a digit."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 11)
        )

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
    """Shift each digit by up to max_shift pixels (zero fill): cheap augmentation for 4,500
    digits."""
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
    from ..model.heat import heat_forward

    x = _random_shift(x, g)
    b = x.shape[0]
    sigma_b = torch.empty(b).uniform_(0.3, 1.5, generator=g) * (torch.rand(b, generator=g) < 0.3)
    x = heat_forward(x, sigma_b**2 / 2)
    std = torch.empty(b, 1, 1, 1).uniform_(0.0, 0.1, generator=g) * (
        torch.rand(b, 1, 1, 1, generator=g) < 0.3
    )
    return (x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)


def _non_digits(x: Tensor, g: torch.Generator) -> Tensor:
    """Images that are not digits, for an 11th class: without it a digit CNN labels pure noise
    an '8' with 98% confidence, and a failed model would score as recognisable.

    Uniform noise, smooth noise blobs, strongly blurred digits (sigma_B 4-12 px), digits with
    their pixels shuffled, and two digits overlaid.
    """
    from ..model.heat import heat_forward

    b = x.shape[0]
    kind = torch.randint(0, 5, (b,), generator=g)
    noise = torch.rand(x.shape, generator=g)
    t_noise = torch.empty(b).uniform_(0.5, 8.0, generator=g)
    blobs = heat_forward(torch.rand(x.shape, generator=g), t_noise)
    lo, hi = blobs.amin((1, 2, 3), keepdim=True), blobs.amax((1, 2, 3), keepdim=True)
    blobs = ((blobs - lo) / (hi - lo + 1e-8) * 1.6 - 0.6).clamp(
        0, 1
    )  # contrast so blobs have edges
    sigma_b = torch.empty(b).uniform_(4.0, 12.0, generator=g)
    blurred = heat_forward(x, sigma_b**2 / 2)
    blurred = blurred / blurred.amax((1, 2, 3), keepdim=True).clamp_min(1e-3)
    perm = torch.argsort(torch.rand(b, x[0].numel(), generator=g), dim=1)
    shuffled = torch.gather(x.flatten(1), 1, perm).view_as(x)
    overlaid = torch.maximum(x, x[torch.randperm(b, generator=g)])
    out = torch.stack([noise, blobs, blurred, shuffled, overlaid])
    return out[kind, torch.arange(b)]


def _train_classifier(epochs: int, seed: int, progress: bool) -> tuple[DigitCNN, dict]:
    from ..model.images import to_float
    from ..training.data import load_dataset, load_labels

    x, y = to_float(load_dataset("mnist5k", "train")), load_labels("mnist5k", "train")
    xt, yt = to_float(load_dataset("mnist5k", "test")), load_labels("mnist5k", "test")
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        net = DigitCNN()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        steps_per_epoch = math.ceil(len(x) / 64)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=3e-3, total_steps=epochs * steps_per_epoch
        )
        t0 = time.perf_counter()
        net.train()
        for epoch in range(epochs):
            perm = torch.randperm(len(x), generator=g)
            for start in range(0, len(x), 64):
                idx = perm[start : start + 64]
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
                print(
                    f"[ihdm] digit classifier epoch {epoch + 1}/{epochs} loss {loss.item():.3f}",
                    file=sys.stderr,
                )
        net.eval()
        with torch.no_grad():
            acc = float((net(xt).argmax(1) == yt).float().mean())
            rejected = float((net(_non_digits(xt, g)).argmax(1) == NOT_A_DIGIT).float().mean())
    meta = {
        "version": CLASSIFIER_VERSION,
        "data": "mnist5k train (4500) + synthetic non-digits (class 10)",
        "test_accuracy": acc,
        "test_set": "mnist5k test (500), 11-way argmax",
        "test_non_digit_rejection": rejected,
        "epochs": epochs,
        "seed": seed,
        "train_time_s": time.perf_counter() - t0,
        "torch": torch.__version__,
    }
    return net, meta


def _identity(epochs: int, seed: int) -> dict:
    return {
        "kind": "mnist5k digit CNN",
        "version": CLASSIFIER_VERSION,
        "epochs": epochs,
        "seed": seed,
    }


def shipped_name(epochs: int = 10, seed: int = 0) -> str:
    """The file name of a classifier in ``models/evaluators/``: its identity."""
    return f"mnist5k_cnn_v{CLASSIFIER_VERSION}_e{epochs}_s{seed}.safetensors"


def _load_shipped(epochs: int, seed: int):
    from .evaluators import read_shipped

    found = read_shipped(shipped_name(epochs, seed), _identity(epochs, seed))
    if found is None:
        return None
    state, meta = found
    net = DigitCNN()
    net.load_state_dict(state)
    return net, dict(json.loads(meta["meta"]), source="shipped")


def digit_classifier(
    *, retrain: bool = False, epochs: int = 10, seed: int = 0, progress: bool = False
):
    """The mnist5k digit CNN and its metadata (net, meta).

    The shipped one (``models/evaluators/``, checked against its SHA-256) when it exists, else
    the one cached under ``<data root>/classifiers/``, else trained here (~10 s on one core) and
    cached. ``retrain=True`` trains anew into the data cache, leaving the shipped file alone."""
    path = data_root() / "classifiers" / f"mnist5k_cnn_v{CLASSIFIER_VERSION}_e{epochs}_s{seed}.pt"
    key = (str(path), epochs, seed)
    if not retrain and key in _CLASSIFIERS:
        return _CLASSIFIERS[key]
    found = None if retrain else _load_shipped(epochs, seed)
    if found is not None:
        net, meta = found
    elif path.exists() and not retrain:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        net = DigitCNN()
        net.load_state_dict(blob["state_dict"])
        meta = dict(json.loads(blob["meta"]), source="cached")
    else:
        # Callers may hold torch.no_grad() or inference_mode(); training needs gradients.
        with torch.inference_mode(False), torch.enable_grad():
            net, meta = _train_classifier(epochs, seed, progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        torch.save({"state_dict": net.state_dict(), "meta": json.dumps(meta)}, tmp)
        os.replace(tmp, path)
        meta = dict(meta, source="trained")
    net.eval().requires_grad_(False)
    _CLASSIFIERS[key] = (net, meta)
    return net, meta


def export_classifier(epochs: int = 10, seed: int = 0, folder=None):
    """Ship the classifier of this identity (trained here unless cached) into models/evaluators/."""
    from .evaluators import save_shipped

    path = data_root() / "classifiers" / f"mnist5k_cnn_v{CLASSIFIER_VERSION}_e{epochs}_s{seed}.pt"
    if path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        state, meta = blob["state_dict"], json.loads(blob["meta"])
    else:
        net, meta = digit_classifier(retrain=True, epochs=epochs, seed=seed)
        state, meta = net.state_dict(), {k: v for k, v in meta.items() if k != "source"}
    return save_shipped(shipped_name(epochs, seed), state, _identity(epochs, seed), meta, folder)


def recognisability(
    images: Tensor, *, threshold: float = 0.9, classifier=None, batch_size: int = 500
) -> dict:
    """How recognisable generated digits are to a CNN trained on real MNIST digits.

    Returns share_confident (share whose most likely class is a digit with probability >=
    threshold), mean_confidence (mean probability of the most likely digit), class_histogram
    (argmax counts for 0..9), not_digit (count whose argmax is the 'not a digit' class) and n.
    ``images``: (N, 1, 28, 28) uint8 or [0, 1] float.
    """
    from ..model.images import to_float

    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"recognisability needs (N, 1, 28, 28) digits, got {tuple(images.shape)}")
    # Built before no_grad: on first use the classifier is trained, which needs gradients.
    net, meta = classifier if classifier is not None else digit_classifier()
    probs = []
    with torch.no_grad(), _one_thread():
        for start in range(0, len(images), batch_size):
            probs.append(
                torch.softmax(
                    net(to_float(images[start : start + batch_size]).float().cpu()), dim=1
                )
            )
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
