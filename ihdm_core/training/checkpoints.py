"""Checkpoints that survive faults, and one trainer per run folder.

* :func:`save_checkpoint` writes ``checkpoint.pt`` atomically (temporary file, fsync, rename) with a
  SHA-256 sidecar ``checkpoint.pt.sha256`` (``sha256sum`` format). The checkpoint it replaces stays
  as the numbered snapshot ``checkpoint-<step>.pt`` (a hard link: no copy), so a checkpoint damaged
  later still leaves the one before it.
* :func:`load_checkpoint` verifies the sidecar and loads with ``torch.load(weights_only=True)``; a
  damaged file falls back to the newest intact snapshot (said on stderr), or is a
  :class:`CheckpointError` naming the file. Checkpoints written before sidecars existed load as
  before (``weights_only=False``: they are our own files).
* Numbered snapshots on purpose (``train.snapshot_every``): :func:`write_snapshot` keeps the
  checkpoint of a step as ``checkpoint-<step>.pt`` too and notes its held-out loss in
  ``snapshots.json``; :func:`rotate_snapshots` keeps the last M of them plus the best. They are the
  same files the fault fallback reads, so they are fallbacks as well.
* :class:`RunLock`: a lock file holding the trainer's PID; a second trainer of the same folder gets
  :class:`RunLocked` naming that PID, and the lock of a process that died is taken over.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import sys
from pathlib import Path

import torch

__all__ = ["CHECKPOINT", "LOCK", "CheckpointError", "RunLocked", "RunLock", "save_checkpoint",
           "load_checkpoint",
           "verify_checkpoint", "snapshots", "sha256_file", "sidecar", "remove_temporaries",
           "write_snapshot",
           "rotate_snapshots", "list_snapshots", "forget_snapshots_after", "SNAPSHOT_INDEX"]

CHECKPOINT = "checkpoint.pt"
LOCK = "train.lock"
KEEP_SNAPSHOTS = 1  # previous checkpoints kept besides checkpoint.pt
SNAPSHOT_INDEX = "snapshots.json"  # {step: held-out loss or null} of the snapshots kept on purpose
_SNAPSHOT = re.compile(r"^checkpoint-(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint is truncated, corrupt or unreadable and no intact snapshot is left."""


