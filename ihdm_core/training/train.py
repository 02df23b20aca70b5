"""The training loop (commented sections over small helpers), checkpoints and the train CLI.

    python -m ihdm_core train --preset mnist-quick
    torchrun --nproc_per_node 4 -m ihdm_core train --preset cifar10      # DDP

Runs are cached by config identity under ``runs_root()/<name>-<identity>/``: calling
``train`` with a config that already finished returns at once, a partial run resumes.

Exact resume: the data order is a pure function of (seed, step) and every step reseeds its
random generators from (seed, rank, step), so a resumed run draws exactly the levels, noise
and dropout masks the uninterrupted run would have. RNG states are saved too.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
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

from .resumable import seed_run_dir
from .checkpoints import (CHECKPOINT, RunLock, RunLocked, forget_snapshots_after, load_checkpoint, remove_temporaries,
                          rotate_snapshots, save_checkpoint, snapshots, write_snapshot)
from .config import Config, ConfigError, from_dict, get_preset, parse_value, runs_root
from .data import DatasetUnavailable, check_images, load_dataset, to_float
from ..model.losses import denoising_loss, squared_error, training_batch
from .build import build_model, build_process
from ..model.unet import Autocast

__all__ = ["train", "TrainResult", "load_run", "Run", "ensure_trained", "is_available", "sampling_process",
           "read_metrics", "training_seconds", "run_dir_for", "IndexStream"]

METRICS = "metrics.jsonl"


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    reused: bool
    last_loss: float | None = None

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / CHECKPOINT


def run_dir_for(cfg: Config) -> Path:
    return runs_root() / cfg.run_name()


# --- data order --------------------------------------------------------------------------
class IndexStream:
    """An endless stream of sample indices: epoch e is a permutation seeded by (seed, e).

    Global batch s is positions [s*B, (s+1)*B) of the stream, so any step's batch can be
    recomputed without replaying the ones before it; rank r takes its contiguous share.
    """

    def __init__(self, n: int, seed: int):
        if n < 1:
            raise ValueError("empty data set")
        self.n, self.seed = n, seed
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._perm, self._epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def batch(self, step: int, batch_size: int, rank: int = 0, world: int = 1) -> Tensor:
        per = batch_size // world
        start = step * batch_size + rank * per
        out, pos = [], start
        while pos < start + per:
            epoch, off = divmod(pos, self.n)
            take = min(self.n - off, start + per - pos)
            out.append(self._permutation(epoch)[off:off + take])
            pos += take
        return torch.cat(out)


class _BatchSampler:
    def __init__(self, stream: IndexStream, start: int, batch_size: int, rank: int, world: int):
        self.stream, self.start, self.bs, self.rank, self.world = stream, start, batch_size, rank, world

    def __iter__(self):
        step = self.start
        while True:
            yield self.stream.batch(step, self.bs, self.rank, self.world).tolist()
            step += 1


def _batches(images, stream, start, batch_size, rank, world, device, num_workers):
    """Yields float [0, 1] batches on ``device`` for steps start, start+1, ..."""
    if isinstance(images, Tensor):
        # Small data sets live on the device whole: no loader, no host-device copy per step.
        data = images.to(device, non_blocking=True)
        step = start
        while True:
            idx = stream.batch(step, batch_size, rank, world).to(device, non_blocking=True)
            yield to_float(data[idx])
            step += 1
    loader = torch.utils.data.DataLoader(
        images, batch_sampler=_BatchSampler(stream, start, batch_size, rank, world),
        num_workers=num_workers, pin_memory=device.type == "cuda", persistent_workers=num_workers > 0)
    for batch in loader:
        yield to_float(batch.to(device, non_blocking=True))


# --- helpers -----------------------------------------------------------------------------
def _dist_info():
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


def ema_decay(decay: float, n: int, warmup: str = "release") -> float:
    """The EMA decay of the ``n``-th update (n = 1 for the first optimiser step). With the 2023
    release's warm-up (score_sde's before it), min(decay, (1 + n) / (10 + n)): early updates follow
    the network closely, so after N steps the EMA keeps a share prod_n decay_n of the random initial
    weights that is negligible, instead of decay^N (37 % after 1,000 steps at 0.999)."""
    if n < 1:
        raise ValueError(f"the EMA update number n={n} must be >= 1")
    if warmup == "none":
        return decay
    if warmup == "release":
        return min(decay, (1.0 + n) / (10.0 + n))
    raise ValueError(f"unknown EMA warm-up {warmup!r}; known: release, none")


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    ema_p = [p for p in ema.parameters()]
    net_p = [p.detach() for p in net.parameters()]
    torch._foreach_lerp_(ema_p, net_p, 1.0 - decay)
    for be, bn in zip(ema.buffers(), net.buffers()):
        be.copy_(bn)


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _trim_metrics(path: Path, step: int) -> None:
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
    return sum(len(r["losses"]) / r["steps_per_s"] for r in read_metrics(run_dir) if r.get("steps_per_s"))


def learning_rate(tc, step: int) -> float:
    """Linear warm-up from 0 (App. B.1), then constant (the paper) or a cosine decay to 0."""
    warm = min(1.0, (step + 1) / max(tc.warmup, 1))
    if tc.lr_schedule == "cosine" and step >= tc.warmup:
        frac = (step - tc.warmup) / max(tc.steps - tc.warmup, 1)
        return tc.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
    return tc.lr * warm


def _resolve_device(device) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --- training outputs: log (and TensorBoard), held-out loss, sample grids -----------------------
class _Log:
    """Appends records to metrics.jsonl and, when asked for, the same records to TensorBoard."""

    def __init__(self, run_dir: Path, start: int, tensorboard: bool):
        self.path, self.tb = run_dir / METRICS, None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("[ihdm] train.tensorboard=true but TensorBoard is not installed (pip install 'ihdm-core[tb]'); "
                      "logging to metrics.jsonl only", file=sys.stderr)
            else:
                # purge_step drops events past the step we resume from, as _trim_metrics does.
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


def _held_out(cfg: Config, images, n: int) -> tuple[Tensor, str]:
    """The first ``n`` test-split images (uint8); the training images where there is no test split."""
    try:
        data, split = load_dataset(cfg.data, split="test"), "test"
    except (ValueError, DatasetUnavailable):
        print(f"[ihdm] {cfg.data.dataset} has no test split: the held-out loss uses {n} training images",
              file=sys.stderr)
        data, split = images, "train"
    n = min(n, len(data))
    return (data[:n] if isinstance(data, Tensor) else torch.stack([data[i] for i in range(n)])), split


@torch.no_grad()
def _eval_loss(ema, process, held: Tensor, batch_size: int, seed: int, device) -> float:
    """Mean loss of the EMA network on the held-out images. The levels and noise come from a
    generator seeded the same at every evaluation, so successive values differ by the weights only."""
    gen = torch.Generator(device=device).manual_seed(seed + 2**31)
    total = 0.0
    for i in range(0, len(held), batch_size):
        x0 = to_float(held[i:i + batch_size].to(device))
        total += float(denoising_loss(ema, process, x0, generator=gen)[0].sum())
    return total / len(held)


def _write_grid(path: Path, cfg: Config, ema, process, images, step: int, run_dir: Path) -> None:
    """A PNG grid of the EMA network's samples for seeds 0..grid_n-1, the same seeds at every step."""
    from .generate import sample_seeds, save_grid  # here: generate imports this module

    run = Run(ema, process, cfg, step, run_dir)
    save_grid(sample_seeds(run, range(cfg.train.grid_n), batch_size=cfg.train.grid_n, images=images), path)


