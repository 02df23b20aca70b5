"""Shipped reference models: found by identity, verified by SHA-256, never silently retrained."""

import json
from pathlib import Path

import pytest
import torch

from ihdm_core import get_preset
from ihdm_core.training.config import from_dict
from ihdm_core.training.shipped import (ShippedModelError, export, list_shipped, models_root, shipped_dir, sha256_file,
                               verify)
from ihdm_core.training.checkpoints import CHECKPOINT
from ihdm_core.training.train import ensure_trained, train
from ihdm_core.training.runs import is_available, load_run
from ihdm_core.training.paths import run_dir_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def shipped(run_root, tmp_path, monkeypatch):
    """A tiny trained run, exported as a shipped model into a temporary models/ folder."""
    monkeypatch.setenv("IHDM_MODELS", str(tmp_path / "models"))
    monkeypatch.delenv("IHDM_RETRAIN", raising=False)
    cfg = get_preset("mnist-smoke").replace(train={"steps": 6, "ckpt_every": 6, "log_every": 2})
    train(cfg, progress=False)
    folder = export(cfg, hardware="test CPU")
    ema = torch.load(run_dir_for(cfg) / CHECKPOINT, map_location="cpu", weights_only=False)["ema"]
    # Remove the trained run: from here on only the shipped folder can provide the weights.
    for f in run_dir_for(cfg).iterdir():
        f.unlink()
    run_dir_for(cfg).rmdir()
    return cfg, folder, ema


def test_round_trip_equals_the_trained_ema(shipped):
    cfg, folder, ema = shipped
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["ema.safetensors", "ema.safetensors.sha256", "config.json", "metrics.jsonl", "MODEL_CARD.md", "card.json"])
    run = ensure_trained(cfg, device="cpu", progress=False)
    assert run.source == "shipped" and run.step == 6
    state = run.net.state_dict()
    assert state.keys() == ema.keys()
    for k in ema:
        assert torch.equal(state[k], ema[k]), k
    # Nothing was trained: the run folder was not recreated.
    assert not (run_dir_for(cfg) / CHECKPOINT).exists()
    assert is_available(cfg)
    assert "shipped reference model" in run.provenance


def test_load_run_finds_shipped_weights_by_identity(shipped):
    cfg, folder, _ = shipped
    assert shipped_dir(cfg) == folder and folder.name == cfg.run_name()
    assert load_run(cfg, device="cpu").source == "shipped"
    # Another identity (one field changed) does not pick these weights up.
    other = cfg.replace(process={"sigma": 0.02})
    assert shipped_dir(other) is None
    with pytest.raises(FileNotFoundError):
        load_run(other, device="cpu")


def test_one_changed_byte_is_refused_naming_the_file(shipped):
    cfg, folder, _ = shipped
    weights = folder / "ema.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ShippedModelError, match="ema.safetensors") as err:
        ensure_trained(cfg, device="cpu", progress=False)
    assert str(weights) in str(err.value)
    assert not run_dir_for(cfg).exists()  # refused, not silently retrained


def test_missing_checksum_and_foreign_config_are_errors(shipped):
    cfg, folder, _ = shipped
    cfg_json = json.loads((folder / "config.json").read_text())
    cfg_json["process"]["sigma"] = 0.05
    (folder / "config.json").write_text(json.dumps(cfg_json))
    with pytest.raises(ShippedModelError, match="identity"):
        load_run(cfg, device="cpu")
    (folder / "ema.safetensors.sha256").unlink()
    with pytest.raises(ShippedModelError, match="missing"):
        verify(folder)


def test_retrain_ignores_shipped_weights(shipped, monkeypatch):
    cfg, folder, ema = shipped
    run = ensure_trained(cfg, device="cpu", progress=False, retrain=True)
    assert run.source == "trained" and (run_dir_for(cfg) / CHECKPOINT).exists()
    # Same seed, same steps: the retrained EMA equals the shipped one, which shows both paths agree.
    for k, v in run.net.state_dict().items():
        torch.testing.assert_close(v, ema[k])
    # The environment variable does the same for code that cannot pass the flag (the book's kernels).
    for f in run_dir_for(cfg).iterdir():
        f.unlink()
    monkeypatch.setenv("IHDM_RETRAIN", "1")
    assert not is_available(cfg)
    assert ensure_trained(cfg, device="cpu", progress=False).source == "trained"
    monkeypatch.setenv("IHDM_RETRAIN", "0")
    assert ensure_trained(cfg, device="cpu", progress=False).source == "shipped"


