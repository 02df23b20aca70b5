"""Training throughput of process layouts on the CPU: one process with N threads against N
processes with one thread each (torchrun, gloo DDP), same preset, same batch, same math.

    python benchmarks/bench_layout.py                          # mnist-ref, 2 cores, 3 rounds
    python benchmarks/bench_layout.py --preset mnist-ref --steps 300 --rounds 5
    python benchmarks/bench_layout.py --smoke                  # seconds; what the test suite runs

Each layout trains ``--steps`` steps of the preset from scratch into a temporary folder through the
real command line (``python -m ihdm_core train``, under ``torch.distributed.run`` for DDP), and its
speed is read from the run's own log: steps per second of wall time over the logged intervals
after the first (which holds start-up and the first, slower steps). Rounds interleave the layouts,
so a load change on a shared machine hits all of them alike; the table gives the median.

Under DDP each of the N ranks computes batch / N images and the gradients are averaged, so a step
is the same optimisation step as in one process (the same identity; rounding aside). It pays an
all-reduce of every gradient per step and a second copy of the data and the model in memory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ihdm_core.training.log import read_metrics  # noqa: E402


def layouts(cores: int) -> dict[str, tuple[int, int]]:
    """{name: (processes, threads per process)} that use ``cores`` cores in all."""
    out = {f"1 proc x {cores} thread{'s' if cores > 1 else ''}": (1, cores)}
    if cores > 1:
        out[f"{cores} procs x 1 thread (DDP)"] = (cores, 1)
    return out


def command(preset: str, steps: int, log_every: int, run_dir: Path, procs: int) -> list[str]:
    train = ["-m", "ihdm_core", "train", "--preset", preset, "--device", "cpu",
             "--run-dir", str(run_dir), "--set", f"train.steps={steps}",
             f"train.log_every={log_every}", f"train.ckpt_every={steps}", "train.eval_every=0",
             "train.snapshot_every=0", "train.grid_every=0"]
    if procs == 1:
        return [sys.executable, *train]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            str(procs), *train]


def steps_per_second(run_dir: Path) -> float:
    """Wall-time steps/s over the logged intervals after the first."""
    recs = [r for r in read_metrics(run_dir) if r.get("steps_per_s")]
    if len(recs) < 2:
        raise RuntimeError(f"{run_dir}: need at least two logged intervals, got {len(recs)}; "
                           "raise --steps or lower --log-every")
    later = recs[1:]
    steps = sum(len(r["losses"]) for r in later)
    return steps / sum(len(r["losses"]) / r["steps_per_s"] for r in later)


def run_layout(preset: str, steps: int, log_every: int, procs: int, threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        env["IHDM_RUNS"] = str(Path(tmp) / "runs")
        run_dir = Path(tmp) / "run"
        out = subprocess.run(command(preset, steps, log_every, run_dir, procs), env=env,
                             capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            raise RuntimeError(f"{procs} x {threads}: training failed:\n{out.stderr[-2000:]}")
        return steps_per_second(run_dir)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mnist-ref")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--smoke", action="store_true", help="mnist-smoke, a few steps, one round")
    args = ap.parse_args(argv)
    if args.smoke:
        args.preset, args.steps, args.log_every, args.rounds, args.cores = "mnist-smoke", 8, 2, 1, 2
    if min(args.steps, args.log_every, args.rounds, args.cores) < 1:
        ap.error("--steps, --log-every, --rounds and --cores must be positive")
    if args.steps < 2 * args.log_every:
        ap.error("--steps must cover at least two logged intervals (2 x --log-every)")
    speeds: dict[str, list[float]] = {name: [] for name in layouts(args.cores)}
    for r in range(args.rounds):
        for name, (procs, threads) in layouts(args.cores).items():
            speeds[name].append(run_layout(args.preset, args.steps, args.log_every, procs, threads))
            print(f"round {r + 1}: {name}: {speeds[name][-1]:.2f} steps/s", file=sys.stderr)
    base = statistics.median(next(iter(speeds.values())))
    print(f"\n{args.preset}, {args.steps} steps per run, median of {args.rounds} interleaved "
          f"round(s), {args.cores} cores\n")
    print("| layout | steps/s (median) | rounds | vs first |\n|---|---|---|---|")
    for name, v in speeds.items():
        med = statistics.median(v)
        print(f"| {name} | {med:.2f} | {', '.join(f'{x:.2f}' for x in v)} | {med / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
