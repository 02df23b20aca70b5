"""The explorers of chapter 11, driven headless through their widgets.

Each test sets the widgets' values and compares the view the callback computed with the package
functions called directly on the same seed and image, and where there is one, with an
independent reference (scipy's DCT, numpy means, finite differences). The models are the
shipped quick-profile ones (models/): loaded, never trained.
"""

import datetime
import io

import numpy as np
import pytest
import scipy.fft
import torch

pytest.importorskip("ipywidgets")

from ihdm_core.book import explore as E  # noqa: E402

from ihdm_core.book import explore_compare as C  # noqa: E402

from ihdm_core.book import explore_draw as D  # noqa: E402
from ihdm_core.book import explore_widgets as ui  # noqa: E402
from ihdm_core.evaluation import disentangle, probes  # noqa: E402
from ihdm_core.model.heat import heat_forward  # noqa: E402
from ihdm_core.model.latents import NoiseTable, draw_noise, slerp_path  # noqa: E402
from ihdm_core.model.prior import kde_prior_sample  # noqa: E402
from ihdm_core.model.sampling import ddim_sample, sample  # noqa: E402
from ihdm_core.model.images import to_float  # noqa: E402


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return E.Models("quick", device="cpu")


def _png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


def _heat_oracle(u0: np.ndarray, t: float) -> np.ndarray:
    """The Neumann heat equation written out: DCT-II, decay exp(-pi^2 (n^2/H^2 + m^2/W^2) t)."""
    h, w = u0.shape
    lam = np.pi**2 * ((np.arange(h)[:, None] / h) ** 2 + (np.arange(w)[None, :] / w) ** 2)
    return scipy.fft.idctn(scipy.fft.dctn(u0, norm="ortho") * np.exp(-lam * t), norm="ortho")


def test_forward_explorer_matches_the_heat_equation(models):
    fx = E.ForwardExplorer(K=50, sigma_max=20.0)
    digit = to_float(models.images("ihdm")[7])
    fx.add_image("digit 7", digit)
    fx.add_image("flat-ish", torch.rand(1, 12, 20))
    w = ui.forward(fx)
    w.controls["image"].value = "digit 7"
    w.controls["k"].value = 17
    v = w.view
    assert v["k"] == 17 and v["name"] == "digit 7"
    proc = fx.process((28, 28))
    t = float(proc.t[17])
    ref = heat_forward(digit, t)[0].numpy()
    oracle = _heat_oracle(digit[0].double().numpy(), t)
    assert np.allclose(v["uk"], np.clip(ref, 0, 1), atol=1e-6)
    assert np.allclose(v["uk"], np.clip(oracle, 0, 1), atol=1e-4)
    assert v["sigma_B"] == pytest.approx(float(proc.sigma_B[17])) == pytest.approx((2 * t) ** 0.5)
    # The energy left around the mean, by Parseval, from the DCT of the oracle.
    c0 = scipy.fft.dctn(digit[0].double().numpy(), norm="ortho")
    ck = scipy.fft.dctn(oracle, norm="ortho")
    c0[0, 0] = ck[0, 0] = 0
    assert v["energy_left"] == pytest.approx((ck**2).sum() / (c0**2).sum(), rel=1e-4)
    # The PSD of u_k: mean squared DCT coefficient per equal-frequency ring (ring 0 is the DC).
    assert v["psd"][0] == pytest.approx(scipy.fft.dctn(oracle, norm="ortho")[0, 0] ** 2, rel=1e-4)
    assert v["psd"][-1] < 1e-3 * v["psd0"][-1]  # the highest ring is gone at k = 17
    assert 0 < v["energy_left"] < 1 and np.isfinite(v["alpha"])
    assert _png(w.image.value).ndim == 3  # a picture was drawn
    # k = 0 is the image itself, with all of its energy.
    w.controls["k"].value = 0
    assert np.allclose(w.view["uk"], digit[0].numpy(), atol=1e-6)
    assert w.view["energy_left"] == pytest.approx(1.0, abs=1e-6)
    # Another size gets its own process on the same schedule.
    w.controls["image"].value = "flat-ish"
    w.controls["k"].value = 5
    assert w.view["uk"].shape == (12, 20)


def test_forward_explorer_takes_an_uploaded_file(models):
    from PIL import Image

    from ihdm_core.book.photos import photograph

    fx = E.ForwardExplorer(K=20, sigma_max=10.0)
    fx.add_image("digit 0", to_float(models.images("ihdm")[0]))
    w = ui.forward(fx)
    rng = np.random.default_rng(0)
    arr = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    content = buf.getvalue()
    w.controls["upload"].value = (
        {
            "name": "noise.png",
            "type": "image/png",
            "size": len(content),
            "content": memoryview(content),
            "last_modified": datetime.datetime.now(),
        },
    )
    assert (
        w.controls["image"].value == "upload: noise.png" and w.view["name"] == "upload: noise.png"
    )
    w.controls["k"].value = 0
    assert np.allclose(w.view["uk"], photograph(arr, 64).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="not an image file"):
        fx.add_file("bad", b"not an image")


