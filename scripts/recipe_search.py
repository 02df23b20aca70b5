"""Recipe search at a fixed CPU budget: train every arm of ``ihdm_core.training.recipes.ARMS`` for the
same number of CPU seconds and score each with n samples at a fixed seed.

    python scripts/recipe_search.py --base mnist-ref --budget 600 --n 500      # docs/recipe-search.md
    python scripts/recipe_search.py --smoke --out /tmp/search.md               # seconds, for tests

Each arm's speed is measured first, one after the other (steps per CPU-second of the process, with
--threads threads), and cached in ``<runs>/recipe-search/throughput.json`` under what a step's cost
depends on (``recipes.compute_key``: arms that change only the learning rate, EMA, sigma or K share
the base arm's speed); its budget in steps is budget x steps/s.
Arms are ordinary runs (cached by identity), so an interrupted search continues where it stopped
and a finished arm is only scored. Writes a Markdown table (--out) and its rows as JSON beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ihdm_core.evaluation.curves import binomial_se
from ihdm_core.evaluation.scores import score
from ihdm_core.training.presets import get_preset
from ihdm_core.training.recipes import ARMS, SMOKE_ARMS, arm_config, budget_steps, cached_throughput, \
    save_json
from ihdm_core.training.runs import load_run
from ihdm_core.training.train import train

COLUMNS = ("arm", "question", "steps", "batch", "images_seen", "steps_per_cpu_s", "budget_cpu_s",
           "recognisability", "se", "fid", "min_class_share", "n", "seed", "identity")


def _row(arm, cfg, sps, budget, n, n_fid, ref_n, seed) -> dict:
    run = load_run(cfg)
    rec = score(run, "recognisability", n=n, seed=seed, progress=False)
    fid = score(run, "fid", n=n_fid, seed=seed, ref_n=ref_n, progress=False) if n_fid else None
    hist = rec["details"]["class_histogram"]
    return {"arm": arm.name, "question": arm.question, "steps": cfg.train.steps,
            "batch": cfg.train.batch_size, "images_seen": cfg.train.steps * cfg.train.batch_size,
            "steps_per_cpu_s": sps, "budget_cpu_s": budget, "recognisability": rec["value"],
            "se": binomial_se(rec["value"], n), "fid": fid["value"] if fid else None,
            "min_class_share": min(hist) / max(sum(hist), 1), "n": n, "seed": seed,
            "identity": cfg.identity()}


def markdown(rows: list[dict], base: str, budget: float, threads: int) -> str:
    best = max(rows, key=lambda r: r["recognisability"])
    lines = [f"# Recipe search: {base} at {budget:g} CPU seconds per arm", "",
             f"Every arm trained for the same CPU budget: steps = {budget:g} CPU-s x its steps per "
             f"CPU-second ({threads} thread{'s' if threads > 1 else ''}, the process's own CPU time); samples at the preset's delta, "
             "seed fixed; SE is the binomial standard error of the recognisability.", "",
             "| arm | question | steps | batch | images | steps/CPU-s | recognisability (SE) "
             "| FID | min class share | n |", "|" + "---|" * 10]
    for r in rows:
        fid = "-" if r["fid"] is None else f"{r['fid']:.1f}"
        lines.append(f"| {r['arm']} | {r['question']} | {r['steps']:,} | {r['batch']} | "
                     f"{r['images_seen']:,} | {r['steps_per_cpu_s']:.2f} | "
                     f"{r['recognisability']:.3f} ({r['se']:.3f}) | {fid} | "
                     f"{r['min_class_share']:.3f} | {r['n']} |")
    lines += ["", f"Highest recognisability: **{best['arm']}** ({best['recognisability']:.3f} "
              f"+- {best['se']:.3f})."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="mnist-ref")
    ap.add_argument("--budget", type=float, default=600.0, help="CPU seconds of training per arm")
    ap.add_argument("--n", type=int, default=500, help="samples for recognisability")
    ap.add_argument("--n-fid", type=int, default=500, help="samples for FID (0: skip)")
    ap.add_argument("--ref-n", type=int, default=1000, help="training images in the FID reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--arms", nargs="*", help="a subset of arm names (default: all)")
    ap.add_argument("--probe-steps", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path("docs/recipe-search.md"))
    ap.add_argument("--smoke", action="store_true", help="tiny base, three arms, a few samples")
    args = ap.parse_args(argv)
    if args.smoke:
        args.base, arms = "mnist-smoke", SMOKE_ARMS
        args.budget, args.n, args.n_fid, args.ref_n, args.probe_steps = 2.0, 16, 16, 64, 6
    else:
        arms = ARMS
    if args.arms:
        unknown = set(args.arms) - {a.name for a in ARMS}
        if unknown:
            ap.error(f"unknown arms {sorted(unknown)}; known: {', '.join(a.name for a in ARMS)}")
        arms = [a for a in ARMS if a.name in args.arms]
    for name in ("budget", "n", "threads", "probe_steps"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be positive")
    base = get_preset(args.base)
    torch.set_num_threads(args.threads)
    # Speeds first, one arm after the other, before any arm trains.
    speeds = {a.name: cached_throughput(arm_config(base, a, 1), threads=args.threads,
                                        probe_steps=args.probe_steps) for a in arms}
    rows = []
    for arm in arms:
        cfg = arm_config(base, arm, budget_steps(args.budget, speeds[arm.name]))
        print(f"[search] {arm.name}: {cfg.train.steps} steps ({speeds[arm.name]:.2f} steps/CPU-s)",
              file=sys.stderr)
        train(cfg, progress=False)
        rows.append(_row(arm, cfg, speeds[arm.name], args.budget, args.n, args.n_fid, args.ref_n,
                         args.seed))
        save_json(args.out.with_suffix(".json"), {"base": args.base, "budget_s": args.budget,
                                                  "threads": args.threads, "rows": rows})
        args.out.write_text(markdown(rows, args.base, args.budget, args.threads))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
