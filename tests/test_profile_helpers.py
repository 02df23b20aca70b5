"""The profile's chapter helpers: seeded streams and save calls that carry profile and caption."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ihdm_core.book.figures import read_index  # noqa: E402
from ihdm_core.book.profiles import get_profile  # noqa: E402


def test_generator_is_seed_plus_offset():
    P = get_profile("smoke")
    for offset in (0, 3):
        want = torch.randn(5, generator=torch.Generator().manual_seed(P.seed + offset))
        assert torch.equal(torch.randn(5, generator=P.generator(offset)), want)
    assert P.generator(1, "cpu").device.type == "cpu"


def test_save_calls_carry_the_profile_and_its_caption(tmp_path, monkeypatch):
    monkeypatch.setenv("IHDM_FIGURES", str(tmp_path))
    P = get_profile("smoke")
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    P.savefig(fig, "t_fig", "A line.", seed=7, n=2)
    plt.close(fig)
    md = P.save_table([{"a": 1, "b": 2.5}], "t_tab", "A table.")
    index = read_index(tmp_path)
    for name, caption in (("t_fig", "A line."), ("t_tab", "A table.")):
        assert index[name]["caption"] == f"{caption} {P.caption}"
        assert index[name]["provenance"]["profile"] == "smoke"
    assert index["t_fig"]["provenance"]["seed"] == 7 and P.caption in md
