"""Run names (name + identity hash) of every preset and profile role, frozen as literals.

Runs are cached by identity, so a change to a config field, its default or its validation that
moves one of these names orphans trained runs and shipped models. Values recorded before issue
16 added validation; a new preset adds its row here, an existing row must never change by
accident. Rows changed once on purpose: the EMA warm-up (train.ema_warmup, default "release")
changed what every preset not pinned to ema_warmup="none" trains; the shipped models' presets are
pinned and kept their names."""

import pytest

from ihdm_core.training.presets import PRESETS
from ihdm_core.book.profiles import PROFILES

PRESET_RUN_NAMES = {
    "afhq256": "afhq256-5d63b683bec3",
    "afhq64": "afhq64-a07787965bdf",
    "cifar10": "cifar10-fba4f4cc0fa2",
    "cifar10-blurring": "cifar10-blurring-a6db47141779",
    "cifar10-blurring-quick": "cifar10-blurring-quick-6ffc45165e2c",
    "cifar10-blurring-smoke": "cifar10-blurring-smoke-5117a773fcea",
    "cifar10-ddpm": "cifar10-ddpm-da4885d141be",
    "cifar10-ddpm-quick": "cifar10-ddpm-quick-41f0cf9ed8d9",
    "cifar10-ddpm-smoke": "cifar10-ddpm-smoke-67ddc8b8a0ff",
    "cifar10-quick": "cifar10-quick-312098082575",
    "cifar10-smoke": "cifar10-smoke-35efea9e19b8",
    "ffhq128": "ffhq128-ae743034b6a4",
    "ffhq256": "ffhq256-fad799a58d1b",
    "lsun_church128": "lsun_church128-180065436785",
    "mnist": "mnist-80e9e11a6a94",
    "mnist-blurring": "mnist-blurring-8f5a042d2661",
    "mnist-blurring-eps-ablation": "mnist-blurring-eps-ablation-ac5826e24436",
    "mnist-blurring-gpu": "mnist-blurring-gpu-71cdd114d2c8",
    "mnist-blurring-quick": "mnist-blurring-quick-fbddf3d1b683",
    "mnist-blurring-ref": "mnist-blurring-ref-abdb0d95ea99",
    "mnist-blurring-smoke": "mnist-blurring-smoke-ada1542cf714",
    "mnist-blurring-smoke-ct": "mnist-blurring-smoke-ct-82e5d9ade755",
    "mnist-blurring-v-ablation": "mnist-blurring-v-ablation-ffa4b912839e",
    "mnist-blurring-x-ablation": "mnist-blurring-x-ablation-5a9b8af5f632",
    "mnist-colour-gpu": "mnist-colour-gpu-27af09cca92b",
    "mnist-colour-ref": "mnist-colour-ref-949c1c554839",
    "mnist-colour-long": "mnist-colour-long-d10d2b079221",
    "mnist-ddpm-long": "mnist-ddpm-long-af9702f916de",
    "mnist-blurring-long": "mnist-blurring-long-0bd3b30678f4",
    "mnist-colour-smoke": "mnist-colour-smoke-fdeec483a311",
    "mnist-ddpm": "mnist-ddpm-a3c887538a74",
    "mnist-ddpm-gpu": "mnist-ddpm-gpu-787825a0acf6",
    "mnist-ddpm-quick": "mnist-ddpm-quick-3794b3243b56",
    "mnist-ddpm-ref": "mnist-ddpm-ref-4458dea1039b",
    "mnist-ddpm-smoke": "mnist-ddpm-smoke-faf1c998f219",
    "mnist-ddpm-smoke-ct": "mnist-ddpm-smoke-ct-21b6b6bc91c3",
    "mnist-gpu": "mnist-gpu-1ff230146c31",
    "mnist-long": "mnist-long-ebd4ee5bc0e6",
    "mnist-quick": "mnist-quick-6cf0b3eddaee",
    "mnist-ref": "mnist-ref-7672f7987770",
    "mnist-ref-sigma0": "mnist-ref-sigma0-fa3746050178",
    "mnist-smoke": "mnist-smoke-e8ad7312f2c4",
}

PROFILE_RUN_NAMES = {
    ("smoke", "ihdm"): "mnist-smoke-e8ad7312f2c4",
    ("smoke", "ddpm"): "mnist-ddpm-smoke-ct-21b6b6bc91c3",
    ("smoke", "blurring"): "mnist-blurring-smoke-ct-82e5d9ade755",
    ("smoke", "colour"): "mnist-colour-smoke-fdeec483a311",
    ("smoke", "sigma0"): "mnist-smoke-sigma0-e1261810f38e",
    ("quick", "ihdm"): "mnist-ref-7672f7987770",
    ("quick", "ddpm"): "mnist-ddpm-ref-4458dea1039b",
    ("quick", "blurring"): "mnist-blurring-ref-abdb0d95ea99",
    ("quick", "colour"): "mnist-colour-ref-949c1c554839",
    ("quick", "colour_long"): "mnist-colour-long-d10d2b079221",
    ("smoke", "colour_long"): "mnist-colour-smoke-fdeec483a311",
    ("quick", "sigma0"): "mnist-ref-sigma0-fa3746050178",
    ("gpu", "ihdm"): "mnist-gpu-1ff230146c31",
    ("gpu", "ddpm"): "mnist-ddpm-gpu-787825a0acf6",
    ("gpu", "blurring"): "mnist-blurring-gpu-71cdd114d2c8",
    ("gpu", "colour"): "mnist-colour-gpu-27af09cca92b",
    ("gpu", "sigma0"): "mnist-gpu-sigma0-536b41775685",
    ("paper", "ihdm"): "mnist-80e9e11a6a94",
    ("paper", "ddpm"): "mnist-ddpm-a3c887538a74",
    ("paper", "blurring"): "mnist-blurring-8f5a042d2661",
    ("paper", "colour"): "ffhq128-ae743034b6a4",
    ("paper", "sigma0"): "mnist-sigma0-98b9eb1f6c6c",
}


def test_every_preset_is_pinned():
    assert sorted(PRESETS) == sorted(PRESET_RUN_NAMES)


@pytest.mark.parametrize("name", sorted(PRESET_RUN_NAMES))
def test_preset_run_name(name):
    assert PRESETS[name].run_name() == PRESET_RUN_NAMES[name]


@pytest.mark.parametrize("profile,role", sorted(PROFILE_RUN_NAMES))
def test_profile_run_name(profile, role):
    assert PROFILES[profile].config(role).run_name() == PROFILE_RUN_NAMES[(profile, role)]


def test_every_profile_is_pinned():
    assert sorted(PROFILES) == sorted({p for p, _ in PROFILE_RUN_NAMES})
