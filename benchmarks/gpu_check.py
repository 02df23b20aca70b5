"""One prepared check of the GPU path: speed of training, blur and sampling, the smoke book and a
torchrun launch, printed as one markdown report.

    python benchmarks/gpu_check.py --budget-s 420                 # on a GPU (see benchmarks/GPU_CHECK.md)
    python benchmarks/gpu_check.py --tiny --skip-book --budget-s 120   # the same code paths on CPU, tiny

Parts, each with a share of --budget-s, each catching its own errors (the report then shows the
one-line error and the check goes on):

(a) training speed of the ``cifar10`` and ``mnist`` presets with the step of ihdm_core.training.train
    (its own optimiser_step: loss, backward, clipping, Adam, EMA) in fp32 eager; bf16 autocast + channels_last
    + fused Adam; and that plus torch.compile (compile time separately). steps/s, model TFLOP/s
    from torch.utils.flop_counter, the fraction of the GPU's dense bf16 peak, peak memory and, on
    CUDA, host syncs per step (torch.cuda.set_sync_debug_mode).
(b) the heat operator's blur at 32, 64, 128, 256 pixels, 3 channels, against a device copy of
    the same bytes.
(c) sampling the cifar10 preset at K = 200 (untrained weights: speed only), bf16, compiled;
    images/s and the projected time for 50,000 samples.
(d) every chapter of the smoke book through ihdm_core.book.pipeline with IHDM_DEVICE set.
(e) ``torchrun --nproc_per_node 1 -m ihdm_core train`` (nccl on CUDA, gloo on CPU).

Sections are printed as they finish (and appended to --out), so a run cut short still reports.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: use this checkout's package
    sys.path.insert(0, str(ROOT))

from ihdm_core import get_preset  # noqa: E402
from ihdm_core.model.heat import HeatDissipation  # noqa: E402
from ihdm_core.training.build import build_model, build_process  # noqa: E402
from ihdm_core.model.sampling import sample  # noqa: E402
from ihdm_core.training.step import construct, optimiser_step  # noqa: E402
from ihdm_core.model.unet import Autocast  # noqa: E402

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, from the vendors' data sheets. Matched
# as substrings of torch.cuda.get_device_name, first match wins (PCIe before the SXM default).
BF16_PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0), ("L4", 121.0))
SHARES = {"a": 0.35, "b": 0.05, "c": 0.15, "d": 0.35, "e": 0.10}
PAPER_FID_SAMPLES = 50_000


# --- arithmetic (unit-tested) ---------------------------------------------------------------
def bf16_peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a known GPU, else None."""
    for key, peak in BF16_PEAK_TFLOPS:
        if key in device_name:
            return peak
    return None