def _accumulated_step(model, opt, scaler, process, x0: Tensor, tc, gen: torch.Generator,
                      ddp=None) -> Tensor:
    """Backward passes for one optimiser step on ``x0`` in ``tc.accum_steps`` micro-batches; returns
    the batch's mean loss. The levels and noisy inputs of the whole batch are drawn first, by the
    ``training_batch`` that ``denoising_loss`` draws the full batch with, and each micro-batch's mean loss is weighted
    by its share, so the summed gradient is the full batch's."""
    import contextlib

    accum = tc.accum_steps
    inputs, target, k = training_batch(process, x0, gen)
    micro = x0.shape[0] // accum
    opt.zero_grad(set_to_none=True)
    total = torch.zeros((), device=x0.device)
    for j in range(accum):
        part = slice(j * micro, (j + 1) * micro)
        # Under DDP the gradient is all-reduced once, after the last micro-batch.
        sync = ddp is None or j == accum - 1
        with contextlib.nullcontext() if sync else ddp.no_sync():
            loss = squared_error(model, process, inputs[part], target[part], k[part]).mean() / accum
            scaler.scale(loss).backward()
        total += loss.detach()
    return total


# --- the loop ------------------------------------------------------------------------------
def train(cfg: Config, *, run_dir: str | Path | None = None, device=None, data=None,
          stop_at: int | None = None, progress: bool = True) -> TrainResult:
    """Train ``cfg`` (or resume it, or reuse it if finished). Returns where the run lives.

    ``data``: training images to use instead of ``load_dataset(cfg.data)``.
    ``stop_at``: stop after this many total steps without a final checkpoint, as if the
    process had been killed (used to test resume).
    """
    rank, world, local_rank = _dist_info()
    if device is None and torch.cuda.is_available():
        device = f"cuda:{local_rank}"
    device = _resolve_device(device)
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
        raise ConfigError(f"train.batch_size={tc.batch_size} is not allowed with {world} processes and "
                          f"train.accum_steps={tc.accum_steps}: it must be a multiple of {world * tc.accum_steps}")

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
                return TrainResult(run_dir, ckpt["step"], reused=True, last_loss=ckpt.get("last_loss"))
        raise
    try:
        return _train_locked(cfg, run_dir, device, data, stop_at, progress, rank, world)
    finally:
        if lock is not None:
            lock.release()


