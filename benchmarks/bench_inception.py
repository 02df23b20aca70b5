"""InceptionV3 (FID) feature throughput on this machine, and what the cheap speed-ups change.

    python benchmarks/bench_inception.py [--n 100] [--batch 50]

FID is the largest cost of the book's quick profile after training, and it is CPU-bound on
the Inception network at 299 x 299. This prints images/s for the network as clean-fid runs it
(``eager``), for the same TorchScript module frozen and optimised for inference (batch norm
folded into the convolutions), and with channels_last input; and the largest change in the
features each variant causes, since FID must not move. The whole clean-fid path (PIL resize
per image + network) is timed too, through :func:`ihdm_core.evaluation.inception.inception_features`.
"""

from __future__ import annotations

import argparse
import time

import torch

from ihdm_core.evaluation.inception import feature_extractor, inception_features, inception_file


def _time(fn, x, repeats=2):
    fn(x[:2])  # warm-up (TorchScript profiling runs)
    fn(x[:2])
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(x)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="images per timing")
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    path, origin = inception_file()
    layers = torch.jit.load(str(path)).eval().layers
    x = torch.rand(args.n, 3, 299, 299) * 2 - 1  # what clean-fid feeds .layers: (img - 128) / 128

    def batched(net, channels_last=False):
        def fn(inp):
            outs = []
            with torch.inference_mode():
                for i in range(0, len(inp), args.batch):
                    b = inp[i:i + args.batch]
                    if channels_last:
                        b = b.contiguous(memory_format=torch.channels_last)
                    outs.append(net(b).reshape(len(b), -1))
            return torch.cat(outs)
        return fn

    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.load(str(path)).eval().layers.eval()))
    rows = []
    t_ref, f_ref = _time(batched(layers), x)
    rows.append(("eager (clean-fid)", t_ref, 0.0))
    for name, fn in (("channels_last", batched(layers, True)), ("frozen + optimize_for_inference", batched(frozen)),
                     ("frozen + channels_last", batched(frozen, True))):
        t, f = _time(fn, x)
        rows.append((name, t, float((f - f_ref).abs().max() / f_ref.abs().max())))
    print(f"\nInceptionV3 network only, {args.n} images of 299 x 299, batch {args.batch}:")
    print(f"{'variant':34s} {'images/s':>9s} {'speed-up':>9s} {'max |dfeat| / max |feat|':>26s}")
    for name, t, d in rows:
        print(f"{name:34s} {args.n / t:9.2f} {t_ref / t:8.2f}x {d:26.2e}")
    imgs = torch.rand(args.n, 1, 28, 28)
    ext = feature_extractor("cpu")
    inception_features(imgs[:2], extractor=ext)
    t0 = time.perf_counter()
    inception_features(imgs, extractor=ext, batch_size=args.batch)
    t = time.perf_counter() - t0
    print(f"\nwhole clean-fid path (28 x 28 digits -> PIL bicubic -> network): {args.n / t:.2f} images/s "
          f"({origin})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
