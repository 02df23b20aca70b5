"""Training outputs (issue 14, item 2): numbered snapshots with rotation (last M plus best), the
held-out loss, sample grids, TensorBoard, gradient accumulation, and exact resume with them on."""

import json
import sys

import pytest
import torch

from ihdm_core import get_preset
from ihdm_core.training.checkpoints import (CHECKPOINT, SNAPSHOT_INDEX, list_snapshots, load_checkpoint, rotate_snapshots,
                                   save_checkpoint, sidecar, snapshots, write_snapshot)
from ihdm_core.training.log import read_metrics, training_seconds
from ihdm_core.training.train import train


pytestmark = pytest.mark.usefixtures("run_root")  # every test gets its own empty IHDM_RUNS


def _tiny(**train):
    return get_preset("mnist-smoke").replace(model={"base_channels": 8},
                                             train={"log_every": 1, "ckpt_every": 1000, **train})


def _ck(run_dir):
    return load_checkpoint(run_dir / CHECKPOINT, fallback=False)[0]


def _losses(run_dir):
    return [x for r in read_metrics(run_dir) for x in r["losses"]]


def test_rotation_keeps_the_last_m_and_the_best(tmp_path):
    losses = {2: 0.9, 4: 0.3, 6: 0.5, 8: 0.6, 10: 0.4, 12: None}
    prev = None
    for step, loss in losses.items():
        # As the loop does: the checkpoint, then its snapshot, then rotation.
        save_checkpoint({"step": torch.tensor(step)}, tmp_path / CHECKPOINT, prev_step=prev)
        prev = step
        write_snapshot(tmp_path, step, loss)
        kept = rotate_snapshots(tmp_path, keep=2)
        scored = {k: v for k, v in losses.items() if k <= step and v is not None}
        want = sorted(set(sorted(k for k in losses if k <= step)[-2:]) | {min(scored, key=scored.get)})
        assert kept == want, step
        # Exactly these numbered files on disk: no leftover fault-fallback link beside them.
        assert [s for s, _ in snapshots(tmp_path)] == want[::-1], step
        assert [s["step"] for s in list_snapshots(tmp_path)] == want
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("checkpoint-")) == [
        "checkpoint-00000004.pt", "checkpoint-00000004.pt.sha256", "checkpoint-00000010.pt",
        "checkpoint-00000010.pt.sha256", "checkpoint-00000012.pt", "checkpoint-00000012.pt.sha256"]
    assert json.loads((tmp_path / SNAPSHOT_INDEX).read_text()) == {"4": 0.3, "10": 0.4, "12": None}
    # Each snapshot is the checkpoint of its step, verified by its own sidecar.
    assert all(int(load_checkpoint(s["path"], fallback=False)[0]["step"]) == s["step"]
               for s in list_snapshots(tmp_path))


def test_fault_fallback_still_uses_the_previous_checkpoint_between_snapshots(tmp_path):
    # Snapshot at 4 only; checkpoints at 5 and 6: the fallback is checkpoint-5 (newer than snapshot 4).
    save_checkpoint({"step": 4}, tmp_path / CHECKPOINT)
    write_snapshot(tmp_path, 4, 0.5)
    rotate_snapshots(tmp_path, keep=1)
    save_checkpoint({"step": 5}, tmp_path / CHECKPOINT, prev_step=4)
    save_checkpoint({"step": 6}, tmp_path / CHECKPOINT, prev_step=5)
    assert [s for s, _ in snapshots(tmp_path)] == [5, 4]
    (tmp_path / CHECKPOINT).write_bytes(b"damaged")
    ckpt, src = load_checkpoint(tmp_path / CHECKPOINT, quiet=True)
    assert ckpt["step"] == 5 and src.name == "checkpoint-00000005.pt"


