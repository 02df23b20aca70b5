"""Colour/shape measures and the shared-noise grid, against numpy written out."""

import itertools

import numpy as np
import pytest
import torch

from ihdm_core.evaluation import disentangle as Dis
from ihdm_core.model.heat import HeatDissipation
from ihdm_core.model.latents import shared_noise_grid
from oracles import colour_error


def _two_colour(masks: np.ndarray, fg: np.ndarray, bg: np.ndarray, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """masks (B, H, W) bool, fg/bg (B, C) -> (B, C, H, W) images bg (1 - m) + fg m (+ noise)."""
    m = masks[:, None].astype(np.float64)
    x = bg[:, :, None, None] * (1 - m) + fg[:, :, None, None] * m
    x = x + noise * np.random.default_rng(seed).standard_normal(x.shape)
    return torch.from_numpy(x)


def _random_masks(b: int, h: int = 12, w: int = 12, frac: float = 0.25, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((b, h, w)) < frac


def _otsu_numpy(v: np.ndarray) -> float:
    """Brute force: every cut between consecutive distinct values, between-class variance."""
    u = np.unique(v)
    if len(u) == 1:
        return float(u[0])
    best, t_best = -1.0, None
    for lo, hi in zip(u[:-1], u[1:]):
        t = 0.5 * (lo + hi)
        c0, c1 = v[v <= t], v[v > t]
        w0, w1 = len(c0) / len(v), len(c1) / len(v)
        between = w0 * w1 * (c0.mean() - c1.mean()) ** 2
        if between > best:
            best, t_best = between, t
    return float(t_best)


def test_otsu_threshold_matches_brute_force():
    rng = np.random.default_rng(1)
    rows = [rng.normal(size=50), rng.integers(0, 5, size=40).astype(float),      # ties
            np.concatenate([rng.normal(0, 0.1, 30), rng.normal(3, 0.1, 10)]), np.full(20, 0.7)]
    for v in rows:
        got = float(Dis.otsu_threshold(torch.from_numpy(v)[None])[0])
        assert got == pytest.approx(_otsu_numpy(v), abs=1e-12)
    # batched rows are independent of each other
    batch = np.stack([rng.normal(size=30) for _ in range(4)])
    got = Dis.otsu_threshold(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(got, [_otsu_numpy(r) for r in batch], atol=1e-12)


def test_principal_projection_matches_numpy_svd():
    rng = np.random.default_rng(2)
    x = rng.random((3, 3, 6, 5))
    got = Dis.principal_projection(torch.from_numpy(x)).numpy()
    for b in range(3):
        pix = x[b].reshape(3, -1).T
        pix = pix - pix.mean(0)
        axis = np.linalg.svd(pix, full_matrices=False)[2][0]
        ref = pix @ axis
        sign = np.sign(ref @ got[b])
        np.testing.assert_allclose(got[b], sign * ref, atol=1e-10)


@pytest.mark.parametrize("channels", [1, 3])
def test_split_colours_recovers_mask_and_colours(channels):
    rng = np.random.default_rng(3)
    masks = _random_masks(6, seed=3)
    fg, bg = rng.random((6, channels)), rng.random((6, channels))
    # keep the two colours apart (the data set's minimum distance) so the split is well defined
    bg = np.where(np.linalg.norm(fg - bg, axis=1, keepdims=True) < 0.4, 1 - fg, bg)
    x = _two_colour(masks, fg, bg, noise=0.01)
    f, b, m = Dis.split_colours(x)
    assert np.array_equal(m.numpy(), masks)  # the smaller side is the foreground
    np.testing.assert_allclose(f.numpy(), fg, atol=0.01)
    np.testing.assert_allclose(b.numpy(), bg, atol=0.01)


def test_shape_correlation_is_the_mask_correlation_and_ignores_colour():
    rng = np.random.default_rng(4)
    masks = _random_masks(4, seed=4)
    masks = np.concatenate([masks, masks])                 # images 4..7 repeat the shapes of 0..3
    fg = rng.random((8, 3))
    bg = np.clip(1 - fg + 0.1 * rng.standard_normal((8, 3)), 0, 1)
    x = _two_colour(masks, fg, bg)
    rho = Dis.shape_correlation(x).numpy()
    ref = np.corrcoef(masks.reshape(8, -1).astype(float))  # two-colour image = affine in its mask
    np.testing.assert_allclose(rho, ref, atol=1e-10)
    assert np.allclose(np.diag(rho[:4, 4:]), 1.0)          # recoloured, same shape
    iou = Dis.mask_iou(x).numpy()
    m = masks.reshape(8, -1)
    ref_iou = np.array([[(a & b).sum() / (a | b).sum() for b in m] for a in m])
    np.testing.assert_allclose(iou, ref_iou, atol=1e-12)


def test_unrelated_shape_correlation_is_the_mean_mask_correlation_of_distinct_pairs():
    rng = np.random.default_rng(5)
    masks = _random_masks(5, seed=5)
    x = _two_colour(masks, rng.random((5, 3)), 1 - rng.random((5, 3)) * 0.3)
    ref = np.corrcoef(masks.reshape(5, -1).astype(float))[np.triu_indices(5, 1)]  # 10 pairs
    mean, n = Dis.unrelated_shape_correlation(x)
    assert n == 10 and mean == pytest.approx(ref.mean(), abs=1e-10)


def test_colour_error_and_distance():
    rng = np.random.default_rng(5)
    P, N = 2, 3
    x, p = rng.random((P, N, 3, 5, 5)), rng.random((P, 3, 5, 5))
    ref = np.linalg.norm(x.mean((3, 4)) - p.mean((2, 3))[:, None], axis=2)  # (P, N)
    oracle = colour_error(torch.from_numpy(x).flatten(0, 1), torch.from_numpy(p).repeat_interleave(N, 0))
    np.testing.assert_allclose(oracle.numpy(), ref.ravel(), atol=1e-12)
    s = Dis.grid_scores(torch.from_numpy(x), torch.from_numpy(p))
    assert s["colour error"]["own prior"] == (pytest.approx(float(oracle.mean())), P * N)
    c = rng.random((5, 3))
    d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1))
    np.testing.assert_allclose(Dis.colour_distance(torch.from_numpy(c)).numpy(), d, atol=1e-12)


def test_pair_kinds_and_grouped_means_match_loops():
    P, N = 3, 4
    kinds = Dis.pair_kinds(P, N)
    rng = np.random.default_rng(6)
    mat = rng.random((P * N, P * N))
    mat = mat + mat.T
    sums = {k: [] for k in Dis.PAIR_KINDS}
    for (p1, n1), (p2, n2) in itertools.combinations(itertools.product(range(P), range(N)), 2):
        kind = "same noise" if n1 == n2 else "same prior" if p1 == p2 else "neither"
        sums[kind].append(mat[p1 * N + n1, p2 * N + n2])
        assert bool(kinds[kind][p1 * N + n1, p2 * N + n2])
    assert {k: int(v.sum()) for k, v in kinds.items()} == {k: len(v) for k, v in sums.items()}
    got = Dis.grouped_means(torch.from_numpy(mat), P, N)
    for k in Dis.PAIR_KINDS:
        assert got[k][0] == pytest.approx(np.mean(sums[k])) and got[k][1] == len(sums[k])
    with pytest.raises(ValueError, match="at least one prior"):
        Dis.pair_kinds(0, 3)


class _ZeroNet(torch.nn.Module):
    """f = 0: every reverse step is mu = u, so a sample is u_K plus the sum of its step noises."""

    def forward(self, u, k):
        return torch.zeros_like(u)


def test_sample_grid_runs_the_sampler_with_the_shared_noise():
    proc = HeatDissipation(8, K=4, sigma_max=8.0, delta=0.01)
    centres = torch.stack([torch.full((3, 8, 8), v) for v in (0.3, 0.5, 0.7)])
    out, u_K = Dis.sample_grid(_ZeroNet(), proc, centres, 2, generator=torch.Generator().manual_seed(1))
    assert out.shape == u_K.shape == (3, 2, 3, 8, 8)
    # same column: the samples differ by exactly the difference of their (flat) prior centres
    assert torch.allclose(out[1] - out[0], torch.full_like(out[0], 0.2), atol=1e-5)
    # and by construction x = u_K + delta (z_4 + z_3 + z_2): the last step adds no noise
    z = shared_noise_grid(centres, 4, 2, 0.01, generator=torch.Generator().manual_seed(1)).noise.table
    expect = u_K.reshape(6, 3, 8, 8) + 0.01 * z[1:].sum(0)
    assert torch.allclose(out.reshape(6, 3, 8, 8), expect, atol=1e-6)


def test_grid_scores_on_a_perfectly_disentangled_grid():
    """Rows: colours (fg, bg) of prior p; columns: mask n. Same noise -> same shape exactly;
    same prior -> same colours exactly."""
    P, N = 3, 4
    rng = np.random.default_rng(7)
    masks = _random_masks(N, seed=7)
    fg, bg = rng.random((P, 3)) * 0.4, 0.6 + rng.random((P, 3)) * 0.4
    x = np.stack([_two_colour(masks, np.repeat(fg[p:p + 1], N, 0), np.repeat(bg[p:p + 1], N, 0)).numpy()
                  for p in range(P)])                      # (P, N, 3, H, W)
    centres = torch.from_numpy(np.broadcast_to(x.mean((1, 3, 4))[:, :, None, None], (P, 3, 12, 12)).copy())
    s = Dis.grid_scores(torch.from_numpy(x), centres)
    assert s["shape correlation"]["same noise"][0] == pytest.approx(1.0)
    assert s["mask IoU"]["same noise"][0] == pytest.approx(1.0)
    assert s["shape correlation"]["same prior"][0] < 0.5
    for name in ("foreground-colour distance", "background-colour distance"):
        assert s[name]["same prior"][0] == pytest.approx(0.0, abs=1e-12)
        assert s[name]["same noise"][0] > 0.05
    own = np.linalg.norm(x.mean((3, 4)) - x.mean((1, 3, 4))[:, None], axis=2)
    assert s["colour error"]["own prior"] == (pytest.approx(own.mean()), P * N)
    assert s["colour error"]["other priors"][1] == P * N * (P - 1)
    assert s["colour error"]["other priors"][0] > s["colour error"]["own prior"][0]


def test_summary_reads_the_scores_against_the_unrelated_pairs():
    kinds = ("same noise", "same prior", "neither")
    s = {m: {k: (0.1 * i, 3) for i, k in enumerate(kinds)}
         for m in ("shape correlation", "mean-colour distance", "foreground-colour distance",
                   "background-colour distance", "mask IoU")}
    s["colour error"] = {"own prior": (0.01, 3), "other priors": (0.2, 6)}
    assert Dis.summary(s) == (
        "*Same noise, different priors:* shape correlation 0.000 against 0.200 for unrelated pairs "
        "(-0.200), mask IoU 0.000 against 0.200; their mean colours are 0.000 apart (unrelated: "
        "0.200). *Same prior, different noise:* mean colours 0.100 apart, background colours 0.100 "
        "(unrelated: 0.200), foreground colours 0.100 (unrelated: 0.200); shape correlation 0.100 "
        "(-0.100 over unrelated). A sample's mean colour is 0.010 from its own prior's and 0.200 "
        "from the other priors'.")


def _grid_by_hand(run, delta, *, priors, noises, seed):
    """shape_correlations' documented recipe written out from the grid functions: priors spread
    over a seeded subset of 64 training images, noise seeded with seed + 1."""
    from ihdm_core.training.data import load_dataset

    images = load_dataset(run.cfg.data)
    subset = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:64]
    spread = Dis.spread_colours(Dis.prior_centres(run.process, images, subset).cpu(), priors)
    centres = Dis.prior_centres(run.process, images, subset[spread])
    samples, _ = Dis.sample_grid(run.net, run.process, centres, noises, delta=delta,
                                 generator=torch.Generator().manual_seed(seed + 1))
    corr = Dis.grid_scores(samples, centres.cpu())["shape correlation"]
    return {k: corr[k][0] for k in ("same noise", "same prior", "neither")}