def test_generation_explorer_matches_the_samplers(models):
    gx = E.GenerationExplorer(models)
    w = ui.generation(gx, steps_options=(5, 10))
    w.controls["model"].value = "ihdm"
    w.controls["delta"].value = 0.005
    w.controls["seed"].value = 3
    w.controls["step"].value = 1000  # beyond the end: the slider's max follows the trajectory
    ih = models.run("ihdm")
    K = ih.process.K
    assert w.controls["step"].max == K and w.view["step"] == K and w.view["level"] == 0
    g = torch.Generator().manual_seed(3)
    u_K = kde_prior_sample(ih.process, models.images("ihdm"), 1, generator=g, delta=0.005)[0]
    x = sample(
        ih.net, ih.process, u_K, delta=0.005, noise=NoiseTable(draw_noise(K, u_K.shape, generator=g))
    ).clamp(0, 1)
    assert torch.allclose(w.view["sample"], x[0], atol=1e-5)
    w.controls["step"].value = 0
    assert np.allclose(w.view["frame"], u_K[0, 0].clamp(0, 1).numpy(), atol=1e-6)
    # The DDPM on T = 5 steps, ancestral and DDIM.
    w.controls["model"].value = "ddpm"
    w.controls["steps"].value = 5
    dd = models.run("ddpm").sampled_with(steps=5)
    for sampler in ("ancestral", "ddim"):
        w.controls["sampler"].value = sampler
        w.controls["step"].value = 5
        g = torch.Generator().manual_seed(3)
        x_T = dd.process.prior_sample(1, generator=g)
        if sampler == "ddim":
            ref = ddim_sample(dd.net, dd.process, x_T, eta=0.0)
        else:
            ref = sample(dd.net, dd.process, x_T, noise=NoiseTable(draw_noise(5, x_T.shape, generator=g)))
        assert w.view["n_steps"] == 6 and w.view["K"] == 5
        assert torch.allclose(w.view["sample"], ref[0].clamp(0, 1), atol=1e-5), sampler
    assert not torch.allclose(
        gx.trajectory("ddpm", 3, steps=5)["frames"][-1],
        gx.trajectory("ddpm", 3, steps=5, sampler="ddim")["frames"][-1],
    )
    # Bad input: one line in the status, the last view kept.
    last = w.view
    w.controls["model"].value = "ihdm"
    w.controls["delta"].value = 0.0
    with pytest.raises(ValueError, match="DDIM is for the Gaussian diffusions"):
        gx.trajectory("ihdm", 0, sampler="ddim")
    with pytest.raises(ValueError, match="seed"):
        gx.trajectory("ihdm", -1)
    assert w.view is not last and w.view["delta"] == 0.0


def test_colour_explorer_matches_the_grid_and_its_measures(models):
    cx = E.ColourExplorer(models, reference=0)
    w = ui.colour(cx)
    w.controls["seed"].value = 2
    w.controls["image"].value = 3
    w.controls["colour"].value = "#3070d0"
    run = models.run("colour_long")
    rgb = torch.tensor([0x30, 0x70, 0xD0]).float().div(255).view(1, 3, 1, 1)
    own = disentangle.prior_centres(run.process, models.images("colour_long"), [3])
    centre = own - own.mean(dim=(-2, -1), keepdim=True) + rgb  # image 3's prior, recoloured
    grid, u_K = disentangle.sample_grid(
        run.net, run.process, centre, 1, generator=torch.Generator().manual_seed(2)
    )
    assert np.allclose(w.view["sample"], grid[0, 0].permute(1, 2, 0).numpy(), atol=1e-5)
    assert np.allclose(w.view["u_K"], u_K[0, 0].clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-6)
    # The colour error by hand: distance between mean colours.
    want = np.linalg.norm(
        grid[0, 0].double().numpy().mean((1, 2)) - np.array([0x30, 0x70, 0xD0]) / 255
    )
    assert w.view["colour_error"] == pytest.approx(want, abs=1e-6)
    # The shape correlation with the same seed under the reference prior (training image 0).
    ref_centre = disentangle.prior_centres(run.process, models.images("colour_long"), [0])
    ref, _ = disentangle.sample_grid(
        run.net, run.process, ref_centre, 1, generator=torch.Generator().manual_seed(2)
    )
    both = torch.cat([grid[0], ref[0]]).double()
    assert w.view["shape_correlation"] == pytest.approx(
        float(disentangle.shape_correlation(both)[0, 1]), abs=1e-6
    )
    # The prior from a training image.
    w.controls["source"].value = "image"
    w.controls["image"].value = 5
    c5 = disentangle.prior_centres(run.process, models.images("colour_long"), [5])
    g5, _ = disentangle.sample_grid(
        run.net, run.process, c5, 1, generator=torch.Generator().manual_seed(2)
    )
    assert np.allclose(w.view["sample"], g5[0, 0].permute(1, 2, 0).numpy(), atol=1e-5)
    # A flat prior of the picked colour alone.
    flat = cx.sample(2, colour="#3070d0")
    assert torch.allclose(flat["centre"], rgb.expand(1, 3, 28, 28))
    with pytest.raises(ValueError, match="rrggbb"):
        cx.view(0, colour="orange")


