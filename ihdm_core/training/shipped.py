"""Reference models that ship with the book: found by config identity, verified, loaded, exported.

Training a model that shows what the paper shows takes hours of CPU, so the default book loads
weights trained once and committed under ``models/``. Each shipped model is one folder named
like its run, ``models/<preset>-<identity>/``:

* ``ema.safetensors``         the EMA weights. safetensors holds tensors only, so loading
                              never runs code (unlike a pickle).
* ``ema.safetensors.sha256``  the SHA-256 of that file, checked before every load: a changed
                              byte is an error that names the file, never a silent retrain.
* ``config.json``             the full config; its identity must be the folder's.
* ``metrics.jsonl``           the training log, as ``ihdm_core.training.train`` wrote it.
* ``MODEL_CARD.md``           preset, identity, steps, batch, hardware, wall time, scores and the
                              command that retrains it.

``ihdm_core.training.train.ensure_trained`` (through ``ihdm_core.training.runs``) uses a shipped
model when one matches the config's identity, unless a retrain is asked for (``retrain=True``,
``IHDM_RETRAIN=1``, or the pipeline's ``--retrain``), which trains from scratch into ``runs/`` as
before.

    python -m ihdm_core models list
    python -m ihdm_core models verify
    python -m ihdm_core models export --preset mnist-ref --hardware "2 CPU cores (...)"
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch

from .checkpoints import CHECKPOINT, load_checkpoint, sha256_file
from .config import Config, from_dict
from .log import METRICS, training_seconds
from .paths import project_root, run_dir_for, runs_root

__all__ = ["WEIGHTS", "ShippedModelError", "models_root", "retrain_requested", "shipped_dir",
           "sha256_file", "verify", "verify_file", "load_shipped_state", "shipped_cache_dir",
           "shipped_info", "export", "model_card", "write_card", "publish_scores",
           "list_shipped"]

WEIGHTS = "ema.safetensors"
CHECKSUM = WEIGHTS + ".sha256"
CARD = "MODEL_CARD.md"


class ShippedModelError(RuntimeError):
    """A shipped model failed its checks (checksum, identity, shapes)."""


def models_root() -> Path | None:
    """Where shipped models live: $IHDM_MODELS, else <checkout>/models (None outside a checkout)."""
    if os.environ.get("IHDM_MODELS"):
        return Path(os.environ["IHDM_MODELS"]).expanduser()
    root = project_root()
    return root / "models" if root else None


def retrain_requested(retrain: bool | None = None) -> bool:
    """An explicit ``retrain`` wins; otherwise the environment variable ``IHDM_RETRAIN``."""
    if retrain is not None:
        return bool(retrain)
    return os.environ.get("IHDM_RETRAIN", "").strip().lower() in ("1", "true", "yes", "on")


def shipped_dir(cfg: Config) -> Path | None:
    """The shipped model of ``cfg``'s identity, or None if none ships."""
    root = models_root()
    if root is None:
        return None
    folder = root / cfg.run_name()
    return folder if (folder / WEIGHTS).exists() else None


def shipped_info(cfg: Config) -> dict:
    """What the model card records beside the weights (``card.json``: hardware, wall time, ...)."""
    folder = shipped_dir(cfg)
    path = folder / "card.json" if folder is not None else None
    return json.loads(path.read_text()) if path is not None and path.exists() else {}


def shipped_cache_dir(cfg: Config) -> Path:
    """Where scores of a shipped model are cached: under runs/, so models/ stays as committed."""
    return runs_root() / "shipped" / cfg.run_name()


def verify_file(path: Path, *, what: str, remedy: str) -> str:
    """Check ``path`` against the SHA-256 recorded in ``<path>.sha256``; return the digest or
    raise naming the file. ``what`` names the file in the error, ``remedy`` says how to recover."""
    record = path.with_name(path.name + ".sha256")
    if not record.exists():
        raise ShippedModelError(f"{record} is missing: {what} {path} cannot be verified")
    expected = record.read_text().split()[0].strip().lower()
    actual = sha256_file(path)
    if actual != expected:
        raise ShippedModelError(
            f"{path} does not match its recorded SHA-256 ({actual[:16]}... != "
            f"{expected[:16]}...): the file was changed or corrupted. {remedy}")
    return actual


def verify(folder: str | Path) -> str:
    """Check the weights against the recorded SHA-256; return the digest or raise, naming the
    file."""
    weights = Path(folder) / WEIGHTS
    return verify_file(weights, what="the shipped weights",
                       remedy=f"Restore it (git checkout -- {weights.name}) or train anew with "
                              f"--retrain.")


