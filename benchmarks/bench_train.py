"""Training and sampling speed of presets, through the real training loop and sampler.

    python benchmarks/bench_train.py                       # CPU: mnist-quick, cifar10
    python benchmarks/bench_train.py --presets cifar10 mnist --steps 60 --device cuda

For each preset and mode it trains a few steps into a temporary folder with
``ihdm_core.training.train.train`` and reads steps/s from the run's log (warm-up interval excluded),
then times the sampler. Modes: ``fp32-eager`` (no autocast, no channels_last, no compile)
and ``fast`` (the preset's defaults: bf16 autocast and fused Adam on CUDA, channels_last,
plus torch.compile with --compile). Model FLOPs per training step are counted with
torch.utils.flop_counter; on CUDA the achieved fraction of the GPU's bf16 peak is shown.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from ihdm_core import get_preset
from ihdm_core.training.build import build_model, build_process
from ihdm_core.model.sampling import sample
from ihdm_core.training.log import read_metrics
from ihdm_core.training.train import train

BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense tensor-core peaks


def flops_per_step(cfg, device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    net = build_model(cfg).to(device)
    x = torch.rand(cfg.train.batch_size, cfg.data.channels, cfg.data.image_size, cfg.data.image_size, device=device)
    k = torch.randint(1, cfg.process.K + 1, (x.shape[0],), device=device)
    with FlopCounterMode(display=False) as fc:
        net(x, k).square().sum().backward()
    return float(fc.get_total_flops())


def bench_train(cfg, device, steps: int, data) -> float:
    log = max(steps // 3, 1)
    cfg = cfg.replace(train={"steps": steps, "log_every": log, "ckpt_every": 10**9, "warmup": 1})
    with tempfile.TemporaryDirectory() as tmp:
        res = train(cfg, run_dir=Path(tmp) / "run", device=device, data=data, progress=False)
        recs = read_metrics(res.run_dir)
    rates = [r["steps_per_s"] for r in recs[1:]] or [recs[-1]["steps_per_s"]]  # drop the warm-up interval
    return sum(rates) / len(rates)


def bench_sample(cfg, device, n: int, autocast) -> float:
    net = build_model(cfg).to(device).eval()
    proc = build_process(cfg, device)
    u = torch.rand(n, cfg.data.channels, cfg.data.image_size, cfg.data.image_size, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    sample(net, proc, u, autocast_dtype=autocast)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=["mnist-quick", "cifar10"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=None, help="training steps per measurement")
    ap.add_argument("--sample-n", type=int, default=None)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if cuda and k in name), None)
    print(f"device: {name}, torch {torch.__version__}")
    print(f"{'preset':>15} {'mode':>10} {'batch':>6} {'GFLOP/step':>11} {'steps/s':>9} {'img/s':>8} "
          f"{'TFLOP/s':>8} {'%bf16pk':>8} {'samples/s':>10} {'peak MiB':>9}")
    for preset in args.presets:
        cfg = get_preset(preset)
        data = torch.randint(0, 256, (512, cfg.data.channels, cfg.data.image_size, cfg.data.image_size),
                             dtype=torch.uint8)  # speed does not depend on pixel values
        heavy = cfg.model.base_channels >= 128 and not cuda
        steps = args.steps or (6 if heavy else 30)
        if heavy:  # a paper-size net on a CPU: a few small-batch steps are enough to time it
            cfg = cfg.replace(train={"batch_size": 16})
        fl = flops_per_step(cfg, device)
        modes = {"fp32-eager": {"amp": "none", "channels_last": False, "compile": False},
                 "fast": {"compile": args.compile}}
        for mode, over in modes.items():
            c = cfg.replace(train=over)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            sps = bench_train(c, device, steps, data)
            mem = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else float("nan")
            n = args.sample_n or (16 if heavy else 64)
            ac = torch.bfloat16 if (cuda and mode == "fast") else None
            sp = bench_sample(c, device, n, ac)
            tflops = fl * sps / 1e12
            pk = f"{100 * tflops / peak:7.1f}%" if peak else f"{'-':>8}"
            print(f"{preset:>15} {mode:>10} {c.train.batch_size:>6} {fl / 1e9:11.1f} {sps:9.2f} "
                  f"{sps * c.train.batch_size:8.1f} {tflops:8.3f} {pk} {sp:10.2f} {mem:9.0f}")


if __name__ == "__main__":
    main()
