"""Heat-operator throughput: ours (float32, DCT matrices, cached decays) against a float64
DCT built on a full complex FFT, which is how the original 2023 release computed the blur.

    python benchmarks/bench_heat.py [--device cuda] [--repeats 20]

Prints images/s for each method and their ratio, measured side by side in one run (best of
N interleaved rounds). On a GPU
it also reports the ratio to a plain device copy of the same bytes (the memory-bound floor).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from ihdm_core.model.heat import HeatDissipation


def _dct_fft64(x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Orthonormal 1-D DCT-II (or its inverse) over the last dim via a complex FFT, float64."""
    n = x.shape[-1]
    k = torch.arange(n, device=x.device, dtype=torch.float64)
    w = torch.exp(-1j * math.pi * k / (2 * n))
    scale = torch.full((n,), math.sqrt(2.0 / n), dtype=torch.float64, device=x.device)
    scale[0] = math.sqrt(1.0 / n)
    if not inverse:
        v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1).to(torch.complex128)
        return (torch.fft.fft(v) * w).real * scale
    # inverse: undo the scaling and twiddle, then an inverse FFT and the even/odd interleave
    c = (x / scale).to(torch.complex128)
    c_rev = torch.cat([torch.zeros_like(c[..., :1]), c[..., 1:].flip(-1)], dim=-1)
    v = torch.fft.ifft((c - 1j * c_rev) / w).real
    out = torch.empty_like(v)
    half = (n + 1) // 2
    out[..., ::2] = v[..., :half]
    out[..., 1::2] = v[..., half:].flip(-1)
    return out


def heat_fft64(u: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    x = u.double()
    x = _dct_fft64(_dct_fft64(x).transpose(-1, -2)).transpose(-1, -2)
    x = x * decay.double()
    x = _dct_fft64(_dct_fft64(x, True).transpose(-1, -2), True).transpose(-1, -2)
    return x


def _time(fns: dict, repeats: int, device: torch.device) -> dict:
    """Seconds per call of each fn: best of ``repeats`` rounds, the fns interleaved within a
    round so that background load on a shared machine hits all of them alike."""
    best = {name: float("inf") for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    device = torch.device(args.device)
    cases = [(32, 256), (256, 8)] if device.type == "cpu" else [(32, 4096), (256, 256)]
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'size':>9} {'batch':>6} {'ours img/s':>12} {'fft64 img/s':>12} {'speed-up':>9} {'max |diff|':>11}"
          + (f" {'copy img/s':>12} {'ours/copy':>10}" if device.type == "cuda" else ""))
    for size, batch in cases:
        p = HeatDissipation(size, K=200, sigma_max=size / 2, device=device)
        u = torch.rand(batch, 3, size, size, device=device)
        k = torch.randint(1, 201, (batch,), device=device)
        decay = p.decays[k][:, None]
        fns = {"ours": lambda: p.blur(u, k), "ref": lambda: heat_fft64(u, decay)}
        if device.type == "cuda":
            dst = torch.empty_like(u)
            fns["copy"] = lambda: dst.copy_(u)
        t = _time(fns, args.repeats, device)
        ours, ref = t["ours"], t["ref"]
        diff = float((p.blur(u, k).double() - heat_fft64(u, decay)).abs().max())
        line = f"{size}x{size}x3 {batch:>6} {batch / ours:12.0f} {batch / ref:12.0f} {ref / ours:8.1f}x {diff:11.2e}"
        if device.type == "cuda":
            line += f" {batch / t['copy']:12.0f} {ours / t['copy']:9.2f}x"
        print(line)


if __name__ == "__main__":
    main()