def load_shipped_state(cfg: Config) -> tuple[dict, dict]:
    """The verified EMA state dict of ``cfg``'s shipped model and its metadata."""
    from safetensors import safe_open

    folder = shipped_dir(cfg)
    if folder is None:
        raise FileNotFoundError(f"no shipped model for {cfg.run_name()} under {models_root()}")
    verify(folder)
    shipped_cfg = from_dict(json.loads((folder / "config.json").read_text()))
    if shipped_cfg.identity() != cfg.identity():
        raise ShippedModelError(f"{folder / 'config.json'} has identity {shipped_cfg.identity()}, "
                                f"not the "
                                f"folder's {cfg.identity()}; the shipped model is inconsistent")
    with safe_open(str(folder / WEIGHTS), framework="pt", device="cpu") as fh:
        meta = dict(fh.metadata() or {})
        state = {k: fh.get_tensor(k) for k in fh.keys()}
    # Weights may be stored in fp16 to save space; the network computes in fp32.
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return state, meta


def _score_records(folder) -> list[dict]:
    """The records of ``<folder>/scores.jsonl`` (none when there is no such file)."""
    path = Path(folder) / "scores.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _scores(run_dirs) -> list[dict]:
    """The newest score per (metric, n, delta, steps) over the given runs' scores.jsonl files."""
    best: dict = {}
    for d in run_dirs:
        for rec in _score_records(d):
            sampler = (rec.get("key") or {}).get("sampler") or {}
            rec["sampling"] = ", ".join(f"{k} {v}" for k,
                                        v in sampler.items() if k != "clip_denoised") or None
            key = (rec.get("metric"), rec.get("n_samples") or rec.get("n"), rec.get("delta"),
                   rec["sampling"])
            best[key] = rec
    return list(best.values())


def _process_text(p) -> str:
    if p.kind != "ihdm":
        return f"{p.kind}, K = {p.K}, {p.time} time, {p.prediction}-prediction"
    return (f"{p.kind}, K = {p.K}, sigma_B in [{p.sigma_min}, {p.sigma_max}], sigma = {p.sigma}, "
            f"delta = {p.delta}")


def _score_lines(scores: list[dict]) -> list[str]:
    if not scores:
        return ["No scores recorded yet; the book's chapters 3 and 9 measure them."]
    lines = ["| metric | value | n | reference | sampling |", "|---|---|---|---|---|"]
    order = sorted(scores, key=lambda r: (str(r.get("metric")), len(r["sampling"] or ""),
                                          str(r["sampling"]), r.get("delta") or 0))
    for s in order:
        n = s.get("n_samples") or s.get("n")
        delta = f"delta {s['delta']}" if s.get("delta") is not None else None
        how = ", ".join(filter(None, (delta, s["sampling"]))) or "default"
        lines.append(f"| {s.get('metric')} | {float(s['value']):.4g} | {n} | "
                     f"{s.get('reference', '')} | {how} |")
    return lines


def model_card(cfg: Config, *, step: int, wall_s: float | None, hardware: str, digest: str,
               size: int, scores: list[dict], fp16: bool = False) -> str:
    t, m, d = cfg.train, cfg.model, cfg.data
    wall = f"{wall_s / 60:.1f} min" if wall_s else "not recorded"
    lines = [
        f"# {cfg.name} ({cfg.run_name()})", "", f"{cfg.notes}", "",
        "| field | value |",
        "|---|---|",
        f"| preset | `{cfg.name}` |",
        f"| config identity | `{cfg.identity()}` |",
        f"| process | {_process_text(cfg.process)} |",
        f"| network | U-Net, base {m.base_channels}, mult {tuple(m.channel_mult)}, "
        f"{m.num_res_blocks} res block(s), attention at {tuple(m.attn_resolutions)}, "
        f"dropout {m.dropout} |",
        f"| data | `{d.dataset}`, {d.image_size} x {d.image_size} x {d.channels} |",
        f"| training steps | {step:,} |",
        f"| batch | {t.batch_size} |",
        f"| optimiser | Adam, lr {t.lr}, warm-up {t.warmup}, {t.lr_schedule} schedule, "
        f"EMA {t.ema}{' with the release warm-up' if t.ema_warmup == 'release' else ''} |",
        f"| hardware | {hardware} |",
        f"| wall time | {wall} |",
        f"| weights | `{WEIGHTS}`, EMA, {'fp16' if fp16 else 'fp32'}, {size / 1e6:.2f} MB, "
        f"SHA-256 `{digest}` |",
        "", "## Scores", "",
        *_score_lines(scores),
        "", "## Retrain", "",
        "From scratch into `runs/` (the shipped weights are ignored):",
        "",
        "```bash",
        f"python -m ihdm_core train --preset {cfg.name}",
        f"python -m ihdm_core models export --preset {cfg.name} --hardware \"<your hardware>\"   "
        "# replace these weights",
        "```",
        "",
        "The book retrains every model it uses with `python -m ihdm_core book --retrain`.",
        "",
    ]
    return "\n".join(lines)