# --- the run behind the lock: its parts, then the loop -----------------------------------------
@dataclass
class _State:
    """What a checkpoint holds besides the step: the network, its EMA, the optimiser, the loss scaler."""
    net: torch.nn.Module
    ema: torch.nn.Module
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None  # the network's autocast precision (None: float32)


def _every(n: int, done: int) -> bool:
    return n > 0 and done % n == 0


def _find_checkpoint(cfg: Config, run_dir: Path, rank: int) -> tuple[dict | None, int | None]:
    """The checkpoint to resume from (the one in place, else the newest good snapshot), and the step
    of the one in place, which becomes a snapshot on the next save unless it is damaged."""
    ckpt_path = run_dir / CHECKPOINT
    if rank == 0:
        remove_temporaries(run_dir)  # a save cut short by a kill; we hold the lock, so nobody writes them
        if not snapshots(run_dir):  # a fresh folder continues a state committed to the repository
            seed_run_dir(cfg, run_dir)
    if not (ckpt_path.exists() or snapshots(run_dir)):
        return None, None
    ckpt, source = load_checkpoint(ckpt_path, quiet=rank != 0)
    if from_dict(ckpt["config"]).identity() != cfg.identity():
        raise RuntimeError(f"{ckpt_path} belongs to a different config; refusing to mix runs")
    return ckpt, (ckpt["step"] if source == ckpt_path else None)


def _construct(cfg: Config, device: torch.device) -> _State:
    tc = cfg.train
    cuda = device.type == "cuda"
    torch.manual_seed(tc.seed)  # same initial weights on every rank and every fresh start
    net = build_model(cfg).to(device)
    if tc.channels_last:  # faster convolutions on CUDA; on CPU it depends on the net (mnist presets: off)
        net = net.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=tc.lr, betas=(0.9, 0.999), eps=1e-8, fused=(cuda and tc.fused_adam) or None)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tc.amp) if cuda else None
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and tc.amp == "fp16")
    return _State(net, ema, opt, scaler, amp_dtype)


