"""The training loop: Alg. 1 over the data order, with checkpoints, resume and outputs.

    python -m ihdm_core train --preset mnist-quick
    torchrun --nproc_per_node 4 -m ihdm_core train --preset cifar10      # DDP

Runs are cached by config identity under ``runs_root()/<name>-<identity>/``: calling
``train`` with a config that already finished returns at once, a partial run resumes.
:func:`ensure_trained` is what chapters call: the shipped or cached run, trained if missing.

Exact resume: the data order is a pure function of (seed, step) and every step reseeds its
random generators from (seed, rank, step), so a resumed run draws exactly the levels, noise
and dropout masks the uninterrupted run would have. RNG states are saved too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from ..model.losses import denoising_loss
from ..model.images import check_images, to_float
from .batches import IndexStream, batches
from .build import build_process, resolve_device
from .checkpoints import (CHECKPOINT, RunLock, RunLocked, forget_snapshots_after, load_checkpoint,
                          remove_temporaries, rotate_snapshots, save_checkpoint, snapshots,
                          write_snapshot)
from .checks import ConfigError
from .config import Config, from_dict
from .data import DatasetUnavailable, load_dataset
from .generate import sample_seeds, save_grid
from .hardware import hardware_record
from .log import METRICS, TrainingLog, trim_metrics
from .paths import run_dir_for
from .resumable import seed_run_dir
from .runs import HARDWARE, Run, load_run, uses_shipped
from .step import TrainState, construct, optimiser_step, restore, rng_state, wrap

__all__ = ["train", "TrainResult", "ensure_trained", "dist_info"]


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    reused: bool
    last_loss: float | None = None

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / CHECKPOINT


def dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local


def _under_launcher() -> bool:
    """Started by torchrun (or another env:// launcher): then the process group and the DDP wrapper
    are used even for one process, so a 1-process launch runs the same code as a multi-GPU one."""
    return "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def _step_seed(seed: int, rank: int, step: int) -> int:
    return ((seed * 1_000_003 + rank) * 1_000_000_007 + step) % (2**62)


def _held_out(cfg: Config, images, n: int) -> tuple[Tensor, str]:
    """The first ``n`` test-split images (uint8); the training images where there is no test
    split."""
    try:
        data, split = load_dataset(cfg.data, split="test"), "test"
    except (ValueError, DatasetUnavailable):
        print(f"[ihdm] {cfg.data.dataset} has no test split: the held-out loss uses {n} training "
              f"images",
              file=sys.stderr)
        data, split = images, "train"
    n = min(n, len(data))
    held = data[:n] if isinstance(data, Tensor) else torch.stack([data[i] for i in range(n)])
    return held, split


@torch.no_grad()
def _eval_loss(ema, process, held: Tensor, batch_size: int, seed: int, device) -> float:
    """Mean loss of the EMA network on the held-out images. The levels and noise come from a
    generator seeded the same at every evaluation, so successive values differ by the weights
    only."""
    gen = torch.Generator(device=device).manual_seed(seed + 2**31)
    total = 0.0
    for i in range(0, len(held), batch_size):
        x0 = to_float(held[i:i + batch_size].to(device))
        total += float(denoising_loss(ema, process, x0, generator=gen)[0].sum())
    return total / len(held)


def _write_grid(path: Path, cfg: Config, ema, process, images, step: int, run_dir: Path) -> None:
    """A PNG grid of the EMA network's samples for seeds 0..grid_n-1, the same seeds at every
    step."""
    run = Run(ema, process, cfg, step, run_dir)
    seeds = range(cfg.train.grid_n)
    save_grid(sample_seeds(run, seeds, batch_size=cfg.train.grid_n, images=images), path)


# --- the loop ------------------------------------------------------------------------------
def train(cfg: Config, *, run_dir: str | Path | None = None, device=None, data=None,
          stop_at: int | None = None, progress: bool = True) -> TrainResult:
    """Train ``cfg`` (or resume it, or reuse it if finished). Returns where the run lives.

    ``data``: training images to use instead of ``load_dataset(cfg.data)``.
    ``stop_at``: stop after this many total steps without a final checkpoint, as if the
    process had been killed (used to test resume).
    """
    rank, world, local_rank = dist_info()
    if device is None and torch.cuda.is_available():
        device = f"cuda:{local_rank}"
    device = resolve_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # Under torchrun the process group starts even for one process, so a 1-GPU launch runs the
    # same DDP path as a multi-GPU one. The backend follows the device actually used: an explicit
    # --device cuda:N used to get gloo.
    if (world > 1 or _under_launcher()) and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    tc = cfg.train
    # TrainConfig checks its own fields; the number of processes is known only here.
    if tc.batch_size % (world * tc.accum_steps):
        raise ConfigError(f"train.batch_size={tc.batch_size} is not allowed with {world} "
                          f"processes and "
                          f"train.accum_steps={tc.accum_steps}: it must be a multiple of "
                          f"{world * tc.accum_steps}")

    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(cfg)
    # One trainer per run folder: a second one would interleave checkpoints and logs.
    try:
        lock = RunLock(run_dir).acquire() if rank == 0 else None
    except RunLocked:
        # Readers of a finished run (chapters run side by side) may meet each other here: only
        # training needs the folder to itself.
        ckpt_path = run_dir / CHECKPOINT
        if ckpt_path.exists():
            ckpt = load_checkpoint(ckpt_path, quiet=True)[0]
            if from_dict(ckpt["config"]).identity() == cfg.identity() and ckpt["step"] >= tc.steps:
                return TrainResult(run_dir, ckpt["step"], reused=True,
                                   last_loss=ckpt.get("last_loss"))
        raise
    try:
        return _train_locked(cfg, run_dir, device, data, stop_at, progress, rank, world)
    finally:
        if lock is not None:
            lock.release()


# --- the run behind the lock: its parts, then the loop -----------------------------------------
def _every(n: int, done: int) -> bool:
    return n > 0 and done % n == 0


def _find_checkpoint(cfg: Config, run_dir: Path, rank: int) -> tuple[dict | None, int | None]:
    """The checkpoint to resume from (the one in place, else the newest good snapshot), and the step
    of the one in place, which becomes a snapshot on the next save unless it is damaged."""
    ckpt_path = run_dir / CHECKPOINT
    if rank == 0:
        # a save cut short by a kill; we hold the lock, so nobody writes them
        remove_temporaries(run_dir)
        if not snapshots(run_dir):  # a fresh folder continues a state committed to the repository
            seed_run_dir(cfg, run_dir)
    if not (ckpt_path.exists() or snapshots(run_dir)):
        return None, None
    ckpt, source = load_checkpoint(ckpt_path, quiet=rank != 0)
    if from_dict(ckpt["config"]).identity() != cfg.identity():
        raise RuntimeError(f"{ckpt_path} belongs to a different config; refusing to mix runs")
    return ckpt, (ckpt["step"] if source == ckpt_path else None)


def _prepare_run_dir(cfg: Config, run_dir: Path, start: int) -> None:
    """The run's config, and its log and snapshots cut back to the step we start from."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=list))
    trim_metrics(run_dir / METRICS, start)
    forget_snapshots_after(run_dir, start)
    with open(run_dir / HARDWARE, "a") as fh:  # where this stretch of the run is trained
        fh.write(json.dumps({"from_step": start, **hardware_record()}) + "\n")


class _Saver:
    """Writes the checkpoint (rank 0) and, every ``snapshot_every`` steps, a snapshot; all ranks
    wait
    for it under DDP. ``saved_step`` is the step of the checkpoint in place (rank 0)."""

    def __init__(self, cfg: Config, run_dir: Path, state: TrainState, device, rank: int, world: int,
                 ddp, saved_step: int | None):
        self.cfg, self.run_dir, self.state, self.device = cfg, run_dir, state, device
        self.rank, self.world, self.ddp, self.saved_step = rank, world, ddp, saved_step
        self.path = run_dir / CHECKPOINT

    def __call__(self, step: int, last_loss: float | None, eval_loss: float | None) -> None:
        tc, s = self.cfg.train, self.state
        if self.rank == 0:
            # Plain Python types and tensors only, so that it loads with
            # torch.load(weights_only=True).
            save_checkpoint({
                "step": step, "config": self.cfg.to_dict(), "identity": self.cfg.identity(),
                "model": s.net.state_dict(), "ema": s.ema.state_dict(),
                "optimizer": s.opt.state_dict(),
                "scaler": s.scaler.state_dict(), "rng": rng_state(self.device),
                "last_loss": last_loss,
                "torch_version": str(torch.__version__), "world_size": self.world,
                "dist_backend": dist.get_backend() if self.ddp is not None else None,
            }, self.path, prev_step=self.saved_step)
            self.saved_step = step
            if _every(tc.snapshot_every, step):
                write_snapshot(self.run_dir, step, eval_loss)
                rotate_snapshots(self.run_dir, tc.keep_snapshots)
        if self.ddp is not None:
            dist.barrier()


class _LossMeter:
    """The step losses since the last log record, kept on the device so that the loop syncs with
    the host once per log interval; the progress bar and the log (both on rank 0 only)."""

    def __init__(self, cfg: Config, run_dir: Path, start: int, rank: int, progress: bool):
        self.name, self.pending, self.last_loss = cfg.name, [], None
        self.t_log = time.perf_counter()
        self.bar = None
        if progress and rank == 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=cfg.train.steps, initial=start, desc=cfg.name, dynamic_ncols=True)
        self.log = TrainingLog(run_dir, start, cfg.train.tensorboard) if rank == 0 else None

    def add(self, loss: Tensor, done: int, lr: float, flush: bool, ckpt_path: Path) -> None:
        self.pending.append(loss.detach())
        if flush:
            self._flush(done, lr, ckpt_path)
        if self.bar is not None:
            self.bar.update(1)

    def _flush(self, done: int, lr: float, ckpt_path: Path) -> None:
        vals = torch.stack(self.pending).float().cpu()  # the host sync
        self.pending.clear()
        if not torch.isfinite(vals).all():
            raise FloatingPointError(
                f"{self.name}: loss became {vals[~torch.isfinite(vals)][0].item()} between steps "
                f"{done - len(vals) + 1} and {done}; the last good checkpoint is {ckpt_path} "
                f"(try a lower lr, amp='none', or a longer warmup)")
        self.last_loss = float(vals.mean())
        if self.log is not None:
            now = time.perf_counter()
            self.log.write({"step": done, "loss": self.last_loss, "lr": lr, "losses": vals.tolist(),
                            "steps_per_s": len(vals) / max(now - self.t_log, 1e-9)})
            self.t_log = now
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{self.last_loss:.4g}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.log is not None:
            self.log.close()


