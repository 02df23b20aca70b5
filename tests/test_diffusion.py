"""DDPM and Blurring Diffusion against independent references: Ho et al.'s discrete formulas
in numpy, the Blurring Diffusion note's equations written out literally, the heat operator,
scipy's DCT, and oracle networks that know the data point."""

import math

import numpy as np
import pytest
import scipy.fft
import torch

from ihdm_core import build_process, get_preset
from ihdm_core.training.presets import PRESETS
from ihdm_core.training.config import _identity_dict, from_dict
from ihdm_core.model.diffusion import DDPM, BlurringDiffusion
from ihdm_core.model.heat import HeatDissipation, dct2, heat_forward, idct2
from ihdm_core.model.losses import denoising_loss
from ihdm_core.training.build import PROCESS_KINDS
from ihdm_core.model.latents import NoiseTable, draw_noise, shared_noise
from ihdm_core.model.sampling import ddim_sample, sample
from ihdm_core.model.unet import UNet


def _images(n=8, c=1, size=28, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


class EpsOracle(torch.nn.Module):
    """The exact eps of z_k = alpha_k (2 x0 - 1) + sigma_k eps, from the process's own schedule.

    It receives what ``predict`` gives the U-Net, (z + 1) / 2.
    """

    def __init__(self, process, x0):
        super().__init__()
        self.p, self.z0 = process, 2 * x0 - 1

    def forward(self, u, k):
        z, p = 2 * u - 1, self.p
        alpha = p.alphas(k).float()[:, None]
        mean = idct2(alpha * dct2(self.z0)) if p.frequency_space else alpha * self.z0
        return (z - mean) / p.sigma[k].float()[:, None, None, None]


class RandomNet(torch.nn.Module):
    """A fixed non-trivial, bounded eps model: a squashed random 3x3 convolution plus a level shift."""

    def __init__(self, channels=1, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(channels, channels, 3, 3, generator=g) * 0.2

    def forward(self, u, k):
        return torch.tanh(torch.nn.functional.conv2d(u, self.w, padding=1)) + 0.01 * k.float()[:, None, None, None]


def _residual(p, z, x0, k):
    """(z_k - alpha_k (2 x0 - 1)) / sigma_k in DCT space: N(0, I) under q(z_k | x0)."""
    alpha = p.alphas(k).float()[:, None]
    return (dct2(z) - alpha * dct2(2 * x0 - 1)) / float(p.sigma[k])


# --- schedules and forward marginals ------------------------------------------------------------
def test_ddpm_linear_marginal_matches_closed_form():
    x0 = _images(6)
    for K in (1000, 200):
        betas = np.linspace(1e-4 * 1000 / K, 0.02 * 1000 / K, K)  # Ho et al., rescaled for K steps
        abar = np.concatenate([[1.0], np.cumprod(1 - betas)])
        p = DDPM(28, 1, K=K, schedule="linear")
        assert np.allclose(p.a.numpy() ** 2, abar, rtol=1e-12) and np.allclose(p.sigma.numpy() ** 2, 1 - abar)
        k = torch.tensor([1, 2, K // 3, K // 2, K - 1, K])
        inp, eps = p.training_pair(x0, k, generator=torch.Generator().manual_seed(1))
        kn = k.numpy()
        ref = (np.sqrt(abar[kn])[:, None, None, None] * (2 * x0.double().numpy() - 1)
               + np.sqrt(1 - abar[kn])[:, None, None, None] * eps.double().numpy())
        assert np.abs(inp.double().numpy() - ref).max() < 1e-5
    # The target is standard normal noise, fresh per call.
    _, eps = p.training_pair(_images(64), torch.full((64,), 7), generator=torch.Generator().manual_seed(2))
    assert abs(float(eps.mean())) < 0.02 and abs(float(eps.std()) - 1) < 0.02
    # Empirical moments of the marginal itself at one level.
    x = _images(1).expand(4000, 1, 28, 28)
    z = p.marginal(x, 100, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(z.mean(0), math.sqrt(abar[100]) * (2 * x[0] - 1), atol=0.08)
    assert abs(float(z.std(0).mean()) - math.sqrt(1 - abar[100])) < 0.01


def test_cosine_schedule_is_clipped_cos():
    K = 50
    p = DDPM(8, 1, K=K, schedule="cosine")
    b = math.atan(math.exp(-5.0))
    a = math.atan(math.exp(5.0)) - b
    t = np.arange(1, K + 1) / K
    assert np.allclose(p.a[1:].numpy(), np.cos(a * t + b), atol=1e-12)
    assert np.allclose(p.sigma[1:].numpy(), np.sin(a * t + b), atol=1e-12)
    logsnr = np.log(p.a[1:].numpy() ** 2 / p.sigma[1:].numpy() ** 2)
    assert logsnr[-1] == pytest.approx(-10.0, abs=1e-9) and logsnr.max() < 10.0
    assert float(p.a[0]) == 1.0 and float(p.sigma[0]) == 0.0  # level 0 is the data


def test_blurring_with_zero_blur_is_cosine_ddpm():
    ddpm = DDPM(28, 1, K=40, schedule="cosine")
    bd = BlurringDiffusion(28, 1, K=40, sigma_B_max=0.0)
    k = torch.arange(41)
    assert torch.allclose(bd.alphas(k), ddpm.alphas(k).expand(41, 28, 28), rtol=0, atol=1e-15)
    assert torch.equal(bd.sigma, ddpm.sigma)
    x0 = _images(5)
    kk = torch.tensor([1, 9, 20, 33, 40])
    # Same draws, same marginals: BD goes through the DCT, DDPM stays in pixel space.
    a = bd.training_pair(x0, kk, generator=torch.Generator().manual_seed(4))
    b = ddpm.training_pair(x0, kk, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[1], b[1]) and torch.allclose(a[0], b[0], atol=2e-6)
    for t in (40, 17, 1):
        for x, y in zip(bd.posterior_coefficients(t, t - 1), ddpm.posterior_coefficients(t, t - 1)):
            assert torch.allclose(x, y.expand_as(x), rtol=1e-12, atol=1e-15)
    # And the whole ancestral chain, draw for draw. (A wrong eps model lets the chain grow up to
    # 1 / alpha_K ~ 150-fold, hence the relative tolerance.)
    # Both with and without clipping x_hat (the defaults differ: DDPM clips, BD does not).
    net, zK = RandomNet(), torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    noise = NoiseTable(draw_noise(40, zK.shape, generator=torch.Generator().manual_seed(6)))
    for clip in (False, True):
        bd.clip_denoised = ddpm.clip_denoised = clip
        a, b = sample(net, bd, zK, noise=noise), sample(net, ddpm, zK, noise=noise)
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-3), clip
        assert (float(a.min()) > -1e-5 and float(a.max()) < 1 + 1e-5) == clip  # clipped x_hat: in the data range


def test_blur_factors_are_the_heat_decay():
    """BD's d_k = (1 - d_min) exp(-lambda tau_k) + d_min, checked twice: through our heat operator
    (separable heat matrices, a different code path) and through scipy's DCT with the note's
    frequencies pi i / N. tau_k is written out from sigma_B(t) = sigma_B_max sin(pi t / 2)^2."""
    K, smax, dmin = 8, 20.0, 0.001
    p = BlurringDiffusion(28, 1, K=K, sigma_B_max=smax, d_min=dmin)
    z0 = 2 * _images(3) - 1
    freq = np.pi * np.arange(28) / 28
    lam = freq[:, None] ** 2 + freq[None, :] ** 2
    for k in (1, 3, 6, 8):
        tau = (smax * math.sin(math.pi * k / K / 2) ** 2) ** 2 / 2
        d_ref = (1 - dmin) * np.exp(-lam * tau) + dmin
        assert np.allclose(p.blur_factors(k)[0].numpy(), d_ref, rtol=1e-12, atol=1e-15)
        # noise-free marginal: a_k [(1 - d_min) F(tau) z0 + d_min z0]
        mean = p.marginal(z0 / 2 + 0.5, k, eps=torch.zeros_like(z0))
        heat = float(p.a[k]) * ((1 - dmin) * heat_forward(z0, tau) + dmin * z0)
        assert torch.allclose(mean, heat, atol=2e-5)
        u = scipy.fft.dctn(z0.double().numpy(), axes=(-2, -1), norm="ortho")
        ref = scipy.fft.idctn(float(p.a[k]) * d_ref * u, axes=(-2, -1), norm="ortho")
        assert np.abs(mean.double().numpy() - ref).max() < 2e-5
    # The blur is the IHDM heat decay: at equal heat time they coincide when d_min = 0.
    ihdm = HeatDissipation(28, K=5, sigma_max=12.0)
    bd0 = BlurringDiffusion(28, 1, K=1, sigma_B_max=float(ihdm.sigma_B[3]), d_min=0.0)
    assert torch.allclose(bd0.blur_factors(1)[0].float(), ihdm.decays[3], atol=1e-7)


# --- reverse steps against the published formulas ---------------------------------------------
def test_ddpm_posterior_matches_ho_et_al():
    K = 100
    betas = np.linspace(1e-3, 0.2, K)
    abar = np.concatenate([[1.0], np.cumprod(1 - betas)])
    p = DDPM(8, 1, K=K)
    for k in (K, 50, 2, 1):
        c_z, c_eps, std = (float(c) for c in p.posterior_coefficients(k, k - 1))
        alpha = 1 - betas[k - 1]
        assert c_z == pytest.approx(1 / math.sqrt(alpha), rel=1e-10)  # Ho et al. Eq. 11
        assert c_eps == pytest.approx(-betas[k - 1] / (math.sqrt(alpha) * math.sqrt(1 - abar[k])), rel=1e-10)
        var = (1 - abar[k - 1]) / (1 - abar[k]) * betas[k - 1]  # beta tilde, Eq. 7
        assert std == pytest.approx(math.sqrt(var), rel=1e-10, abs=1e-15)


def test_blurring_posterior_matches_the_note():
    """The note's mu and sigma2_den, literally (1/sigma_s^2 form, clipped at 1e-8), in numpy."""
    K = 20
    p = BlurringDiffusion(16, 1, K=K, sigma_B_max=8.0)
    rng = np.random.default_rng(0)
    u_t, eps = rng.standard_normal((16, 16)), rng.standard_normal((16, 16))
    for t in (K, 11, 2):
        al_t, al_s = p.alphas(t)[0].numpy(), p.alphas(t - 1)[0].numpy()
        sig_t, sig_s = float(p.sigma[t]), float(p.sigma[t - 1])
        alpha_ts = al_t / al_s
        sigma2_ts = sig_t ** 2 - alpha_ts ** 2 * sig_s ** 2
        sigma2_ts = np.maximum(sigma2_ts, 1e-8)
        sigma2_den = 1 / (1 / max(sig_s ** 2, 1e-8) + alpha_ts ** 2 / sigma2_ts)
        mu = (alpha_ts * sigma2_den / sigma2_ts) * u_t + (sigma2_den / (alpha_ts * max(sig_s ** 2, 1e-8))) * (u_t - sig_t * eps)
        c_z, c_eps, std = (c.numpy() for c in p.posterior_coefficients(t, t - 1))
        assert np.allclose(c_z * u_t + c_eps * eps, mu, rtol=1e-9, atol=1e-12)
        assert np.allclose(std, np.sqrt(sigma2_den), rtol=1e-9)
        assert np.all(sigma2_ts > 0)  # per-frequency SNR decreases: the process is well defined


def test_clipped_ddpm_steps_match_ho_et_al_and_ddim_with_clipped_x0():
    """With clip_denoised, the ancestral mean is Ho et al.'s Eq. 7 posterior mean at the clipped
    x0 estimate, and the DDIM step is Song et al.'s Eq. 12 with eps re-derived from that x0;
    without it, both steps are the unclipped formulas. A bounded wrong eps model makes x_hat leave
    [-1, 1], so the clip matters here."""
    K = 50
    betas = np.linspace(1e-4, 0.02, K) * 1000 / K
    abar = np.concatenate([[1.0], np.cumprod(1 - betas)])
    net = RandomNet()
    z = 1.5 * torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for clip in (True, False):
        p = DDPM(28, 1, K=K, clip_denoised=clip)
        for t, s in ((K, K - 1), (30, 29), (2, 1), (1, 0), (40, 12)):
            eps = p.predict(net, z.float(), torch.full((4,), t)).double()
            x0 = (z - math.sqrt(1 - abar[t]) * eps) / math.sqrt(abar[t])
            if t == K:
                assert float(x0.abs().max()) > 2  # the clip is exercised
            if clip:
                x0 = x0.clamp(-1, 1)
            zf = z.float()
            if s == t - 1:
                mu = (math.sqrt(abar[s]) * betas[t - 1] / (1 - abar[t])) * x0 \
                    + (math.sqrt(1 - betas[t - 1]) * (1 - abar[s]) / (1 - abar[t])) * z
                ref = (mu + 1) / 2 if s == 0 else mu
                got = p.reverse_step(net, zf, t, None).x
                assert torch.allclose(got.double(), ref, atol=2e-5), (clip, t)
            e = (z - math.sqrt(abar[t]) * x0) / math.sqrt(1 - abar[t]) if clip else eps
            ddim = math.sqrt(abar[s]) * x0 + math.sqrt(1 - abar[s]) * e
            ref = (ddim + 1) / 2 if s == 0 else ddim
            assert torch.allclose(p.ddim_step(net, zf, t, s).x.double(), ref, atol=2e-5), (clip, t, s)


def test_clipped_blurring_step_matches_the_note_with_a_clipped_x0():
    """Blurring Diffusion clips in pixel space, where the data range is: the note's mu with
    (u_t - sigma_t eps_hat) replaced by alpha_t DCT(clip(x_hat)), in numpy/scipy."""
    K = 20
    p = BlurringDiffusion(16, 1, K=K, sigma_B_max=8.0, clip_denoised=True)
    net = RandomNet()
    z = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    dct = lambda v: scipy.fft.dctn(v, axes=(-2, -1), norm="ortho")  # noqa: E731
    idct = lambda v: scipy.fft.idctn(v, axes=(-2, -1), norm="ortho")  # noqa: E731
    for t in (K, 9, 3):
        eps = p.predict(net, z, torch.full((2,), t)).double().numpy()
        al_t, al_s = p.alphas(t)[0].numpy(), p.alphas(t - 1)[0].numpy()
        sig_t, sig_s = float(p.sigma[t]), float(p.sigma[t - 1])
        u_t = dct(z.double().numpy())
        x_hat = np.clip(idct((u_t - sig_t * dct(eps)) / al_t), -1, 1)
        alpha_ts = al_t / al_s
        sigma2_ts = sig_t ** 2 - alpha_ts ** 2 * sig_s ** 2
        sigma2_den = 1 / (1 / sig_s ** 2 + alpha_ts ** 2 / sigma2_ts)
        mu = (alpha_ts * sigma2_den / sigma2_ts) * u_t + (sigma2_den / (alpha_ts * sig_s ** 2)) * al_t * dct(x_hat)
        got = p.reverse_step(net, z, t, None).x.double().numpy()
        assert np.abs(got - idct(mu)).max() < 1e-4, t
    # The last step returns the clipped estimate itself: samples lie in the data range.
    last = p.reverse_step(net, z, 1, None).x
    assert float(last.min()) > -1e-5 and float(last.max()) < 1 + 1e-5


# --- samplers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: DDPM(28, 1, K=60, schedule="linear"),
                                  lambda: BlurringDiffusion(28, 1, K=30, sigma_B_max=20.0)])
def test_oracle_ancestral_sampler_returns_the_data_point(make):
    p = make()
    x0 = _images(16)
    seen = {}
    zK = p.prior_sample(16, None, generator=torch.Generator().manual_seed(7))
    out = sample(EpsOracle(p, x0), p, zK, generator=torch.Generator().manual_seed(8),
                 callback=lambda s: seen.__setitem__(s["k"], s["x"]))
    assert sorted(seen) == list(range(p.K + 1))
    assert torch.allclose(out, x0, atol=1e-4)  # returned in [0, 1], as the data
    # Every intermediate state is a draw from q(z_k | x0): the posterior steps are consistent.
    for k in (p.K - 1, p.K // 2, 2):
        r = _residual(p, seen[k], x0, k)
        assert abs(float(r.std()) - 1) < 0.03 and abs(float(r.mean())) < 0.03, (k, float(r.std()))
        if p.frequency_space:  # also separately for the low and the high frequencies
            assert abs(float(r[..., :4, :4].std()) - 1) < 0.15 and abs(float(r[..., 14:, 14:].std()) - 1) < 0.05


class IdealDenoiser(torch.nn.Module):
    """E[eps | z_k] when the data are exactly the points x_i: the optimum of the training loss
    on a finite data set, written from q(z_k | x_i) alone (posterior weights over the x_i)."""

    def __init__(self, process, data):
        super().__init__()
        self.p, self.X = process, dct2(2 * data - 1)

    def forward(self, u, k):
        p, Z = self.p, dct2(2 * u - 1)
        means = p.alphas(k).float()[:, None, None] * self.X[None]  # (B, N, C, H, W)
        sig = p.sigma[k].float()
        w = torch.softmax(-((Z[:, None] - means) ** 2).flatten(2).sum(-1) / (2 * sig[:, None] ** 2), dim=1)
        return idct2((Z - (w[:, :, None, None, None] * means).sum(1)) / sig[:, None, None, None])


@pytest.mark.parametrize("make", [lambda: DDPM(28, 1, K=50, schedule="linear"),
                                  lambda: BlurringDiffusion(28, 1, K=50, sigma_B_max=20.0)])
def test_ideal_denoiser_samples_land_on_data_points(make):
    """End to end from the N(0, I) prior, with a model that does not know which point to make:
    ancestral and DDIM samples must each land on one of the data points, and on different ones."""
    p = make()
    data = _images(30, seed=3)
    net = IdealDenoiser(p, data)
    zK = p.prior_sample(8, None, generator=torch.Generator().manual_seed(0))
    for x in (sample(net, p, zK, generator=torch.Generator().manual_seed(1)), ddim_sample(net, p, zK, steps=20)):
        rms = ((x[:, None] - data[None]) ** 2).flatten(2).mean(-1).sqrt()
        nearest = rms.min(1)
        assert float(nearest.values.max()) < 1e-4
        assert len(set(nearest.indices.tolist())) >= 4


@pytest.mark.parametrize("make", [lambda: DDPM(16, 2, K=24, schedule="linear"),
                                  lambda: BlurringDiffusion(16, 2, K=24, sigma_B_max=8.0)])
def test_ddim(make):
    p = make()
    net = RandomNet(2)
    zK = torch.randn(3, 2, 16, 16, generator=torch.Generator().manual_seed(9))
    # eta = 1 over all K levels is the ancestral sampler, given the same noise.
    noise = NoiseTable(draw_noise(p.K, zK.shape, generator=torch.Generator().manual_seed(10)))
    assert torch.allclose(ddim_sample(net, p, zK, eta=1.0, noise=noise), sample(net, p, zK, noise=noise),
                          rtol=1e-5, atol=1e-4)
    # eta = 0 is deterministic, on any level grid.
    a = ddim_sample(net, p, zK, steps=5)
    assert torch.equal(a, ddim_sample(net, p, zK, steps=5))
    assert not torch.allclose(a, ddim_sample(net, p, zK, steps=6))
    # With the oracle, deterministic DDIM moves along alpha_s x0 + sigma_s eps_K exactly.
    x0 = torch.rand(3, 2, 16, 16, generator=torch.Generator().manual_seed(11))
    seen = {}
    out = ddim_sample(EpsOracle(p, x0), p, zK, steps=7, callback=lambda s: seen.__setitem__(s["k"], s["x"]))
    assert list(seen) == [24, 21, 17, 14, 10, 7, 3, 0]
    eps_K = _residual(p, zK, x0, p.K)
    for k in (21, 10, 3):
        assert torch.allclose(_residual(p, seen[k], x0, k), eps_K, atol=1e-3)
    assert torch.allclose(out, x0, atol=1e-4)
    with pytest.raises(ValueError, match="steps"):
        ddim_sample(net, p, zK, steps=p.K + 1)
    with pytest.raises(TypeError, match="Gaussian diffusion"):
        ddim_sample(net, HeatDissipation(16, K=4, sigma_max=8.0), zK)


@pytest.mark.parametrize("kind", ["ddpm", "blurring"])
def test_shared_interface(kind):
    cfg = get_preset(f"mnist-{kind}-smoke")
    p = build_process(cfg)
    assert p.name == kind and p.K == cfg.process.K
    net = UNet(image_size=28, in_channels=1, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
               attn_resolutions=(), dropout=0.0)
    for q in net.parameters():
        torch.nn.init.normal_(q, std=0.05)
    # The U-Net maps its input u to 2u - 1: predict gives it (z + 1) / 2 so it sees z itself.
    z, k = torch.randn(2, 1, 28, 28), torch.tensor([3, 7])
    assert torch.allclose(p.predict(net, z, k), net((z + 1) / 2, k))
    prior = p.prior_sample(512, torch.zeros(1, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    assert prior.shape == (512, 1, 28, 28) and abs(float(prior.std()) - 1) < 0.01
    zK = prior[:1].expand(4, 1, 28, 28)
    shared = sample(net, p, zK, noise=shared_noise(p.K, zK.shape, generator=torch.Generator().manual_seed(1)))
    assert torch.allclose(shared[0], shared[3])
    fresh = sample(net, p, zK, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(fresh[0], fresh[3])
    with pytest.raises(ValueError, match="delta"):
        sample(net, p, zK, delta=0.01)
    # Mixed precision reaches only the network: the process arithmetic and the output stay float32.
    for out in (sample(net, p, zK, autocast_dtype=torch.bfloat16), ddim_sample(net, p, zK, autocast_dtype=torch.bfloat16)):
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.allclose(p.to("cpu").alphas(3), p.alphas(3))
    # The shared loss with an eps oracle is zero; with a zero network it is ||eps||^2.
    x0 = _images(4)
    per, _ = denoising_loss(EpsOracle(p, x0), p, x0, generator=torch.Generator().manual_seed(2))
    assert float(per.max()) < 1e-6
    zero = lambda u, k: torch.zeros_like(u)  # noqa: E731
    per, _ = denoising_loss(zero, p, x0, k=torch.full((4,), p.K))
    assert abs(float(per.mean()) / 784 - 1) < 0.1
    with pytest.raises(ValueError, match="built for"):
        p.training_pair(torch.rand(2, 3, 28, 28), torch.tensor([1, 2]))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ddpm", "blurring"])
def test_smoke_preset_trains_and_samples(kind, run_root):
    from ihdm_core.training.generate import generate
    from ihdm_core.training.runs import load_run
    from ihdm_core.training.log import read_metrics
    from ihdm_core.training.train import train

    cfg = get_preset(f"mnist-{kind}-smoke").replace(train={"steps": 40, "log_every": 10})
    res = train(cfg, progress=False)
    losses = [x for r in read_metrics(res.run_dir) for x in r["losses"]]
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first, (first, last)  # starts at ||eps||^2 = 784: the zero-init output
    run = load_run(cfg)
    assert run.process.name == kind
    x = generate(run, 3, seed=0)
    assert x.shape == (3, 1, 28, 28) and float(x.min()) >= 0 and float(x.max()) <= 1


# --- configs --------------------------------------------------------------------------------------
def test_presets_and_identity():
    assert {"ihdm", "ddpm", "blurring"} <= set(PROCESS_KINDS)
    added = {"beta_schedule", "beta_start", "beta_end", "logsnr_min", "logsnr_max", "d_min"}
    for name, cfg in PRESETS.items():
        if cfg.process.kind == "ihdm":  # IHDM identities do not see the fields added for the baselines
            assert not added & set(_identity_dict(cfg)["process"]), name
        assert from_dict(cfg.to_dict()) == cfg
    base = get_preset("mnist-quick")
    for kind in ("ddpm", "blurring"):
        quick = get_preset(f"mnist-{kind}-quick")
        assert (quick.model, quick.data, quick.train, quick.process.K) == (base.model, base.data, base.train, base.process.K)
        paper = get_preset(f"cifar10-{kind}")
        assert paper.model == get_preset("cifar10").model and paper.process.K == 1000
    cfg = get_preset("mnist-ddpm-quick")
    ids = {cfg.identity(), cfg.replace(process={"beta_schedule": "cosine"}).identity(),
           cfg.replace(process={"beta_end": 0.01}).identity(), cfg.replace(process={"kind": "blurring"}).identity()}
    assert len(ids) == 4
    # Clipping x_hat changes sampling only: the trained run (identity) is the same, the process is not.
    unclipped = cfg.replace(process={"clip_denoised": False})
    assert unclipped.identity() == cfg.identity()
    assert build_process(cfg).clip_denoised and not build_process(unclipped).clip_denoised
    bd = get_preset("mnist-blurring-quick")
    assert not build_process(bd).clip_denoised and build_process(bd.replace(process={"clip_denoised": True})).clip_denoised
    with pytest.raises(ValueError, match="must lie in"):
        DDPM(28, 1, K=10, schedule="linear")  # beta_end x 1000/K = 2
    with pytest.raises(ValueError, match="beta_schedule"):
        build_process(cfg.replace(process={"beta_schedule": "quadratic"}))