def _restore(state: _State, ckpt: dict, device: torch.device) -> int:
    """Load a checkpoint into ``state``, the random generators' states too; returns its step."""
    state.net.load_state_dict(ckpt["model"])
    state.ema.load_state_dict(ckpt["ema"])
    state.opt.load_state_dict(ckpt["optimizer"])
    state.scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    if device.type == "cuda" and "cuda" in ckpt["rng"]:
        torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
    return ckpt["step"]


def _prepare_run_dir(cfg: Config, run_dir: Path, start: int) -> None:
    """The run's config, and its log and snapshots cut back to the step we start from."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=list))
    _trim_metrics(run_dir / METRICS, start)
    forget_snapshots_after(run_dir, start)


def _wrap(state: _State, device: torch.device, compile: bool):
    """(the network as the loop calls it, the DDP wrapper or None). Reduced precision applies to the
    network only, never the blur; DDP is used whenever a process group runs, also for a 1-process
    torchrun launch, so that launch runs the multi-GPU path."""
    model, ddp = Autocast(state.net, state.amp_dtype), None
    if dist.is_initialized():
        ddp = torch.nn.parallel.DistributedDataParallel(
            state.net, device_ids=[device.index] if device.type == "cuda" else None)
        model = Autocast(ddp, state.amp_dtype)
    return (torch.compile(model) if compile else model), ddp


class _Saver:
    """Writes the checkpoint (rank 0) and, every ``snapshot_every`` steps, a snapshot; all ranks wait
    for it under DDP. ``saved_step`` is the step of the checkpoint in place (rank 0)."""

    def __init__(self, cfg: Config, run_dir: Path, state: _State, device, rank: int, world: int, ddp,
                 saved_step: int | None):
        self.cfg, self.run_dir, self.state, self.device = cfg, run_dir, state, device
        self.rank, self.world, self.ddp, self.saved_step = rank, world, ddp, saved_step
        self.path = run_dir / CHECKPOINT

    def __call__(self, step: int, last_loss: float | None, eval_loss: float | None) -> None:
        tc, s = self.cfg.train, self.state
        if self.rank == 0:
            # Plain Python types and tensors only, so that it loads with torch.load(weights_only=True).
            save_checkpoint({
                "step": step, "config": self.cfg.to_dict(), "identity": self.cfg.identity(),
                "model": s.net.state_dict(), "ema": s.ema.state_dict(), "optimizer": s.opt.state_dict(),
                "scaler": s.scaler.state_dict(), "rng": _rng_state(self.device), "last_loss": last_loss,
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
        self.name, self.pending, self.last_loss, self.t_log = cfg.name, [], None, time.perf_counter()
        self.bar = None
        if progress and rank == 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=cfg.train.steps, initial=start, desc=cfg.name, dynamic_ncols=True)
        self.log = _Log(run_dir, start, cfg.train.tensorboard) if rank == 0 else None

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


def _optimiser_step(cfg: Config, state: _State, model, ddp, process, x0: Tensor, step: int,
                    gen: torch.Generator) -> tuple[float, Tensor]:
    """One step of Alg. 1 on the batch ``x0``: flip augmentation, the learning rate, the (accumulated)
    backward pass, gradient clipping, the Adam step and the EMA update. Returns (lr, loss on device)."""
    tc = cfg.train
    if cfg.data.hflip:
        flip = torch.rand(x0.shape[0], device=x0.device, generator=gen) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
    if tc.channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    lr = learning_rate(tc, step)
    for group in state.opt.param_groups:
        group["lr"] = lr
    loss = _accumulated_step(model, state.opt, state.scaler, process, x0, tc, gen, ddp)
    if tc.grad_clip > 0:
        state.scaler.unscale_(state.opt)
        torch.nn.utils.clip_grad_norm_(state.net.parameters(), tc.grad_clip)
    state.scaler.step(state.opt)
    state.scaler.update()
    _ema_update(state.ema, state.net, ema_decay(tc.ema, step + 1, tc.ema_warmup))
    return lr, loss


def _train_locked(cfg: Config, run_dir: Path, device: torch.device, data, stop_at: int | None, progress: bool,
                  rank: int, world: int) -> TrainResult:
    tc = cfg.train
    # Resume: from the checkpoint in place, or reuse a finished run as it is.
    ckpt, saved_step = _find_checkpoint(cfg, run_dir, rank)
    if ckpt is not None and ckpt["step"] >= tc.steps:
        if rank == 0 and progress:
            print(f"[ihdm] reusing finished run {run_dir} (step {ckpt['step']})", file=sys.stderr)
        return TrainResult(run_dir, ckpt["step"], reused=True, last_loss=ckpt.get("last_loss"))

    # Load the data set; construct the process, the network, its EMA and the optimiser; restore them.
    images = data if data is not None else load_dataset(cfg.data)
    process = build_process(cfg, device)
    state = _construct(cfg, device)
    start = 0
    if ckpt is not None:
        start = _restore(state, ckpt, device)
        if rank == 0 and progress:
            print(f"[ihdm] resuming {run_dir} from step {start}", file=sys.stderr)
    if rank == 0:
        _prepare_run_dir(cfg, run_dir, start)
    model, ddp = _wrap(state, device, tc.compile)

    # Data order, outputs (log, progress bar, held-out images) and checkpoints.
    end = tc.steps if stop_at is None else min(stop_at, tc.steps)
    batches = _batches(images, IndexStream(len(images), tc.seed), start, tc.batch_size, rank, world, device,
                       tc.num_workers if not isinstance(images, Tensor) else 0)
    gen = torch.Generator(device=device)
    meter = _LossMeter(cfg, run_dir, start, rank, progress)
    held = split = None
    if rank == 0 and (tc.eval_every or tc.snapshot_every):
        held, split = _held_out(cfg, images, tc.eval_n)
    save = _Saver(cfg, run_dir, state, device, rank, world, ddp, saved_step)

    # SIGTERM (a scheduler's pre-emption, `kill`): finish the current step, save it, then exit.
    terminate, old_handler = [], None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGTERM, lambda *_: terminate.append(True))
    completed, eval_loss = start, None
    state.net.train()
    try:
        for step in range(start, end):
            # Reseed from (seed, rank, step): a resumed run draws what the uninterrupted one would.
            seed = _step_seed(tc.seed, rank, step)
            gen.manual_seed(seed)
            torch.manual_seed(seed)  # dropout masks
            x0 = next(batches)
            if step == start:
                check_images(x0, cfg.data.channels)
            lr, loss = _optimiser_step(cfg, state, model, ddp, process, x0, step, gen)
            completed = done = step + 1
            meter.add(loss, done, lr, flush=done % tc.log_every == 0 or done == end, ckpt_path=save.path)

            # Held-out loss (a snapshot needs one to compete for "best"), sample grid, checkpoint.
            eval_loss = None
            if held is not None and (_every(tc.eval_every, done) or _every(tc.snapshot_every, done)):
                eval_loss = _eval_loss(state.ema, process, held, tc.batch_size, tc.seed, device)
                meter.log.write({"kind": "eval", "step": done, "eval_loss": eval_loss, "n": len(held), "split": split})
            if rank == 0 and _every(tc.grid_every, done):
                _write_grid(run_dir / "grids" / f"step{done}.png", cfg, state.ema, process, images, done, run_dir)
            if done % tc.ckpt_every == 0 or done == tc.steps or _every(tc.snapshot_every, done) or terminate:
                save(done, meter.last_loss, eval_loss)
            if terminate:
                if rank == 0:
                    print(f"[ihdm] SIGTERM: saved {save.path} at step {done}; resume by running the same command",
                          file=sys.stderr)
                raise SystemExit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        if completed > start and completed != save.saved_step:
            save(completed, meter.last_loss, eval_loss)  # the last completed step, never a half-done one
        raise
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
        meter.close()
    return TrainResult(run_dir, end, reused=False, last_loss=meter.last_loss)


# --- loading trained runs ------------------------------------------------------------------
@dataclass
class Run:
    net: torch.nn.Module
    process: object
    cfg: Config
    step: int
    run_dir: Path            # the run's folder; for a shipped model, its score cache under runs/shipped/
    source: str = "trained"  # "trained" (runs/) or "shipped" (models/, see ihdm_core.training.shipped)

    def sampled_with(self, steps: int | None = None, **process) -> "Run":
        """The same weights sampled another way: ``steps`` for a continuous-time diffusion, and
        sampling options of ``process`` (``grid``, ``clamp_dct``, ``clip_denoised``) that are not part
        of the run's identity."""
        import dataclasses

        cfg = self.cfg.replace(process=process) if process else self.cfg
        if cfg.identity() != self.cfg.identity():
            raise ValueError(f"{sorted(process)} change what was trained; only sampling options may differ")
        return dataclasses.replace(self, cfg=cfg, process=sampling_process(cfg, self.process.device, steps=steps))

    @property
    def provenance(self) -> str:
        """One caption phrase: which weights these are, with steps and hardware."""
        if self.source == "shipped":
            from .shipped import shipped_dir

            info_path = shipped_dir(self.cfg) / "card.json"
            info = json.loads(info_path.read_text()) if info_path.exists() else {}
            hw = info.get("hardware", "hardware not recorded")
            return f"shipped reference model {self.cfg.name} ({self.step:,} steps on {hw})"
        return f"{self.cfg.name} trained in this run ({self.step:,} steps on {_hardware()})"