class _Outputs:
    """What the loop writes besides checkpoints (rank 0): the held-out loss, which a snapshot needs
    to compete for "best", and the sample grids."""

    def __init__(self, cfg: Config, run_dir: Path, images, process, state: TrainState, rank: int,
                 meter: _LossMeter):
        tc = cfg.train
        self.cfg, self.run_dir, self.images, self.process = cfg, run_dir, images, process
        self.state, self.rank, self.meter = state, rank, meter
        self.held = self.split = None
        if rank == 0 and (tc.eval_every or tc.snapshot_every):
            self.held, self.split = _held_out(cfg, images, tc.eval_n)

    def after(self, done: int) -> float | None:
        """Write the outputs due after step ``done``; returns its held-out loss, if measured."""
        tc, eval_loss, ema = self.cfg.train, None, self.state.ema
        if self.held is not None and (_every(tc.eval_every, done)
                                      or _every(tc.snapshot_every, done)):
            eval_loss = _eval_loss(ema, self.process, self.held, tc.batch_size, tc.seed,
                                   self.process.device)
            self.meter.log.write({"kind": "eval", "step": done, "eval_loss": eval_loss,
                                  "n": len(self.held), "split": self.split})
        if self.rank == 0 and _every(tc.grid_every, done):
            _write_grid(self.run_dir / "grids" / f"step{done}.png", self.cfg, ema, self.process,
                        self.images, done, self.run_dir)
        return eval_loss


