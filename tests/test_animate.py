"""Animations of trajectories: GIF frame count, order and content, levels, the sampler callback."""

import numpy as np
import pytest
import torch
from PIL import Image

from ihdm_core.book.animate import frame_levels, frame_order, gif_info, save_animation, show_animation
from ihdm_core.model.sampling import Recorder
from ihdm_core.book.figures import read_index
from ihdm_core.model.sampling import sample
from ihdm_core.model.latents import NoiseTable
from ihdm_core.model.process import Step


def _uniform_trajectory(T, B, C=1, size=8):
    """State t of sample b is a flat image of a gray level unique to (t, b), 1/(TB+1) apart."""
    v = (torch.arange(T * B, dtype=torch.float32).view(T, B) + 1) / (T * B + 1)
    return v, v[:, :, None, None, None].expand(T, B, C, size, size).clone()


def _frames(path):
    with Image.open(path) as im:
        out = []
        for i in range(im.n_frames):
            im.seek(i)
            out.append(np.asarray(im.convert("L"), dtype=np.int16))
        return out


def _where(frame, level):
    """Row and column medians of the pixels near one 8-bit gray level (tiles are ~9 levels apart), and their count."""
    rows, cols = np.nonzero(np.abs(frame - level) <= 3)  # colormap LUT rounding
    return (np.median(rows) if len(rows) else None), (np.median(cols) if len(cols) else None), len(rows)


def test_gif_has_one_frame_per_state_in_order_with_each_sample_in_its_tile(tmp_path, monkeypatch):
    monkeypatch.setenv("IHDM_FIGURES", str(tmp_path))
    T, B, size, scale = 7, 4, 8, 3
    v, x = _uniform_trajectory(T, B, size=size)
    path = save_animation(x, "anim_test", caption="synthetic", profile="smoke", scale=scale, hold=3, nrow=2,
                          labels=[f"k = {T - 1 - t}" for t in range(T)], seed=5)
    info = gif_info(path)
    assert path == tmp_path / "anim_test.gif" and info["bytes"] > 0
    assert info["frames"] == T
    # Held frames merge into the last one: it lasts hold + 1 frame times (GIF stores centiseconds).
    d = info["durations"]
    assert all(abs(x - d[0]) <= 10 for x in d[:-1]) and abs(d[-1] - 4 * 125) <= 10
    frames = _frames(path)
    tile = (size * scale) ** 2
    for t, frame in enumerate(frames):
        where = [_where(frame, round(255 * float(v[t, b]))) for b in range(B)]
        # Every sample of state t is drawn, as a whole tile, in frame t (so frame 0 is u_K) ...
        assert all(n >= 0.9 * tile for _, _, n in where), (t, [n for _, _, n in where])
        # ... and no sample of another state is (the frames are in trajectory order).
        for s in {0, T - 1, (t + 1) % T} - {t}:
            assert _where(frame, round(255 * float(v[s, 0])))[2] < 0.1 * tile
        # The grid is row-major, 2 per row: 0 1 / 2 3.
        (r0, c0, _), (r1, c1, _), (r2, c2, _), (r3, c3, _) = where
        gap = size * scale * 0.9  # tile centres are one tile (plus padding) apart
        assert max(abs(r0 - r1), abs(r2 - r3), abs(c0 - c2), abs(c1 - c3)) <= 2
        assert r2 - r0 >= gap and c1 - c0 >= gap
    entry = read_index(tmp_path)["anim_test"]
    assert entry["kind"] == "animation" and entry["files"] == ["anim_test.gif"]
    assert entry["provenance"]["states"] == T and entry["provenance"]["gif_frames"] == T
    assert entry["provenance"]["seed"] == 5
    shown = show_animation(path)
    assert shown._repr_mimebundle_()[0].keys() == {"image/gif"} and shown.data == path.read_bytes()