def _hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{os.cpu_count()} CPU cores"


def sampling_process(cfg: Config, device=None, steps: int | None = None):
    """The process to sample ``cfg`` with: its own, on another number of steps for continuous-time
    diffusions, with the training data's DCT range when ``process.clamp_dct`` asks for it."""
    rng = None
    if cfg.process.clamp_dct:
        from ..model.diffusion import dct_range

        rng = dct_range(load_dataset(cfg.data))
        rng = tuple(r.to(_resolve_device(device)) for r in rng)
    return build_process(cfg, _resolve_device(device), steps=steps, dct_range=rng)


def _load_shipped(cfg: Config, device) -> Run:
    from .shipped import load_shipped_state, shipped_cache_dir, shipped_dir

    state, meta = load_shipped_state(cfg)
    net = build_model(cfg)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise RuntimeError(f"{shipped_dir(cfg)}: the shipped weights do not fit the network of "
                           f"{cfg.name}: {str(err).splitlines()[0]}") from None
    net.to(device).eval().requires_grad_(False)
    cache = shipped_cache_dir(cfg)
    cache.mkdir(parents=True, exist_ok=True)
    log = shipped_dir(cfg) / METRICS
    if log.exists():  # chapters read the training log next to the scores
        (cache / METRICS).write_bytes(log.read_bytes())
    return Run(net, sampling_process(cfg, device), cfg, int(meta.get("step", cfg.train.steps)), cache, "shipped")


