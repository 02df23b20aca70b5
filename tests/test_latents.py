"""The latents module against written-out constructions: per-seed draws at any batch size,
slerp's endpoints, interpolation paths and the shared-noise grid."""

import math

import pytest
import torch

from ihdm_core.model import latents as L
from ihdm_core.model.diffusion import DDPM
from ihdm_core.model.heat import HeatDissipation

K, SHAPE = 4, (1, 8, 8)


def _processes():
    return {"ihdm": HeatDissipation(8, K=K, sigma_max=4.0, delta=0.02), "ddpm": DDPM(8, 1, K=K, schedule="cosine")}


IMAGES = torch.rand(10, *SHAPE, generator=torch.Generator().manual_seed(0))


def _written_out(process, seed):
    """Seed s: one generator, the prior draw first, then one noise image per level K..1."""
    g = torch.Generator().manual_seed(seed)
    prior = process.prior_sample(1, IMAGES, generator=g)[0]
    return prior, [torch.randn(SHAPE, generator=g) for _ in range(K)]


def _collect(lat):
    return lat.x_K, [lat.noise(k) for k in range(K, 0, -1)]


@pytest.mark.parametrize("name", ["ihdm", "ddpm"])
@pytest.mark.parametrize("batch", [1, 2, 5])
def test_each_seed_draws_from_its_own_generator_at_any_batch_size(name, batch):
    p = _processes()[name]
    seeds = [7, 3, 11, 0, 42]
    for start in range(0, len(seeds), batch):
        chunk = seeds[start:start + batch]
        x_K, steps = _collect(L.seed_latents(p, chunk, images=IMAGES))
        for i, s in enumerate(chunk):
            prior, noise = _written_out(p, s)
            assert torch.equal(x_K[i], prior)
            for got, want in zip(steps, noise):
                assert torch.equal(got[i], want)


def test_shared_noise_and_same_init_modes():
    p = _processes()["ihdm"]
    x_K, steps = _collect(L.seed_latents(p, [1, 2, 3], images=IMAGES, mode="shared_noise",
                                         shared_seed=9))
    _, shared = _written_out(p, 9)
    for i, s in enumerate([1, 2, 3]):
        assert torch.equal(x_K[i], _written_out(p, s)[0])
        assert all(torch.equal(got[i], want) for got, want in zip(steps, shared))
    x_K, steps = _collect(L.seed_latents(p, [1, 2], images=IMAGES, mode="same_init", shared_seed=9))
    assert torch.equal(x_K[0], _written_out(p, 9)[0]) and torch.equal(x_K[1], x_K[0])
    assert all(torch.equal(got[1], want) for got, want in zip(steps, _written_out(p, 2)[1]))
    with pytest.raises(ValueError, match="mode must be one of"):
        L.seed_latents(p, [1], images=IMAGES, mode="nope")


@pytest.mark.parametrize("name", ["ihdm", "ddpm"])
def test_interpolate_mode_blends_the_end_seeds(name):
    p = _processes()[name]
    frames = 4
    x_K, steps = _collect(L.seed_latents(p, [4, 5, 6, 7], images=IMAGES, mode="interpolate",
                                         frames=frames))
    (pa, na), (pb, nb) = _written_out(p, 4), _written_out(p, 7)
    assert torch.equal(x_K[0], pa) and torch.allclose(x_K[3], pb, atol=1e-6)
    w = 1 / 3
    phi = w * math.pi / 2
    want = (1 - w) * pa + w * pb if p.data_prior else math.cos(phi) * pa + math.sin(phi) * pb
    assert torch.allclose(x_K[1], want, atol=1e-6)
    for got, a, b in zip(steps, na, nb):
        assert torch.allclose(got[1], math.cos(phi) * a + math.sin(phi) * b, atol=1e-6)


def test_slerp_takes_its_endpoints_in_order():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(100, generator=g), torch.randn(100, generator=g)
    assert torch.equal(L.slerp(a, b, 0.0), a)
    assert torch.allclose(L.slerp(a, b, math.pi / 2), b, atol=1e-7)
    assert torch.allclose(L.slerp(a, b, math.pi / 4), (a + b) / math.sqrt(2))


def test_interpolation_paths_start_and_end_at_the_endpoints():
    for p in _processes().values():
        path = L.interpolation(p, 2, 5, images=IMAGES, generator=torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)  # written out: 4 prior states, then K x 4 noises
        x_end = p.prior_sample(4, IMAGES, generator=g).view(2, 2, *SHAPE)
        z_end = torch.randn(K, 4, *SHAPE, generator=g).view(K, 2, 2, *SHAPE)
        assert torch.equal(path.prior_ends, x_end) and torch.equal(path.noise_ends, z_end)
        x_K, z = path.latents.x_K.view(2, 5, *SHAPE), path.latents.noise.table.view(K, 2, 5, *SHAPE)
        assert torch.equal(x_K[:, 0], x_end[:, 0]) and torch.allclose(x_K[:, -1], x_end[:, 1], atol=1e-6)
        assert torch.equal(z[:, :, 0], z_end[:, :, 0]) and torch.allclose(z[:, :, -1], z_end[:, :, 1], atol=1e-6)
        mid = (x_end[:, 0] + x_end[:, 1]) / 2 if p.data_prior else (x_end[:, 0] + x_end[:, 1]) / math.sqrt(2)
        assert torch.allclose(x_K[:, 2], mid, atol=1e-6)


def test_shared_noise_grid_shares_noise_down_columns():
    centres = torch.rand(3, 2, 6, 6)
    lat = L.shared_noise_grid(centres, K=5, n_noises=4, delta=0.1, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)  # written out: the column noises nu, then z per level
    nu, z = torch.randn(4, 2, 6, 6, generator=g), torch.randn(5, 4, 2, 6, 6, generator=g)
    assert lat.x_K.shape == (12, 2, 6, 6) and len(lat.noise) == 5
    for p in range(3):
        for n in range(4):
            assert torch.allclose(lat.x_K[4 * p + n], centres[p] + 0.1 * nu[n])
            for k in range(1, 6):
                assert torch.equal(lat.noise(k)[4 * p + n], z[k - 1, n])
    part = lat.batch(5, 9)
    assert torch.equal(part.x_K, lat.x_K[5:9]) and torch.equal(part.noise(2), lat.noise(2)[5:9])


def test_shared_noise_is_one_draw_per_step():
    table = L.shared_noise(3, (4, *SHAPE), generator=torch.Generator().manual_seed(2))
    want = torch.randn(3, 1, *SHAPE, generator=torch.Generator().manual_seed(2))
    assert torch.equal(table.table, want.expand(3, 4, *SHAPE))
