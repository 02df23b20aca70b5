"""Learning curve of a run: every numbered snapshot scored, written to ``models/curves/<run>.json``.

    python scripts/learning_curve.py --preset mnist-long                 # the snapshots there now
    python scripts/learning_curve.py --preset mnist-long --watch 7200    # and new ones, for 2 h
    python scripts/learning_curve.py --smoke --out /tmp/curve.json       # seconds, for tests

Each point: recognisability and FID of the same n samples (drawn once, seed fixed, at the run's
delta), images seen, the held-out loss, and CPU seconds counted as steps / (steps per CPU-second
of the preset, measured once through the real training loop). Scores are cached per snapshot, so
a re-run only scores new snapshots. The rows are kept with the models because the book plots
them; the training state they came from is under ``models/resumable/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ihdm_core.evaluation.curves import learning_curve, snapshot_steps
from ihdm_core.training.presets import get_preset
from ihdm_core.training.recipes import cached_throughput, load_json, save_json
from ihdm_core.training.paths import run_dir_for
from ihdm_core.training.train import train

ROOT = Path(__file__).resolve().parent.parent


def _chosen(steps: list[int], every: int, final: int) -> list[int]:
    """The snapshots at multiples of ``every`` steps and the run's final one (all of them if every
    is 0): a point costs minutes of sampling, so a long run may be scored more sparsely than it
    saves snapshots."""
    if not every:
        return steps
    return [s for s in steps if s % every == 0 or s == final]


def _unscored(available: list[int], scored: list[int], every: int, final: int) -> list[int]:
    """The snapshots to score that the last pass did not. --watch waits on this, not on the
    snapshot list changing: a snapshot saved while a pass was scoring is already in the list when
    the pass ends, and was once left unscored for good."""
    done = set(scored)
    return [s for s in _chosen(available, every, final) if s not in done]


def _merged(out: Path, run: str, rows: list[dict]) -> list[dict]:
    """``rows`` plus the points of the same run already in ``out`` at other steps: scoring more
    sparsely later (--every) must not drop points scored before."""
    old = load_json(out)
    if old.get("run") != run:
        return rows
    by_step = {r["step"]: r for r in old.get("rows", [])}
    by_step.update({r["step"]: r for r in rows})
    return [by_step[s] for s in sorted(by_step)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mnist-long")
    ap.add_argument("--n", type=int, default=500, help="samples per point (recognisability and FID)")
    ap.add_argument("--ref-n", type=int, default=1000, help="training images in the FID reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--watch", type=float, default=0.0, help="seconds to keep scoring new snapshots")
    ap.add_argument("--every", type=int, default=0,
                    help="score only snapshots at multiples of this many steps, and the "
                         "final one (default: every snapshot)")
    ap.add_argument("--out", type=Path, help="default: models/curves/<run>.json")
    ap.add_argument("--smoke", action="store_true", help="train a tiny run with snapshots and score it")
    args = ap.parse_args(argv)
    if args.n < 1 or args.threads < 1 or args.watch < 0 or args.every < 0:
        ap.error("--n and --threads must be positive, --watch and --every >= 0")
    torch.set_num_threads(args.threads)
    cfg = get_preset(args.preset)
    probe = 30
    if args.smoke:
        cfg = get_preset("mnist-smoke", train={"steps": 6, "snapshot_every": 3, "keep_snapshots": 10,
                                               "eval_every": 3, "eval_n": 16, "ckpt_every": 3})
        args.n, args.ref_n, probe = 8, 32, 6
        train(cfg, progress=False)
    run_dir = run_dir_for(cfg)
    out = args.out or ROOT / "models" / "curves" / f"{cfg.run_name()}.json"
    sps = cached_throughput(cfg, threads=args.threads, probe_steps=probe)
    deadline = time.time() + args.watch
    while True:
        steps = _chosen(snapshot_steps(run_dir), args.every, cfg.train.steps)
        rows = learning_curve(run_dir, n_recog=args.n, n_fid=args.n, ref_n=args.ref_n, seed=args.seed,
                              steps=steps,
                              steps_per_cpu_second=sps,
                              progress=lambda r: print(json.dumps(r), file=sys.stderr))
        rows = _merged(out, cfg.run_name(), rows)
        save_json(out, {"run": cfg.run_name(), "steps_per_cpu_second": sps, "threads": args.threads,
                        "rows": rows})
        if time.time() >= deadline:
            break
        while time.time() < deadline and not _unscored(snapshot_steps(run_dir), steps, args.every,
                                                       cfg.train.steps):
            time.sleep(30)
    print(f"{len(rows)} points -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
