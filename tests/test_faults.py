"""Fault injection (issue 16): bad input gives one clear line and exit 2, and no fault loses a run.

The CLI cases run the real command in a subprocess and check stderr; the training faults (SIGKILL,
SIGTERM, damaged checkpoints, a full disk, two trainers on one folder) check that the run resumes
to exactly the weights of an uninterrupted run.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ihdm_core.training import checkpoints
from ihdm_core.training.checkpoints import (CheckpointError, RunLock, RunLocked, load_checkpoint, sha256_file, sidecar,
                                   snapshots, verify_checkpoint)
from ihdm_core.training.presets import PRESETS, get_preset
from ihdm_core.training.checks import ConfigError
from ihdm_core.training.overrides import parse_overrides, parse_value
from ihdm_core.training.train import train

ROOT = Path(__file__).resolve().parent.parent
# Tiny: 16 steps, a checkpoint every 4, a log record every step (the kill tests watch it).
SETS = ["train.steps=16", "train.ckpt_every=4", "train.log_every=1"]


pytestmark = pytest.mark.usefixtures("run_root")  # every test gets its own empty IHDM_RUNS


def _env(tmp_path, **extra):
    env = dict(os.environ, IHDM_RUNS=str(tmp_path / "runs"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(ROOT), **extra)
    env.pop("IHDM_DEBUG", None)
    return env


def _cli(tmp_path, module, *args, **env):
    return subprocess.run([sys.executable, "-m", "ihdm_core", module, *args], cwd=ROOT, env=_env(tmp_path, **env),
                          capture_output=True, text=True, timeout=120)


def _assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- the table of issue 16: every row is one line on stderr and exit status 2 ----------------------
@pytest.mark.slow
@pytest.mark.parametrize("override,needles", [
    ("train.steps=-5", ["train.steps=-5", ">= 1"]),
    ("train.batch_size=0", ["train.batch_size=0", ">= 1"]),
    ("train.lr=nan", ["train.lr='nan'", "finite"]),
    ("train.stepz=5", ["train.stepz", "steps, batch_size, lr"]),
    ("process.K=0", ["process.K=0", ">= 1"]),
])
def test_cli_bad_override_is_one_line(tmp_path, override, needles):
    proc = _cli(tmp_path, "train", "--preset", "mnist-smoke", "--set", override)
    _assert_one_line_error(proc, *needles)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing was trained


def test_cli_missing_dataset_offline_is_one_line(tmp_path):
    proc = _cli(tmp_path, "train", "--preset", "cifar10-smoke", IHDM_OFFLINE="1", IHDM_DATA=str(tmp_path / "nodata"))
    _assert_one_line_error(proc, "cifar10")


def test_cli_debug_shows_the_traceback(tmp_path):
    proc = _cli(tmp_path, "train", "--preset", "mnist-smoke", "--set", "process.K=0", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


@pytest.mark.parametrize("module,args,needle", [
    ("sample", ["--preset", "nope"], "unknown preset 'nope'"),
    ("sample", ["--run-dir", "/nonexistent/run"], "/nonexistent/run"),
    ("evaluate", ["--preset", "nope", "--metric", "fid"], "nope"),
])
def test_other_clis_report_usage_errors_in_one_line(tmp_path, module, args, needle):
    proc = _cli(tmp_path, module, *args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and needle in proc.stderr, proc.stderr


def test_cli_wrapper_keeps_tracebacks_for_bugs(capsys):
    from ihdm_core.cli import is_user_error, run

    def bug(argv):
        return [][1]  # an IndexError: a bug, never a usage error

    with pytest.raises(IndexError):
        run(bug, [])

    def usage(argv):
        get_preset("mnist-smoke", train={"ema": 1.5})

    assert run(usage, []) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: train.ema=1.5")
    # A ValueError from inside a library is not one of our checks: it keeps its traceback.
    try:
        torch.zeros(2).view(3)
    except RuntimeError as err:
        assert not is_user_error(err)
    try:
        int("x")
    except ValueError as err:
        assert not is_user_error(err)


# --- validation at construction ----------------------------------------------------------------------
@pytest.mark.parametrize("overrides,needle", [
    ({"train": {"steps": 0}}, "train.steps=0"),
    ({"train": {"steps": 2.5}}, "train.steps=2.5"),
    ({"train": {"steps": True}}, "train.steps=True"),
    ({"train": {"lr": 0.0}}, "train.lr=0.0"),
    ({"train": {"lr": float("inf")}}, "train.lr=inf"),
    ({"train": {"ema": 1.0}}, "train.ema=1.0"),
    ({"train": {"ema": -0.1}}, "train.ema=-0.1"),
    ({"train": {"amp": "fp8"}}, "train.amp='fp8'"),
    ({"train": {"lr_schedule": "step"}}, "train.lr_schedule='step'"),
    ({"process": {"sigma": -0.01}}, "process.sigma=-0.01"),
    ({"process": {"delta": float("nan")}}, "process.delta=nan"),
    ({"process": {"sigma_min": 25.0}}, "process.sigma_min=25.0"),
    ({"process": {"kind": "vae"}}, "process.kind='vae'"),
    ({"process": {"time": "continuous"}}, "process.time='continuous'"),  # IHDM is discrete
    ({"process": {"prediction": "score"}}, "process.prediction='score'"),
    ({"process": {"grid": "log"}}, "process.grid='log'"),
    ({"process": {"kind": "ddpm", "beta_schedule": "linear", "K": 10}}, "process.K=10"),
    ({"data": {"dataset": "imagenet"}}, "data.dataset='imagenet'"),
    ({"data": {"dataset": "folder:relative/path"}}, "folder"),
    ({"data": {"image_size": 27}}, "divisible by 2"),
    ({"model": {"attn_resolutions": (7,)}}, "model.attn_resolutions=(7,)"),
    ({"model": {"dropout": 1.0}}, "model.dropout=1.0"),
    ({"model": {"channel_mult": ()}}, "model.channel_mult=()"),
])
def test_invalid_configs_are_rejected_when_built(overrides, needle):
    with pytest.raises(ConfigError) as err:
        get_preset("mnist-smoke", **overrides)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_valid_edge_values_are_accepted():
    cfg = get_preset("mnist-smoke", train={"ema": 0.0, "warmup": 0, "grad_clip": 0.0},
                     process={"sigma": 0.0, "delta": 0.0, "sigma_min": 20.0},
                     data={"dataset": "folder:/abs/images"}, model={"attn_resolutions": (), "channel_mult": [1, 2]})
    assert cfg.model.channel_mult == (1, 2)  # lists become tuples: hashable, same identity


def test_config_names_agree_with_the_implementations():
    from ihdm_core.training import config, build as processes
    from ihdm_core.model import diffusion

    assert set(config.PROCESS_KINDS) == set(processes.PROCESS_KINDS)
    assert set(config.PREDICTIONS) == set(diffusion.PREDICTIONS)
    assert set(config.GRIDS) == set(diffusion.GRIDS)


def test_every_preset_builds_and_its_attention_resolutions_exist():
    for cfg in PRESETS.values():
        sizes, res = [], cfg.data.image_size
        for _ in cfg.model.channel_mult:
            sizes.append(res)
            res //= 2
        assert set(cfg.model.attn_resolutions) <= set(sizes)


def test_set_parses_values_by_the_field_type():
    out = parse_overrides(["train.steps=7", "train.lr=1e-3", "data.hflip=true", "data.limit=none",
                            "model.attn_resolutions=14", "model.channel_mult=[1, 2]", "process.kind=ddpm",
                            "process.clip_denoised=false"])
    assert out == {"train": {"steps": 7, "lr": 1e-3}, "data": {"hflip": True, "limit": None},
                   "model": {"attn_resolutions": (14,), "channel_mult": (1, 2)},
                   "process": {"kind": "ddpm", "clip_denoised": False}}
    assert type(out["train"]["lr"]) is float and type(out["train"]["steps"]) is int
    for text in ("nan", "inf", "-inf", "fast"):
        with pytest.raises(ConfigError, match="finite"):
            parse_value("train", "lr", text)
    with pytest.raises(ConfigError, match="integer"):
        parse_value("train", "steps", "1.5")
    with pytest.raises(ConfigError, match="true or false"):
        parse_value("data", "hflip", "maybe")
    with pytest.raises(ConfigError, match="the fields of model are: base_channels, channel_mult"):
        parse_value("model", "width", "3")
    with pytest.raises(ConfigError, match="sections are: model, process, data, train"):
        parse_value("optim", "lr", "3")


# --- checkpoints: damaged files, full disks, old files -----------------------------------------------
def _cfg(**train_kw):
    return get_preset("mnist-smoke", train={"steps": 8, "ckpt_every": 4, **train_kw})


def _weights(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt["step"], ckpt["model"], ckpt["ema"], ckpt["optimizer"]["state"]


def _assert_same(a, b):
    assert a[0] == b[0]
    for da, db in zip(a[1:3], b[1:3]):
        assert da.keys() == db.keys() and all(torch.equal(da[k], db[k]) for k in da)
    for k in a[3]:
        assert all(torch.equal(a[3][k][n], b[3][k][n]) for n in ("exp_avg", "exp_avg_sq"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """An 8-step run with checkpoints at 4 and 8: its final weights are the reference."""
    run = tmp_path_factory.mktemp("ref") / "run"
    train(_cfg(), run_dir=run, progress=False)
    return run


def _copy_run(src, dst):
    dst.mkdir(parents=True)
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_checkpoint_has_a_checksum_and_loads_weights_only(finished):
    ck = finished / "checkpoint.pt"
    assert sidecar(ck).read_text() == f"{sha256_file(ck)}  checkpoint.pt\n"
    assert verify_checkpoint(ck) is True
    assert torch.load(ck, map_location="cpu", weights_only=True)["step"] == 8
    assert [s for s, _ in snapshots(finished)] == [4]  # the checkpoint it replaced
    assert not list(finished.glob("*.tmp*")) and not (finished / "train.lock").exists()


def test_truncated_checkpoint_falls_back_to_the_snapshot_and_resumes_exactly(finished, tmp_path, capfd):
    run = _copy_run(finished, tmp_path / "run")
    ck = run / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        load_checkpoint(ck, fallback=False)
    result = train(_cfg(), run_dir=run, progress=False)
    err = capfd.readouterr().err
    assert "checkpoint.pt does not match its checksum" in err and "checkpoint-00000004.pt (step 4)" in err
    assert result.step == 8 and not result.reused
    _assert_same(_weights(ck), _weights(finished / "checkpoint.pt"))
    assert verify_checkpoint(ck) is True


def test_flipped_byte_without_snapshot_is_a_clear_error(finished, tmp_path):
    run = _copy_run(finished, tmp_path / "run")
    for _, snap in snapshots(run):
        snap.unlink()
    ck = run / "checkpoint.pt"
    blob = bytearray(ck.read_bytes())
    blob[len(blob) // 3] ^= 0x01
    ck.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match=re.escape(str(ck)) + ".*no intact snapshot"):
        load_checkpoint(ck)
    proc = _cli(tmp_path, "train", "--preset", "mnist-smoke", "--set", "train.steps=8", "train.ckpt_every=4",
                "--run-dir", str(run))
    _assert_one_line_error(proc, str(ck), "truncated or corrupt")


def test_legacy_checkpoint_without_checksum_still_resumes(finished, tmp_path):
    """Runs trained before checksums (pickled torch.__version__, no sidecar) load and resume."""
    run = tmp_path / "run"
    train(_cfg(), run_dir=run, stop_at=4, progress=False)
    ck = run / "checkpoint.pt"
    old = torch.load(ck, map_location="cpu", weights_only=True)
    old["torch_version"] = torch.__version__  # a TorchVersion object, as the old code saved it
    with open(ck, "wb") as fh:
        torch.save(old, fh)
    sidecar(ck).unlink()
    assert verify_checkpoint(ck) is None
    train(_cfg(), run_dir=run, progress=False)
    _assert_same(_weights(ck), _weights(finished / "checkpoint.pt"))
    assert verify_checkpoint(ck) is True and verify_checkpoint(run / "checkpoint-00000004.pt") is True


def test_failed_write_leaves_the_previous_checkpoint(finished, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(_cfg(), run_dir=run, stop_at=4, progress=False)
    ck = run / "checkpoint.pt"
    before = ck.read_bytes()

    def full_disk(obj, fh, *a, **k):
        fh.write(b"\0" * 1000)  # part of the file made it to disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        train(_cfg(), run_dir=run, progress=False)
    monkeypatch.undo()
    monkeypatch.setenv("IHDM_RUNS", str(tmp_path / "runs"))
    assert ck.read_bytes() == before and verify_checkpoint(ck) is True
    assert load_checkpoint(ck)[0]["step"] == 4
    assert not list(run.glob("*.tmp*")) and not (run / "train.lock").exists()
    (run / "checkpoint.pt.tmp99999").write_bytes(b"\0" * 10)  # what a save killed mid-write leaves
    train(_cfg(), run_dir=run, progress=False)  # and the run still finishes, exactly
    assert not list(run.glob("*.tmp*"))
    _assert_same(_weights(ck), _weights(finished / "checkpoint.pt"))


def test_sidecar_accepts_either_file_while_a_save_is_between_renames(finished, tmp_path, monkeypatch):
    """A kill between writing the sidecar and renaming the checkpoint must not make either corrupt."""
    run = _copy_run(finished, tmp_path / "run")
    ck = run / "checkpoint.pt"
    old = sha256_file(ck)
    real_replace = os.replace

    def die_on_checkpoint_rename(src, dst):
        if Path(dst) == ck:
            raise KeyboardInterrupt  # stands in for a kill at this instant
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoints.os, "replace", die_on_checkpoint_rename)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_checkpoint({"step": 9}, ck, prev_step=8)
    monkeypatch.undo()
    assert sha256_file(ck) == old and verify_checkpoint(ck) is True


# --- one trainer per folder ----------------------------------------------------------------------------
def test_lock_names_a_live_holder_and_takes_over_a_dead_one(tmp_path, capfd):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.mkdir()
        (run / "train.lock").write_text(f"{holder.pid} {os.uname().nodename}\n")
        with pytest.raises(RunLocked, match=f"being trained by process {holder.pid}"):
            RunLock(run).acquire()
        with pytest.raises(RunLocked, match=str(holder.pid)):
            train(_cfg(), run_dir=run, progress=False)
    finally:
        holder.kill()
        holder.wait()
    # The holder is dead now: its lock is stale and taken over.
    with RunLock(run) as lock:
        assert (run / "train.lock").read_text().split()[0] == str(os.getpid()) and lock.held
    assert not (run / "train.lock").exists()
    assert f"stale lock of process {holder.pid}" in capfd.readouterr().err


def test_lock_is_released_when_training_fails(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="empty data set"):
        train(_cfg(), run_dir=run, data=torch.zeros(0, 1, 28, 28, dtype=torch.uint8), progress=False)
    assert not (run / "train.lock").exists()
    RunLock(run).acquire().release()


@pytest.mark.slow
def test_two_trainers_race_on_one_folder(tmp_path):
    run = tmp_path / "race"
    cmd = [sys.executable, "-m", "ihdm_core", "train", "--preset", "mnist-smoke", "--run-dir", str(run),
           "--set", "train.steps=40", "train.ckpt_every=20"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], [o[1][-1500:] for o in outs]
    winner, loser = (0, 1) if procs[0].returncode == 0 else (1, 0)
    line = _assert_one_line_error(subprocess.CompletedProcess(cmd, 2, outs[loser][0], outs[loser][1]))
    assert f"being trained by process {procs[winner].pid}" in line
    assert json.loads(outs[winner][0].splitlines()[-1])["step"] == 40
    assert load_checkpoint(run / "checkpoint.pt")[0]["step"] == 40  # the run was not harmed


# --- kills: SIGKILL at a random step, SIGTERM ---------------------------------------------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted 16-step run the killed ones must reproduce."""
    tmp = tmp_path_factory.mktemp("kill-ref")
    proc = subprocess.run([sys.executable, "-m", "ihdm_core", "train", "--preset", "mnist-smoke", "--run-dir",
                           str(tmp / "run"), "--set", *SETS], cwd=ROOT, env=_env(tmp), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return _weights(tmp / "run" / "checkpoint.pt")


def _logged_step(run):
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return json.loads(lines[-1])["step"] if lines else 0
    except (FileNotFoundError, json.JSONDecodeError, IndexError):
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("sig,seed", [(signal.SIGKILL, 0), (signal.SIGKILL, 1), (signal.SIGKILL, 2),
                                      (signal.SIGTERM, 3)])
def test_killed_training_resumes_exactly(tmp_path, reference, sig, seed):
    target = random.Random(seed).randint(1, 14)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ihdm_core", "train", "--preset", "mnist-smoke", "--run-dir", str(run), "--set", *SETS]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while _logged_step(run) < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    killed_at = _logged_step(run)
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1].decode()
    assert killed_at < 16, "finished before the kill; the test did not test anything"
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:  # SIGTERM: the step in progress is finished and saved, then the process exits
        assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
        assert "SIGTERM: saved" in err
        assert load_checkpoint(run / "checkpoint.pt")[0]["step"] >= killed_at
    assert not (run / "train.lock").exists() or sig == signal.SIGKILL  # SIGKILL leaves a stale lock
    resumed = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_same(_weights(run / "checkpoint.pt"), reference)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 17))  # the log too: no lost and no doubled step


def test_toc_entry_without_a_source_is_a_clear_error(tmp_path):
    from ihdm_core.book.pipeline import chapters

    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# intro\n")
    (tmp_path / "book" / "01_a.py").write_text("# %%\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n- file: book/01_a\n"
                                       "- file: book/02_missing\n")
    with pytest.raises(FileNotFoundError, match="02_missing"):
        chapters(tmp_path)
    (tmp_path / "_toc.yml").write_text("root: [unclosed\n")
    with pytest.raises(ValueError, match="cannot be read as YAML"):
        chapters(tmp_path)
    (tmp_path / "_toc.yml").unlink()
    with pytest.raises(FileNotFoundError, match="_toc.yml is missing"):
        chapters(tmp_path)
