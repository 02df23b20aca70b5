"""Update latency of chapter 11's explorers, measured through their widgets.

Each explorer is built (its first view: models loaded, the first trajectory sampled), then
driven by a scripted sequence of control changes, as a reader would move them. An update is
everything a control change costs: the view (through the explorer's caches) and the PNG drawn
for the widget. Printed per explorer and kind of action: n, the first update, and the median
and largest of the updates after it.

    python benchmarks/bench_explore.py                 # quick profile, 2 torch threads
    python benchmarks/bench_explore.py --threads 1 --profile smoke

The issue's target: <= 1 s per update after the first, on 2 CPU cores with MNIST-size models.
Actions that need a new sample (another seed, another prior colour) sample once and are cached
afterwards; they are listed as their own rows. The machine's load average is printed with the
table: on a shared machine the numbers are upper bounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


CPU = []  # the CPU seconds of every timed update, in the order of the wall times


def _timed(ui, control: str, value) -> float:
    """Set one control and return the seconds its update took (compute and draw); its CPU
    seconds (all threads of this process) go to CPU. On a shared machine the wall time waits
    for other processes, the CPU time does not: on an idle machine an update takes at most
    about its CPU time (less when both threads work)."""
    t0, c0 = time.perf_counter(), time.process_time()
    ui.controls[control].value = value
    CPU.append(time.process_time() - c0)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from ihdm_core.book import explore as E
    from ihdm_core.book import explore_compare as C
    from ihdm_core.book import explore_widgets as ui
    from ihdm_core.book.photos import photograph
    from ihdm_core.model.images import to_float

    rows = []

    def record(explorer, action, first, times):
        cpu = CPU[-len(times):] if times else []  # the updates just timed, in the same order
        nan = float("nan")
        rows.append((explorer, action, len(times), first,
                     statistics.median(times) if times else nan, max(times) if times else nan,
                     statistics.median(cpu) if cpu else nan, max(cpu) if cpu else nan))

    def build(make):
        t0 = time.perf_counter()
        w = make()
        return w, time.perf_counter() - t0

    models = E.Models(args.profile, device="cpu")
    ihdm = models.run("ihdm")
    K = ihdm.process.K

    # Forward process: the slider over k, then another image.
    fx = E.ForwardExplorer(K, ihdm.process.sigma_max, ihdm.process.sigma_min)
    fx.add_image("camera", photograph("camera", 64))
    for i in range(4):
        fx.add_image(f"digit {i}", to_float(models.images("ihdm")[i]))
    w, first = build(lambda: ui.forward(fx, image="camera"))
    record(
        "forward", "move k", first, [_timed(w, "k", k) for k in range(0, K + 1, max(1, K // 10))]
    )
    record("forward", "another image", first, [_timed(w, "image", f"digit {i}") for i in range(4)])

    # Generation: the step slider over a sampled trajectory; new seeds; delta.
    gx = E.GenerationExplorer(models)
    w, first = build(lambda: ui.generation(gx))
    n = len(gx.trajectory("ihdm", 0)["levels"])
    record(
        "generation",
        "move the step",
        first,
        [_timed(w, "step", s) for s in range(0, n, max(1, n // 10))],
    )
    record(
        "generation", "new seed (IHDM, samples)", first, [_timed(w, "seed", s) for s in (1, 2, 3)]
    )
    record("generation", "seed seen before", first, [_timed(w, "seed", s) for s in (0, 1, 2)])
    w.controls["model"].value = "ddpm"
    record(
        "generation", "new seed (DDPM T=50, samples)", first, [_timed(w, "seed", s) for s in (7, 8)]
    )

    # Colour and shape: colours picked once (samples), then revisited (cached).
    cx = E.ColourExplorer(models)
    w, first = build(lambda: ui.colour(cx))
    palette = ["#d03030", "#30a040", "#3070d0", "#e0a020"]
    record("colour", "new prior colour (samples)", first, [_timed(w, "colour", c) for c in palette])
    record("colour", "colour seen before", first, [_timed(w, "colour", c) for c in palette[::-1]])

    # Interpolation: the frame slider along a sampled path; a new pair of seeds.
    ix = C.InterpolationExplorer(models, n_frames=models.profile.n_interp, ddpm_steps=50)
    w, first = build(lambda: ui.interpolation(ix))
    record(
        "interpolation",
        "move along the path",
        first,
        [_timed(w, "frame", i) for i in range(ix.n_frames)],
    )
    record("interpolation", "new seed pair (samples)", first, [_timed(w, "seed_b", 2)])

    # Input gradients: pixels and levels on one seed's trajectories (one backward pass each).
    grx = C.GradientExplorer(models, gx)
    w, first = build(lambda: ui.gradients(grx))
    H, W = ihdm.process.image_size
    record(
        "gradients",
        "move the pixel",
        first,
        [_timed(w, "row", r) for r in (H // 4, H // 3, H // 2 + 2, 3 * H // 4)],
    )
    record(
        "gradients",
        "move the level",
        first,
        [_timed(w, "k", k) for k in (1, K // 4, K // 2 + 1, K)],
    )

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(
        f"profile {args.profile}, torch threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )
    print("wall seconds per update; CPU seconds of this process for the same updates")
    head = f"{'explorer':<14} {'action':<30} {'n':>3} {'first s':>8} {'median s':>9} {'max s':>7}"
    print(head + f" {'CPU med':>8} {'CPU max':>8}")
    for name, action, n, first, med, mx, cmed, cmx in rows:
        print(f"{name:<14} {action:<30} {n:>3} {first:>8.2f} {med:>9.3f} {mx:>7.3f}"
              f" {cmed:>8.3f} {cmx:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
