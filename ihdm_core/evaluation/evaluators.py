"""Evaluator files that ship with the book: the digit classifier and the FID reference features.

Both are first-time work that every fresh clone would otherwise repeat (training the classifier,
and running InceptionV3 at 299 x 299 on the 1,000 reference digits: minutes on 2 CPU cores), and
both must be the same everywhere for the shipped models' scores to be comparable. They live in
``models/evaluators/`` beside the shipped models, each file with a ``<file>.sha256`` record that
is checked before every load: a changed byte is an error naming the file, never a silent
recomputation. ``README.md`` there is their card. Files are found by name, and a name is an
identity (the classifier's version, epochs and seed; the reference set's data set, split, size
and subset seed); the loaders also check the identity recorded inside the file.

    python -m ihdm_core models export-evaluators      # (re)write them from the data cache
    python -m ihdm_core models verify
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..training.shipped import ShippedModelError, models_root, sha256_file, verify_file

__all__ = [
    "EVALUATORS",
    "evaluators_dir",
    "shipped_file",
    "save_shipped",
    "read_shipped",
    "tensor_sha256",
    "verify_all",
    "write_card",
    "main",
]

EVALUATORS = "evaluators"


def evaluators_dir() -> Path | None:
    """``<models root>/evaluators`` ($IHDM_MODELS or the checkout's models/); None outside one."""
    root = models_root()
    return root / EVALUATORS if root is not None else None


def tensor_sha256(x: torch.Tensor) -> str:
    """SHA-256 of a tensor's bytes in C order: names the images a reference was computed on."""
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def shipped_file(name: str) -> Path | None:
    """The verified path of the shipped evaluator file ``name``, or None when none ships.

    Raises :class:`ShippedModelError` when the file exists but its checksum record is missing or
    does not match."""
    folder = evaluators_dir()
    if folder is None or not (folder / name).exists():
        return None
    path = folder / name
    verify_file(path, what="the shipped evaluator file",
                remedy=f"Restore it (git checkout -- {path}) or delete it and its .sha256 to "
                       f"recompute it locally.")
    return path


def read_shipped(name: str, identity: dict) -> tuple[dict, dict] | None:
    """(tensors, metadata) of the verified shipped file ``name`` whose recorded identity is
    ``identity``; None when none ships. A file whose identity differs is an error."""
    from safetensors import safe_open

    path = shipped_file(name)
    if path is None:
        return None
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        meta = dict(fh.metadata() or {})
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    recorded = json.loads(meta.get("identity", "{}"))
    if recorded != identity:
        raise ShippedModelError(
            f"{path} records identity {recorded}, not the {identity} its name stands for"
        )
    return tensors, meta


def save_shipped(
    name: str, tensors: dict, identity: dict, meta: dict, folder: Path | None = None
) -> Path:
    """Write ``tensors`` as ``<folder>/<name>`` (safetensors) with its SHA-256 record."""
    from safetensors.torch import save_file

    folder = Path(folder) if folder is not None else evaluators_dir()
    if folder is None:
        raise FileNotFoundError("no models/ folder to ship evaluator files into (set IHDM_MODELS)")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (name + f".tmp{os.getpid()}")
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(tmp),
        metadata={
            "identity": json.dumps(identity, sort_keys=True),
            "meta": json.dumps(meta, sort_keys=True),
        },
    )
    os.replace(tmp, folder / name)
    (folder / (name + ".sha256")).write_text(f"{sha256_file(folder / name)}  {name}\n")
    return folder / name


def write_card(folder: Path | None = None) -> Path:
    """(Re)write ``README.md``, the card of the shipped evaluator files, from the files."""
    from safetensors import safe_open

    folder = Path(folder) if folder is not None else evaluators_dir()
    lines = [
        "# Shipped evaluators",
        "",
        "First-time work of the scores, done once and shipped so that every checkout scores",
        "against the same classifier and the same FID reference (and a fresh clone skips minutes",
        "of CPU). `ihdm_core.evaluation.evaluators` checks each file against its `.sha256` record",
        "before every load; a changed byte is an error. Rewrite them (and this card) with",
        "`python -m ihdm_core models export-evaluators`; deleting a file and its record makes",
        "the code compute it locally again, into the data folder.",
        "",
        "FID sets ship as float16 InceptionV3 features, not statistics (a 2048 x 2048 float64",
        "covariance alone is 34 MB); the statistics are computed from them in float64. Against",
        "the float32 features of the same 1,000 reference digits, FIDs of 300-500 feature sets",
        "moved by at most 3e-6 relative (4e-5 at FID 13.9). `fid_ref_mnist5k_clean_test_all` is",
        "the whole held-out split, the real-digit FID of chapter 3.",
        "",
        "| file | what | identity | details | MB | SHA-256 |",
        "|---|---|---|---|---|---|",
    ]
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = dict(fh.metadata() or {})
            shapes = {
                k: (tuple(fh.get_slice(k).get_shape()), fh.get_slice(k).get_dtype())
                for k in fh.keys()
            }
        ident, info = json.loads(meta["identity"]), json.loads(meta["meta"])
        what = ident.pop("kind")
        if "test_accuracy" in info:
            details = (
                f"test accuracy {info['test_accuracy']:.4f} on {info['test_set']}; non-digit "
                f"rejection {info['test_non_digit_rejection']:.4f}; trained on {info['data']}, "
                f"{info['train_time_s']:.0f} s on one core, torch {info['torch']}"
            )
        else:
            ((shape, dtype),) = shapes.values()
            details = (
                f"features {shape[0]} x {shape[1]} {dtype}; statistics (mean, covariance) are "
                f"computed from them in float64; InceptionV3: {info['inception']}; images "
                f"SHA-256 {info['images_sha256'][:16]}..."
            )
        ident_text = ", ".join(f"{k} {v}" for k, v in ident.items())
        digest = (folder / (path.name + ".sha256")).read_text().split()[0]
        lines.append(
            f"| `{path.name}` | {what} | {ident_text} | {details} | "
            f"{path.stat().st_size / 1e6:.2f} | `{digest}` |"
        )
    (folder / "README.md").write_text("\n".join(lines) + "\n")
    return folder / "README.md"


def verify_all() -> list[tuple[str, str | None]]:
    """(name, error or None) for every shipped evaluator file."""
    folder = evaluators_dir()
    out = []
    for path in sorted(folder.glob("*.safetensors")) if folder and folder.exists() else []:
        try:
            shipped_file(path.name)
            out.append((path.name, None))
        except ShippedModelError as err:
            out.append((path.name, str(err)))
    return out

