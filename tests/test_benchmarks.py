"""The throughput benchmarks run at smoke size (no timing is asserted: they print tables)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, timeout=600):
    out = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_bench_release_without_a_checkout_says_how_to_get_one():
    out = _run("benchmarks/bench_release.py")
    assert "skipped, no checkout of the 2023 release" in out and "git clone" in out


def test_bench_release_rejects_a_folder_that_is_not_the_release(tmp_path):
    out = subprocess.run(
        [sys.executable, "benchmarks/bench_release.py", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "is not a checkout of the 2023 release" in out.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)  # two threads on a loaded 2-core machine can take minutes even here
def test_bench_sampling_smoke_runs_every_variant():
    out = _run("benchmarks/bench_sampling.py", "--smoke", timeout=1700)
    for variant in (
        "1 thread(s), batch 1 |",
        "2 thread(s), batch 2 |",
        "inference_mode",
        "channels_last",
        "2 procs x 1 thread",
    ):
        assert variant in out, out


@pytest.mark.slow
def test_bench_layout_smoke_trains_both_layouts_through_the_cli():
    out = _run("benchmarks/bench_layout.py", "--smoke", timeout=900)
    assert "| 1 proc x 2 threads |" in out and "| 2 procs x 1 thread (DDP) |" in out
    assert "| 1.00x |" in out


def test_bench_layout_reads_speed_from_the_log_after_the_first_interval(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import json

    import bench_layout

    # Intervals of 10 steps at 1, 2 and 4 steps/s: the first is left out, the rest take
    # 10/2 + 10/4 = 7.5 s for 20 steps.
    lines = [{"step": 10 * (i + 1), "steps_per_s": v, "losses": [0.1] * 10} for i, v in
             enumerate((1.0, 2.0, 4.0))]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert bench_layout.steps_per_second(tmp_path) == pytest.approx(20 / 7.5)
    assert bench_layout.layouts(2) == {"1 proc x 2 threads": (1, 2),
                                       "2 procs x 1 thread (DDP)": (2, 1)}
    assert bench_layout.layouts(1) == {"1 proc x 1 thread": (1, 1)}