def export(cfg: Config, *, hardware: str, run_dir: str | Path | None = None,
           dest_root: str | Path | None = None,
           fp16: bool = False, wall_s: float | None = None) -> Path:
    """Write the EMA weights of a finished run of ``cfg`` as a shipped model; return its folder."""
    from safetensors.torch import save_file

    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(cfg)
    ckpt = load_checkpoint(run_dir / CHECKPOINT)[0]  # verified against its checksum when it has one
    if from_dict(ckpt["config"]).identity() != cfg.identity():
        raise ShippedModelError(f"{run_dir} belongs to another config than {cfg.run_name()}")
    if ckpt["step"] < cfg.train.steps:
        raise ShippedModelError(f"{run_dir} is at step {ckpt['step']} of {cfg.train.steps}; "
                                f"finish training first")
    dest_root = Path(dest_root) if dest_root is not None else models_root()
    folder = dest_root / cfg.run_name()
    folder.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if fp16 else torch.float32
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k,
             v in ckpt["ema"].items()}
    meta = {"preset": cfg.name, "identity": cfg.identity(), "step": str(ckpt["step"]),
            "torch_version": str(ckpt.get("torch_version", torch.__version__))}
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, folder / WEIGHTS)
    digest = sha256_file(folder / WEIGHTS)
    (folder / CHECKSUM).write_text(f"{digest}  {WEIGHTS}\n")
    (folder / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=list) + "\n")
    if (run_dir / METRICS).exists():
        shutil.copyfile(run_dir / METRICS, folder / METRICS)
    write_card(cfg, hardware=hardware,
               wall_s=wall_s if wall_s is not None else training_seconds(run_dir),
               extra_score_dirs=[run_dir], fp16=fp16, folder=folder)
    return folder


def write_card(cfg: Config, *, hardware: str | None = None, wall_s: float | None = None,
               extra_score_dirs=(),
               fp16: bool | None = None, folder: str | Path | None = None) -> Path:
    """(Re)write MODEL_CARD.md from the shipped files, with the newest scores measured on them."""
    folder = Path(folder) if folder is not None else shipped_dir(cfg)
    if folder is None:
        raise FileNotFoundError(f"no shipped model for {cfg.run_name()}")
    info_path = folder / "card.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    if hardware is not None:
        info["hardware"] = hardware
    if wall_s is not None:
        info["wall_s"] = wall_s
    from safetensors import safe_open

    with safe_open(str(folder / WEIGHTS), framework="pt", device="cpu") as fh:
        meta = dict(fh.metadata() or {})
        first = fh.get_tensor(next(iter(fh.keys())))
    info["fp16"] = bool(fp16) if fp16 is not None else first.dtype == torch.float16
    info["updated"] = time.strftime("%Y-%m-%d")
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    scores = _scores([*extra_score_dirs, folder, shipped_cache_dir(cfg)])
    text = model_card(cfg, step=int(meta.get("step", cfg.train.steps)), wall_s=info.get("wall_s"),
                      hardware=info.get("hardware", "not recorded"),
                      digest=sha256_file(folder / WEIGHTS),
                      size=(folder / WEIGHTS).stat().st_size, scores=scores, fp16=info["fp16"])
    (folder / CARD).write_text(text)
    return folder / CARD


def publish_scores(cfg: Config) -> tuple[Path, int]:
    """Ship the scores measured here on a shipped model (``runs/shipped/<run>/scores.jsonl``) with
    its weights (``models/<run>/scores.jsonl``), so that a fresh clone reuses them instead of
    sampling again. Appends the records the shipped file lacks (same metric and key); returns the
    file and how many were added."""
    folder = shipped_dir(cfg)
    if folder is None:
        raise FileNotFoundError(f"no shipped model for {cfg.run_name()}")

    def ident(rec: dict) -> str:
        return json.dumps([rec.get("metric"), rec.get("key")], sort_keys=True, default=str)

    have = {ident(r) for r in _score_records(folder)}
    new = []
    for rec in _score_records(shipped_cache_dir(cfg)):
        if ident(rec) not in have:
            have.add(ident(rec))
            new.append(rec)
    dest = folder / "scores.jsonl"
    with open(dest, "a") as fh:
        fh.writelines(json.dumps(r, default=str) + "\n" for r in new)
    return dest, len(new)


def list_shipped() -> list[Path]:
    root = models_root()
    return sorted(p.parent for p in root.glob(f"*/{WEIGHTS}")) if root and root.exists() else []
