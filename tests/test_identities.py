"""Run names (name + identity hash) of every preset and profile role, frozen as literals.

Runs are cached by identity, so a change to a config field, its default or its validation that
moves one of these names orphans trained runs and shipped models. Values recorded before issue
16 added validation; a new preset adds its row here, an existing row must never change."""

import pytest

from ihdm_core.training.config import PRESETS
from ihdm_core.book.profiles import PROFILES

PRESET_RUN_NAMES = {
    "afhq256": "afhq256-0206ca441493",
    "afhq64": "afhq64-91002c7a69fd",
    "cifar10": "cifar10-0bc35bfef7f3",
    "cifar10-blurring": "cifar10-blurring-d09fe53e1342",
    "cifar10-blurring-quick": "cifar10-blurring-quick-4f533e2cbae0",
    "cifar10-blurring-smoke": "cifar10-blurring-smoke-47fa846d8e5f",
    "cifar10-ddpm": "cifar10-ddpm-7418a0ce31cf",
    "cifar10-ddpm-quick": "cifar10-ddpm-quick-a0947c95c7d8",
    "cifar10-ddpm-smoke": "cifar10-ddpm-smoke-7b8e758713fb",
    "cifar10-quick": "cifar10-quick-87298f438374",
    "cifar10-smoke": "cifar10-smoke-2584ab6ee339",
    "ffhq128": "ffhq128-8e17c999b4f4",
    "ffhq256": "ffhq256-bec814ec50b7",
    "lsun_church128": "lsun_church128-27863c5f6d91",
    "mnist": "mnist-2d8c8be75cf6",
    "mnist-blurring": "mnist-blurring-fda1a9e25cdc",
    "mnist-blurring-eps-ablation": "mnist-blurring-eps-ablation-ac5826e24436",
    "mnist-blurring-gpu": "mnist-blurring-gpu-b3f6657f3cf5",
    "mnist-blurring-quick": "mnist-blurring-quick-3a2f32e80a19",
    "mnist-blurring-ref": "mnist-blurring-ref-abdb0d95ea99",
    "mnist-blurring-smoke": "mnist-blurring-smoke-aa1e653965e1",
    "mnist-blurring-smoke-ct": "mnist-blurring-smoke-ct-05944e2df592",
    "mnist-blurring-v-ablation": "mnist-blurring-v-ablation-ffa4b912839e",
    "mnist-blurring-x-ablation": "mnist-blurring-x-ablation-5a9b8af5f632",
    "mnist-colour-gpu": "mnist-colour-gpu-19b2804cd97b",
    "mnist-colour-ref": "mnist-colour-ref-949c1c554839",
    "mnist-colour-smoke": "mnist-colour-smoke-24370548d29b",
    "mnist-ddpm": "mnist-ddpm-9aa32d0460f7",
    "mnist-ddpm-gpu": "mnist-ddpm-gpu-d6811bc8794a",
    "mnist-ddpm-quick": "mnist-ddpm-quick-3a5b1d332de6",
    "mnist-ddpm-ref": "mnist-ddpm-ref-4458dea1039b",
    "mnist-ddpm-smoke": "mnist-ddpm-smoke-0bca6f2ad6a4",
    "mnist-ddpm-smoke-ct": "mnist-ddpm-smoke-ct-8327e1790e1c",
    "mnist-gpu": "mnist-gpu-13aeb68d3bf6",
    "mnist-quick": "mnist-quick-712075884726",
    "mnist-ref": "mnist-ref-7672f7987770",
    "mnist-ref-sigma0": "mnist-ref-sigma0-fa3746050178",
    "mnist-smoke": "mnist-smoke-6b94d82adaff",
}

PROFILE_RUN_NAMES = {
    ("smoke", "ihdm"): "mnist-smoke-6b94d82adaff",
    ("smoke", "ddpm"): "mnist-ddpm-smoke-ct-8327e1790e1c",
    ("smoke", "blurring"): "mnist-blurring-smoke-ct-05944e2df592",
    ("smoke", "colour"): "mnist-colour-smoke-24370548d29b",
    ("smoke", "sigma0"): "mnist-smoke-sigma0-e30a2060193b",
    ("quick", "ihdm"): "mnist-ref-7672f7987770",
    ("quick", "ddpm"): "mnist-ddpm-ref-4458dea1039b",
    ("quick", "blurring"): "mnist-blurring-ref-abdb0d95ea99",
    ("quick", "colour"): "mnist-colour-ref-949c1c554839",
    ("quick", "sigma0"): "mnist-ref-sigma0-fa3746050178",
    ("gpu", "ihdm"): "mnist-gpu-13aeb68d3bf6",
    ("gpu", "ddpm"): "mnist-ddpm-gpu-d6811bc8794a",
    ("gpu", "blurring"): "mnist-blurring-gpu-b3f6657f3cf5",
    ("gpu", "colour"): "mnist-colour-gpu-19b2804cd97b",
    ("gpu", "sigma0"): "mnist-gpu-sigma0-a35202aee7cb",
    ("paper", "ihdm"): "mnist-2d8c8be75cf6",
    ("paper", "ddpm"): "mnist-ddpm-9aa32d0460f7",
    ("paper", "blurring"): "mnist-blurring-fda1a9e25cdc",
    ("paper", "colour"): "ffhq128-8e17c999b4f4",
    ("paper", "sigma0"): "mnist-sigma0-7e35c0947083",
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
