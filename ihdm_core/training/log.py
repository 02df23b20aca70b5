"""The training log: ``metrics.jsonl`` in the run folder (and, when asked for, TensorBoard).

One JSON record per log interval (``step``, ``loss``, ``losses``, ``lr``, ``steps_per_s``) and one
per held-out evaluation (``kind: "eval"``). Written by the trainer, read by the chapters, the
model cards and the book's status pages.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["METRICS", "read_metrics", "training_seconds", "trim_metrics", "TrainingLog"]

METRICS = "metrics.jsonl"


def trim_metrics(path: Path, step: int) -> None:
    """Drop log records past the checkpoint we resume from (they will be logged again)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if line and json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            pass  # the half-written last record of a killed process
    path.write_text("".join(line + "\n" for line in keep))


def read_metrics(run_dir, kind: str | None = "train") -> list[dict]:
    """The training log: one dict per log interval with ``step``, ``loss``, ``losses``, ``lr``...

    ``kind="eval"``: the held-out loss records instead (``step``, ``eval_loss``, ``n``, ``split``);
    ``kind=None``: every record. Training records carry no ``kind`` key (logs written before
    there were other kinds read the same)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    recs = [json.loads(line) for line in path.read_text().splitlines() if line]
    return recs if kind is None else [r for r in recs if r.get("kind", "train") == kind]


def training_seconds(run_dir) -> float:
    """Wall time the logged training steps took (each log record covers ``len(losses)`` steps)."""
    return sum(len(r["losses"]) / r["steps_per_s"] for r in read_metrics(run_dir)
               if r.get("steps_per_s"))


class TrainingLog:
    """Appends records to metrics.jsonl and, when asked for, the same records to TensorBoard."""

    def __init__(self, run_dir: Path, start: int, tensorboard: bool):
        self.path, self.tb = run_dir / METRICS, None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("[ihdm] train.tensorboard=true but TensorBoard is not installed (pip "
                      "install 'ihdm-core[tb]'); "
                      "logging to metrics.jsonl only", file=sys.stderr)
            else:
                # purge_step drops events past the step we resume from, as trim_metrics does.
                self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start + 1)

    def write(self, rec: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        if self.tb is not None:
            kind = rec.get("kind", "train")
            for key in ("loss", "lr", "steps_per_s", "eval_loss"):
                if key in rec:
                    self.tb.add_scalar(f"{kind}/{key}", rec[key], rec["step"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
