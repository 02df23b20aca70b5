"""The EMA warm-up (the 2023 release's, from score_sde): decay_n = min(decay, (1 + n) / (10 + n)).

Checked against the formula written out here, against the share of the initial weights that the
trainer's EMA really keeps after N steps, and for what it does to run identities."""

import math

import pytest
import torch

from ihdm_core.training.checks import ConfigError
from ihdm_core.training.config import TrainConfig, from_dict
from ihdm_core.training.presets import get_preset
from ihdm_core.training.step import ema_update, ema_decay


@pytest.mark.parametrize("decay", [0.9, 0.999, 0.9999])
def test_decay_is_the_release_formula(decay):
    for n in [1, 2, 5, 10, 100, 989, 8991, 10_000, 1_000_000]:
        written_out = (1 + n) / (10 + n)
        if written_out > decay:
            written_out = decay
        assert ema_decay(decay, n, "release") == pytest.approx(written_out, rel=0, abs=1e-15)
        assert ema_decay(decay, n, "none") == decay


def test_first_update_follows_the_network():
    # n = 1: decay 2/11, so the EMA moves 9/11 of the way to the trained weights at once.
    assert ema_decay(0.999, 1) == pytest.approx(2 / 11)


def test_bad_update_number_and_name():
    with pytest.raises(ValueError, match="n=0"):
        ema_decay(0.999, 0)
    with pytest.raises(ValueError, match="unknown EMA warm-up"):
        ema_decay(0.999, 3, "power")
    with pytest.raises(ConfigError, match="ema_warmup"):
        TrainConfig(ema_warmup="power")


def _leftover_share(decay: float, steps: int, warmup: str) -> float:
    """Run the trainer's EMA update on a one-parameter 'network' that jumps from 1 (its initial
    weight) to 0 at the first step and stays there: the EMA's value is then exactly the share of
    the initial weight it still holds."""
    net = torch.nn.Linear(1, 1, bias=False).double()
    ema = torch.nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        ema.weight.fill_(1.0)
        net.weight.fill_(0.0)
    for n in range(1, steps + 1):
        ema_update(ema, net, ema_decay(decay, n, warmup))
    return ema.weight.item()


@pytest.mark.parametrize("steps", [1, 10, 1000, 4000])
def test_leftover_share_of_initial_weights(steps):
    decay = 0.999
    # Without warm-up: decay^N (37 % after 1,000 steps at 0.999, the defect this fixes).
    assert _leftover_share(decay, steps, "none") == pytest.approx(decay**steps, rel=1e-9)
    # With it: the product of the warm-up decays, which for N below 8,991 (where (1+n)/(10+n)
    # reaches 0.999) telescopes to 10! (N+1)! / (N+10)!.
    closed_form = math.factorial(10) * math.factorial(steps + 1) / math.factorial(steps + 10)
    assert _leftover_share(decay, steps, "release") == pytest.approx(closed_form, rel=1e-9)
    if steps >= 1000:
        assert _leftover_share(decay, steps, "release") < 1e-20
        assert _leftover_share(decay, steps, "none") > 0.01


def test_identity_moves_with_the_warm_up_and_old_configs_keep_theirs():
    ref = get_preset("mnist-ref")
    assert ref.train.ema_warmup == "none"  # trained before the warm-up existed
    # A config written before the field existed means "none" and keeps its identity.
    d = ref.to_dict()
    del d["train"]["ema_warmup"]
    old = from_dict(d)
    assert old.train.ema_warmup == "none" and old.identity() == ref.identity()
    # Switching the warm-up on is a different run.
    assert ref.replace(train={"ema_warmup": "release"}).identity() != ref.identity()
    # It is the default of the schema and of presets that do not pin it.
    assert TrainConfig().ema_warmup == "release"
    assert get_preset("mnist-quick").train.ema_warmup == "release"
    assert get_preset("mnist-long").train.ema_warmup == "release"
