"""The library logic behind chapters 6-10, each checked against a computation written out here
(loops over pixels in numpy, closed forms) rather than against the code under test."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ihdm_core.evaluation import probes
from ihdm_core.model.diffusion import DDPM
from ihdm_core.model.heat import HeatDissipation, heat_matrix
from oracles import exact_inverse_net

H = W = 8
KERNEL = torch.tensor([[0.0, 0.2, 0.0], [0.1, -0.5, 0.3], [0.0, -0.4, 0.05]])


class LinearNet(torch.nn.Module):
    """A network that is one fixed 3x3 convolution (zero padding), whatever the level."""

    def forward(self, x, k):
        return torch.nn.functional.conv2d(x, KERNEL[None, None].to(x), padding=1)


def conv_row(i, j, scale=1.0):
    """d conv(x)[i, j] / d x, written out: a cross-correlation reads x[i + a - 1, j + b - 1] with weight w[a, b]."""
    row = np.zeros((H, W))
    for a in range(3):
        for b in range(3):
            p, q = i + a - 1, j + b - 1
            if 0 <= p < H and 0 <= q < W:
                row[p, q] += scale * float(KERNEL[a, b])
    return row


PIX = torch.tensor([[3, 4], [0, 0], [7, 5]])


def test_ihdm_jacobian_is_identity_plus_the_network_row():
    proc = HeatDissipation(H, K=5, sigma_max=3.0)
    u = torch.rand(3, 1, H, W)
    k = torch.tensor([5, 2, 2])
    full, corr = probes.correction_rows(proc, LinearNet(), u, k, PIX)
    for n, (i, j) in enumerate(PIX.tolist()):
        expected = conv_row(i, j)
        np.testing.assert_allclose(corr[n, 0].numpy(), expected, atol=1e-6)
        expected[i, j] += 1.0  # mu = u + f(u)
        np.testing.assert_allclose(full[n, 0].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_ddpm_jacobian_in_data_units_without_the_clip(prediction):
    proc = DDPM(H, 1, K=20, schedule="cosine", prediction=prediction, clip_denoised=True)
    # Large inputs push x_hat far outside [-1, 1]: a clipped estimate would have no gradient there.
    u = 3 + torch.rand(3, 1, H, W)
    k = torch.tensor([20, 20, 7])
    full, corr = probes.correction_rows(proc, LinearNet(), u, k, PIX)
    for n, (i, j) in enumerate(PIX.tolist()):
        a, s = float(proc.a[int(k[n])]), float(proc.sigma[int(k[n])])
        # The net sees u and outputs o = w * u; z = 2u - 1; x_hat_model = (z - s o) / a (eps) or a z - s o (v),
        # and x_hat_data = (x_hat_model + 1) / 2, so d x_hat_data / d u = (2 e - s w) / (2 a) or (2 a e - s w) / 2.
        ident = 1 / a if prediction == "eps" else a
        net_scale = -s / (2 * a) if prediction == "eps" else -s / 2
        np.testing.assert_allclose(corr[n, 0].numpy(), conv_row(i, j, net_scale), atol=1e-5)
        assert full[n, 0, i, j] == pytest.approx(ident + net_scale * float(KERNEL[1, 1]), rel=1e-4)
    assert proc.clip_denoised  # the probe clipped a copy, not the process


def test_trajectory_states_retrace_the_forward_process_with_the_exact_inverse():
    proc = HeatDissipation(H, K=6, sigma_max=3.0, delta=0.0)
    u0 = torch.rand(2, 1, H, W)
    run = SimpleNamespace(process=proc, net=exact_inverse_net(proc, u0))
    states, final = probes.trajectory_states(run, proc.blur(u0, 6), keep=[6, 3, 1], seed=0)
    assert sorted(states) == [1, 3, 6]
    for k, x in states.items():
        torch.testing.assert_close(x, proc.blur(u0, k), atol=1e-5, rtol=0)
    torch.testing.assert_close(final, u0, atol=1e-5, rtol=0)


def test_ideal_reverse_steps():
    dt = 0.01
    euler = probes.euler_row(H, W, (3, 4), dt)
    assert euler[3, 4] == pytest.approx(1 + 4 * dt) and euler[2, 4] == euler[4, 4] == euler[3, 3] == euler[3, 5] == -dt
    assert int((euler != 0).sum()) == 5
    exact = probes.exact_inverse_row(H, W, (3, 4), dt).double()
    # F(-dt) F(dt) = I: the row of F(-dt) against the forward 2-D heat matrix kron(A_H, A_W) is e_(3, 4).
    forward = torch.kron(heat_matrix(H, dt, dtype=torch.float64), heat_matrix(W, dt, dtype=torch.float64))
    unit = torch.zeros(H * W, dtype=torch.float64)
    unit[3 * W + 4] = 1
    torch.testing.assert_close(exact.flatten() @ forward, unit, atol=1e-5, rtol=0)
    # Sharpening: more than 1 at the pixel, negative at its four neighbours, like the Euler step.
    assert exact[3, 4] > 1 and all(float(exact[p]) < 0 for p in [(2, 4), (4, 4), (3, 3), (3, 5)])
    # A corner pixel keeps only its neighbours inside the image.
    assert int((probes.euler_row(H, W, (0, 0), dt) != 0).sum()) == 3


def _brute(g, c):
    """Distances of every pixel from c, written as loops."""
    return np.array([[math.hypot(y - c[0], x - c[1]) for x in range(g.shape[1])] for y in range(g.shape[0])])


def test_locality_measures_against_loops():
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(3, H, W, generator=gen, dtype=torch.float64)
    pix = torch.tensor([[3, 3], [0, 5], [6, 1]])
    share = probes.mass_share(g, pix)
    profile_d, profile = probes.radial_profile(g, pix)
    aniso = probes.anisotropy(g, pix)
    centre, ring = probes.centre_and_ring(g, pix)
    radii = probes.r_grid(H, W)
    for n in range(3):
        a, d = g[n].abs().numpy(), _brute(g[n], pix[n].tolist())
        for r_i, r in enumerate(radii.tolist()):
            assert float(share[n, r_i]) == pytest.approx(a[d <= r + 1e-12].sum() / a.sum(), rel=1e-9)
        for b in range(len(profile_d)):
            sel = np.round(d) == b
            if sel.any():
                assert float(profile[n, b]) == pytest.approx(a[sel].mean(), rel=1e-9)
            else:
                assert math.isnan(float(profile[n, b]))
        v = g[n].double().numpy()
        resid = sum(((v[d == q] - v[d == q].mean()) ** 2).sum() for q in np.unique(d) if q > 0)
        assert float(aniso[n]) == pytest.approx(resid / (v[d > 0] ** 2).sum(), rel=1e-9)
        assert float(centre[n]) == pytest.approx(v[tuple(pix[n].tolist())])
        assert float(ring[n]) == pytest.approx(v[np.isclose(d, 1)].mean())


def test_locality_closed_forms():
    pix = torch.tensor([[4, 4]])
    euler = probes.euler_row(H, W, (4, 4), 0.1)[None]
    stats = probes.locality_stats(euler, pix)
    # The Euler stencil: circularly symmetric, every bit of mass within radius 1.
    assert stats["anisotropy"] < 1e-12 and stats["r90"] == 1.0 and stats["mass share r <= 2"] == pytest.approx(1.0)
    assert stats["correction at pixel"] == pytest.approx(1.4) and stats["correction, 4 neighbours"] == pytest.approx(-0.1)
    # A single pixel holds all its mass at r = 0; a ring at distance 2 reaches 50% only at r = 2.
    delta = torch.zeros(1, H, W)
    delta[0, 4, 4] = 1
    assert float(probes.radius_at(probes.mass_share(delta, pix), 0.5)[0]) == 0.0
    ring2 = (probes.distances2(pix, H, W) == 4).float()
    assert float(probes.radius_at(probes.mass_share(ring2, pix), 0.5)[0]) == 2.0


# --- chapter 10: the reproduction-status tables ------------------------------------------------------

def _fake_run(tmp_path, name="mnist-smoke", step=30):
    import json as _json

    from ihdm_core.training.presets import get_preset

    cfg = get_preset(name)
    run_dir = tmp_path / name
    run_dir.mkdir()
    return SimpleNamespace(cfg=cfg, step=step, source="trained", run_dir=run_dir, provenance=f"{name} here"), _json


def test_score_rows_keep_only_the_current_checkpoint(tmp_path):
    from ihdm_core.book import status

    run, json = _fake_run(tmp_path)
    ident = run.cfg.identity()
    recs = [{"metric": "fid", "value": 12.5, "delta": 0.01, "n_samples": 100, "seed": 0, "reference": "train",
             "run": {"identity": ident, "step": 30}, "key": {"sampler": {"steps": 7}}, "time_s": {"total": 3.04}},
            {"metric": "fid", "value": 99.0, "run": {"identity": ident, "step": 29}},        # an earlier checkpoint
            {"metric": "fid", "value": 98.0, "run": {"identity": "0" * 12, "step": 30}},    # another config
            {"metric": "nll", "value": 1.5, "delta": None, "run": {"identity": ident, "step": 30}}]
    (run.run_dir / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    rows = status.score_rows({"ihdm": run})
    assert [(r["metric"], r["value"]) for r in rows] == [("fid", 12.5), ("nll", 1.5)]
    assert rows[0]["sampling steps"] == 7 and rows[0]["time (s)"] == 3.0 and rows[0]["config"].endswith(f"[{ident}]")
    assert rows[1]["sampling steps"] is None and math.isnan(rows[1]["time (s)"])


def test_training_rows_from_the_log(tmp_path):
    from ihdm_core.book import status
    from ihdm_core.training.log import METRICS

    run, json = _fake_run(tmp_path)
    log = [{"step": 10, "loss": 0.5, "losses": [0.5] * 10, "steps_per_s": 5.0},
           {"step": 20, "loss": 0.25, "losses": [0.3] * 10, "steps_per_s": 2.0},
           {"kind": "eval", "step": 20, "eval_loss": 0.4}]
    (run.run_dir / METRICS).write_text("".join(json.dumps(r) + "\n" for r in log))
    empty, _ = _fake_run(tmp_path, "mnist-ddpm-smoke-ct")
    rows = status.training_rows({"ihdm": run, "ddpm": empty})
    assert len(rows) == 1  # no log, no row
    # 10 steps at 5/s and 10 at 2/s: 7 s for 20 steps.
    assert rows[0]["steps"] == 20 and rows[0]["final loss"] == 0.25
    assert rows[0]["train time (s)"] == 7.0 and rows[0]["steps/s"] == round(20 / 7, 2)


def test_paper_rows_execution_rows_and_missing_files(tmp_path, monkeypatch):
    from ihdm_core.book import status
    from ihdm_core.training.presets import get_preset

    monkeypatch.setenv("IHDM_RUNS", str(tmp_path / "runs"))
    for profile, note in [("smoke", "not run in the smoke profile"), ("paper", "no checkpoint at")]:
        rows = status.paper_fid_rows(profile)
        assert [r["FID (paper)"] for r in rows] == [18.96, 14.78, 43.49, 64.91, 45.06]
        assert all(r["FID (ours)"] is None and r["note"].startswith(note) for r in rows)
        assert rows[0]["preset"] == f"cifar10 [{get_preset('cifar10').identity()}]"
    stats = {"chapters": [{"chapter": "a", "seconds": 1.25, "status": "ok"}, {"chapter": "b", "seconds": 2.5, "status": "ok"}]}
    assert status.execution_rows(stats)[-1]["seconds"] == 3.8  # 3.75 rounded half to even
    (tmp_path / "x.png").write_bytes(b"")
    (tmp_path / "index.json").write_text(json.dumps({"fig": {"files": ["x.png", "x.pdf"]}}))
    index, missing = status.missing_files(tmp_path)
    assert list(index) == ["fig"] and missing == ["x.pdf"]


# --- chapter 8: prior overlap and nearest neighbours ---------------------------------------------------

def test_mixture_kl_mc_matches_the_closed_form_for_one_centre():
    from ihdm_core.evaluation import overlap as ov

    s, d = 0.01, 0.0125
    mean, centre = torch.zeros(4, dtype=torch.float64), torch.tensor([[0.02, -0.01, 0.0, 0.005]], dtype=torch.float64)
    kl, se = ov.mixture_kl_mc(mean, centre, s, d, n=50_000, seed=1)
    closed = 2 * (s ** 2 / d ** 2 - 1 - math.log(s ** 2 / d ** 2)) + float((centre ** 2).sum()) / (2 * d ** 2)
    assert abs(kl - closed) < 5 * se + 1e-3
    assert ov.kl_floor(s, d, 4) == pytest.approx(2 * (s ** 2 / d ** 2 - 1 - math.log(s ** 2 / d ** 2)))
    # The A.3 bound is exact for one centre, so its check row agrees with the Monte Carlo KL.
    one = ov.bound_check_rows(s, d, n=50_000)[0]
    assert abs(one["bound - KL"]) < 5 * one["MC s.e."] + 1e-3


def test_prior_overlap_against_a_direct_computation():
    from ihdm_core.evaluation import overlap as ov
    from ihdm_core.model.heat import heat_forward
    from ihdm_core.training.presets import get_preset

    cfg = get_preset("mnist-smoke")
    n = cfg.data.image_size
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (12, 1, n, n), generator=gen, dtype=torch.uint8)
    queries = torch.randint(0, 256, (3, 1, n, n), generator=gen, dtype=torch.uint8)
    train_idx = torch.tensor([0, 5])
    s, d = cfg.process.sigma, cfg.process.delta
    for s_B, L_q, L_t in ov.prior_overlap(cfg, train, queries, train_idx, (1.0, 3.0), "cpu"):
        t = s_B ** 2 / 2
        c = heat_forward((train.double() + 0.5) / 256, t).flatten(1)
        q = heat_forward((queries.double() + 0.5) / 256, t).flatten(1)
        D = c.shape[1]

        def bound(x):  # log N_T - log sum_i exp(-KL_i), KL between isotropic Gaussians written out
            kl = 0.5 * D * (s ** 2 / d ** 2 - 1 - math.log(s ** 2 / d ** 2)) + torch.cdist(x, c) ** 2 / (2 * d ** 2)
            return math.log(len(c)) - torch.logsumexp(-kl, 1)

        torch.testing.assert_close(L_q.double(), bound(q), rtol=1e-4, atol=1e-2)
        torch.testing.assert_close(L_t.double(), bound(c[train_idx]), rtol=1e-4, atol=1e-2)


def test_nearest_training_against_a_sort():
    from ihdm_core.evaluation import overlap as ov

    gen = torch.Generator().manual_seed(0)
    train, x = torch.rand(20, 6, generator=gen), torch.rand(7, 1, 2, 3, generator=gen)
    exclude = torch.randint(0, 20, (7,), generator=gen)
    for excl in (None, exclude):
        dist, idx = ov.nearest_training(x, train, k=3, exclude=excl, chunk=3)
        for r in range(7):
            dd = [(float(np.linalg.norm(x[r].flatten().numpy() - train[j].numpy())), j) for j in range(20)
                  if excl is None or j != int(excl[r])]
            best = sorted(dd)[:3]
            assert idx[r].tolist() == [j for _, j in best]
            np.testing.assert_allclose(dist[r].numpy(), [v for v, _ in best], rtol=1e-5)


# --- chapter 9: tables and traces of the three processes ---------------------------------------------

def test_high_frequency_trace_against_scipy_dct():
    from scipy.fft import dctn

    from ihdm_core.evaluation.scores import high_frequency_trace

    proc = DDPM(H, 1, K=6, schedule="cosine")
    run = SimpleNamespace(process=proc, net=lambda x, k: torch.zeros_like(x))
    t, rms, sig = high_frequency_trace(run, 3, seed=4)
    assert rms.shape == (3, 6)
    torch.testing.assert_close(t, proc.times[1:].cpu())
    torch.testing.assert_close(sig, proc.sigma[1:].cpu())
    # The first state the sampler passes is the prior draw z_K itself: its RMS over DCT frequencies i + j >= H.
    z_K = proc.prior_sample(3, None, generator=torch.Generator().manual_seed(4)).double().numpy()
    high = np.add.outer(np.arange(H), np.arange(W)) >= H
    expected = [np.sqrt((dctn(z[0], norm="ortho")[high] ** 2).mean()) for z in z_K]
    np.testing.assert_allclose(rms[:, -1].numpy(), expected, rtol=1e-5)


def test_min_step_ratio_and_rows():
    from ihdm_core.evaluation.scores import min_step_ratio, option_rows, sweep_rows

    run = SimpleNamespace(sampled_with=lambda steps, **o: SimpleNamespace(process=DDPM(H, 1, K=steps, schedule="cosine")))
    a = DDPM(H, 1, K=12, schedule="cosine").a.double()
    assert min_step_ratio(run, 12) == pytest.approx(float((a[1:] / a[:-1]).min()), rel=1e-6)
    r = SimpleNamespace(cfg=SimpleNamespace(name="m"), step=30)
    recs = [{"run": r, "steps": 5, "samples": 8, "recognisability": {"value": 0.25}, "fid": {"value": 300.0},
             "explosions": {"value": 2}}]
    row = sweep_rows("DDPM", recs, 1.26)[0]
    assert (row["process"], row["training steps"], row["train time (min)"], row["network evals / sample"]) == ("DDPM", 30, 1.3, 5)
    assert (row["recognisability"], row["FID"], row["exploded chains"]) == (0.25, 300.0, "2 of 8")
    assert option_rows("edge grid", recs) == [{"model": "m", "option": "edge grid", "steps": 5, "samples": 8,
                                               "recognisability": 0.25, "exploded chains": 2}]


# --- chapter 6: choosing the priors and tabulating the grid ------------------------------------------

def test_images_at_and_spread_colours():
    from ihdm_core.evaluation import disentangle as dis

    gen = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (9, 3, 4, 4), generator=gen, dtype=torch.uint8)
    idx = torch.tensor([4, 0, 7])
    x = dis.images_at(u8, idx)
    torch.testing.assert_close(x, u8[idx].float() / 255)
    torch.testing.assert_close(dis.images_at([u8[i] for i in range(9)], idx), x)
    # Farthest-point sampling written out: start nearest the average colour, then repeatedly the
    # image whose mean colour is farthest from every chosen one.
    x = dis.images_at(u8, torch.arange(9)).double()
    means = [x[i].mean(dim=(1, 2)).numpy() for i in range(9)]
    avg = np.mean(means, axis=0)
    chosen = [int(np.argmin([np.linalg.norm(m - avg) for m in means]))]
    while len(chosen) < 4:
        chosen.append(int(np.argmax([min(np.linalg.norm(m - means[c]) for c in chosen) for m in means])))
    assert dis.spread_colours(x, 4) == chosen
    with pytest.raises(ValueError, match="n=10"):
        dis.spread_colours(x, 10)


def test_score_tables_layout():
    from ihdm_core.evaluation import disentangle as dis

    kinds = {"same noise": (0.9, 6), "same prior": (0.2, 4), "neither": (0.1, 20)}
    measures = ["shape correlation", "mask IoU", "mean-colour distance", "foreground-colour distance",
                "background-colour distance"]
    scores = {m: {k: (v + i, n) for k, (v, n) in kinds.items()} for i, m in enumerate(measures)}
    scores["colour error"] = {"own prior": (0.05, 12), "other priors": (0.4, 24)}
    rows, err = dis.score_tables(scores)
    assert [r["measure"] for r in rows] == measures
    assert rows[1] == {"measure": "mask IoU", "same noise, different u_K (n = 6 pairs)": 1.9,
                       "same u_K, different noise (n = 4 pairs)": 1.2, "different both (n = 20 pairs)": 1.1}
    assert [(r["mean"], r["n (sample, prior) pairs"]) for r in err] == [(0.05, 12), (0.4, 24)]


def test_sign_figure_draws_one_panel_per_model():
    """The Fig. 13b panel only runs where a sigma = 0 model is trained, so the smoke book never draws it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ihdm_core.book import plots
    from ihdm_core.book.figures import markdown_table

    rows = {"sigma = 0.01": torch.randn(H, W), "sigma = 0": torch.randn(H, W)}
    fig = plots.gradient_sign_figure(torch.rand(1, H, W), torch.tensor([3, 4]), rows)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["state", "sigma = 0.01", "sigma = 0"] and len(fig.axes) == 4  # + the colour bar
    plt.close(fig)
    assert markdown_table([{"a": 1.23456, "b": "x"}], ".2f") == "| a | b |\n|---|---|\n| 1.23 | x |"
