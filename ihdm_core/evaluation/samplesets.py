"""Sample sets drawn once per (model, sampler, delta, seed) and shared on disk.

Chapters run in separate processes (papermill), and several of them show or score the same
samples: chapter 3 shows and scores the reference model's set, chapter 4 scores the same model
at its own delta on fewer samples, chapter 9 shows panels of the sets it scores. Sampling is the
expensive part, so a set is drawn once and kept in ``<run dir>/samples/`` (under ``runs/``,
never committed), as the chains ended (unclamped float32).

Seed ``s + i`` gives sample ``i`` of the set of seed ``s`` whatever the batch size or the other
seeds (:mod:`ihdm_core.training.generate`), so the first ``n`` samples of a stored set of
``m >= n`` samples are the set of ``n``: one stored set serves every smaller request.

A set is named by a digest of what determines it: the network's weights (their bytes, so a
retrained run in the same folder never reuses its predecessor's samples), the config identity,
the sampling noise delta and the sampler settings that change samples.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch

__all__ = ["MAX_STORED_ELEMENTS", "set_key", "samples_dir", "load_set", "largest_below",
           "store_set", "draws"]

# Paper-scale sets (50,000 CIFAR-10 images) are streamed, not stored.
MAX_STORED_ELEMENTS = 20_000_000

# How many sets this process drew (not loaded): what the tests count.
draws = {"count": 0}


def _weights_digest(net: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def set_key(run, delta, sampler: dict) -> str:
    """A short digest naming the sample sets of ``run`` at ``delta`` with ``sampler`` settings."""
    cache = getattr(run, "_weights_digest", None)
    if cache is None or cache[0] is not run.net:
        cache = (run.net, _weights_digest(run.net))
        try:
            run._weights_digest = cache
        except AttributeError:  # a frozen run object: recompute next time (a few ms)
            pass
    blob = json.dumps(
        {"identity": run.cfg.identity(), "weights": cache[1], "delta": delta, "sampler": sampler},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def samples_dir(run) -> Path:
    return Path(run.run_dir) / "samples"


def _name(key: str, seed: int, n: int) -> str:
    return f"{key}_seed{seed}_n{n}.pt"


def load_set(run, key: str, seed: int, n: int) -> torch.Tensor | None:
    """The first ``n`` samples of the smallest stored set of ``key`` and ``seed`` with at least
    ``n`` samples, or None."""
    folder = samples_dir(run)
    if not folder.exists():
        return None
    pattern = re.compile(rf"{re.escape(key)}_seed{seed}_n(\d+)\.pt")
    sizes = sorted(int(m.group(1)) for p in folder.iterdir() if (m := pattern.fullmatch(p.name)))
    for m in sizes:
        if m >= n:
            try:
                x = torch.load(folder / _name(key, seed, m), map_location="cpu", weights_only=True)
            except Exception:  # a torn write from a killed process: draw again
                continue
            if x.shape[0] == m:
                return x[:n].clone()
    return None


def largest_below(run, key: str, seed: int, n: int) -> torch.Tensor | None:
    """The largest stored set of ``key`` and ``seed`` with fewer than ``n`` samples, or None: the
    head of the set of ``n``, whose tail then needs only the remaining seeds."""
    folder = samples_dir(run)
    if not folder.exists():
        return None
    pattern = re.compile(rf"{re.escape(key)}_seed{seed}_n(\d+)\.pt")
    sizes = sorted((int(m.group(1)) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))),
                   reverse=True)
    for m in (m for m in sizes if m < n):
        try:
            x = torch.load(folder / _name(key, seed, m), map_location="cpu", weights_only=True)
        except Exception:  # a torn write from a killed process
            continue
        if x.shape[0] == m:
            return x
    return None


def store_set(run, key: str, seed: int, x: torch.Tensor) -> Path | None:
    """Store a drawn set (atomically: a concurrent reader sees the whole file or none)."""
    if x.numel() > MAX_STORED_ELEMENTS:
        return None
    folder = samples_dir(run)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / _name(key, seed, len(x))
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        torch.save(x.detach().cpu().contiguous(), tmp)
        os.replace(tmp, path)
        return path
    except OSError:  # a read-only run folder: the set is still returned, just not shared
        return None
