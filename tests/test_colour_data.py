"""The coloured digits (mnist5k-colour): colour independent of the digit, values, determinism."""

import colorsys
import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from ihdm_core.training import data as D
from ihdm_core.training.presets import get_preset
from ihdm_core.training.data import colour_pairs, load_colours, load_dataset, load_labels
from ihdm_core.model.images import to_float
from ihdm_core.model.heat import HeatDissipation


@pytest.fixture(scope="module")
def coloured():
    return {s: load_dataset("mnist5k-colour", s) for s in ("train", "test", "all")}


def _hue_bins(rgb: np.ndarray, bins: int = 6) -> np.ndarray:
    hue = np.array([colorsys.rgb_to_hsv(*c)[0] for c in rgb])
    return np.minimum((hue * bins).astype(int), bins - 1)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _class_colour_pvalues(labels: np.ndarray, rgb: np.ndarray) -> tuple[float, float]:
    """p-values of class vs hue sextant (chi-square) and of luminance by class (Kruskal-Wallis)."""
    table = np.zeros((10, 6))
    np.add.at(table, (labels, _hue_bins(rgb)), 1)
    p_hue = stats.chi2_contingency(table)[1]
    p_lum = stats.kruskal(*[_luminance(rgb[labels == c]) for c in range(10)]).pvalue
    return p_hue, p_lum


def test_shapes_and_labels(coloured):
    assert coloured["train"].shape == (4500, 3, 28, 28) and coloured["train"].dtype == torch.uint8
    assert coloured["test"].shape == (500, 3, 28, 28)
    assert coloured["all"].shape == (5000, 3, 28, 28)
    assert torch.equal(load_labels("mnist5k-colour", "test"), load_labels("mnist5k", "test"))
    fg, bg = load_colours("train")
    assert fg.shape == bg.shape == (4500, 3)
    # the "all" split is the two splits' images in the digits' original order
    test = D._mnist5k_arrays()[2]
    assert torch.equal(coloured["all"][~test], coloured["train"])
    assert torch.equal(coloured["all"][test], coloured["test"])
    # the presets load it with the shape they declare
    smoke = get_preset("mnist-colour-smoke")
    assert load_dataset(smoke.data).shape == (512, 3, 28, 28)


def test_values_in_unit_range_and_colours_apart(coloured):
    x = to_float(coloured["all"])
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    fg, bg = load_colours("all")
    for c in (fg, bg):
        assert float(c.min()) >= 0.0 and float(c.max()) <= 1.0
    assert float((fg - bg).norm(dim=1).min()) >= D.MIN_COLOUR_DISTANCE - 1e-6
    # colours spread over the cube rather than collapsing to a few (a per-channel std of a
    # uniform variable on [0, 1] is 0.29)
    assert float(fg.std(dim=0).min()) > 0.15 and float(bg.std(dim=0).min()) > 0.15


def test_hsv_to_rgb_matches_colorsys():
    rng = np.random.default_rng(3)
    h, s, v = rng.random(200), rng.random(200), rng.random(200)
    ours = D._hsv_to_rgb(h, s, v)
    ref = np.array([colorsys.hsv_to_rgb(*t) for t in zip(h, s, v)])
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_mask_recovers_the_grayscale_digit(coloured):
    """Projecting each pixel on the bg -> fg segment gives back m = digit / 255."""
    x = to_float(coloured["all"]).double()
    fg, bg = (c.double()[:, :, None, None] for c in load_colours("all"))
    d = fg - bg
    m_hat = ((x - bg) * d).sum(1) / (d * d).sum(1)
    m = load_dataset("mnist5k", "all")[:, 0].double() / 255
    # uint8 rounding moves a pixel by at most 0.5/255 per channel, i.e. m by at most
    # sqrt(3) 0.5/255 / |fg - bg| <= 0.0068 at the minimum distance 0.5
    assert float((m_hat - m).abs().max()) < 0.007
    # and every pixel lies on that segment (no other colour is mixed in)
    resid = x - (bg + m_hat[:, None] * d)
    assert float(resid.abs().max()) < 2.0 / 255


