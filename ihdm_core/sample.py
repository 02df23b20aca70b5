"""Sample a trained run to a PNG grid.

    python -m ihdm_core.sample --preset mnist-quick --n 64 --out figures/mnist-quick-samples.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .config import preset_names
from .data import load_dataset
from .samplers import sample
from .train import load_run

__all__ = ["generate", "save_grid", "main"]


def generate(run, n: int, *, delta: float | None = None, seed: int = 0, batch_size: int = 256,
             images=None, progress: bool = False, autocast_dtype: torch.dtype | None = None,
             compile: bool = False) -> torch.Tensor:
    """n samples in [0, 1] from a loaded run (prior draws from its training set).

    On a GPU, ``autocast_dtype=torch.bfloat16`` runs the network in bf16 and ``compile=True``
    compiles it once for all K steps and batches (same shapes throughout).
    """
    images = load_dataset(run.cfg.data) if images is None else images
    device = run.process.device
    net = torch.compile(run.net) if compile else run.net
    gen = torch.Generator(device=device).manual_seed(seed)
    prior_gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        uK = run.process.prior_sample(b, images, generator=prior_gen, delta=delta).to(device)
        out.append(sample(net, run.process, uK, delta=delta, generator=gen, progress=progress,
                          autocast_dtype=autocast_dtype).cpu())
    return torch.cat(out).clamp(0, 1)


def save_grid(images: torch.Tensor, path, nrow: int | None = None, padding: int = 2) -> Path:
    """Write a batch of [0, 1] images as one PNG grid."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(round(len(images) ** 0.5)))
    save_image(images.clamp(0, 1), str(path), nrow=nrow, padding=padding, pad_value=1.0)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ihdm_core.sample", description="Sample a trained IHDM run to a PNG grid.")
    ap.add_argument("--preset", help=f"one of: {', '.join(preset_names())}")
    ap.add_argument("--run-dir", help="a run folder instead of a preset")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--delta", type=float, default=None, help="sampling noise (default: the config's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="PNG path (default: <run-dir>/samples.png)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--bf16", action="store_true", help="network in bf16 autocast (GPU)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network")
    args = ap.parse_args(argv)
    if not (args.preset or args.run_dir):
        ap.error("give --preset or --run-dir")
    run = load_run(args.run_dir or args.preset, device=args.device, use_ema=not args.no_ema)
    cuda = run.process.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    x = generate(run, args.n, delta=args.delta, seed=args.seed, progress=True, batch_size=args.batch_size,
                 autocast_dtype=torch.bfloat16 if args.bf16 else None, compile=args.compile)
    seconds = time.perf_counter() - t0
    out = save_grid(x, args.out or run.run_dir / "samples.png")
    print(json.dumps({"out": str(out), "n": args.n, "run_dir": str(run.run_dir), "identity": run.cfg.identity(),
                      "step": run.step, "delta": args.delta if args.delta is not None else run.process.delta,
                      "seed": args.seed, "seconds": round(seconds, 2), "samples_per_s": round(args.n / seconds, 2),
                      "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None}))
    return 0


if __name__ == "__main__":
    from .cli import run  # one-line errors for usage and data errors

    sys.exit(run(main))
