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