@contextlib.contextmanager
def _sigterm_flag():
    """A list that gets an entry on SIGTERM (a scheduler's pre-emption, `kill`), so the loop can
    finish its step and save it; the previous handler comes back afterwards."""
    terminate, old_handler = [], None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGTERM, lambda *_: terminate.append(True))
    try:
        yield terminate
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)


def _train_locked(cfg: Config, run_dir: Path, device: torch.device, data, stop_at: int | None,
                  progress: bool, rank: int, world: int) -> TrainResult:
    tc = cfg.train
    # Resume: from the checkpoint in place, or reuse a finished run as it is.
    ckpt, saved_step = _find_checkpoint(cfg, run_dir, rank)
    if ckpt is not None and ckpt["step"] >= tc.steps:
        if rank == 0 and progress:
            print(f"[ihdm] reusing finished run {run_dir} (step {ckpt['step']})", file=sys.stderr)
        return TrainResult(run_dir, ckpt["step"], reused=True, last_loss=ckpt.get("last_loss"))

    # The data set; the process, the network, its EMA and the optimiser, restored on resume.
    images = data if data is not None else load_dataset(cfg.data)
    process = build_process(cfg, device)
    state = construct(cfg, device)
    start = 0
    if ckpt is not None:
        start = restore(state, ckpt, device)
        if rank == 0 and progress:
            print(f"[ihdm] resuming {run_dir} from step {start}", file=sys.stderr)
    if rank == 0:
        _prepare_run_dir(cfg, run_dir, start)
    model, ddp = wrap(state, device, tc.compile)

    # Data order, outputs (log, progress bar, held-out loss, grids) and checkpoints.
    end = tc.steps if stop_at is None else min(stop_at, tc.steps)
    workers = tc.num_workers if not isinstance(images, Tensor) else 0
    stream = batches(images, IndexStream(len(images), tc.seed), start, tc.batch_size, rank, world,
                     device, workers)
    meter = _LossMeter(cfg, run_dir, start, rank, progress)
    outputs = _Outputs(cfg, run_dir, images, process, state, rank, meter)
    save = _Saver(cfg, run_dir, state, device, rank, world, ddp, saved_step)
    try:
        with _sigterm_flag() as terminate:
            _steps(cfg, state, model, ddp, process, stream, range(start, end), meter, outputs, save,
                   terminate, rank)
    finally:
        meter.close()
    return TrainResult(run_dir, end, reused=False, last_loss=meter.last_loss)


