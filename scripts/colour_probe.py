"""How far shape follows the noise and colour the prior in a colour IHDM run, at several sampling
noises delta and training snapshots: chapter 6's measure, outside the book, to follow a long run.

    python scripts/colour_probe.py --preset mnist-colour-long --steps 4000 8000 --deltas 0.0125 0.02
    python scripts/colour_probe.py --preset mnist-colour-ref            # the finished run's weights

For every (step, delta) it draws a grid of P prior colours x N shared noise sets
(:func:`ihdm_core.evaluation.disentangle.shape_correlations`) and prints the mean shape
correlation of sample pairs with the same noise (different priors), the same prior (different
noise) and neither. Disentangled means: high for the same noise, low for the same prior. The priors
are P training images whose mean colours spread out (farthest-point sampling over a seeded subset
of 64), as in chapter 6; the noise is seeded too, so a row of the table is reproducible. One grid
of 8 x 8 is about a minute on one CPU thread.
"""

from __future__ import annotations

import argparse

import torch

from ihdm_core.evaluation.curves import snapshot_run
from ihdm_core.evaluation.disentangle import PAIR_KINDS, shape_correlations
from ihdm_core.training.data import load_dataset
from ihdm_core.training.paths import run_dir_for
from ihdm_core.training.presets import get_preset
from ihdm_core.training.runs import load_run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", required=True, help="a colour IHDM preset")
    ap.add_argument("--steps", type=int, nargs="*", default=[],
                    help="training snapshots to probe (default: the finished run)")
    ap.add_argument("--deltas", type=float, nargs="*", default=[],
                    help="sampling noises (default: the run's own delta)")
    ap.add_argument("--priors", type=int, default=8)
    ap.add_argument("--noises", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    for name, v, lo in (("--priors", args.priors, 2), ("--noises", args.noises, 2)):
        if v < lo:
            ap.error(f"{name}={v} is not allowed: must be an integer >= {lo}")
    if any(not d >= 0 for d in args.deltas):
        ap.error(f"--deltas={args.deltas} is not allowed: every delta must be >= 0")
    torch.set_num_threads(args.threads)
    cfg = get_preset(args.preset)
    if cfg.data.channels != 3 or cfg.process.kind != "ihdm":
        ap.error(f"--preset={args.preset} is not a colour IHDM preset")
    runs = ([(step, snapshot_run(run_dir_for(cfg), step)) for step in args.steps]
            or [(None, load_run(cfg))])
    images = load_dataset(cfg.data)
    print(f"# {cfg.name}: shape correlation of {args.priors} priors x {args.noises} noise sets, "
          f"seed {args.seed}\n")
    print("| step | delta | " + " | ".join(PAIR_KINDS) + " | same noise - same prior |")
    print("|---|---|---|---|---|---|")
    for step, run in runs:
        for delta in args.deltas or [None]:
            r = shape_correlations(run.net, run.process, images, delta, priors=args.priors,
                                   noises=args.noises, seed=args.seed)
            d = run.process.delta if delta is None else delta
            print(f"| {step if step is not None else run.step} | {d:g} | "
                  + " | ".join(f"{r[k]:.3f}" for k in PAIR_KINDS)
                  + f" | {r['same noise'] - r['same prior']:+.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