def test_fp16_storage_loads_as_float32(shipped, tmp_path):
    cfg, _, ema = shipped
    monkeypatch_root = tmp_path / "models16"
    train(cfg, progress=False)  # the fixture removed the run; it is back in seconds
    folder = export(cfg, hardware="test CPU", fp16=True, dest_root=monkeypatch_root)
    assert (folder / "ema.safetensors").stat().st_size < 0.6 * sum(v.numel() * 4 for v in ema.values())
    assert verify(folder) == sha256_file(folder / "ema.safetensors")
    card = (folder / "MODEL_CARD.md").read_text()
    assert "fp16" in card and cfg.identity() in card and "python -m ihdm_core train --preset mnist-smoke" in card


def test_committed_models_verify_and_fit_the_size_budget():
    """Every model under models/ matches its recorded SHA-256, its folder's identity and its preset."""
    import os

    os.environ.pop("IHDM_MODELS", None)
    root = models_root()
    folders = list_shipped()
    files = [f for f in root.rglob("*") if f.is_file()] if root.exists() else []
    # The long runs' resumable training state (models/resumable/) has a budget of its own: it is
    # committed so a run continues on any machine, and is replaced, not added to, as it advances.
    resumable = [f for f in files if "resumable" in f.relative_to(root).parts[:1]]
    assert sum(f.stat().st_size for f in files if f not in resumable) < 60e6
    assert sum(f.stat().st_size for f in resumable) < 40e6
    for folder in folders:
        verify(folder)
        cfg_json = json.loads((folder / "config.json").read_text())
        cfg = get_preset(cfg_json["name"])  # every shipped model is a preset, so it can be retrained by name
        assert cfg.run_name() == folder.name, f"{folder.name}: preset {cfg.name} now has identity {cfg.identity()}"
        assert from_dict(cfg_json).identity() == cfg.identity()
        assert (folder / "MODEL_CARD.md").exists() and (folder / "metrics.jsonl").exists()


def test_every_model_of_the_default_book_ships():
    """The quick profile (the README's main job) loads every model it uses from models/, so a fresh
    clone never starts hours of training: each role and ablation has a shipped, verified folder."""
    import os

    from ihdm_core.book.profiles import get_profile

    os.environ.pop("IHDM_MODELS", None)
    quick = get_profile("quick")
    cfgs = [quick.config(role) for role in ("ihdm", "long", "ddpm", "blurring", "colour", "colour_long",
                                          "sigma0")]
    cfgs += [get_preset(name) for name in quick.prediction_ablation]
    for cfg in cfgs:
        folder = shipped_dir(cfg)
        assert folder is not None, f"{cfg.run_name()} ({cfg.name}) is not shipped under models/"
        verify(folder)


def test_published_scores_ship_with_the_weights_and_are_reused(shipped):
    """A score measured on a shipped model, once published, is what a fresh clone (no runs/ cache)
    reads back instead of sampling again; publishing twice adds nothing."""
    from ihdm_core.evaluation import samplesets
    from ihdm_core.evaluation.scores import score
    from ihdm_core.training.shipped import publish_scores, shipped_cache_dir

    cfg, folder, _ = shipped
    run = ensure_trained(cfg, device="cpu", progress=False)
    first = score(run, "explosions", n=3, seed=5, progress=False)
    dest, added = publish_scores(cfg)
    assert dest == folder / "scores.jsonl" and added == 1
    assert publish_scores(cfg)[1] == 0
    assert [json.loads(line)["value"] for line in dest.read_text().splitlines()] == [first["value"]]
    # A fresh clone: the cache under runs/ is gone, the shipped record remains.
    (shipped_cache_dir(cfg) / "scores.jsonl").unlink()
    draws = samplesets.draws["count"]
    again = score(ensure_trained(cfg, device="cpu", progress=False), "explosions", n=3, seed=5,
                  progress=False)
    assert again["value"] == first["value"] and again["recorded"] == first["recorded"]
    assert samplesets.draws["count"] == draws
    # Another measurement is not covered by the published one.
    score(run, "explosions", n=3, seed=6, progress=False)
    assert samplesets.draws["count"] == draws + 1
    assert publish_scores(cfg)[1] == 1
