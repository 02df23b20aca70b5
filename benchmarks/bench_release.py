"""Our training step and sampler against the 2023 release's, same network sizes, one process.

    git clone https://github.com/AaltoML/generative-inverse-heat-dissipation /tmp/ihdm-2023
    python benchmarks/bench_release.py /tmp/ihdm-2023                    # mnist-ref's network
    python benchmarks/bench_release.py /tmp/ihdm-2023 --preset mnist-quick --rounds 7

Without a checkout it prints how to get one and exits 0. The release's network (``model_code``)
and training step (``scripts/losses.py``: its loss, gradient clipping, Adam with warm-up; plus its
EMA) are imported from the checkout, never copied here; they need only torch and numpy (the
release's ``ml_collections`` config is replaced by a plain namespace with the fields they read).

Both sides run in this process with the same torch threads, the same batch (the preset's), the
same image size, the same K and a network of the same sizes (base channels, channel multipliers,
residual blocks per level, attention at the same level). The two U-Nets differ in detail (the
release downsamples with residual blocks, ours with average pooling; the release's GroupNorm has
32 groups), so the parameter counts are printed. Timing: ``--rounds`` interleaved rounds (ours,
then theirs, then ours, ...) of ``--steps`` steps each after a warm-up; the table gives the median
round and the ratio of medians. On a shared machine, other jobs slow both sides alike within a
round; the ratio is what to read.

Sampling: Alg. 2 from the prior at the same network sizes over K steps (the release's
``get_sampling_fn_inverse_heat``; ours :func:`ihdm_core.model.sampling.sample` as the book runs it).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ihdm_core import get_preset  # noqa: E402
from ihdm_core.model.sampling import sample  # noqa: E402
from ihdm_core.training.build import build_process  # noqa: E402
from ihdm_core.training.step import construct, optimiser_step  # noqa: E402

NO_CHECKOUT = (
    "bench_release: skipped, no checkout of the 2023 release given. Clone it with\n"
    "  git clone https://github.com/AaltoML/generative-inverse-heat-dissipation /tmp/ihdm-2023\n"
    "and run: python benchmarks/bench_release.py /tmp/ihdm-2023"
)


def release_modules(path: Path):
    """The release's network, blur, loss/step and EMA modules, imported from its checkout."""
    for rel in (
        "model_code/unet.py",
        "model_code/utils.py",
        "scripts/losses.py",
        "scripts/sampling.py",
    ):
        if not (path / rel).exists():
            raise SystemExit(
                f"bench_release: {path} is not a checkout of the 2023 release (no {rel})"
            )
    sys.path.insert(0, str(path))
    try:
        from model_code import utils as mutils
        from model_code.ema import ExponentialMovingAverage
        from scripts import losses
    except ImportError as err:
        raise SystemExit(
            f"bench_release: cannot import the release's modules from {path}: {err}"
        ) from None
    try:
        from scripts import sampling
    except ImportError:
        # scripts/sampling.py imports scripts/datasets.py (mpi4py, blobfile) for other functions
        # the sampler used here; stand in an empty module for it.
        sys.modules["scripts.datasets"] = types.ModuleType("scripts.datasets")
        from scripts import sampling
    return types.SimpleNamespace(
        mutils=mutils, EMA=ExponentialMovingAverage, losses=losses, sampling=sampling
    )


def release_config(cfg, device) -> types.SimpleNamespace:
    """The release's config fields for ``cfg``'s network sizes and process (else its MNIST
    defaults)."""
    m, p, t = cfg.model, cfg.process, cfg.train
    levels = len(m.channel_mult)
    # Ours names attention by resolution, the release by level (0 = full resolution).
    attention = tuple(
        lv for lv in range(levels) if cfg.data.image_size // 2**lv in m.attn_resolutions
    )
    blur = np.exp(np.linspace(np.log(p.sigma_min), np.log(p.sigma_max), p.K))
    ns = types.SimpleNamespace
    return ns(
        device=device,
        data=ns(image_size=cfg.data.image_size, num_channels=cfg.data.channels),
        model=ns(
            K=p.K,
            sigma=p.sigma,
            dropout=m.dropout,
            model_channels=m.base_channels,
            channel_mult=tuple(m.channel_mult),
            conv_resample=True,
            num_heads=1,
            conditional=True,
            attention_levels=attention,
            ema_rate=t.ema,
            normalization="GroupNorm",
            nonlinearity="swish",
            num_res_blocks=m.num_res_blocks,
            use_fp16=False,
            use_scale_shift_norm=False,
            resblock_updown=False,
            use_new_attention_order=True,
            num_head_channels=-1,
            num_heads_upsample=-1,
            skip_rescale=True,
            blur_schedule=np.array([0.0, *blur]),
        ),
        optim=ns(
            weight_decay=0,
            optimizer="Adam",
            lr=t.lr,
            beta1=0.9,
            eps=1e-8,
            warmup=t.warmup,
            grad_clip=t.grad_clip if t.grad_clip > 0 else -1.0,
            automatic_mp=False,
        ),
        training=ns(batch_size=t.batch_size),
    )


