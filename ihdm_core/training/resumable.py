"""Training state committed to the repository, so that a long CPU run continues on any machine.

A run's folder (``runs/<preset>-<identity>/``) is a cache and never committed. A long run that
outlives one working session is therefore exported to ``models/resumable/<preset>-<identity>/``:

* ``state.safetensors``  every tensor of the checkpoint: weights, EMA, Adam moments, RNG states;
* ``state.json``         everything else (step, config, optimiser hyperparameters, loss scaler),
                         with a placeholder naming the tensor where one stood;
* ``state.safetensors.sha256``, checked before import: a changed byte is an error, not a resume;
* ``metrics.jsonl``      the training log so far, held-out losses included.

When the trainer finds no checkpoint in a run folder, it imports the committed state of the same
identity into it first (:func:`seed_run_dir`) and then resumes as from its own checkpoint, so the
continued run draws what the uninterrupted one would have (the batch order and the noise are
seeded by step). safetensors stores tensors only and executes nothing on load; the JSON part is
data, so the committed state loads without unpickling anything.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint, sha256_file
from .config import Config, from_dict
from .paths import project_root

__all__ = ["resumable_root", "export_state", "import_state", "seed_run_dir", "committed_step",
           "pack", "unpack"]

TENSORS, SKELETON, LOGS = "state.safetensors", "state.json", ("metrics.jsonl",)


def resumable_root() -> Path:
    """``models/resumable`` of this checkout (None outside a checkout: nothing is committed
    there)."""
    root = project_root()
    return (root / "models" / "resumable") if root else Path("/nonexistent-resumable")


def pack(obj, tensors: dict[str, torch.Tensor]):
    """``obj`` as JSON data, its tensors moved into ``tensors`` under generated names. Dicts keep
    their key types (the optimiser's state is keyed by int) and tuples stay tuples."""
    if torch.is_tensor(obj):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"cannot store a dict key of type {type(key).__name__}: {key!r}")
        return {"__dict__": [[key, pack(value, tensors)] for key, value in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [pack(x, tensors) for x in obj]}
    if isinstance(obj, list):
        return [pack(x, tensors) for x in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a value of type {type(obj).__name__} in a training state")


def unpack(data, tensors: dict[str, torch.Tensor]):
    """The inverse of :func:`pack`."""
    if isinstance(data, dict):
        if "__tensor__" in data:
            return tensors[data["__tensor__"]]
        if "__tuple__" in data:
            return tuple(unpack(x, tensors) for x in data["__tuple__"])
        return {key: unpack(value, tensors) for key, value in data["__dict__"]}
    if isinstance(data, list):
        return [unpack(x, tensors) for x in data]
    return data


def export_state(run_dir: str | Path, dest: str | Path | None = None) -> Path:
    """Write the run's current checkpoint (and its logs) to ``dest``, by default
    ``models/resumable/<run folder name>/``. Returns the folder."""
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    ckpt, _ = load_checkpoint(run_dir / "checkpoint.pt", fallback=False, quiet=True)
    dest = Path(dest) if dest is not None else resumable_root() / run_dir.name
    dest.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = pack(ckpt, tensors)
    save_file(tensors, str(dest / TENSORS))
    (dest / f"{TENSORS}.sha256").write_text(f"{sha256_file(dest / TENSORS)}  {TENSORS}\n")
    (dest / SKELETON).write_text(json.dumps(skeleton, indent=1) + "\n")
    for name in LOGS:
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, dest / name)
    return dest


def committed_step(src: str | Path) -> int:
    """The training step of a committed state."""
    data = json.loads((Path(src) / SKELETON).read_text())
    return dict(data["__dict__"])["step"]


def import_state(src: str | Path) -> dict:
    """The checkpoint dict of a committed state, its checksum verified."""
    from safetensors.torch import load_file

    src = Path(src)
    path = src / TENSORS
    sidecar = src / f"{TENSORS}.sha256"
    if not path.exists() or not sidecar.exists():
        raise CheckpointError(f"{src} holds no committed training state ({TENSORS} and its "
                              f".sha256)")
    expected = sidecar.read_text().split()[0]
    if sha256_file(path) != expected:
        raise CheckpointError(f"{path} does not match its SHA-256 in {sidecar.name}: the committed "
                              "training state is damaged; restore it from git")
    return unpack(json.loads((src / SKELETON).read_text()), load_file(str(path)))


def seed_run_dir(cfg: Config, run_dir: Path, root: Path | None = None) -> int | None:
    """If the run folder has no checkpoint and a state of ``cfg``'s identity is committed, write it
    into the folder as its checkpoint (with the logs) and return its step; else None."""
    src = (root or resumable_root()) / cfg.run_name()
    if (run_dir / "checkpoint.pt").exists() or not (src / TENSORS).exists():
        return None
    ckpt = import_state(src)
    if from_dict(ckpt["config"]).identity() != cfg.identity():
        raise CheckpointError(f"{src} holds a state of identity {ckpt['identity']}, not "
                              f"{cfg.identity()}")
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in LOGS:
        if (src / name).exists():
            shutil.copyfile(src / name, run_dir / name)
    save_checkpoint(ckpt, run_dir / "checkpoint.pt")
    return int(ckpt["step"])
