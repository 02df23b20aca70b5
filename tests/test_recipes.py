"""The recipe search and the learning curves (issue: samples a reader believes, from CPU alone)."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from ihdm_core.evaluation import curves
from ihdm_core.training.presets import get_preset
from ihdm_core.training.recipes import ARMS, arm_config, budget_steps, cached_throughput, compute_key
from ihdm_core.training.train import train

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("run_root")


def test_arms_cover_the_issue_dimensions_and_differ():
    questions = {a.question for a in ARMS}
    for q in ("K = 50 vs 100", "learning rate", "batch size", "dropout", "sigma", "EMA decay",
              "network width", "network depth"):
        assert q in questions
    cfgs = [arm_config("mnist-ref", a, 1000) for a in ARMS]
    assert len({c.identity() for c in cfgs}) == len(ARMS)  # no arm repeats another
    for arm, cfg in zip(ARMS, cfgs):
        assert cfg.train.steps == 1000 and cfg.train.ema_warmup == "release"
        for section, changes in arm.changes.items():
            for key, value in changes.items():
                assert getattr(getattr(cfg, section), key) == value


def test_arms_share_a_speed_exactly_when_their_steps_cost_the_same(tmp_path, monkeypatch):
    """Only the network, the batch, the image shape and how a step runs set its cost: arms that
    change the learning rate, EMA, sigma or K get the base arm's measured speed (one probe, so one
    budget in steps), and every other arm is probed on its own."""
    key = {a.name: compute_key(arm_config("mnist-ref", a, 1), 1) for a in ARMS}
    same = {"base", "K100", "lr5e-4", "lr2e-3", "sigma0.005", "sigma0.02", "ema0.99", "ema0.9999",
            "seed1", "seed2"}
    assert {key[a] for a in same} == {key["base"]}
    assert len({key[a.name] for a in ARMS if a.name not in same}) == len(ARMS) - len(same)
    assert key["base"] not in {key[a.name] for a in ARMS if a.name not in same}
    assert compute_key(get_preset("mnist-ref"), 2) != key["base"]  # threads change the speed
    assert compute_key(get_preset("mnist-long"), 1) == key["dropout0.1"]  # mnist-ref + dropout
    probed = []
    monkeypatch.setattr("ihdm_core.training.recipes.measure_throughput",
                        lambda cfg, **kw: probed.append(cfg.name) or 2.5)
    cache = tmp_path / "speeds.json"
    speeds = [cached_throughput(arm_config("mnist-ref", a, 1), cache) for a in ARMS]
    assert speeds == [2.5] * len(ARMS)
    assert len(probed) == len(ARMS) - len(same) + 1 and probed[0].endswith("-search-base")


def test_budget_counts_cpu_seconds_not_steps():
    assert budget_steps(600, 2.0) == 1200
    assert budget_steps(600, 0.5) == 300  # a slower arm gets fewer steps for the same budget
    with pytest.raises(ValueError, match="positive"):
        budget_steps(0, 2.0)


def test_binomial_se_and_extrapolation_against_written_out_values():
    assert curves.binomial_se(0.34, 500) == pytest.approx(math.sqrt(0.34 * 0.66 / 500))
    # An exact log-linear trend: 0.1 per decade from 0.3 at 1e5 images -> 0.8 at 1e10.
    images = [1e5, 1e6, 1e7]
    quality = [0.3, 0.4, 0.5]
    fit = curves.extrapolate(images, quality, 0.8)
    assert fit["slope_per_decade"] == pytest.approx(0.1)
    assert fit["images_at_target"] == pytest.approx(1e10)
    assert curves.extrapolate(images, [0.5, 0.4, 0.3], 0.8)["images_at_target"] is None
    with pytest.raises(ValueError):
        curves.extrapolate([1e5], [0.3], 0.8)


@pytest.mark.slow
def test_learning_curve_scores_every_snapshot(tmp_path):
    cfg = get_preset("mnist-smoke", train={"steps": 6, "snapshot_every": 3, "keep_snapshots": 10,
                                           "eval_every": 3, "eval_n": 16, "ckpt_every": 1})
    run_dir = train(cfg, run_dir=tmp_path / "run", progress=False).run_dir
    # The fallback copies of earlier checkpoints (every ckpt_every) are not snapshots.
    assert curves.snapshot_steps(run_dir) == [3, 6]
    rows = curves.learning_curve(run_dir, n_recog=8, n_fid=8, ref_n=32, steps_per_cpu_second=2.0)
    assert [r["step"] for r in rows] == [3, 6]
    for r in rows:
        assert set(r) == set(curves.CURVE_COLUMNS)
        assert r["images_seen"] == r["step"] * cfg.train.batch_size
        assert r["cpu_seconds"] == pytest.approx(r["step"] / 2.0)
        assert r["n_recognisability"] == 8 and r["n_fid"] == 8
        assert r["eval_loss"] is not None and r["delta"] == cfg.process.delta
    # The two snapshots are different weights, so their samples score differently.
    assert rows[0]["fid"] != rows[1]["fid"]
    with pytest.raises(FileNotFoundError, match="no snapshot at step 4"):
        curves.snapshot_run(run_dir, 4)


@pytest.mark.slow
def test_recipe_search_runs_at_smoke_size(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    import recipe_search

    out = tmp_path / "search.md"
    assert recipe_search.main(["--smoke", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [r["arm"] for r in rows] == ["base", "K100", "lr2e-3"]
    for r in rows:
        assert set(r) == set(recipe_search.COLUMNS) and r["n"] == 16
        assert r["se"] == pytest.approx(math.sqrt(r["recognisability"] * (1 - r["recognisability"]) / 16))
        assert r["steps"] == max(1, round(r["budget_cpu_s"] * r["steps_per_cpu_s"]))
    table = out.read_text()
    assert "| arm | question | steps |" in table and table.count("\n| ") >= 4
    assert np.isfinite([r["fid"] for r in rows]).all()


@pytest.mark.slow
def test_learning_curve_script_runs_at_smoke_size(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import learning_curve

    out = tmp_path / "curve.json"
    assert learning_curve.main(["--smoke", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["step"] for r in data["rows"]] == [3, 6]
    assert data["steps_per_cpu_second"] > 0
    for r in data["rows"]:
        assert set(r) == set(curves.CURVE_COLUMNS) and r["n_recognisability"] == r["n_fid"] == 8
        assert r["cpu_seconds"] == pytest.approx(r["step"] / data["steps_per_cpu_second"])


def test_learning_curve_every_keeps_multiples_and_the_final_snapshot():
    sys.path.insert(0, str(ROOT / "scripts"))
    import learning_curve

    steps = [2000, 4000, 6000, 8000, 10000, 11000]
    assert learning_curve._chosen(steps, 0, 11000) == steps
    assert learning_curve._chosen(steps, 4000, 11000) == [4000, 8000, 11000]
    assert learning_curve._chosen(steps, 4000, 32000) == [4000, 8000]


def test_learning_curve_watch_scores_snapshots_saved_during_a_pass():
    sys.path.insert(0, str(ROOT / "scripts"))
    import learning_curve

    # A pass scored [2000]; 4000 and 6000 were saved while it ran: both are still to score.
    assert learning_curve._unscored([2000, 4000, 6000], [2000], 2000, 32000) == [4000, 6000]
    assert learning_curve._unscored([2000, 4000, 6000], [2000], 4000, 32000) == [4000]
    assert learning_curve._unscored([2000, 4000], [2000, 4000], 0, 32000) == []


def test_learning_curve_rescoring_keeps_earlier_points(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import learning_curve

    out = tmp_path / "c.json"
    out.write_text(json.dumps({"run": "r", "rows": [{"step": 2, "v": 1}, {"step": 4, "v": 2}]}))
    merged = learning_curve._merged(out, "r", [{"step": 4, "v": 3}, {"step": 8, "v": 4}])
    assert merged == [{"step": 2, "v": 1}, {"step": 4, "v": 3}, {"step": 8, "v": 4}]
    assert learning_curve._merged(out, "other", [{"step": 8, "v": 4}]) == [{"step": 8, "v": 4}]


def test_compute_at_and_curve_table_against_written_out_values():
    from ihdm_core.book.learning import compute_at, curve_table

    fit = curves.extrapolate([1e4, 1e5], [0.2, 0.4], 0.8)
    # 0.2 per decade from 0.4 at 1e5: 0.8 two decades later.
    assert fit["images_at_target"] == pytest.approx(1e7)
    need = compute_at(fit, batch=32, steps_per_cpu_second=2.5)
    assert need["steps"] == pytest.approx(1e7 / 32)
    assert need["cpu_hours"] == pytest.approx(1e7 / 32 / 2.5 / 3600)
    flat = curves.extrapolate([1e4, 1e5], [0.4, 0.3], 0.8)
    assert compute_at(flat, batch=32, steps_per_cpu_second=2.5) == {
        "images": None, "steps": None, "cpu_hours": None}
    row = dict.fromkeys(curves.CURVE_COLUMNS)
    row.update(step=2000, images_seen=64000, cpu_seconds=7200.0, recognisability=0.25,
               recognisability_se=curves.binomial_se(0.25, 500), fid=40.04, min_class_share=0.031,
               eval_loss=0.0066)
    (line,) = curve_table([row])
    assert line["CPU hours"] == 2.0 and line["FID"] == 40.0 and line["rarest class"] == "3.1%"
    assert line["recognisability"] == f"0.250 ± {math.sqrt(0.25 * 0.75 / 500):.3f}"


def test_equal_images_table_reads_every_curve_at_the_first_curves_points():
    from ihdm_core.book.learning import equal_images_table

    def row(images, p, fid, cpu_s, rarest=0.05):
        return {"images_seen": images, "recognisability": p, "fid": fid, "cpu_seconds": cpu_s,
                "recognisability_se": curves.binomial_se(p, 500), "min_class_share": rarest}

    a = [row(64000, 0.25, 50.0, 3600.0), row(128000, 0.35, 40.0, 7200.0),
         row(192000, 0.4, 35.0, 10800.0)]
    b = [row(128000, 0.55, 30.04, 7200.0, 0.0712), row(256000, 0.6, 25.0, 14400.0)]
    c = [row(128000, 0.45, 33.0, 7200.0), row(192000, 0.5, 31.0, 10800.0)]
    # 64,000: only A; 256,000: not A; 128,000: all three; 192,000: A and C.
    first, second = equal_images_table({"A": a, "B": b, "C": c})
    assert (first["images seen"], second["images seen"]) == (128000, 192000)
    assert (first["A: FID"], first["B: FID"], first["C: FID"]) == (40.0, 30.0, 33.0)
    assert first["CPU hours"] == 2.0 and second["CPU hours"] == 3.0
    assert first["B: recognisability"] == f"0.550 ± {math.sqrt(0.55 * 0.45 / 500):.3f}"
    assert first["B: rarest class"] == "7.1%"
    assert second["B: recognisability"] is None and second["B: FID"] is None
    assert second["B: rarest class"] is None and second["C: FID"] == 31.0
    assert equal_images_table({"A": a, "B": [row(1, 0.1, 1.0, 1.0)]}) == []


def test_the_committed_long_curve_is_complete_and_consistent():
    """The curve chapter 3 plots: every row has the stated columns, n >= 200 and 500, a fixed seed
    and delta, images = steps x batch, and it rises overall."""
    cfg = get_preset("mnist-long")
    data = curves.committed_curve(cfg.run_name())
    assert data is not None and data["run"] == cfg.run_name()
    rows = data["rows"]
    assert len(rows) >= 4 and [r["step"] for r in rows] == sorted({r["step"] for r in rows})
    for r in rows:
        assert set(curves.CURVE_COLUMNS) <= set(r)
        assert r["images_seen"] == r["step"] * cfg.train.batch_size
        assert r["n_recognisability"] >= 200 and r["n_fid"] >= 500
        assert (r["seed"], r["delta"]) == (0, cfg.process.delta)
    assert rows[-1]["recognisability"] > rows[0]["recognisability"] + 3 * rows[-1]["recognisability_se"]


@pytest.mark.parametrize("baseline", ["mnist-ddpm-long", "mnist-blurring-long"])
def test_the_committed_baseline_curves_compare_with_the_ihdm_curve(baseline):
    """Chapter 3's DDPM and Blurring Diffusion curves are scored like IHDM's (n, seed, FID
    reference, CPU seconds at one speed: the presets' steps cost the same) at images seen that the
    IHDM curve also has."""
    from ihdm_core.training.recipes import compute_key

    ihdm, other = get_preset("mnist-long"), get_preset(baseline)
    assert compute_key(ihdm, 1) == compute_key(other, 1)
    a = curves.committed_curve(ihdm.run_name())
    b = curves.committed_curve(other.run_name())
    assert b is not None and b["run"] == other.run_name() and len(b["rows"]) >= 3
    assert b["steps_per_cpu_second"] == a["steps_per_cpu_second"]
    ihdm_images = {r["images_seen"] for r in a["rows"]}
    keys = ("n_recognisability", "n_fid", "fid_reference_n", "seed")
    for r in b["rows"]:
        assert r["images_seen"] == r["step"] * other.train.batch_size and r["images_seen"] in ihdm_images
        assert r["cpu_seconds"] == pytest.approx(r["step"] / b["steps_per_cpu_second"])
        assert [r[k] for k in keys] == [a["rows"][0][k] for k in keys]


def test_recipe_table_ranks_arms_and_measures_them_against_base_in_se(tmp_path):
    from ihdm_core.book.learning import load_recipe_search, recipe_table

    def arm(name, p, n=500):
        return {"arm": name, "question": "q", "steps": 100, "batch": 32, "images_seen": 3200,
                "recognisability": p, "se": curves.binomial_se(p, n), "min_class_share": 0.05,
                "n": n, "seed": 0}

    rows = recipe_table([arm("base", 0.30), arm("a", 0.40), arm("b", 0.29)])
    assert [r["arm"] for r in rows] == ["a", "base", "b"]
    se = math.sqrt(0.3 * 0.7 / 500 + 0.4 * 0.6 / 500)
    assert rows[0]["vs base (SE)"] == round(0.1 / se, 1) and rows[1]["vs base (SE)"] is None
    assert load_recipe_search(tmp_path / "none.json") is None
    (tmp_path / "s.json").write_text(json.dumps({"base": "b", "rows": []}))
    assert load_recipe_search(tmp_path / "s.json") == {"base": "b", "rows": []}


def test_summarise_curve_states_the_extrapolated_cost():
    from ihdm_core.book.learning import summarise_curve

    rows = [{"config": "mnist-long", "images_seen": x, "recognisability": p}
            for x, p in ((1e4, 0.2), (1e5, 0.4))]
    fits, lines = summarise_curve({"rows": rows, "steps_per_cpu_second": 2.5}, targets=(0.8,),
                                  gpu=get_preset("mnist-gpu"))
    assert fits[0.8]["images_at_target"] == pytest.approx(1e7)
    hours = 1e7 / 32 / 2.5 / 3600
    assert lines[0] == (f"recognisability 0.8: {1e7:.2g} images if the trend held (100.0x the last "
                        f"point; {hours:.1f} CPU hours)")
    assert "30,000 steps x batch 128" in lines[1] and "base 64 channels" in lines[1]