def make_release_step(rel, rcfg, device):
    torch.manual_seed(0)
    net = rel.mutils.UNetModel(rcfg).to(device)
    blur = rel.mutils.create_forward_process_from_sigmas(rcfg, rcfg.model.blur_schedule, device)
    opt = rel.losses.get_optimizer(rcfg, net.parameters())
    state = {
        "model": net,
        "optimizer": opt,
        "step": 0,
        "ema": rel.EMA(net.parameters(), decay=rcfg.model.ema_rate),
    }
    step_fn = rel.losses.get_step_fn(
        True,
        None,
        rcfg,
        optimize_fn=rel.losses.optimization_manager(rcfg),
        heat_forward_module=blur,
        device=device,
    )

    def step(x0):
        return step_fn(state, x0)[0].detach()

    return step, net


def make_our_step(cfg, device):
    process = build_process(cfg, device)
    state = construct(cfg, device)
    gen = torch.Generator(device=device).manual_seed(0)
    counter = iter(range(10**9))
    state.net.train()

    def step(x0):
        return optimiser_step(cfg, state, state.net, None, process, x0, next(counter), gen)[
            1
        ].detach()

    return step, state, process


def n_params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def interleave(fns: dict, rounds: int, reps: int, warmup: int = 1) -> dict:
    """Median seconds per call of each function over interleaved rounds of ``reps`` calls."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append((time.perf_counter() - t0) / reps)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("release", nargs="?", help="path of a checkout of the 2023 release")
    ap.add_argument("--preset", default="mnist-ref", help="our preset whose network sizes both use")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="training steps per round")
    ap.add_argument("--sample-n", type=int, default=32, help="images per sampling round")
    ap.add_argument("--sample-rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument(
        "--batch", type=int, default=None, help="training batch (default: the preset's)"
    )
    args = ap.parse_args(argv)
    if not args.release:
        print(NO_CHECKOUT)
        return 0
    rel = release_modules(Path(args.release).expanduser().resolve())
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    cfg = get_preset(args.preset)
    if args.batch:
        cfg = cfg.replace(train={"batch_size": args.batch})
    if cfg.process.kind != "ihdm":
        raise SystemExit("bench_release: the release implements IHDM only; give an IHDM preset")
    rcfg = release_config(cfg, device)
    shape = (cfg.train.batch_size, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    x0 = torch.rand(
        shape, generator=torch.Generator().manual_seed(0)
    )  # speed does not depend on pixels

    ours, state, process = make_our_step(cfg, device)
    theirs, rnet = make_release_step(rel, rcfg, device)
    print(
        f"# {args.preset}: batch {shape[0]}, {shape[2]} x {shape[3]} x {shape[1]}, "
        f"K {cfg.process.K}, "
        f"torch {torch.__version__}, {args.threads} thread(s); parameters ours "
        f"{n_params(state.net):,}, release {n_params(rnet):,}"
    )
    t = interleave(
        {"ours": lambda: ours(x0), "release": lambda: theirs(x0)}, args.rounds, args.steps
    )
    print("\n| training | s/step (median of rounds) | steps/s | images/s |")
    print("|---|---|---|---|")
    for name in ("ours", "release"):
        print(f"| {name} | {t[name]:.4f} | {1 / t[name]:.2f} | {shape[0] / t[name]:.1f} |")
    print(
        f"\ntraining speed ours / release: {t['release'] / t['ours']:.2f}x "
        f"({args.rounds} interleaved rounds of {args.steps} steps)"
    )

    # Sampling: the EMA-less networks as they are (speed does not depend on the weights).
    n = args.sample_n
    u_K = torch.rand(
        n,
        cfg.data.channels,
        cfg.data.image_size,
        cfg.data.image_size,
        generator=torch.Generator().manual_seed(1),
    )
    our_net = copy.deepcopy(state.net).eval().requires_grad_(False)
    rnet.eval()
    release_sampler = rel.sampling.get_sampling_fn_inverse_heat(
        rcfg, u_K, None, cfg.process.delta, device
    )
    t = interleave(
        {"ours": lambda: sample(our_net, process, u_K), "release": lambda: release_sampler(rnet)},
        args.sample_rounds,
        1,
    )
    print(f"\n| sampling ({n} images, {cfg.process.K} steps) | s/batch (median) | images/s |")
    print("|---|---|---|")
    for name in ("ours", "release"):
        print(f"| {name} | {t[name]:.3f} | {n / t[name]:.1f} |")
    print(
        f"\nsampling speed ours / release: {t['release'] / t['ours']:.2f}x "
        f"({args.sample_rounds} interleaved rounds)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
