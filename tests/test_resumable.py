"""Training state committed to the repository (ihdm_core.training.resumable): it round-trips the
checkpoint exactly, a damaged byte is a clear error, and a run seeded from it in a fresh folder
continues to exactly the weights of the uninterrupted run."""

import json

import pytest
import torch

from ihdm_core.training import resumable
from ihdm_core.training.checkpoints import CheckpointError
from ihdm_core.training.presets import get_preset
from ihdm_core.training.train import train

pytestmark = pytest.mark.usefixtures("run_root")


def _cfg():
    # dropout > 0 so that a resume that lost the step's RNG seeding would differ
    return get_preset("mnist-smoke", train={"steps": 8, "ckpt_every": 4, "log_every": 1})


def _same(a, b):
    """Equal as nested structures, tensors bit for bit and with the same dtype."""
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_pack_unpack_round_trip_keeps_types():
    obj = {"step": 3, 0: {"exp_avg": torch.arange(4.0)}, "betas": (0.9, 0.999), "none": None,
           "rng": torch.arange(5, dtype=torch.uint8), "groups": [{"params": [0, 1], "lr": 1e-3}]}
    tensors = {}
    data = json.loads(json.dumps(resumable.pack(obj, tensors)))  # through JSON, as on disk
    assert _same(resumable.unpack(data, tensors), obj)
    assert not _same(resumable.unpack(data, tensors), {**obj, "betas": [0.9, 0.999]})  # oracle bites


def test_pack_refuses_what_it_cannot_store():
    with pytest.raises(TypeError, match="object"):
        resumable.pack({"x": object()}, {})


def test_committed_state_continues_exactly(tmp_path):
    cfg = _cfg()
    full = train(cfg, run_dir=tmp_path / "full", progress=False).run_dir
    half = train(cfg, run_dir=tmp_path / "half", stop_at=4, progress=False).run_dir
    root = tmp_path / "committed"
    dest = resumable.export_state(half, root / cfg.run_name())
    assert resumable.committed_step(dest) == 4
    ref = torch.load(half / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert _same(resumable.import_state(dest), ref)

    # A fresh folder on "another machine": nothing but the committed state.
    fresh = tmp_path / "fresh"
    assert resumable.seed_run_dir(cfg, fresh, root=root) == 4
    assert resumable.seed_run_dir(cfg, fresh, root=root) is None  # a checkpoint in place wins
    train(cfg, run_dir=fresh, progress=False)
    a = torch.load(full / "checkpoint.pt", map_location="cpu", weights_only=True)
    b = torch.load(fresh / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert a["step"] == b["step"] == 8
    for key in ("model", "ema"):
        assert _same(a[key], b[key])
    assert _same(a["optimizer"], b["optimizer"])
    # The training log continues the committed one: steps 1..8 once each.
    steps = [r["step"] for r in map(json.loads, (fresh / "metrics.jsonl").read_text().splitlines())
             if r.get("kind", "train") == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 8 and steps[0] == 1


def test_trainer_picks_up_the_committed_state(tmp_path, monkeypatch):
    cfg = _cfg()
    half = train(cfg, run_dir=tmp_path / "half", stop_at=4, progress=False).run_dir
    root = tmp_path / "committed"
    resumable.export_state(half, root / cfg.run_name())
    monkeypatch.setattr(resumable, "resumable_root", lambda: root)
    result = train(cfg, run_dir=tmp_path / "fresh", progress=False)
    assert not result.reused and result.step == 8
    log = (tmp_path / "fresh" / "metrics.jsonl").read_text()
    assert '"step": 1,' in log or '"step": 1}' in log  # the committed log came along


def test_damaged_committed_state_is_a_clear_error(tmp_path):
    cfg = _cfg()
    half = train(cfg, run_dir=tmp_path / "half", stop_at=4, progress=False).run_dir
    dest = resumable.export_state(half, tmp_path / "c" / cfg.run_name())
    blob = bytearray((dest / "state.safetensors").read_bytes())
    blob[-3] ^= 0xFF
    (dest / "state.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="SHA-256"):
        resumable.import_state(dest)
    with pytest.raises(CheckpointError, match="no committed training state"):
        resumable.import_state(tmp_path / "nothing")