def _steps(cfg: Config, state: TrainState, model, ddp, process, stream, steps: range,
           meter: _LossMeter, outputs: _Outputs, save: _Saver, terminate: list, rank: int) -> None:
    """The loop proper: steps ``steps``, each followed by its outputs and checkpoint."""
    tc, gen = cfg.train, torch.Generator(device=process.device)
    completed, eval_loss = steps.start, None
    state.net.train()
    try:
        for step in steps:
            # Reseed from (seed, rank, step): a resumed run draws what the uninterrupted one would.
            seed = _step_seed(tc.seed, rank, step)
            gen.manual_seed(seed)
            torch.manual_seed(seed)  # dropout masks
            x0 = next(stream)
            if step == steps.start:
                check_images(x0, cfg.data.channels)
            lr, loss = optimiser_step(cfg, state, model, ddp, process, x0, step, gen)
            completed = done = step + 1
            flush = done % tc.log_every == 0 or done == steps.stop
            meter.add(loss, done, lr, flush=flush, ckpt_path=save.path)
            eval_loss = outputs.after(done)
            if (done % tc.ckpt_every == 0 or done == tc.steps or _every(tc.snapshot_every, done)
                    or terminate):
                save(done, meter.last_loss, eval_loss)
            if terminate:
                if rank == 0:
                    print(f"[ihdm] SIGTERM: saved {save.path} at step {done}; resume by running "
                          "the same command", file=sys.stderr)
                raise SystemExit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        if completed > steps.start and completed != save.saved_step:
            # the last completed step, never a half-done one
            save(completed, meter.last_loss, eval_loss)
        raise


def ensure_trained(cfg: Config, device=None, progress: bool = True, retrain: bool | None = None,
                   **kw) -> Run:
    """The EMA weights of ``cfg``: the shipped model of its identity if one ships (see
    :mod:`ihdm_core.training.shipped`), else trained here (resuming a partial run, reusing a
    finished one). ``retrain=True`` (or ``IHDM_RETRAIN=1``) ignores shipped weights and trains
    into runs/."""
    if "run_dir" not in kw and uses_shipped(cfg, retrain):
        return load_run(cfg, device=device, retrain=retrain)
    train(cfg, device=device, progress=progress, **kw)
    return load_run(cfg if "run_dir" not in kw else kw["run_dir"], device=device, retrain=True)
