"""What records say about a run: paths relative to the checkout (a record reads the same on every
machine), where the run was trained (shipped, or trained into runs/ on recorded hardware), and
which arguments name a score (the evaluator table of ihdm_core.evaluation.scores)."""

import inspect
import json
import shutil
from pathlib import Path

import pytest

from ihdm_core.evaluation import scores
from ihdm_core.training.hardware import describe, hardware_record
from ihdm_core.training.paths import relative_path
from ihdm_core.training.presets import get_preset
from ihdm_core.training.runs import HARDWARE, load_run
from ihdm_core.training.train import train

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_score_records_hold_no_absolute_path():
    records = [json.loads(line) for path in sorted((ROOT / "models").glob("*/scores.jsonl"))
               for line in path.read_text().splitlines() if line.strip()]
    assert records
    for rec in records:
        for key in ("run_dir", "checkpoint"):
            value = rec["run"].get(key)
            assert value is None or not Path(value).is_absolute(), (key, value)
        assert rec["run"]["run_dir"].startswith("runs/shipped/")


def test_relative_path_names_runs_and_the_checkout(run_root, tmp_path):
    assert relative_path(run_root / "a-123" / "checkpoint.pt") == "runs/a-123/checkpoint.pt"
    assert relative_path(ROOT / "models" / "x") == "models/x"
    assert relative_path(tmp_path / "elsewhere") == str((tmp_path / "elsewhere").resolve())


def test_a_run_says_where_it_was_trained(run_root, tmp_path):
    cfg = get_preset("mnist-smoke", train={"steps": 2}, model={"base_channels": 8})
    run_dir = train(cfg, progress=False).run_dir
    recorded = [json.loads(line) for line in (run_dir / HARDWARE).read_text().splitlines()]
    assert [r["from_step"] for r in recorded] == [0] and recorded[0]["cpus"] is not None
    run = load_run(run_dir)
    here = describe(hardware_record())
    assert run.provenance == f"mnist-smoke trained into runs/{run_dir.name} (2 steps on {here})"
    assert scores.run_identity(run)["run_dir"] == f"runs/{run_dir.name}"
    assert scores.run_identity(run)["checkpoint"] == f"runs/{run_dir.name}/checkpoint.pt"
    # A folder copied from a machine that left no record does not claim this machine's hardware.
    copy = tmp_path / "copied"
    shutil.copytree(run_dir, copy)
    (copy / HARDWARE).unlink()
    assert load_run(copy).provenance.endswith("(2 steps on hardware not recorded)")


def test_a_shipped_run_says_it_is_shipped():
    pytest.importorskip("safetensors")
    run = load_run(get_preset("mnist-ref"))
    card = json.loads((ROOT / "models" / get_preset("mnist-ref").run_name() / "card.json")
                      .read_text())
    assert run.source == "shipped"
    assert run.provenance == f"shipped reference model mnist-ref (4,000 steps on {card['hardware']})"


@pytest.mark.parametrize("metric", sorted(scores._EVALUATORS))
def test_the_evaluator_table_names_each_evaluators_arguments_and_defaults(metric):
    """The table is written out; the evaluators' signatures are the independent reference."""
    fn, defaults = scores._EVALUATORS[metric]
    params = inspect.signature(fn).parameters
    want = {name: p.default for name, p in params.items()
            if p.default is not inspect.Parameter.empty and name not in ("progress", "device")}
    assert defaults == want and fn.__name__ == f"evaluate_{metric}"


def test_score_refuses_an_argument_its_evaluator_does_not_take(run_root):
    class FakeRun:  # score() checks its arguments before it touches the run
        process = type("P", (), {"data_prior": True})()

    with pytest.raises(TypeError, match="evaluate_fid takes no \\['threshold'\\]"):
        scores.score(FakeRun(), "fid", threshold=0.5)