def test_deterministic_given_the_seed(coloured):
    a, b = colour_pairs(300, 11), colour_pairs(300, 11)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = colour_pairs(300, 12)
    assert not np.allclose(a[0], c[0])
    # rebuilt from scratch (caches cleared) the data set is bit-identical
    D._colours_all.cache_clear()
    assert torch.equal(load_dataset("mnist5k-colour", "train"), coloured["train"])
    # train and test use different seeds: the held-out digits do not reuse the training colours
    fg_tr, _ = load_colours("train")
    fg_te, _ = load_colours("test")
    assert not torch.allclose(fg_tr[:500], fg_te)
    assert torch.equal(fg_tr[:100], torch.from_numpy(colour_pairs(4500, D.COLOUR_SEEDS["train"])[0][:100]).float())


def test_colour_independent_of_digit_class():
    """Chi-square of class x hue sextant and Kruskal-Wallis of luminance by class, for the
    foreground and the background. The data are fixed by the seeds, so the p-values are too:
    they are not a flaky draw; the threshold 0.001 guards against a construction that ties
    colour to the class."""
    labels = load_labels("mnist5k-colour", "all").numpy()
    fg, bg = (c.numpy().astype(np.float64) for c in load_colours("all"))
    for rgb in (fg, bg):
        p_hue, p_lum = _class_colour_pvalues(labels, rgb)
        assert p_hue > 1e-3 and p_lum > 1e-3, (p_hue, p_lum)


def test_the_independence_statistics_detect_a_class_dependent_colouring():
    """The same colours, reassigned so that hue and luminance follow the class (mnist5k is
    stored class by class), must fail both statistics by a wide margin."""
    labels = load_labels("mnist5k-colour", "all").numpy()
    fg = load_colours("all")[0].numpy().astype(np.float64)
    order = np.argsort(labels, kind="stable")
    by_hue = np.empty_like(fg)
    by_hue[order] = fg[np.argsort(_hue_bins(fg, 60), kind="stable")]
    by_lum = np.empty_like(fg)
    by_lum[order] = fg[np.argsort(_luminance(fg), kind="stable")]
    assert _class_colour_pvalues(labels, by_hue)[0] < 1e-10
    assert _class_colour_pvalues(labels, by_lum)[1] < 1e-10


def test_colour_ref_preset_and_its_prior_is_the_mean_colour():
    ref, colour = get_preset("mnist-ref"), get_preset("mnist-colour-ref")
    assert colour.model == ref.model and colour.process == ref.process
    assert dataclasses.replace(colour.train, steps=ref.train.steps) == ref.train
    assert (colour.data.dataset, colour.data.channels, colour.train.steps) == ("mnist5k-colour", 3, 3000)
    p = colour.process
    proc = HeatDissipation(28, p.K, p.sigma_max, p.sigma_min)
    x = to_float(load_dataset("mnist5k-colour", "train")[::45]).double()
    uK = proc.blur(x, p.K)
    mean = x.mean(dim=(2, 3), keepdim=True)
    # sigma_B_max = 20 averages each channel to its mean to within the training noise sigma
    assert float((uK - mean).abs().max()) < p.sigma
    # while a smaller blur (sigma_B = 5) leaves the digit visible: the test can tell the difference
    assert float((proc.blur(x, p.K // 2) - mean).abs().max()) > 10 * p.sigma


def test_smoke_profile_trains_its_colour_model_on_the_colour_digits():
    from ihdm_core.book.profiles import get_profile

    prof = get_profile("smoke")
    cfg = prof.config("colour")
    assert (cfg.data.dataset, cfg.data.channels) == ("mnist5k-colour", 3)
    # the prior must be (nearly) flat for the grid of chapter 6 to separate colour from shape
    assert cfg.process.sigma_max >= 0.7 * cfg.data.image_size
    assert prof.n_colour_priors >= 2 and prof.n_colour_noises >= 2
