"""One optimiser step of Alg. 1 and the state it updates: the network, its EMA, Adam and the
loss scaler. The trainer (:mod:`ihdm_core.training.train`) runs it; benchmarks time it as is.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from ..model.losses import squared_error, training_batch
from ..model.unet import Autocast
from .build import build_model
from .config import Config

__all__ = ["TrainState", "construct", "restore", "wrap", "rng_state", "learning_rate", "ema_decay",
           "ema_update", "accumulated_step", "optimiser_step"]


@dataclass
class TrainState:
    """What a checkpoint holds besides the step: the network, its EMA, the optimiser, the loss
    scaler."""
    net: torch.nn.Module
    ema: torch.nn.Module
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None  # the network's autocast precision (None: float32)


def construct(cfg: Config, device: torch.device) -> TrainState:
    tc = cfg.train
    cuda = device.type == "cuda"
    torch.manual_seed(tc.seed)  # same initial weights on every rank and every fresh start
    net = build_model(cfg).to(device)
    # faster convolutions on CUDA; on CPU it depends on the net (mnist presets: off)
    if tc.channels_last:
        net = net.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=tc.lr, betas=(0.9, 0.999), eps=1e-8,
                           fused=(cuda and tc.fused_adam) or None)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tc.amp) if cuda else None
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and tc.amp == "fp16")
    return TrainState(net, ema, opt, scaler, amp_dtype)


def restore(state: TrainState, ckpt: dict, device: torch.device) -> int:
    """Load a checkpoint into ``state``, the random generators' states too; returns its step."""
    state.net.load_state_dict(ckpt["model"])
    state.ema.load_state_dict(ckpt["ema"])
    state.opt.load_state_dict(ckpt["optimizer"])
    state.scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    if device.type == "cuda" and "cuda" in ckpt["rng"]:
        torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
    return ckpt["step"]


def wrap(state: TrainState, device: torch.device, compile: bool):
    """(the network as the loop calls it, the DDP wrapper or None). Reduced precision applies to the
    network only, never the blur; DDP is used whenever a process group runs, also for a 1-process
    torchrun launch, so that launch runs the multi-GPU path."""
    model, ddp = Autocast(state.net, state.amp_dtype), None
    if dist.is_initialized():
        ddp = torch.nn.parallel.DistributedDataParallel(
            state.net, device_ids=[device.index] if device.type == "cuda" else None)
        model = Autocast(ddp, state.amp_dtype)
    return (torch.compile(model) if compile else model), ddp


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def learning_rate(tc, step: int) -> float:
    """Linear warm-up from 0 (App. B.1), then constant (the paper) or a cosine decay to 0."""
    warm = min(1.0, (step + 1) / max(tc.warmup, 1))
    if tc.lr_schedule == "cosine" and step >= tc.warmup:
        frac = (step - tc.warmup) / max(tc.steps - tc.warmup, 1)
        return tc.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
    return tc.lr * warm


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    ema_p = [p for p in ema.parameters()]
    net_p = [p.detach() for p in net.parameters()]
    torch._foreach_lerp_(ema_p, net_p, 1.0 - decay)
    for be, bn in zip(ema.buffers(), net.buffers()):
        be.copy_(bn)


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


def accumulated_step(model, opt, scaler, process, x0: Tensor, tc, gen: torch.Generator,
                      ddp=None) -> Tensor:
    """Backward passes for one optimiser step on ``x0`` in ``tc.accum_steps`` micro-batches; returns
    the batch's mean loss. The levels and noisy inputs of the whole batch are drawn first, by the
    ``training_batch`` that ``denoising_loss`` draws the full batch with, and each micro-batch's
    mean loss is weighted by its share, so the summed gradient is the full batch's."""
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




def optimiser_step(cfg: Config, state: TrainState, model, ddp, process, x0: Tensor, step: int,
                    gen: torch.Generator) -> tuple[float, Tensor]:
    """One step of Alg. 1 on the batch ``x0``: flip augmentation, the learning rate, the
    (accumulated)
    backward pass, gradient clipping, the Adam step and the EMA update. Returns (lr, loss on
    device)."""
    tc = cfg.train
    if cfg.data.hflip:
        flip = torch.rand(x0.shape[0], device=x0.device, generator=gen) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
    if tc.channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    lr = learning_rate(tc, step)
    for group in state.opt.param_groups:
        group["lr"] = lr
    loss = accumulated_step(model, state.opt, state.scaler, process, x0, tc, gen, ddp)
    if tc.grad_clip > 0:
        state.scaler.unscale_(state.opt)
        torch.nn.utils.clip_grad_norm_(state.net.parameters(), tc.grad_clip)
    state.scaler.step(state.opt)
    state.scaler.update()
    ema_update(state.ema, state.net, ema_decay(tc.ema, step + 1, tc.ema_warmup))
    return lr, loss