def test_side_by_side_panels_bounce_and_colour(tmp_path, monkeypatch):
    monkeypatch.setenv("IHDM_FIGURES", str(tmp_path))
    T, B = 5, 2
    _, gray = _uniform_trajectory(T, B)
    red = torch.zeros(T, B, 3, 8, 8)
    red[:, :, 0] = torch.linspace(0.3, 1.0, T)[:, None, None, None]
    path = save_animation({"IHDM": gray, "DDPM": red}, "anim_pair", caption="pair", profile="smoke", bounce=True,
                          hold=2, labels=[f"alpha = {a:.2f}" for a in np.linspace(0, 1, T)])
    info = gif_info(path)
    assert info["frames"] == 2 * T - 2  # 0 .. T-1 .. 1, then the loop starts again at 0
    d = info["durations"]
    assert abs(d[0] - 3 * 125) <= 10 and abs(d[T - 1] - 3 * 125) <= 10 and abs(d[1] - 125) <= 10
    with Image.open(path) as im:
        rgbs = []
        for i in range(im.n_frames):
            im.seek(i)
            rgbs.append(np.asarray(im.convert("RGB"), dtype=np.int16))
    # The right panel is red with the state's intensity; the red of frame T + j equals frame T - 2 - j's.
    for i, state in enumerate(list(range(T)) + list(range(T - 2, 0, -1))):
        r = round(255 * float(red[state, 0, 0, 0, 0]))
        mask = (np.abs(rgbs[i][..., 0] - r) <= 3) & (rgbs[i][..., 1] <= 1) & (rgbs[i][..., 2] <= 1)
        assert mask.sum() >= 0.9 * 2 * (8 * 2) ** 2, (i, state, int(mask.sum()))
        cols = np.nonzero(mask)[1]
        assert cols.min() > rgbs[i].shape[1] / 2  # DDPM is the right-hand panel
    assert read_index(tmp_path)["anim_pair"]["provenance"]["bounce"] is True


def test_frame_order_and_levels():
    assert frame_order(4) == [0, 1, 2, 3]
    assert frame_order(4, hold=2) == [0, 1, 2, 3, 3, 3]
    assert frame_order(4, bounce=True, hold=1) == [0, 0, 1, 2, 3, 3, 2, 1]
    assert frame_levels(10) == list(range(10, -1, -1))
    lv = frame_levels(100, max_frames=48)
    assert len(lv) == 48 and lv[0] == 100 and lv[-1] == 0 and all(a > b for a, b in zip(lv, lv[1:]))
    # Evenly spaced: the gaps differ by at most one level.
    gaps = -np.diff(lv)
    assert gaps.max() - gaps.min() <= 1
    with pytest.raises(ValueError, match="max_frames"):
        frame_levels(10, max_frames=1)


class _ShrinkProcess:
    """A stand-in reverse process: u_{k-1} = u_k * (1 - 0.1 k) + z, deterministic with z = 0."""

    K = 6

    def denoised(self, net, u, k):
        return u * (1 - 0.1 * k)

    def reverse_step(self, net, u, k, z, delta=None):
        mu = self.denoised(net, u, k)
        return Step(mu, mu)


def test_recorder_keeps_the_sampler_states_at_its_levels():
    proc = _ShrinkProcess()
    u_K = torch.rand(3, 1, 4, 4)
    levels = frame_levels(proc.K, max_frames=4)
    rec = Recorder(levels, clamp=False)
    out = sample(torch.nn.Identity(), proc, u_K, noise=NoiseTable(torch.zeros(proc.K, 3, 1, 4, 4)), callback=rec)
    frames = rec.frames()
    assert rec.levels() == levels and frames.shape == (len(levels), 3, 1, 4, 4)
    assert torch.equal(frames[0], u_K) and torch.equal(frames[-1], out)
    # A level in the middle: the product of the shrink factors from K down to it.
    k = levels[1]
    expected = u_K * float(np.prod([1 - 0.1 * j for j in range(proc.K, k, -1)]))
    assert torch.allclose(frames[1], expected)
    with pytest.raises(RuntimeError, match="never visited"):
        bad = Recorder([proc.K, 99])
        bad({"k": proc.K, "x": u_K, "denoised": u_K})
        bad.frames()


def test_bad_inputs_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("IHDM_FIGURES", str(tmp_path))
    _, x = _uniform_trajectory(3, 2)
    with pytest.raises(ValueError, match="same number of states"):
        save_animation({"a": x, "b": x[:2]}, "bad", caption="", profile="smoke")
    with pytest.raises(ValueError, match="distinct"):
        save_animation(x, "bad", caption="", profile="smoke", labels=["a", "a", "b"])
    with pytest.raises(ValueError, match="shape"):
        save_animation(torch.zeros(3, 4), "bad", caption="", profile="smoke")