class RunLocked(RuntimeError):
    """Another live process is training this run folder."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sidecar(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _digests(path: Path) -> list[str]:
    """The digests the sidecar of ``path`` accepts (two while a save is between its renames)."""
    side = sidecar(path)
    if not side.exists():
        return []
    out = []
    for line in side.read_text().splitlines():
        parts = line.split()
        if parts and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            out.append(parts[0])
    return out


def _write_sidecar(path: Path, digests: list[str]) -> None:
    _write_atomic(sidecar(path), "".join(f"{d}  {path.name}\n" for d in digests).encode())


def snapshots(run_dir: str | Path) -> list[tuple[int, Path]]:
    """The numbered snapshots of a run folder, newest first."""
    run_dir = Path(run_dir)
    found = []
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            m = _SNAPSHOT.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
    return sorted(found, reverse=True)


def save_checkpoint(obj: dict, path: str | Path, prev_step: int | None = None) -> Path:
    """Write ``obj`` to ``path`` atomically with its SHA-256 sidecar.

    ``prev_step``: the step of the checkpoint now at ``path`` (None: there is none we trust); it
    stays as the snapshot ``checkpoint-<prev_step>.pt``. A failure (full disk, ...) leaves the
    previous checkpoint and its sidecar as they were."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        new = sha256_file(tmp)
        old = []
        if path.exists() and prev_step is not None:
            old = _digests(path) or [sha256_file(path)]  # a legacy checkpoint has no sidecar yet
            snap = path.with_name(f"checkpoint-{prev_step:08d}.pt")
            if not snap.exists():
                try:
                    os.link(path, snap)
                    _write_sidecar(snap, old[:1])
                except OSError:  # no hard links on this file system: keep no snapshot
                    pass
        # Until the rename below, path still holds the old file: the sidecar accepts both.
        _write_sidecar(path, [new] + old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        _write_sidecar(path, [new])
    finally:
        if tmp.exists():
            tmp.unlink()
    _prune_fallbacks(path.parent)
    return path


def _snapshot_path(run_dir: Path, step: int) -> Path:
    return run_dir / f"checkpoint-{step:08d}.pt"


def _remove(snap: Path) -> None:
    snap.unlink(missing_ok=True)
    sidecar(snap).unlink(missing_ok=True)


def _read_index(run_dir: Path) -> dict[int, float | None]:
    path = Path(run_dir) / SNAPSHOT_INDEX
    if not path.exists():
        return {}
    try:
        return {int(k): v for k, v in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError):  # damaged: the snapshots stay, only "best" is forgotten
        return {}


def _write_index(run_dir: Path, index: dict[int, float | None]) -> None:
    _write_atomic(Path(run_dir) / SNAPSHOT_INDEX,
                  json.dumps({str(k): index[k] for k in sorted(index)}, indent=1).encode())


def _prune_fallbacks(run_dir: Path) -> None:
    """Keep the newest KEEP_SNAPSHOTS fallbacks (numbered files not in the index), and those only
    while they are newer than every snapshot kept on purpose: an older one would never be the
    newest intact file that :func:`load_checkpoint` falls back to."""
    kept = _read_index(run_dir)
    newest_kept = max((s for s in kept if _snapshot_path(run_dir, s).exists()), default=-1)
    fallbacks = [(s, p) for s, p in snapshots(run_dir) if s not in kept]
    for i, (step, snap) in enumerate(fallbacks):
        if i >= KEEP_SNAPSHOTS or step <= newest_kept:
            _remove(snap)


def write_snapshot(run_dir: str | Path, step: int, eval_loss: float | None = None,
                   obj: dict | None = None) -> Path:
    """Keep the checkpoint of ``step`` as the snapshot ``checkpoint-<step>.pt`` with its sidecar and
    note its held-out loss (None: not measured) in ``snapshots.json``. ``obj``: the checkpoint to
    write; None: ``checkpoint.pt``, just saved at ``step``, is hard-linked (copied where links
    fail)."""
    run_dir = Path(run_dir)
    snap = _snapshot_path(run_dir, step)
    _remove(snap)
    if obj is None:
        src = run_dir / CHECKPOINT
        digest = (_digests(src) or [sha256_file(src)])[0]
        try:
            os.link(src, snap)
        except OSError:
            _write_atomic(snap, src.read_bytes())
    else:
        buf = io.BytesIO()
        torch.save(obj, buf)
        _write_atomic(snap, buf.getvalue())
        digest = sha256_file(snap)
    _write_sidecar(snap, [digest])
    index = _read_index(run_dir)
    index[step] = None if eval_loss is None else float(eval_loss)
    _write_index(run_dir, index)
    return snap


def rotate_snapshots(run_dir: str | Path, keep: int) -> list[int]:
    """Delete the snapshots kept on purpose except the newest ``keep`` and the one with the lowest
    held-out loss (the earliest of equals). Returns the steps kept, ascending."""
    run_dir = Path(run_dir)
    index = _read_index(run_dir)
    index = {s: v for s, v in index.items() if _snapshot_path(run_dir, s).exists()}
    steps = sorted(index)
    stay = set(steps[-keep:]) if keep > 0 else set()
    scored = [(v, s) for s, v in index.items() if v is not None]
    if scored:
        stay.add(min(scored)[1])
    for s in steps:
        if s not in stay:
            _remove(_snapshot_path(run_dir, s))
    _write_index(run_dir, {s: index[s] for s in stay})
    _prune_fallbacks(run_dir)
    return sorted(stay)


def list_snapshots(run_dir: str | Path) -> list[dict]:
    """The snapshots kept on purpose, ascending: dicts with ``step``, ``path`` and ``eval_loss``."""
    run_dir = Path(run_dir)
    return [{"step": s, "path": _snapshot_path(run_dir, s), "eval_loss": v}
            for s, v in sorted(_read_index(run_dir).items()) if _snapshot_path(run_dir, s).exists()]


def forget_snapshots_after(run_dir: str | Path, step: int) -> None:
    """On resume from ``step``: drop later snapshots kept on purpose (the resumed run writes them
    again, and their held-out losses must not compete with the new ones)."""
    run_dir = Path(run_dir)
    index = _read_index(run_dir)
    later = [s for s in index if s > step]
    if later:
        for s in later:
            _remove(_snapshot_path(run_dir, s))
            del index[s]
        _write_index(run_dir, index)


def remove_temporaries(run_dir: str | Path) -> list[Path]:
    """Delete the half-written files a killed save left (``*.tmp<pid>``). Call it holding the lock:
    then no other process is writing them."""
    run_dir = Path(run_dir)
    gone = [p for p in run_dir.glob("*.tmp[0-9]*") if p.is_file()] if run_dir.is_dir() else []
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


def verify_checkpoint(path: str | Path) -> bool | None:
    """True: the sidecar matches; False: it does not (the file is damaged); None: no sidecar
    (legacy)."""
    digests = _digests(Path(path))
    if not digests:
        return None
    return sha256_file(path) in digests


def _load_one(path: Path) -> dict:
    ok = verify_checkpoint(path)
    if ok is False:
        raise CheckpointError(f"{path} does not match its checksum {sidecar(path).name}: the file "
                              f"is truncated "
                              f"or corrupt")
    try:
        if ok:
            return torch.load(path, map_location="cpu", weights_only=True)
        # legacy: written by this code
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise CheckpointError(f"{path} cannot be read ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}); "
                              f"the file is truncated or corrupt") from None


def load_checkpoint(path: str | Path, fallback: bool = True, quiet: bool = False) -> tuple[dict,
    Path]:
    """The checkpoint at ``path``, verified; if it is damaged, the newest intact numbered snapshot
    beside it (with a note on stderr). Returns (checkpoint, the file it came from)."""
    path = Path(path)
    try:
        return _load_one(path), path
    except CheckpointError as err:
        first = err
    if fallback:
        for step, snap in snapshots(path.parent):
            try:
                ckpt = _load_one(snap)
            except CheckpointError:
                continue
            if not quiet:
                print(f"[ihdm] {first}; falling back to the newest intact snapshot {snap.name} "
                      f"(step {step})",
                      file=sys.stderr)
            return ckpt, snap
        raise CheckpointError(f"{first}, and no intact snapshot (checkpoint-<step>.pt) is left in "
                              f"{path.parent}; "
                              f"delete the run folder to train from scratch") from None
    raise first


# --- one trainer per run folder ------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """``with RunLock(run_dir):`` holds ``run_dir/train.lock`` (this process's PID and host)."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK
        self.held = False

    def _holder(self) -> tuple[int | None, str | None]:
        return self._read(self.path)

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = f"{os.getpid()} {socket.gethostname()}\n"
        tmp = self.path.with_name(f"{LOCK}.{os.getpid()}")
        tmp.write_text(me)
        try:
            for _ in range(100):
                try:
                    # atomic: fails if a lock exists, and never leaves it half written
                    os.link(tmp, self.path)
                    self.held = True
                    return self
                except FileExistsError:
                    pass
                pid, host = self._holder()
                if pid is None:
                    continue  # removed meanwhile (or unreadable): try again
                if pid == os.getpid() and host == socket.gethostname():
                    raise RunLocked(f"{self.path.parent} is already being trained by this process "
                                    f"({pid})")
                if host not in (None, socket.gethostname()) or _alive(pid):
                    where = "" if host in (None, socket.gethostname()) else f" on {host}"
                    raise RunLocked(f"{self.path.parent} is being trained by process {pid}{where} "
                                    f"(lock {self.path}); wait for it to finish or stop it")
                # The holder died without releasing: move its lock aside (only one process wins the
                # rename) and try again.
                stale = self.path.with_name(f"{LOCK}.stale{os.getpid()}")
                try:
                    os.replace(self.path, stale)
                except FileNotFoundError:
                    continue
                if self._read(stale)[0] != pid:  # someone else took over in between: give it back
                    try:
                        os.link(stale, self.path)
                    except FileExistsError:
                        pass
                stale.unlink(missing_ok=True)
                print(f"[ihdm] took over the stale lock of process {pid} (no longer running) on "
                      f"{self.path.parent}",
                      file=sys.stderr)
            raise RunLocked(f"could not take the lock {self.path}")
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _read(path: Path) -> tuple[int | None, str | None]:
        try:
            parts = path.read_text().split()
            return int(parts[0]), (parts[1] if len(parts) > 1 else None)
        except (OSError, ValueError, IndexError):
            return None, None

    def release(self) -> None:
        if self.held and self._read(self.path) == (os.getpid(), socket.gethostname()):
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