def test_snapshots_eval_grids_and_exact_resume_from_a_numbered_snapshot(tmp_path):
    from PIL import Image

    cfg = _tiny(steps=12, ckpt_every=5, snapshot_every=2, keep_snapshots=2, eval_every=3, eval_n=40,
                grid_every=6, grid_n=4)
    assert cfg.identity() == _tiny(steps=12, ckpt_every=5).identity()
    full = train(cfg, run_dir=tmp_path / "full", progress=False)
    evals = read_metrics(full.run_dir, kind="eval")
    # Held-out loss every eval_every steps and at every snapshot (a snapshot competes for "best").
    assert [r["step"] for r in evals] == [2, 3, 4, 6, 8, 9, 10, 12]
    assert all(r["split"] == "test" and r["n"] == 40 and r["eval_loss"] > 0 for r in evals)
    # Training records are unchanged for their readers: one per step, no eval record among them.
    assert [r["step"] for r in read_metrics(full.run_dir)] == list(range(1, 13))
    assert training_seconds(full.run_dir) > 0
    assert len(read_metrics(full.run_dir, kind=None)) == 12 + len(evals)
    at_snap = {r["step"]: r["eval_loss"] for r in evals if r["step"] % 2 == 0}
    best = min(at_snap, key=at_snap.get)
    snaps = list_snapshots(full.run_dir)
    assert [s["step"] for s in snaps] == sorted({10, 12, best})
    assert all(s["eval_loss"] == at_snap[s["step"]] for s in snaps)
    # The held-out loss is the EMA network's on fixed levels and noise: recompute one by hand.
    from ihdm_core.training.data import load_dataset
    from ihdm_core.model.images import to_float
    from ihdm_core.model.losses import denoising_loss
    from ihdm_core.training.build import build_model, build_process

    snap = load_checkpoint(snaps[-1]["path"], fallback=False)[0]
    net = build_model(cfg)
    net.load_state_dict(snap["ema"])
    net.eval()
    held = to_float(load_dataset(cfg.data, split="test")[:40])
    gen = torch.Generator().manual_seed(cfg.train.seed + 2**31)
    with torch.no_grad():  # in training-size batches, one generator through all of them
        loss = torch.cat([denoising_loss(net, build_process(cfg), held[i:i + 16], generator=gen)[0]
                          for i in range(0, 40, 16)]).mean().item()
    assert loss == pytest.approx(snaps[-1]["eval_loss"], rel=1e-5)
    grids = sorted(p.name for p in (full.run_dir / "grids").iterdir())
    assert grids == ["step12.png", "step6.png"]
    assert Image.open(full.run_dir / "grids" / "step6.png").size == (2 * 28 + 3 * 2,) * 2
    # The last grid is the final EMA network's samples for seeds 0..3, as ihdm-sample draws them.
    from ihdm_core.training.generate import sample_seeds, save_grid
    from ihdm_core.training.runs import load_run

    save_grid(sample_seeds(load_run(full.run_dir), range(4)), tmp_path / "oracle.png")
    assert (tmp_path / "oracle.png").read_bytes() == (full.run_dir / "grids" / "step12.png").read_bytes()

    # Killed after step 11: checkpoint.pt (step 10) is lost too; resume from the snapshot at 10.
    part = tmp_path / "part"
    train(cfg, run_dir=part, stop_at=11, progress=False)
    for p in (part / CHECKPOINT, sidecar(part / CHECKPOINT)):
        p.unlink()
    res = train(cfg, run_dir=part, progress=False)
    a, b = _ck(full.run_dir), _ck(res.run_dir)
    assert all(torch.equal(a[s][k], b[s][k]) for s in ("model", "ema") for k in a[s])
    assert _losses(part) == _losses(full.run_dir)
    assert read_metrics(part, kind="eval") == evals
    assert [(s["step"], s["eval_loss"]) for s in list_snapshots(part)] == [(s["step"], s["eval_loss"]) for s in snaps]
    for s, t in zip(list_snapshots(part), snaps):
        x, y = load_checkpoint(s["path"], fallback=False)[0], load_checkpoint(t["path"], fallback=False)[0]
        assert all(torch.equal(x["ema"][k], y["ema"][k]) for k in x["ema"]), s["step"]
    for g in grids:
        assert (part / "grids" / g).read_bytes() == (full.run_dir / "grids" / g).read_bytes()


def test_gradient_accumulation_equals_the_full_batch_step(tmp_path):
    # Dropout off: its masks are drawn per forward pass, so they differ between 1 and 4 passes.
    base = _tiny(steps=3).replace(model={"dropout": 0.0})
    four_cfg = base.replace(train={"accum_steps": 4})
    assert base.identity() == four_cfg.identity()
    one = train(base, run_dir=tmp_path / "one", progress=False)
    four = train(four_cfg, run_dir=tmp_path / "four", progress=False)
    a, b = _ck(one.run_dir), _ck(four.run_dir)
    diffs = [float((a["model"][k] - b["model"][k]).abs().max()) for k in a["model"]]
    assert max(diffs) < 1e-5, max(diffs)
    assert _losses(one.run_dir) == pytest.approx(_losses(four.run_dir), rel=1e-5)
    # Not vacuous: the same 4 micro-batches on other data (another seed) give other weights.
    other = train(four_cfg.replace(train={"seed": 1}), run_dir=tmp_path / "other", progress=False)
    c = _ck(other.run_dir)
    assert max(float((a["model"][k] - c["model"][k]).abs().max()) for k in a["model"]) > 1e-3


def test_accum_steps_must_divide_the_batch():
    from ihdm_core.training.checks import ConfigError

    with pytest.raises(ConfigError, match=r"train.accum_steps=3 .*must divide train.batch_size=16"):
        _tiny(accum_steps=3)


def test_tensorboard_gets_the_same_records_as_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = train(_tiny(steps=4, log_every=2, eval_every=2, eval_n=16, tensorboard=True),
                run_dir=tmp_path / "tb", progress=False)
    assert list((res.run_dir / "tb").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(res.run_dir / "tb"))
    acc.Reload()
    got = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert got == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in read_metrics(res.run_dir)]
    got = [(e.step, e.value) for e in acc.Scalars("eval/eval_loss")]
    assert got == [(r["step"], pytest.approx(r["eval_loss"], rel=1e-6)) for r in read_metrics(res.run_dir, "eval")]


def test_tensorboard_missing_is_one_line_and_training_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the import fails as if not installed
    res = train(_tiny(steps=2, tensorboard=True), run_dir=tmp_path / "notb", progress=False)
    err = [line for line in capsys.readouterr().err.splitlines() if "TensorBoard" in line]
    assert res.step == 2 and len(err) == 1 and "pip install 'ihdm-core[tb]'" in err[0]
    assert not (res.run_dir / "tb").exists() and len(read_metrics(res.run_dir)) == 2