def test_interpolation_explorer_matches_the_paths(models):
    ix = C.InterpolationExplorer(models, n_frames=3, ddpm_steps=5)
    w = ui.interpolation(ix)
    w.controls["seed_a"].value = 4
    w.controls["seed_b"].value = 5
    w.controls["frame"].value = 0
    # Frame 0 of IHDM is seed 4's own sample: the same latents, drawn in the same order.
    gen = E.GenerationExplorer(models).trajectory("ihdm", 4)["frames"][-1]
    assert np.allclose(w.view["images"]["IHDM"], gen[0].numpy(), atol=1e-4)
    # DDIM along the slerp of x_T, by hand.
    a, b = ix.latents(4), ix.latents(5)
    dd = models.run("ddpm").sampled_with(steps=5)
    x_T = slerp_path(a["x_T"], b["x_T"], 3).flatten(-5, -4)
    ref = ddim_sample(dd.net, dd.process, x_T, eta=0.0).clamp(0, 1)
    for i in range(3):
        w.controls["frame"].value = i
        assert w.view["alpha"] == pytest.approx(i / 2)
        assert np.allclose(w.view["images"]["DDIM"], ref[i, 0].numpy(), atol=1e-4)
    assert set(w.view["rows"]) == {"IHDM", "DDPM ancestral", "DDIM"}


def test_gradient_explorer_matches_the_probe_and_finite_differences(models):
    gx = C.GradientExplorer(models)
    w = ui.gradients(gx)
    w.controls["seed"].value = 1
    w.controls["row"].value = 10
    w.controls["column"].value = 15
    w.controls["k"].value = 12
    v = w.view
    assert v["pixel"] == (10, 15) and v["levels"] == {"IHDM": 12, "DDPM": 12}
    ih = models.run("ihdm")
    u, kk = gx.state("ihdm", 1, 12)
    direct = probes.jacobian_rows(
        ih.process, ih.net, u[None], torch.tensor([12]), torch.tensor([[10, 15]])
    )[0]
    assert np.allclose(v["gradients"]["IHDM"], direct.sum(0).numpy(), atol=1e-6)
    # Finite differences at the input pixel of the largest gradient (IHDM's estimate is smooth).
    q = np.unravel_index(np.abs(v["gradients"]["IHDM"]).argmax(), v["gradients"]["IHDM"].shape)
    eps = 1e-2
    up, down = u.clone()[None], u.clone()[None]
    up[0, 0, q[0], q[1]] += eps
    down[0, 0, q[0], q[1]] -= eps
    fd = (ih.process.denoised(ih.net, up, 12) - ih.process.denoised(ih.net, down, 12))[0, 0, 10, 15]
    assert float(fd) / (2 * eps) == pytest.approx(v["gradients"]["IHDM"][q], rel=2e-2, abs=1e-4)
    # The DDPM state at the same t = k / K is on the DDPM's own trajectory.
    dd = models.run("ddpm", gx.K)
    ud, _ = gx.state("ddpm", 1, 12)
    dref = probes.jacobian_rows(
        dd.process, dd.net, ud[None], torch.tensor([12]), torch.tensor([[10, 15]])
    )[0]
    assert np.allclose(v["gradients"]["DDPM"], dref.sum(0).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="pixel"):
        gx.view(1, (28, 3), 5)


def test_slider_html_holds_one_frame_per_view(models):
    fx = E.ForwardExplorer(K=10, sigma_max=5.0)
    fx.add_image("digit 0", to_float(models.images("ihdm")[0]))
    html = D.slider_html(D.draw_forward, [fx.view("digit 0", k) for k in (0, 5, 10)], dpi=30)
    assert html.count("data:image/png;base64") == 3 and 'type="range"' in html
    assert "new Array(3)" in html  # the frames the slider switches between


def test_lab_overrides_merge_into_the_environment(tmp_path):
    import json

    from ihdm_core.book import lab

    path = lab.overrides_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
                lab.DOCMANAGER: {"defaultViewers": {"markdown": "Markdown Preview"}},
            }
        )
    )
    assert lab.write_overrides(tmp_path) == path
    data = json.loads(path.read_text())
    assert data[lab.DOCMANAGER]["defaultViewers"] == {
        "markdown": "Markdown Preview",
        "python": "Jupytext Notebook",
    }
    assert data["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        lab.write_overrides(tmp_path)
