"""What a process runs on: the one hardware record that runs, the pipeline and the status pages
keep, and the short phrase that captions print from it."""

from __future__ import annotations

import os
import platform

import torch

__all__ = ["hardware_record", "describe"]


def hardware_record() -> dict:
    """CPUs and torch threads, machine, GPU, torch and Python versions of this process."""
    return {"cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "machine": platform.machine(), "processor": platform.processor() or None,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "python": platform.python_version()}


def describe(record: dict) -> str:
    """The GPU's name, else the CPU count: what a caption says about the hardware."""
    return record.get("gpu") or f"{record.get('cpus')} CPU cores"
