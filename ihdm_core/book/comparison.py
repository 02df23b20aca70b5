"""Chapter 9's comparison of IHDM, DDPM and Blurring Diffusion as typed records.

A :class:`StepScore` is one process sampled on one number of steps; an :class:`OptionScore` one
sampling or training option of Blurring Diffusion. Both come from
:func:`ihdm_core.evaluation.scores.step_sweep` records, give their table row (the display labels
live here, once) and feed :func:`findings`, the sentences that summarise the tables.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StepScore", "OptionScore", "findings"]


@dataclass(frozen=True)
class StepScore:
    process: str
    config: str
    training_steps: int
    train_minutes: float
    steps: int  # network evaluations per sample
    samples: int
    recognisability: float
    fid: float
    exploded: int

    @classmethod
    def from_record(cls, process: str, rec: dict, train_minutes: float) -> "StepScore":
        """From a :func:`step_sweep` record scored for all three metrics."""
        return cls(process, rec["run"].cfg.name, rec["run"].step, round(train_minutes, 1),
                   rec["steps"], rec["samples"], rec["recognisability"]["value"],
                   rec["fid"]["value"], rec["explosions"]["value"])

    def row(self) -> dict:
        return {"process": self.process, "config": self.config,
                "training steps": self.training_steps,
                "train time (min)": self.train_minutes, "network evals / sample": self.steps,
                "samples": self.samples, "recognisability": self.recognisability, "FID": self.fid,
                "exploded chains": f"{self.exploded} of {self.samples}"}


@dataclass(frozen=True)
class OptionScore:
    model: str
    option: str
    steps: int
    samples: int
    recognisability: float
    exploded: int

    @classmethod
    def from_record(cls, option: str, rec: dict) -> "OptionScore":
        """From a :func:`step_sweep` record scored for recognisability and explosions."""
        return cls(rec["run"].cfg.name, option, rec["steps"], rec["samples"],
                   rec["recognisability"]["value"], rec["explosions"]["value"])

    def row(self) -> dict:
        return {"model": self.model, "option": self.option, "steps": self.steps,
                "samples": self.samples, "recognisability": self.recognisability,
                "exploded chains": self.exploded}


def findings(scores: list[StepScore], ratios: dict[int, float], options: list[OptionScore]) -> str:
    """Markdown bullets: Blurring Diffusion against DDPM at the smallest number of steps and at
    every number both were scored on, Blurring Diffusion's smallest step ratio ``ratios``
    ({steps: ratio}) at the coarsest and finest grid, and each prediction-ablation option."""
    by = {(s.process, s.steps): s for s in scores}
    bd = sorted(s.steps for s in scores if s.process == "Blurring Diffusion")
    ddpm = sorted(s.steps for s in scores if s.process == "DDPM")
    if not bd or not ddpm:
        raise ValueError("findings need scores of both Blurring Diffusion and DDPM")
    b, d = by["Blurring Diffusion", bd[0]], by["DDPM", ddpm[0]]
    lines = [f"- At {b.steps} steps Blurring Diffusion reaches recognisability "
             f"{b.recognisability:.2f} with {b.exploded} of {b.samples} chains exploded; DDPM at "
             f"its smallest T reaches {d.recognisability:.2f}."]
    for T in (T for T in bd[1:] if ("DDPM", T) in by):
        b, d = by["Blurring Diffusion", T], by["DDPM", T]
        lines.append(f"- At {T} steps: Blurring Diffusion {b.recognisability:.2f} "
                     f"(FID {b.fid:.1f}, "
                     f"{b.exploded} of {b.samples} exploded) against DDPM {d.recognisability:.2f} "
                     f"(FID {d.fid:.1f}, {d.exploded} of {d.samples} exploded).")
    lo, hi = min(ratios), max(ratios)
    lines.append(f"- The smallest step ratio of Blurring Diffusion is {ratios[lo]:.3f} at {lo} "
                 f"steps and {ratios[hi]:.3f} at {hi}.")
    for o in (o for o in options if o.option.endswith("-prediction")):
        lines.append(f"- {o.option} ({o.model}) at {o.steps} steps: recognisability "
                     f"{o.recognisability:.2f}, {o.exploded} of {o.samples} chains exploded.")
    return "\n".join(lines)
