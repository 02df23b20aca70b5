"""Sampling throughput on the CPU: threads, batch size, grad mode, memory format, processes.

    python benchmarks/bench_sampling.py            # mnist-ref (IHDM, K 50), mnist-ddpm-ref (T 250)
    python benchmarks/bench_sampling.py --presets mnist-ref --n 200 --rounds 3
    python benchmarks/bench_sampling.py --smoke             # seconds; what the test suite runs

Every variant samples the same ``--n`` images with :func:`ihdm_core.model.sampling.sample` (the
sampler the book runs, per-image seeds aside) from the preset's network (fresh weights: speed does
not depend on them) and reports images per second, median over ``--rounds`` interleaved rounds
(every variant once per round, so a load change on a shared machine hits all of them alike).
Variants:

* ``threads``: ``torch.set_num_threads`` 1 or 2 in one process;
* ``batch``: images per sampler call;
* ``inference_mode``: ``torch.inference_mode()`` around the sampler (it already runs under no_grad);
* ``channels_last``: the network and its input in channels-last memory format;
* ``2 procs x 1 thread``: two spawned processes, each one thread, each sampling half the images at
  the same time (the time is the slower one's, after both warmed up).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ihdm_core import get_preset  # noqa: E402
from ihdm_core.model.latents import NoiseTable  # noqa: E402
from ihdm_core.model.sampling import sample  # noqa: E402
from ihdm_core.training.build import build_model, build_process  # noqa: E402


def _setup(preset: str, smoke: bool):
    cfg = get_preset(preset)
    if smoke:
        cfg = (
            cfg.replace(process={"K": 2})
            if cfg.process.kind == "ihdm"
            else cfg.replace(process={"K": 4})
        )
    torch.manual_seed(0)
    net = build_model(cfg).eval().requires_grad_(False)
    proc = build_process(cfg, torch.device("cpu"))
    return cfg, net, proc


def _prior(cfg, n: int) -> torch.Tensor:
    shape = (n, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    return torch.rand(shape, generator=torch.Generator().manual_seed(1))


def _noise(proc, u) -> torch.Tensor:
    """All steps' noise for all images, so that every batching draws the same samples."""
    return torch.randn((proc.K, *u.shape), generator=torch.Generator().manual_seed(2))


def _run(net, proc, u, batch: int, inference: bool, channels_last: bool, noise) -> torch.Tensor:
    out = []
    for start in range(0, len(u), batch):
        x, z = u[start : start + batch], NoiseTable(noise[:, start : start + batch])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if inference:
            with torch.inference_mode():
                out.append(sample(net, proc, x, noise=z))
        else:
            out.append(sample(net, proc, x, noise=z))
    return torch.cat(out)


def _worker(preset, smoke, n, batch, barrier, queue, rounds):
    torch.set_num_threads(1)
    cfg, net, proc = _setup(preset, smoke)
    u = _prior(cfg, n)
    noise = _noise(proc, u)
    _run(net, proc, u[:batch], batch, False, False, noise)  # warm-up
    for _ in range(rounds):
        barrier.wait()
        t0 = time.perf_counter()
        _run(net, proc, u, batch, False, False, noise)
        queue.put(time.perf_counter() - t0)


def bench_processes(preset, smoke, n, batch, rounds) -> list[float]:
    """Seconds per round for two 1-thread processes sampling n/2 images each, concurrently."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(preset, smoke, n // 2, batch, barrier, queue, rounds))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    times = [max(queue.get(), queue.get()) for _ in range(rounds)]
    for p in procs:
        p.join()
    return times


def bench_preset(
    preset: str,
    n: int,
    rounds: int,
    batches,
    smoke: bool,
    threads_list=(1, 2),
    processes: bool = True,
) -> list[dict]:
    cfg, net, proc = _setup(preset, smoke)
    net_cl = build_model(cfg).eval().requires_grad_(False)
    net_cl.load_state_dict(net.state_dict())
    net_cl = net_cl.to(memory_format=torch.channels_last)
    u = _prior(cfg, n)
    noise = _noise(proc, u)
    check = min(max(batches), n)
    base_batch = 50 if 50 in batches else batches[0]
    variants = {}
    for threads in threads_list:
        for b in batches:
            variants[f"{threads} thread(s), batch {b}"] = (threads, net, b, False, False)
        variants[f"{threads} thread(s), batch {base_batch}, inference_mode"] = (
            threads,
            net,
            base_batch,
            True,
            False,
        )
        variants[f"{threads} thread(s), batch {base_batch}, channels_last"] = (
            threads,
            net_cl,
            base_batch,
            False,
            True,
        )
    ref = None
    times = {name: [] for name in variants}
    old = torch.get_num_threads()
    try:
        for name, (threads, m, b, inf, cl) in variants.items():  # warm-up, and same samples check
            torch.set_num_threads(threads)
            x = _run(m, proc, u[:check], b, inf, cl, noise)
            ref = x if ref is None else ref
            err = (x - ref).abs().max().item()
            if err > 1e-4:
                raise RuntimeError(
                    f"{preset} {name}: samples differ from the baseline by {err:.2g}"
                )
        for _ in range(rounds):
            for name, (threads, m, b, inf, cl) in variants.items():
                torch.set_num_threads(threads)
                t0 = time.perf_counter()
                _run(m, proc, u, b, inf, cl, noise)
                times[name].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
    if processes:
        times[f"2 procs x 1 thread, batch {base_batch}"] = bench_processes(
            preset, smoke, n, base_batch, rounds
        )
    return [
        {
            "preset": preset,
            "process": f"{cfg.process.kind}, {proc.K} steps",
            "variant": name,
            "images/s": n / statistics.median(ts),
        }
        for name, ts in times.items()
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=["mnist-ref", "mnist-ddpm-ref"])
    ap.add_argument("--n", type=int, default=100, help="images per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, nargs="+", default=[25, 50, 100])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads to try")
    ap.add_argument(
        "--no-processes", action="store_true", help="skip the 2 processes x 1 thread variant"
    )
    ap.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks that every variant runs"
    )
    args = ap.parse_args(argv)
    if args.smoke:
        args.presets, args.n, args.rounds, args.batches = ["mnist-smoke"], 2, 1, [1, 2]
        args.threads, args.no_processes = [1, 2], False
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s) by default, n {args.n}, "
        f"{args.rounds} interleaved rounds; median images/s"
    )
    print(
        "\n| preset | process | variant | images/s | vs 1 thread, batch "
        f"{50 if 50 in args.batches else args.batches[0]} |"
    )
    print("|---|---|---|---|---|")
    for preset in args.presets:
        rows = bench_preset(
            preset,
            args.n,
            args.rounds,
            args.batches,
            args.smoke,
            args.threads,
            not args.no_processes,
        )
        base = next(
            r["images/s"]
            for r in rows
            if r["variant"].startswith("1 thread(s), batch")
            and r["variant"].endswith(f"batch {50 if 50 in args.batches else args.batches[0]}")
        )
        for r in rows:
            print(
                f"| {r['preset']} | {r['process']} | {r['variant']} | {r['images/s']:.2f} | "
                f"{r['images/s'] / base:.2f}x |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