def count_flops(fn) -> int:
    """FLOPs of one call of ``fn`` (forward and backward if it calls backward), as counted by
    torch.utils.flop_counter (matmuls and convolutions: 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def throughput(flops_per_step: float, steps_per_s: float, device_name: str) -> tuple[float, float | None]:
    """(achieved TFLOP/s, fraction of the bf16 peak or None when the device's peak is unknown)."""
    tflops = flops_per_step * steps_per_s / 1e12
    peak = bf16_peak_tflops(device_name)
    return tflops, (tflops / peak if peak else None)


# --- helpers --------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _one_line(err: BaseException) -> str:
    msg = str(err).strip().splitlines()
    return f"{type(err).__name__}: {msg[0] if msg else ''}"[:300]


@contextlib.contextmanager
def _count_syncs(device: torch.device, box: list):
    """Counts CUDA host syncs inside the block (appends the count to ``box``); nothing on CPU."""
    if device.type != "cuda":
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")
    box.append(sum("synchroniz" in str(w.message) for w in caught))


def _timed_loop(fn, device, seconds: float, min_iters: int, max_iters: int) -> tuple[int, float]:
    """Runs ``fn`` at least min_iters and at most max_iters times, stopping after ``seconds``;
    returns (iterations, seconds), synchronised at both ends."""
    _sync(device)
    t0 = time.perf_counter()
    n = 0
    while n < max_iters and (n < min_iters or time.perf_counter() - t0 < seconds):
        fn()
        n += 1
        if n % 5 == 0:
            _sync(device)  # keep the clock honest: queued kernels must not run past the deadline
    _sync(device)
    return n, time.perf_counter() - t0


def _compile(module, device, tiny: bool):
    # On a loaded 2-core CPU inductor (and even aot_eager) takes minutes per graph; the tiny CPU
    # check runs Dynamo's capture, guards and graph breaks with the "eager" backend instead.
    # GPUs always use inductor.
    backend = "inductor" if (device.type == "cuda" or not tiny) else "eager"
    return torch.compile(module, backend=backend), backend


def _tiny_cfg(cfg):
    """The preset at a size a CPU runs in milliseconds: base width 16, one residual block, two
    resolutions with attention at the lower one (Dynamo's capture time grows with the layers)."""
    res = cfg.data.image_size // 2
    return cfg.replace(model={"base_channels": 16, "num_res_blocks": 1, "channel_mult": tuple(cfg.model.channel_mult[:2]),
                              "attn_resolutions": (res,)}, train={"batch_size": 4})


# --- (a) training speed -----------------------------------------------------------------------
TRAIN_MODES = {
    "fp32 eager": {"amp": None, "channels_last": False, "fused": False, "compile": False},
    "bf16 + channels_last + fused Adam": {"amp": torch.bfloat16, "channels_last": True, "fused": True,
                                          "compile": False},
    "+ torch.compile": {"amp": torch.bfloat16, "channels_last": True, "fused": True, "compile": True},
}


def make_train_step(cfg, device, mode: dict, tiny: bool):
    """The training step of ihdm_core.training.train itself (its ``construct`` and ``optimiser_step``:
    flip, learning rate, loss, backward, clipping, Adam, EMA) for ``cfg`` on ``device`` in ``mode``;
    returns (step(x0) -> detached loss, info). No host sync inside: the loss stays on the device.
    As in training, autocast and fused Adam apply on CUDA only; on a CPU every mode runs in fp32."""
    cfg = cfg.replace(train={"amp": "bf16" if mode["amp"] is torch.bfloat16 else "none",
                             "channels_last": mode["channels_last"], "fused_adam": mode["fused"]})
    process = build_process(cfg, device)
    state = construct(cfg, device)
    model = Autocast(state.net, state.amp_dtype)
    info = {"backend": None}
    if mode["compile"]:
        model, info["backend"] = _compile(model, device, tiny)
    gen = torch.Generator(device=device).manual_seed(0)
    steps = itertools.count()

    def step(x0):
        _, loss = optimiser_step(cfg, state, model, None, process, x0, next(steps), gen)
        return loss.detach()

    return step, info


def part_train(ctx, budget: float) -> list[str]:
    device, tiny = ctx["device"], ctx["tiny"]
    presets = ("cifar10", "mnist")
    lines = ["| preset | mode | batch | GFLOP/step | steps/s | img/s | TFLOP/s | % bf16 peak | compile s "
             "| peak MiB | syncs/step | loss finite |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    per = budget / (len(presets) * len(TRAIN_MODES))
    speeds = {}
    for preset in presets:
        cfg = get_preset(preset)
        if tiny:
            cfg = _tiny_cfg(cfg)
        shape = (cfg.train.batch_size, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
        g = torch.Generator().manual_seed(0)
        x0 = torch.rand(shape, generator=g).to(device)  # speed does not depend on pixel values
        flops = None
        for mode_name, mode in TRAIN_MODES.items():
            if tiny and mode["compile"] and preset != presets[0] and device.type == "cpu":
                lines.append(f"| {preset} | {mode_name} | | | skipped (--tiny on CPU compiles one preset) "
                             "| | | | | | | |")
                continue
            t_start = time.perf_counter()
            try:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                step, info = make_train_step(cfg, device, mode, tiny)
                if flops is None:  # counted once per preset, in fp32 eager (the FLOPs do not depend on mode)
                    flops = count_flops(lambda: step(x0))
                t0 = time.perf_counter()
                losses = [step(x0)]
                _sync(device)
                compile_s = time.perf_counter() - t0 if mode["compile"] else None
                losses.append(step(x0))  # a second warm-up step: lazy inits, autotuning caches
                syncs: list = []
                with _count_syncs(device, syncs):  # no explicit synchronize in here: only the step's own syncs
                    for _ in range(3):
                        losses.append(step(x0))
                left = max(per - (time.perf_counter() - t_start), 0.2 * per)
                n, secs = _timed_loop(lambda: losses.append(step(x0)), device, left, 3 if tiny else 10,
                                      3 if tiny else 10_000)
                sps = n / secs
                speeds[(preset, mode_name)] = sps
                tflops, frac = throughput(flops, sps, ctx["device_name"])
                mem = f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}" if device.type == "cuda" else "n/a"
                finite = bool(torch.isfinite(torch.stack(losses)).all())
                comp = "-" if compile_s is None else f"{compile_s:.1f} ({info['backend']})"
                lines.append(f"| {preset} | {mode_name} | {shape[0]} | {flops / 1e9:.2f} | {sps:.2f} | "
                             f"{sps * shape[0]:.1f} | {tflops:.3g} | {'n/a' if frac is None else f'{100 * frac:.1f}%'} | "
                             f"{comp} | {mem} | {f'{syncs[0] / 3:g}' if syncs else 'n/a'} | {'pass' if finite else 'FAIL'} |")
            except Exception as err:  # one mode failing must not hide the others
                lines.append(f"| {preset} | {mode_name} | | | ERROR | | | | | | | `{_one_line(err)}` |")
                ctx["errors"].append(f"(a) {preset} {mode_name}: {_one_line(err)}")
    for preset in presets:
        fast, slow = speeds.get((preset, "+ torch.compile")), speeds.get((preset, "fp32 eager"))
        if fast and slow:
            goal = " (goal >= 1.5x on a GPU)" if preset == "cifar10" else ""
            lines.append(f"\n{preset}: compiled bf16 / fp32 eager = **{fast / slow:.2f}x**{goal}")
    if tiny:
        lines.append("\n(tiny: base width 16, one residual block, the first two resolutions, batch 4)")
    return lines


# --- (b) heat operator ------------------------------------------------------------------------
def part_heat(ctx, budget: float) -> list[str]:
    device, tiny = ctx["device"], ctx["tiny"]
    # Batches that fill the GPU: 256 MiB of float32 images per size (1 MiB on the tiny CPU check).
    target = 2**20 if tiny else 2**28
    lines = ["| size | batch | MiB | blur, per-sample k (ms) | blur, one k (ms) | copy (ms) | per-sample / copy "
             "| one k / copy |", "|---|---|---|---|---|---|---|---|"]
    sizes = (32, 64, 128, 256)
    per = budget / len(sizes)
    worst = 0.0
    for size in sizes:
        try:
            batch = max(1, target // (3 * size * size * 4))
            p = HeatDissipation(size, K=200, sigma_max=size / 2, device=device)
            u = torch.rand(batch, 3, size, size, device=device)
            k = torch.randint(1, 201, (batch,), device=device)
            dst = torch.empty_like(u)
            fns = {"per": lambda: p.blur(u, k), "one": lambda: p.blur(u, 100), "copy": lambda: dst.copy_(u)}
            best = {name: float("inf") for name in fns}
            for fn in fns.values():
                fn()
            t0 = time.perf_counter()
            rounds = 0
            # Best of interleaved rounds: background load hits all three alike.
            while rounds < 3 or (not tiny and time.perf_counter() - t0 < per and rounds < 50):
                for name, fn in fns.items():
                    _sync(device)
                    t = time.perf_counter()
                    fn()
                    _sync(device)
                    best[name] = min(best[name], time.perf_counter() - t)
                rounds += 1
            r_per, r_one = best["per"] / best["copy"], best["one"] / best["copy"]
            worst = max(worst, r_per, r_one)
            lines.append(f"| {size}x{size}x3 | {batch} | {u.numel() * 4 / 2**20:.1f} | {1e3 * best['per']:.3f} | "
                         f"{1e3 * best['one']:.3f} | {1e3 * best['copy']:.3f} | {r_per:.2f}x | {r_one:.2f}x |")
        except Exception as err:
            lines.append(f"| {size}x{size}x3 | | | ERROR `{_one_line(err)}` | | | | |")
            ctx["errors"].append(f"(b) {size}: {_one_line(err)}")
    lines.append(f"\nworst blur / copy ratio: **{worst:.2f}x** (goal <= 2x on a GPU)")
    return lines


# --- (c) sampling -----------------------------------------------------------------------------
def part_sample(ctx, budget: float) -> list[str]:
    device, tiny = ctx["device"], ctx["tiny"]
    cfg = get_preset("cifar10").replace(process={"K": 200})
    if tiny:  # tiny steps too: K = 20 (the projection below still scales images/s to 50,000)
        cfg = _tiny_cfg(cfg).replace(process={"K": 20})
    n = 4 if tiny else 1000
    torch.manual_seed(0)
    net = build_model(cfg).to(device).eval().requires_grad_(False)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    process = build_process(cfg, device)
    step_net, backend = _compile(Autocast(net, torch.bfloat16), device, tiny)
    step_net.eval()
    shape = (n, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    g = torch.Generator(device=device).manual_seed(0)
    u = torch.rand(shape, device=device, generator=g)
    t0 = time.perf_counter()
    with torch.no_grad():  # compile the graph the sampler runs: eval mode, no grad
        step_net(u, torch.full((n,), process.K, device=device, dtype=torch.long))
    _sync(device)
    compile_s = time.perf_counter() - t0
    runs = []
    t_start = time.perf_counter()
    while not runs or (not tiny and time.perf_counter() - t_start < 0.5 * budget and len(runs) < 3):
        _sync(device)
        t = time.perf_counter()
        x = sample(step_net, process, u, generator=g)
        _sync(device)
        runs.append(time.perf_counter() - t)
    if not torch.isfinite(x).all():
        raise FloatingPointError("samples contain non-finite values")
    ips = n / min(runs)
    proj = PAPER_FID_SAMPLES / ips
    return ["| preset | K | batch | compile s | s per batch (best of runs) | images/s | projected 50,000 samples |",
            "|---|---|---|---|---|---|---|",
            f"| cifar10{' (tiny)' if tiny else ''} | {process.K} | {n} | {compile_s:.1f} ({backend}) | "
            f"{min(runs):.2f} ({len(runs)}) | {ips:.1f} | **{proj / 60:.1f} min** |",
            "", "(untrained weights: speed only; goal for 50,000 at K = 200: under 15 min on one H100-class GPU"
            + ("; tiny: K = 20, so the projection is for K = 20)" if tiny else ")")]


# --- (d) the smoke book -------------------------------------------------------------------------
def part_book(ctx, budget: float) -> list[str]:
    from ihdm_core.book.pipeline import chapters, run_pipeline

    device = ctx["device"]
    tmp = Path(ctx["tmp"]) / "book"
    env = {"IHDM_DEVICE": str(device), "IHDM_RUNS": str(tmp / "runs"), "IHDM_OFFLINE": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    lines = ["| chapter | status | seconds |", "|---|---|---|"]
    t0 = time.perf_counter()
    try:
        for name in ctx.get("chapters") or chapters():
            left = budget - (time.perf_counter() - t0)
            if left < 5:
                lines.append(f"| {name} | not run (budget spent) | |")
                continue
            t = time.perf_counter()
            try:
                run_pipeline("smoke", out=tmp / "out", figures=tmp / "figures", only=[name], html=False,
                             timeout=int(left) + 1, log=lambda *a, **k: None)
                status = "pass"
            except Exception as err:
                status = f"FAIL `{_one_line(err)}`"
                ctx["errors"].append(f"(d) {name}: {_one_line(err)}")
            lines.append(f"| {name} | {status} | {time.perf_counter() - t:.1f} |")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return lines


# --- (e) DDP ------------------------------------------------------------------------------------
def part_ddp(ctx, budget: float) -> list[str]:
    device = ctx["device"]
    tmp = Path(ctx["tmp"]) / "ddp"
    run_dir = tmp / "run"
    expected = "nccl" if device.type == "cuda" else "gloo"
    env = dict(os.environ, IHDM_RUNS=str(tmp / "runs"), IHDM_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
           "-m", "ihdm_core", "train", "--preset", "mnist-smoke", "--set", "train.steps=3", "train.log_every=1",
           "--run-dir", str(run_dir), "--device", str(device)]
    t0 = time.perf_counter()
    # Its own session, so that a timeout ends torchrun's worker too, not only the launcher. Start-up
    # (imports, rendezvous, CUDA and NCCL init) can exceed a small share: at least 3 minutes.
    limit = max(budget, 180)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(ROOT), start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise TimeoutError(f"torchrun did not finish within {limit:.0f} s") from None
    secs = time.perf_counter() - t0
    problems = []
    if proc.returncode != 0:
        tail = (stderr or stdout).strip().splitlines()
        problems.append(f"exit {proc.returncode}: {tail[-1] if tail else ''}")
    else:
        ckpt = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
        if ckpt["step"] != 3:
            problems.append(f"checkpoint at step {ckpt['step']}, expected 3")
        if ckpt.get("dist_backend") != expected:
            problems.append(f"process group {ckpt.get('dist_backend')!r}, expected {expected!r}")
        recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
        losses = [v for r in recs for v in r["losses"]]
        if len(losses) != 3 or not all(map(lambda v: v == v and abs(v) < float("inf"), losses)):
            problems.append(f"expected 3 finite logged losses, got {losses}")
    status = "pass" if not problems else "FAIL `" + "; ".join(problems)[:300] + "`"
    if problems:
        ctx["errors"].append(f"(e) {'; '.join(problems)[:300]}")
    return ["| launch | backend | status | seconds |", "|---|---|---|---|",
            f"| torchrun --nproc_per_node 1 -m ihdm_core train --preset mnist-smoke (3 steps) | {expected} | "
            f"{status} | {secs:.1f} |"]


PARTS = {
    "a": ("(a) training speed", part_train),
    "b": ("(b) heat operator vs a device copy", part_heat),
    "c": ("(c) sampling cifar10 at K = 200, bf16, compiled", part_sample),
    "d": ("(d) the smoke book on the device", part_book),
    "e": ("(e) DDP launch", part_ddp),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-s", type=float, required=True, help="wall-time budget shared by the parts")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes and steps (the CPU test)")
    ap.add_argument("--skip-book", action="store_true", help="skip part (d), the smoke book")
    ap.add_argument("--parts", default="abcde", help="which parts to run, e.g. 'ace' for a rerun (default: all)")
    ap.add_argument("--chapters", nargs="*", default=None, help="part (d): only these chapters (default: all)")
    ap.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    ap.add_argument("--out", default=None, help="also write the report to this markdown file")
    args = ap.parse_args(argv)
    if args.budget_s <= 0:
        ap.error(f"--budget-s must be positive, got {args.budget_s}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    out = Path(args.out) if args.out else None
    if out:
        out.write_text("")

    def emit(text: str) -> None:
        print(text, flush=True)
        if out:
            with open(out, "a") as fh:
                fh.write(text + "\n")

    peak = bf16_peak_tflops(name)
    emit("# GPU check report\n")
    emit(f"- device: **{name}** (dense bf16 peak: {f'{peak:.0f} TFLOP/s' if peak else 'n/a'})")
    emit(f"- torch {torch.__version__}, CUDA {torch.version.cuda}, python {sys.version.split()[0]}")
    # fp32 eager runs as train.amp='none' would: with PyTorch's TF32 defaults, left as they are.
    emit(f"- TF32: matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN convolutions "
         f"{torch.backends.cudnn.allow_tf32} (PyTorch defaults; the fp32 rows use them)")
    emit(f"- budget {args.budget_s:.0f} s{', tiny shapes' if args.tiny else ''}; "
         f"started {time.strftime('%Y-%m-%d %H:%M:%S')}")
    bad = sorted(set(args.parts) - set(PARTS))
    if bad:
        ap.error(f"--parts {args.parts!r}: unknown part(s) {', '.join(bad)}; use letters of abcde")
    skip = {"d"} if args.skip_book else set()
    skip |= set(PARTS) - set(args.parts)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        ctx = {"device": device, "device_name": name, "tiny": args.tiny, "tmp": tmp, "errors": [],
               "chapters": args.chapters}
        for key, (title, fn) in PARTS.items():
            if key in skip:
                emit(f"\n## {title}\n\nskipped ({'--skip-book' if key == 'd' and args.skip_book else '--parts'})")
                continue
            # A part that overran (compile times are not controllable) shrinks the later ones' shares.
            remaining = max(args.budget_s - (time.perf_counter() - t_all), 0.05 * args.budget_s)
            budget = remaining * SHARES[key] / sum(SHARES[k] for k in PARTS if k not in skip and k >= key)
            print(f"[gpu_check] {title} (budget {budget:.0f} s) ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                body = fn(ctx, budget)
            except Exception as err:
                traceback.print_exc(file=sys.stderr)
                body = [f"ERROR `{_one_line(err)}`"]
                ctx["errors"].append(f"({key}) {_one_line(err)}")
            emit(f"\n## {title}\n\n_{time.perf_counter() - t0:.1f} s of a {budget:.0f} s share_\n")
            emit("\n".join(body))
        emit(f"\n## Summary\n\ntotal {time.perf_counter() - t_all:.1f} s; "
             + (f"{len(ctx['errors'])} error(s):\n" + "\n".join(f"- {e}" for e in ctx["errors"])
                if ctx["errors"] else "no errors"))
    return 1 if ctx["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
