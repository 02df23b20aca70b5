"""Commit-ready training state of long runs: ``runs/<run>/checkpoint.pt`` -> ``models/resumable/<run>/``.

    python scripts/save_training_state.py --preset mnist-long mnist-colour-long

Run it before a working session ends, then commit ``models/resumable/``. On any machine,
``python -m ihdm_core train --preset mnist-long`` then continues from the committed step (the
trainer imports the state into an empty run folder) instead of starting again.
"""

import argparse
import sys

from ihdm_core.training.checks import ConfigError
from ihdm_core.training.presets import get_preset
from ihdm_core.training.resumable import committed_step, export_state
from ihdm_core.training.paths import run_dir_for


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", nargs="+", required=True)
    args = ap.parse_args(argv)
    for name in args.preset:
        try:
            cfg = get_preset(name)
        except (KeyError, ConfigError) as e:
            ap.error(str(e))
        run_dir = run_dir_for(cfg)
        if not (run_dir / "checkpoint.pt").exists():
            print(f"error: {run_dir} has no checkpoint to save", file=sys.stderr)
            return 2
        dest = export_state(run_dir)
        size = sum(p.stat().st_size for p in dest.iterdir()) / 2**20
        print(f"{cfg.run_name()}: step {committed_step(dest)} of {cfg.train.steps} -> {dest} ({size:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
