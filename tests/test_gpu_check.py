"""benchmarks/gpu_check.py on CPU at tiny sizes, its FLOP arithmetic, and the CPU-side regressions
of what it checks (Profile.device from IHDM_DEVICE, samplers keeping a wrapped network in eval)."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ihdm_core import get_preset
from ihdm_core.training.build import build_model, build_process
from ihdm_core.book.profiles import get_profile
from ihdm_core.model.sampling import sample
from ihdm_core.model.unet import Autocast

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _section(report: str, letter: str) -> str:
    m = re.search(rf"^## \({letter}\).*?(?=^## )", report, flags=re.S | re.M)
    assert m, f"no section ({letter}) in the report:\n{report}"
    return m.group(0)


def _rows(section: str) -> list[list[str]]:
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("|")]
    return [r for r in rows[2:]]  # drop header and separator


def _number(cell: str) -> float:
    return float(cell.replace("*", "").split()[0])


def test_flop_count_and_peak_fraction_match_a_hand_count():
    gc = _load_script()
    b, fin, fout = 8, 64, 32
    lin = torch.nn.Linear(fin, fout)
    x = torch.randn(b, fin, requires_grad=True)
    # forward x @ W^T: b*fin*fout multiply-adds = 2*b*fin*fout FLOPs; backward: the same again for
    # the input gradient and for the weight gradient (the bias adds are not counted).
    flops = gc.count_flops(lambda: lin(x).sum().backward())
    assert flops == 3 * 2 * b * fin * fout
    assert gc.count_flops(lambda: lin(x.detach())) == 2 * b * fin * fout
    tflops, frac = gc.throughput(1e12, 494.5, "NVIDIA H100 80GB HBM3")
    assert tflops == pytest.approx(494.5) and frac == pytest.approx(0.5)
    assert gc.throughput(2e12, 78, "NVIDIA A100-SXM4-80GB")[1] == pytest.approx(0.5)
    assert gc.bf16_peak_tflops("NVIDIA H200") == 989.0 and gc.bf16_peak_tflops("NVIDIA L4") == 121.0
    assert gc.bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gc.throughput(1e12, 1.0, "cpu (2 cores)") == (pytest.approx(1.0), None)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tiny_cpu_run_reports_every_part(tmp_path):
    out = tmp_path / "report.md"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--skip-book", "--budget-s", "120",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=850, cwd=ROOT)
    report = proc.stdout
    assert proc.returncode == 0, report + proc.stderr[-3000:]
    assert out.read_text() == report
    assert "device: **cpu" in report and f"torch {torch.__version__}" in report
    assert "no errors" in report

    rows = _rows(_section(report, "a"))
    measured = [r for r in rows if "skipped" not in r[4]]
    assert {(r[0], r[1]) for r in measured} >= {("cifar10", "fp32 eager"), ("mnist", "fp32 eager"),
                                                 ("cifar10", "+ torch.compile")}
    for r in measured:
        assert _number(r[3]) > 0 and _number(r[4]) > 0 and _number(r[6]) > 0, r  # GFLOP, steps/s, TFLOP/s
        assert r[-1] == "pass", r
    assert _number(next(r for r in measured if r[1] == "+ torch.compile")[8]) > 0  # compile seconds

    heat = _rows(_section(report, "b"))
    assert [r[0] for r in heat] == ["32x32x3", "64x64x3", "128x128x3", "256x256x3"]
    assert all(_number(r[6].rstrip("x")) > 0 and _number(r[5]) > 0 for r in heat)

    (samp,) = _rows(_section(report, "c"))
    assert _number(samp[5]) > 0 and _number(samp[6]) > 0  # images/s, projected minutes
    assert _section(report, "d").count("skipped") == 1
    ddp = report.split("## (e)")[1]
    assert "| gloo | pass |" in ddp


def test_profile_device_follows_ihdm_device(monkeypatch):
    prof = get_profile("smoke")
    monkeypatch.setenv("IHDM_DEVICE", "cpu")
    assert prof.device == "cpu"
    monkeypatch.setenv("IHDM_DEVICE", "tpu-ish")
    with pytest.raises(ValueError, match="IHDM_DEVICE='tpu-ish'"):
        prof.device
    if not torch.cuda.is_available():
        monkeypatch.setenv("IHDM_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="no GPU"):
            prof.device
    monkeypatch.delenv("IHDM_DEVICE")
    assert prof.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_sample_leaves_a_wrapped_eval_network_in_eval():
    """A network passed inside a wrapper (Autocast, a compiled module) whose own flag says
    'training' used to come back in training mode: dropout on in every later call."""
    cfg = get_preset("mnist-smoke")
    net = build_model(cfg).eval()
    wrapped = Autocast(net, None)
    assert wrapped.training and not net.training
    proc = build_process(cfg, "cpu")
    sample(wrapped, proc, torch.rand(2, 1, 28, 28), delta=0.0)
    assert not any(m.training for m in net.modules())
    assert wrapped.training  # and the wrapper's own flag is as it was
    net.train()
    sample(net, proc, torch.rand(2, 1, 28, 28), delta=0.0)
    assert all(m.training for m in net.modules())

    from ihdm_core.model.likelihood import elbo_terms

    net.eval()
    u0 = torch.rand(2, 1, 28, 28)
    terms = elbo_terms(wrapped, proc, u0, proc.blur(u0, proc.K))
    assert terms.shape == (2, proc.K + 1) and not any(m.training for m in net.modules())


def test_gpu_profile_presets_are_new_and_sized():
    prof = get_profile("gpu")
    base = prof.config("ihdm")
    assert base.data.dataset == "mnist" and base.model.base_channels == 64
    assert base.train.steps == 30_000 and base.train.batch_size == 128
    ids = {prof.config(r).identity() for r in ("ihdm", "ddpm", "blurring", "colour", "sigma0")}
    assert len(ids) == 5
    for r in ("ddpm", "blurring"):
        assert prof.config(r).process.time == "continuous" and prof.config(r).process.prediction == "v"