def is_available(cfg: Config, retrain: bool | None = None) -> bool:
    """Whether ``load_run(cfg)`` finds weights: shipped ones, or a finished run in runs/."""
    from .shipped import retrain_requested, shipped_dir

    if not retrain_requested(retrain) and shipped_dir(cfg) is not None:
        return True
    path = run_dir_for(cfg) / CHECKPOINT
    return path.exists() and load_checkpoint(path)[0]["step"] >= cfg.train.steps


def load_run(cfg_or_dir: Config | str | Path, device=None, use_ema: bool = True, retrain: bool | None = None) -> Run:
    """Load a trained run: a Config (looked up by identity), a preset name or a run folder.

    A config whose identity ships under ``models/`` loads the shipped EMA weights (verified by
    SHA-256), unless a retrain is asked for (``retrain=True`` or ``IHDM_RETRAIN=1``): then only
    runs trained here count."""
    from .shipped import retrain_requested, shipped_dir

    if isinstance(cfg_or_dir, str) and not Path(cfg_or_dir).exists():
        cfg_or_dir = get_preset(cfg_or_dir)
    if (isinstance(cfg_or_dir, Config) and use_ema and not retrain_requested(retrain)
            and shipped_dir(cfg_or_dir) is not None):
        return _load_shipped(cfg_or_dir, _resolve_device(device))
    run_dir = run_dir_for(cfg_or_dir) if isinstance(cfg_or_dir, Config) else Path(cfg_or_dir)
    path = run_dir / CHECKPOINT
    if not path.exists():
        name = cfg_or_dir.name if isinstance(cfg_or_dir, Config) else run_dir.name
        raise FileNotFoundError(f"no trained run at {run_dir}; train it first with "
                                f"`python -m ihdm_core train --preset {name}` (or ensure_trained(cfg))")
    device = _resolve_device(device)
    ckpt = load_checkpoint(path)[0]
    cfg = from_dict(ckpt["config"])
    net = build_model(cfg)
    net.load_state_dict(ckpt["ema" if use_ema else "model"])  # strict: a mismatch is an error
    net.to(device).eval().requires_grad_(False)
    return Run(net, sampling_process(cfg, device), cfg, ckpt["step"], run_dir)