def test_same_grid_is_the_chapter_grid_of_the_given_priors(run_root):
    """same_grid(prior_idx, seed) samples exactly the grid of those priors' centres with that
    seed's noise, and scores it with grid_scores."""
    from ihdm_core import get_preset
    from ihdm_core.training.data import load_dataset
    from ihdm_core.training.train import ensure_trained

    run = ensure_trained(get_preset("mnist-colour-smoke"), device="cpu", progress=False)
    images, idx = load_dataset(run.cfg.data), torch.tensor([3, 1, 4])
    samples, scores = Dis.same_grid(run.net, run.process, images, idx, 2, delta=0.02,
                                    generator=torch.Generator().manual_seed(9))
    centres = Dis.prior_centres(run.process, images, idx)
    ref, _ = Dis.sample_grid(run.net, run.process, centres, 2, delta=0.02,
                             generator=torch.Generator().manual_seed(9))
    assert torch.equal(samples, ref) and samples.shape[:2] == (3, 2)
    assert scores == Dis.grid_scores(ref, centres.cpu())


def test_colour_probe_script_at_smoke_size(run_root, capsys):
    """scripts/colour_probe.py trains nothing it was not asked to, prints one row per delta with the
    three pair kinds, and its numbers are the seeded measure's (reproducible)."""
    import sys
    from pathlib import Path

    from ihdm_core import get_preset
    from ihdm_core.training.train import ensure_trained

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import colour_probe

    run = ensure_trained(get_preset("mnist-colour-smoke"), device="cpu", progress=False)
    args = ["--preset", "mnist-colour-smoke", "--priors", "3", "--noises", "2",
            "--deltas", "0", "0.02"]
    assert colour_probe.main(args) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 30 |")]
    assert len(rows) == 2
    for line, delta in zip(rows, (0.0, 0.02)):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert float(cells[1]) == delta
        values = [float(c) for c in cells[2:5]]
        assert all(-1 <= v <= 1 for v in values)
        expect = _grid_by_hand(run, delta, priors=3, noises=2, seed=0)
        assert values == [round(expect[k], 3) for k in Dis.PAIR_KINDS]
        assert float(cells[5]) == pytest.approx(expect["same noise"] - expect["same prior"],
                                                abs=1e-3)
    with pytest.raises(SystemExit):
        colour_probe.main(["--preset", "mnist-smoke"])  # not a colour preset: a one-line error
    with pytest.raises(SystemExit):
        colour_probe.main(["--preset", "mnist-colour-smoke", "--deltas", "-1"])
