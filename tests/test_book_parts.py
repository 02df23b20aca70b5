"""The pieces the book stands on: profiles, figure files and index, the shared score cache."""

import functools
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ihdm_core.evaluation import scores as evaluate  # noqa: E402
from ihdm_core.training.presets import get_preset  # noqa: E402
from ihdm_core.book.figures import image_grid, read_index, save_table, savefig  # noqa: E402
from ihdm_core.book.profiles import PROFILES, get_profile  # noqa: E402


def test_profiles_build_their_models():
    for prof in PROFILES.values():
        kinds = {role: prof.config(role).process.kind for role in ("ihdm", "ddpm", "blurring")}
        assert kinds == {"ihdm": "ihdm", "ddpm": "ddpm", "blurring": "blurring"}
        base = prof.config("ihdm")
        # Equal budget: the baselines differ from the IHDM model in the process only.
        for role in ("ddpm", "blurring"):
            other = prof.config(role)
            assert (other.model, other.train, other.data) == (base.model, base.train, base.data)
        s0 = prof.config("sigma0")
        assert s0.process.sigma == 0 and s0.identity() != base.identity() and s0.name.endswith("sigma0")
        assert all(d >= 0 for d in prof.deltas) and base.process.delta in prof.deltas
    assert get_profile("paper").config("colour").process.sigma_max == get_preset("ffhq128").process.sigma_max
    # The long role: the IHDM model trained longest, same process and data as the main one, and
    # the main model itself where a profile has none.
    quick, smoke = get_profile("quick"), get_profile("smoke")
    long_ = quick.config("long")
    assert long_.name == "mnist-long" and long_.identity() != quick.config("ihdm").identity()
    assert (long_.process, long_.data) == (quick.config("ihdm").process, quick.config("ihdm").data)
    assert long_.train.steps * long_.train.batch_size >= 8 * quick.config("ihdm").train.steps * 32
    assert smoke.config("long").identity() == smoke.config("ihdm").identity()
    # The colour_long role: the colour model trained longest, at the paper's sigma_B,max = image
    # size (Sec. 4), on the colour model's data; the colour model itself where a profile has none.
    colour, colour_long = quick.config("colour"), quick.config("colour_long")
    assert colour_long.data == colour.data and colour_long.identity() != colour.identity()
    assert colour_long.process.sigma_max == colour_long.data.image_size
    assert (colour_long.train.steps * colour_long.train.batch_size
            >= 8 * colour.train.steps * colour.train.batch_size)
    assert smoke.config("colour_long").identity() == smoke.config("colour").identity()
    with pytest.raises(KeyError, match="unknown profile"):
        get_profile("huge")
    with pytest.raises(ValueError, match="unknown model role"):
        get_profile("smoke").config("gan")


def test_savefig_writes_png_pdf_and_indexes_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("IHDM_FIGURES", str(tmp_path))
    cfg = get_preset("mnist-smoke")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    entry = savefig(fig, "fig99_test", caption="a line", profile="smoke", runs=[cfg], seed=3, n=7, chapter="99_x")
    plt.close(fig)
    assert (tmp_path / "fig99_test.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "fig99_test.pdf").read_bytes()[:4] == b"%PDF"
    index = read_index(tmp_path)
    assert index["fig99_test"] == entry
    assert entry["provenance"] == {"profile": "smoke", "runs": [{"config": "mnist-smoke", "identity": cfg.identity()}],
                                   "seed": 3, "n": 7}
    md = save_table([{"a": 1, "b": 0.123456}], "tab99_test", caption="tiny", profile="smoke", seed=1)
    assert "| a | b |" in md and "0.1235" in md and (tmp_path / "tab99_test.csv").read_text().startswith("a,b")
    assert set(read_index(tmp_path)) == {"fig99_test", "tab99_test"}
    with pytest.raises(ValueError, match="stable file stems"):
        savefig(plt.figure(), "../escape", caption="", profile="smoke")
    with pytest.raises(ValueError, match="no rows"):
        save_table([], "tab98", caption="", profile="smoke")


def test_image_grid_shapes():
    assert image_grid(torch.rand(6, 1, 5, 5), nrow=3, padding=1).shape == (13, 19)
    assert image_grid(torch.rand(4, 3, 5, 5), nrow=2, padding=0).shape == (10, 10, 3)


@pytest.mark.slow
def test_score_is_recorded_once_and_reused(smoke_run, monkeypatch):
    calls = []
    real = evaluate.evaluate_recognisability

    @functools.wraps(real)
    def counting(run, **kw):
        calls.append(kw)
        return real(run, **kw)

    # score() dispatches through its explicit table of evaluators: count calls there.
    table = dict(evaluate._EVALUATORS)
    table["recognisability"] = (counting, table["recognisability"][1])
    monkeypatch.setattr(evaluate, "_EVALUATORS", table)
    first = evaluate.score(smoke_run, "recognisability", n=6, seed=1, progress=False)
    again = evaluate.score(smoke_run, "recognisability", n=6, seed=1, progress=False)
    assert len(calls) == 1 and again == first
    # Passing the run's own delta explicitly is the same measurement; another delta is not.
    evaluate.score(smoke_run, "recognisability", n=6, seed=1, delta=smoke_run.process.delta, progress=False)
    assert len(calls) == 1
    other = evaluate.score(smoke_run, "recognisability", n=6, seed=1, delta=0.0, progress=False)
    assert len(calls) == 2 and other["delta"] == 0.0
    lines = (smoke_run.run_dir / "scores.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"]["delta"] for line in lines] == [smoke_run.process.delta, 0.0]
    with pytest.raises(TypeError, match="takes no"):
        evaluate.score(smoke_run, "recognisability", n=6, bogus=1)
    with pytest.raises(ValueError, match="metric must be"):
        evaluate.score(smoke_run, "is", n=6)


@pytest.mark.slow
def test_draw_samples_is_the_sample_stream_and_memoised(smoke_run):
    x = evaluate.draw_samples(smoke_run, 5, seed=4, batch_size=2)
    assert evaluate.draw_samples(smoke_run, 5, seed=4, batch_size=2) is x
    stream = torch.cat(list(evaluate.sample_stream(smoke_run, 5, seed=4, batch_size=2)))
    torch.testing.assert_close(x, stream)
    assert not torch.equal(evaluate.draw_samples(smoke_run, 5, seed=5, batch_size=2), x)
    # The scored set is generate's set of the same seed, whatever the batch size.
    from ihdm_core.training.generate import generate

    torch.testing.assert_close(generate(smoke_run, 5, seed=4, batch_size=5), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(evaluate.draw_samples(smoke_run, 5, seed=4, batch_size=3), x, atol=1e-5, rtol=0)
