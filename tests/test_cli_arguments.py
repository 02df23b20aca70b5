"""Every command-line argument is checked like a config field: a range, or a path of the right
kind. Each bad value is one line ``error: --name=value is not allowed: ...`` and exit status 2,
before anything is loaded or trained (so these run in-process, in milliseconds)."""

import subprocess
import sys
from pathlib import Path

import pytest

from ihdm_core import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def paths(tmp_path):
    afile = tmp_path / "a_file.txt"
    afile.write_text("x")
    return {"FILE": str(afile), "DIR": str(tmp_path), "NEW": str(tmp_path / "new" / "x.png")}


CASES = [
    (cli.sample_main, ["--delta", "-1"],
     "--delta=-1.0 is not allowed: must be a finite number >= 0"),
    (cli.sample_main, ["--delta", "nan"], "--delta=nan"),
    (cli.sample_main, ["--outdir", "FILE"], "--outdir='FILE' is not allowed: must be a folder"),
    (cli.sample_main, ["--npz", "DIR"], "it names a folder"),
    (cli.sample_main, ["--npz", "FILE"], "must end in .npz"),
    (cli.sample_main, ["--out", "FILE"], "must end in .png"),
    (cli.sample_main, ["--n", "0"], "--n=0 is not allowed: must be an integer >= 1"),
    (cli.sample_main, ["--seed", "-3"], "--seed=-3"),
    (cli.sample_main, ["--frames", "1"], "--frames=1 is not allowed: must be an integer >= 2"),
    (cli.sample_main, ["--batch-size", "0"], "--batch-size=0"),
    (cli.sample_main, ["--steps", "0"], "--steps=0"),
    (cli.sample_main, ["--shared-seed", "-1"], "--shared-seed=-1"),
    (cli.sample_main, ["--seeds", "5-2"], "--seeds='5-2' is not allowed"),
    (cli.sample_main, ["--device", "gpu9"], "must be a torch device"),
    (cli.sample_main, ["--mode", "bogus"], "invalid choice: 'bogus'"),
    (cli.sample_main, ["--n", "x"], "invalid int value: 'x'"),
    (cli.train_main, ["--run-dir", "FILE"], "--run-dir='FILE' is not allowed: must be a folder"),
    (cli.train_main, ["--set", "train.steps=0"], "train.steps=0 is not allowed"),
    (cli.evaluate_main, ["--metric", "fid", "--n", "0"], "--n=0"),
    (cli.evaluate_main, ["--metric", "fid", "--ref-n", "0"], "--ref-n=0"),
    (cli.evaluate_main, ["--metric", "fid", "--reference", "nope"], "data.dataset='nope'"),
    (cli.evaluate_main, ["--metric", "nll", "--split", "val"], "invalid choice: 'val'"),
    (cli.evaluate_main, ["--metric", "fid", "--delta", "-0.5"], "--delta=-0.5"),
    (cli.book_main, ["--timeout", "0"], "--timeout=0"),
    (cli.book_main, ["--out", "FILE"], "--out="),
    (cli.models_main, ["export", "--preset", "mnist-smoke", "--hardware", "x", "--run-dir", "NEW"],
     "must be an existing folder; it names nothing"),
]


@pytest.mark.parametrize("main,args,needle", CASES, ids=lambda v: getattr(v, "__name__", None))
def test_a_bad_argument_is_one_line_and_exit_status_2(main, args, needle, paths, capsys, run_root):
    args = [paths.get(a, a) for a in args]
    needle = needle.replace("'FILE'", repr(paths["FILE"]))
    if main in (cli.sample_main, cli.evaluate_main, cli.train_main) and "--preset" not in args:
        args = ["--preset", "mnist-smoke", *args]
    assert cli.run(main, args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert needle in err, err
    assert not run_root.exists()  # nothing was trained or sampled


def test_good_paths_pass_their_checks(tmp_path):
    from ihdm_core.training.checks import check_dir, check_new_dir, check_new_file

    assert check_new_dir(tmp_path / "a" / "b", "--outdir") == tmp_path / "a" / "b"
    assert check_new_dir(tmp_path, "--outdir") == tmp_path
    assert check_dir(tmp_path, "--run-dir") == tmp_path
    assert check_new_file(tmp_path / "s.npz", "--npz", ".npz").suffix == ".npz"


def test_the_command_line_reports_it_with_exit_status_2(tmp_path):
    """The issue's two cases, end to end through ``python -m ihdm_core``."""
    afile = tmp_path / "taken"
    afile.write_text("")
    env = {"PYTHONPATH": str(ROOT), "IHDM_RUNS": str(tmp_path / "runs"), "PATH": "/usr/bin:/bin"}
    for args, needle in ((["--delta", "-1"], "--delta=-1.0"),
                         (["--outdir", str(afile)], f"--outdir='{afile}'")):
        proc = subprocess.run([sys.executable, "-m", "ihdm_core", "sample", "--preset",
                               "mnist-smoke", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
        assert needle in proc.stderr and "Traceback" not in proc.stderr
