"""Chapter 9's typed records: rows with the table's labels, and the summary sentences."""

from types import SimpleNamespace

import pytest

from ihdm_core.book.comparison import OptionScore, StepScore, findings


def _rec(steps, rec, fid=None, expl=0, samples=16, name="cfg", step=100):
    run = SimpleNamespace(cfg=SimpleNamespace(name=name), step=step)
    out = {"run": run, "steps": steps, "samples": samples, "recognisability": {"value": rec},
           "explosions": {"value": expl}}
    if fid is not None:
        out["fid"] = {"value": fid}
    return out


def test_rows_carry_the_table_labels():
    s = StepScore.from_record("DDPM", _rec(10, 0.5, fid=30.0, expl=2), 12.345)
    assert s.row() == {"process": "DDPM", "config": "cfg", "training steps": 100, "train time (min)": 12.3,
                       "network evals / sample": 10, "samples": 16, "recognisability": 0.5, "FID": 30.0,
                       "exploded chains": "2 of 16"}
    o = OptionScore.from_record("edge grid", _rec(5, 0.25, expl=3))
    assert o.row() == {"model": "cfg", "option": "edge grid", "steps": 5, "samples": 16,
                       "recognisability": 0.25, "exploded chains": 3}


def test_findings_compare_at_shared_steps():
    scores = [StepScore.from_record("Blurring Diffusion", _rec(5, 0.1, 90.0, 4), 1),
              StepScore.from_record("Blurring Diffusion", _rec(10, 0.3, 50.0, 1), 1),
              StepScore.from_record("DDPM", _rec(10, 0.6, 20.0, 0), 1),
              StepScore.from_record("IHDM", _rec(20, 0.7, 15.0, 0), 1)]
    opts = [OptionScore.from_record("v-prediction", _rec(5, 0.4, expl=0, name="abl")),
            OptionScore.from_record("edge grid", _rec(5, 0.2))]
    text = findings(scores, {5: 0.01, 10: 0.2}, opts)
    assert text.split("\n") == [
        "- At 5 steps Blurring Diffusion reaches recognisability 0.10 with 4 of 16 chains exploded; "
        "DDPM at its smallest T reaches 0.60.",
        "- At 10 steps: Blurring Diffusion 0.30 (FID 50.0, 1 of 16 exploded) against DDPM 0.60 "
        "(FID 20.0, 0 of 16 exploded).",
        "- The smallest step ratio of Blurring Diffusion is 0.010 at 5 steps and 0.200 at 10.",
        "- v-prediction (abl) at 5 steps: recognisability 0.40, 0 of 16 chains exploded."]
    with pytest.raises(ValueError, match="both Blurring Diffusion and DDPM"):
        findings(scores[3:], {5: 0.1}, [])