def ensure_trained(cfg: Config, device=None, progress: bool = True, retrain: bool | None = None, **kw) -> Run:
    """The EMA weights of ``cfg``: the shipped model of its identity if one ships (see
    :mod:`ihdm_core.training.shipped`), else trained here (resuming a partial run, reusing a finished one).
    ``retrain=True`` (or ``IHDM_RETRAIN=1``) ignores shipped weights and trains into runs/."""
    from .shipped import retrain_requested, shipped_dir

    if not retrain_requested(retrain) and "run_dir" not in kw and shipped_dir(cfg) is not None:
        return _load_shipped(cfg, _resolve_device(device))
    train(cfg, device=device, progress=progress, **kw)
    return load_run(cfg if "run_dir" not in kw else kw["run_dir"], device=device, retrain=True)


# --- CLI ---------------------------------------------------------------------------------
def _parse_overrides(pairs: list[str]) -> dict:
    """["train.steps=100", "process.K=20"] -> {"train": {"steps": 100}, "process": {"K": 20}}, each value
    parsed by its field's type (see ``config.parse_value``); a bad key or value is a ConfigError."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair or "." not in pair.split("=", 1)[0]:
            raise ConfigError(f"override {pair!r} must look like section.field=value, e.g. train.steps=1000")
        key, value = pair.split("=", 1)
        section, name = key.strip().split(".", 1)
        out.setdefault(section, {})[name] = parse_value(section, name, value)
    return out


def main(argv=None) -> int:
    from .config import preset_names

    ap = argparse.ArgumentParser(prog="python -m ihdm_core train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", required=True, help=f"one of: {', '.join(preset_names())}")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.FIELD=VALUE",
                    help="override config fields, e.g. train.steps=1000 process.K=50")
    ap.add_argument("--run-dir", default=None, help="default: runs/<preset>-<identity>")
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    try:
        cfg = get_preset(args.preset, **_parse_overrides(args.set))
    except KeyError as err:
        ap.error(str(err.args[0]))
    result = train(cfg, run_dir=args.run_dir, device=args.device)
    if _dist_info()[0] == 0:
        print(json.dumps({"run_dir": str(result.run_dir), "step": result.step, "reused": result.reused,
                          "last_loss": result.last_loss,
                          "backend": dist.get_backend() if dist.is_initialized() else None}))
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    from ..cli import run  # one-line errors for usage and data errors

    sys.exit(run(main))
