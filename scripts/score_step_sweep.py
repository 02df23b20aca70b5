"""Score a profile's diffusion at chapter 9's sampling steps, outside the book.

The sweep of chapter 9 (several hundred thousand network evaluations per model on CPU) is the
most expensive part of the quick book. Its scores are cached per run, exactly as the chapter
asks for them, so this script can fill the cache beforehand, one process per model in parallel:

    OMP_NUM_THREADS=1 python scripts/score_step_sweep.py --profile quick --role blurring &
    OMP_NUM_THREADS=1 python scripts/score_step_sweep.py --profile quick --role ddpm &
    OMP_NUM_THREADS=1 python scripts/score_step_sweep.py --profile quick --role ablation  # eps/v/x models

For a shipped model the scores land in runs/shipped/<run>/scores.jsonl; `--publish` appends the
new ones to models/<run>/scores.jsonl, to ship them with the weights (as
`python -m ihdm_core models card --preset <preset> --publish` does for any chapter's scores).
"""

from __future__ import annotations

import argparse
import time

from ihdm_core.evaluation.scores import step_sweep
from ihdm_core.book.profiles import get_profile
from ihdm_core.training.shipped import publish_scores, write_card
from ihdm_core.training.presets import get_preset
from ihdm_core.training.train import ensure_trained

OPTIONS = ({}, {"grid": "edge"}, {"clamp_dct": True}, {"grid": "edge", "clamp_dct": True})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--role", choices=["ddpm", "blurring", "ablation"], required=True)
    ap.add_argument("--publish", action="store_true", help="append the new scores to the shipped model's folder")
    args = ap.parse_args(argv)
    P = get_profile(args.profile)
    if args.role == "ablation":
        return _ablation(P, args.publish)
    run = ensure_trained(P.config(args.role), device=P.device)
    t0 = time.perf_counter()
    rows = step_sweep(run, P.diffusion_steps, n_default=P.n_eval, seed=P.seed, fid_ref_n=P.fid_ref_n)
    for rec in rows:
        print(f"T={rec['steps']:5d} n={rec['samples']:4d} recognisability {rec['recognisability']['value']:.3f} "
              f"FID {rec['fid']['value']:.2f} exploded {rec['explosions']['value']}  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.role == "blurring":
        T_opt = min(rec["steps"] for rec in rows)
        for options in OPTIONS:
            for rec in step_sweep(run, [(T_opt, P.n_options)], n_default=P.n_options, seed=P.seed,
                                  metrics=("recognisability", "explosions"), **options):
                print(f"T={T_opt} {options or 'default'}: recognisability {rec['recognisability']['value']:.3f} "
                      f"exploded {rec['explosions']['value']} of {rec['samples']}", flush=True)
    if args.publish:
        _publish(run)
    return 0


def _publish(run) -> None:
    if run.source != "shipped":
        print(f"{run.cfg.name} is not shipped (trained in {run.run_dir}); nothing published")
        return
    dest, added = publish_scores(run.cfg)
    write_card(run.cfg)
    print(f"published {dest} ({added} new records)")


def _ablation(P, publish: bool) -> int:
    """The prediction ablation of chapter 9: each model at the sweep's smallest T and at the grid's T."""
    T_opt = min(T for T, _ in P.diffusion_steps)
    for preset in P.prediction_ablation:
        run = ensure_trained(get_preset(preset), device=P.device)
        for rec in step_sweep(run, sorted({(T_opt, P.n_options), (P.grid_steps, P.n_options)}), n_default=P.n_options,
                              seed=P.seed, metrics=("recognisability", "explosions")):
            print(f"{preset} T={rec['steps']}: recognisability {rec['recognisability']['value']:.3f} "
                  f"exploded {rec['explosions']['value']} of {rec['samples']}", flush=True)
        if publish:
            _publish(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
