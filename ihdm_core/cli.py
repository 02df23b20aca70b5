"""The command line: ``python -m ihdm_core <command>`` and the ``ihdm-*`` console scripts.

Every command's arguments are checked the way config fields are (a range, or a path of the right
kind; :mod:`ihdm_core.training.checks`). A user's mistake (a bad argument or ``--set`` value, an
unknown preset, a data set that is not there, a missing or corrupt file) is reported as one line
``error: ...`` on stderr with exit status 2, the status argparse uses for usage errors. Anything
else is a bug and keeps its traceback. ``--debug`` (anywhere on the command line) or
``IHDM_DEBUG=1`` shows the traceback for every error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["run", "main", "is_user_error", "USAGE_ERROR", "COMMANDS",
           "train", "sample", "evaluate", "book", "models"]

USAGE_ERROR = 2
_PACKAGE = Path(__file__).resolve().parent


# --- errors --------------------------------------------------------------------------------------
def _raised_here(err: BaseException) -> bool:
    """Whether ``err`` was raised by a ``raise`` in this package (our own checks), not deep inside
    a library, where the same exception type means something went wrong that we did not foresee."""
    tb = err.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return (last is not None
            and Path(last.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE))


def is_user_error(err: BaseException) -> bool:
    """Usage and data errors: reported in one line. Everything else is a bug."""
    from .training.checkpoints import CheckpointError, RunLocked
    from .training.checks import ConfigError
    from .training.data import DatasetUnavailable
    from .training.shipped import ShippedModelError

    user = (ConfigError, DatasetUnavailable, FileNotFoundError, ShippedModelError,
            CheckpointError, RunLocked)
    if isinstance(err, user):
        return True
    # get_preset's unknown preset; ValueErrors of our own argument checks (not those of torch etc.)
    return isinstance(err, (KeyError, ValueError)) and _raised_here(err)


def _message(err: BaseException) -> str:
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    text = " ".join(str(text).split("\n")).strip()
    return text or type(err).__name__


def run(main, argv: list[str] | None = None) -> int:
    """Call ``main(argv)`` and turn user errors into one line on stderr and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("IHDM_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    try:
        return main(argv)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - sorted into user errors and bugs below
        if debug or not is_user_error(err):
            raise
        print(f"error: {_message(err)}", file=sys.stderr)
        return USAGE_ERROR


class _Parser(argparse.ArgumentParser):
    """argparse's own complaints (a missing option, an unknown choice, ``--n x``) as ConfigErrors,
    so they too are one line with exit status 2."""

    def error(self, message: str):
        from .training.checks import ConfigError

        raise ConfigError(f"{self.prog}: {message} (--help lists the options)")


def _parser(command: str, description: str) -> _Parser:
    return _Parser(prog=f"python -m ihdm_core {command}", description=description)


def _check_device(value, where: str = "--device") -> None:
    import torch

    from .training.checks import not_allowed

    if value is None:
        return
    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        raise not_allowed(where, value,
                          "must be a torch device such as cpu, cuda or cuda:1") from None


def _run_source(ap: _Parser, args) -> str:
    """The run a command reads: ``--run-dir`` (an existing folder) or ``--preset``."""
    from .training.checks import check_dir

    if not (args.preset or args.run_dir):
        ap.error("give --preset or --run-dir")
    if args.run_dir is not None:
        check_dir(args.run_dir, "--run-dir")
    return args.run_dir or args.preset


# --- train ---------------------------------------------------------------------------------------
def train_main(argv=None) -> int:
    import torch.distributed as dist

    from .training.checks import check_new_dir
    from .training.overrides import parse_overrides
    from .training.presets import get_preset, preset_names
    from .training.train import dist_info, train

    ap = _parser("train", "Train a preset (or resume it); the run is cached by its config.")
    ap.add_argument("--preset", required=True, help=f"one of: {', '.join(preset_names())}")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.FIELD=VALUE",
                    help="override config fields, e.g. train.steps=1000 process.K=50")
    ap.add_argument("--run-dir", default=None, help="default: runs/<preset>-<identity>")
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    if args.run_dir is not None:
        check_new_dir(args.run_dir, "--run-dir")
    _check_device(args.device)
    cfg = get_preset(args.preset, **parse_overrides(args.set))
    result = train(cfg, run_dir=args.run_dir, device=args.device)
    if dist_info()[0] == 0:
        print(json.dumps({"run_dir": str(result.run_dir), "step": result.step,
                          "reused": result.reused, "last_loss": result.last_loss,
                          "backend": dist.get_backend() if dist.is_initialized() else None}))
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


# --- sample --------------------------------------------------------------------------------------
def _sample_parser() -> _Parser:
    from .training.generate import MODES
    from .training.presets import preset_names

    ap = _parser("sample", "Sample a trained run: one PNG per seed (--outdir), an npz (--npz), "
                           "or a PNG grid (--out).")
    ap.add_argument("--preset", help=f"one of: {', '.join(preset_names())}")
    ap.add_argument("--run-dir", help="a run folder instead of a preset")
    ap.add_argument("--outdir", help="write seedNNNNNN.png per seed into this folder")
    ap.add_argument("--npz", help="write all samples to this .npz (arr_0: uint8 NHWC; seeds)")
    ap.add_argument("--seeds", default=None,
                    help="e.g. 0-49999 or 0,5,9 (default: --seed .. --seed + n - 1)")
    ap.add_argument("--n", type=int, default=64, help="number of samples when --seeds is not given")
    ap.add_argument("--seed", type=int, default=0, help="first seed when --seeds is not given")
    ap.add_argument("--out", default=None, help="PNG grid path (default when neither --outdir "
                                                "nor --npz: <run-dir>/samples.png)")
    ap.add_argument("--delta", type=float, default=None,
                    help="IHDM sampling noise (default: the config's)")
    ap.add_argument("--steps", type=int, default=None,
                    help="sampling steps (continuous-time diffusions only)")
    ap.add_argument("--mode", default="independent", choices=MODES)
    ap.add_argument("--shared-seed", type=int, default=0,
                    help="the seed shared by shared_noise / same_init")
    ap.add_argument("--frames", type=int, default=8, help="interpolation: images per path")
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--bf16", action="store_true", help="network in bf16 autocast (GPU)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network")
    return ap


def _check_sample_args(args) -> list[int]:
    """The checks of every sample argument; returns the seeds."""
    from .training.checks import check_int, check_new_dir, check_new_file, not_allowed
    from .training.generate import parse_seeds

    for name, lo in (("n", 1), ("seed", 0), ("shared_seed", 0), ("frames", 2), ("batch_size", 1)):
        check_int(getattr(args, name), f"--{name.replace('_', '-')}", lo)
    check_int(args.steps, "--steps", 1, optional=True)
    _check_delta_device(args)
    if args.outdir is not None:
        check_new_dir(args.outdir, "--outdir")
    if args.npz is not None:
        check_new_file(args.npz, "--npz", ".npz")
    if args.out is not None:
        check_new_file(args.out, "--out", ".png")
    if args.seeds is None:
        return list(range(args.seed, args.seed + args.n))
    try:
        return parse_seeds(args.seeds)
    except ValueError as err:
        raise not_allowed("--seeds", args.seeds, str(err)) from None


def sample_main(argv=None) -> int:
    import torch

    from .training import generate as G
    from .training.runs import load_run

    ap = _sample_parser()
    args = ap.parse_args(argv)
    source = _run_source(ap, args)
    seeds = _check_sample_args(args)
    rank, world, dist_device = G.distributed()
    if world > 1 and not (args.outdir or args.npz):
        ap.error("under torchrun give --outdir or --npz (a grid is a single-process output)")
    run = load_run(source, device=args.device or dist_device, use_ema=not args.no_ema)
    mine = seeds[rank::world]
    cuda = run.process.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0, parts = time.perf_counter(), []
    for chunk, x in G.iter_sample_seeds(
            run, mine, batch_size=args.batch_size, delta=args.delta, steps=args.steps,
            mode=args.mode, shared_seed=args.shared_seed, frames=args.frames, progress=rank == 0,
            autocast_dtype=torch.bfloat16 if args.bf16 else None,
            net=torch.compile(run.net) if args.compile else None):
        if args.outdir:
            G.write_pngs(args.outdir, chunk, x)
        if args.npz or not args.outdir:
            parts.append(x)
    seconds = time.perf_counter() - t0
    info = {"run_dir": str(run.run_dir), "identity": run.cfg.identity(), "step": run.step,
            "mode": args.mode, "K": args.steps or run.process.K, "n": len(seeds), "world": world,
            "delta": args.delta if args.delta is not None else getattr(run.process, "delta", None),
            "seeds": f"{seeds[0]}..{seeds[-1]}" if seeds else "", "seconds": round(seconds, 2),
            "samples_per_s_per_rank": round(len(mine) / max(seconds, 1e-9), 2),
            "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None}
    if args.outdir:
        info["outdir"] = str(args.outdir)
    if args.npz:
        shape = (0, run.cfg.data.channels, *(run.cfg.data.image_size,) * 2)
        x = torch.cat(parts) if parts else torch.empty(shape)
        G.write_npz_ranks(args.npz, G.to_uint8(x), seeds, rank, world)
        info["npz"] = str(args.npz)
    if not (args.outdir or args.npz):
        info["out"] = str(G.save_grid(torch.cat(parts), args.out or run.run_dir / "samples.png"))
    G.barrier(world)
    if rank == 0:
        print(json.dumps(info))
    if world > 1:
        torch.distributed.destroy_process_group()
    return 0


# --- evaluate ------------------------------------------------------------------------------------
def evaluate_main(argv=None) -> int:
    from .evaluation import scores
    from .training.checks import check_int
    from .training.presets import preset_names
    from .training.runs import load_run

    ap = _parser("evaluate", "FID, recognisability or NLL (negative ELBO) of a trained run.")
    ap.add_argument("--preset", help=f"one of: {', '.join(preset_names())}")
    ap.add_argument("--run-dir", help="a run folder instead of a preset")
    ap.add_argument("--metric", choices=["fid", "nll", "recog"], required=True)
    ap.add_argument("--n", type=int, default=None,
                    help="samples (fid, recog; default 1000) or held-out images (nll; default all)")
    ap.add_argument("--delta", type=float, default=None,
                    help="sampling noise (default: the config's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="test", choices=["train", "test"],
                    help="nll: which split to evaluate")
    ap.add_argument("--reference", default=None,
                    help="fid: reference data set (default: the run's)")
    ap.add_argument("--ref-split", default=None, choices=["train", "test"],
                    help="fid: reference split (default: train)")
    ap.add_argument("--ref-n", type=int, default=None,
                    help="fid: random subset of the reference set")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-record", action="store_true",
                    help="do not append to <run dir>/scores.jsonl")
    args = ap.parse_args(argv)
    source = _run_source(ap, args)
    for name, lo, optional in (("n", 1, True), ("seed", 0, False), ("ref_n", 1, True),
                               ("batch_size", 1, False)):
        check_int(getattr(args, name), f"--{name.replace('_', '-')}", lo, optional)
    _check_delta_device(args)
    if args.reference is not None:
        from .training.config import DataConfig

        DataConfig(dataset=args.reference)  # a known data set or folder:/absolute/path
    run = load_run(source, device=args.device)
    common = {"delta": args.delta, "seed": args.seed}
    if args.metric == "fid":
        rec = scores.evaluate_fid(run, args.n or 1000, reference=args.reference,
                                  ref_split=args.ref_split, ref_n=args.ref_n,
                                  batch_size=args.batch_size, device=run.process.device, **common)
    elif args.metric == "nll":
        rec = scores.evaluate_nll(run, split=args.split, n=args.n, **common)
    else:
        rec = scores.evaluate_recognisability(run, args.n or 1000, **common)
    if not args.no_record:
        scores.record_score(run, rec)
    print(json.dumps(rec, indent=2, default=str))
    return 0


def _check_delta_device(args) -> None:
    from .training.checks import check_float

    check_float(args.delta, "--delta", 0.0, optional=True)
    _check_device(args.device)


# --- book ----------------------------------------------------------------------------------------
def book_main(argv=None) -> int:
    from .book.pipeline import ChapterFailed, run_pipeline
    from .book.profiles import profile_names
    from .training.checks import check_int, check_new_dir

    ap = _parser("book", "Execute the chapters with papermill and build the HTML book.")
    ap.add_argument("--profile", default="quick", choices=profile_names())
    ap.add_argument("--out", default=None, help="build folder (default: _build/<profile>)")
    ap.add_argument("--figures", default=None, help="figure folder (default: figures/<profile>)")
    ap.add_argument("--chapters", nargs="*", default=None,
                    help="execute only these chapters (toc names)")
    ap.add_argument("--no-html", action="store_true",
                    help="execute the chapters but do not build the HTML")
    ap.add_argument("--timeout", type=int, default=None, help="per-cell time limit in seconds")
    ap.add_argument("--retrain", action="store_true", help="ignore the shipped reference models "
                                                           "in models/ and train every model")
    args = ap.parse_args(argv)
    out = None if args.out is None else check_new_dir(args.out, "--out")
    figures = None if args.figures is None else check_new_dir(args.figures, "--figures")
    check_int(args.timeout, "--timeout", 1, optional=True)
    try:
        stats = run_pipeline(args.profile, out, figures, args.chapters, not args.no_html,
                             args.timeout, retrain=args.retrain)
    except ChapterFailed as err:
        print(f"[pipeline] {err}", file=sys.stderr)
        return 1
    keys = ("profile", "total_seconds", "execute_seconds")
    print(json.dumps({k: stats[k] for k in keys if k in stats}
                     | {"html": stats.get("html"),
                        "chapters": {c["chapter"]: c["seconds"] for c in stats["chapters"]}}))
    return 0


# --- models --------------------------------------------------------------------------------------
def models_main(argv=None) -> int:
    from .evaluation import evaluators
    from .training import shipped
    from .training.checks import check_dir, check_int
    from .training.presets import get_preset

    ap = _parser("models", "List, verify, export or re-card the shipped models and evaluators.")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    sub.add_parser("list", help="the shipped models")
    sub.add_parser("verify", help="check every shipped model and evaluator against its SHA-256")
    ex = sub.add_parser("export", help="ship the EMA weights of a finished run")
    card = sub.add_parser("card", help="rewrite a shipped model's card with the newest scores")
    ev = sub.add_parser("export-evaluators", help="ship the digit classifier and FID features")
    for p in (ex, card):
        p.add_argument("--preset", required=True)
    ex.add_argument("--hardware", required=True, help="what it was trained on, for the model card")
    ex.add_argument("--run-dir", default=None)
    ex.add_argument("--fp16", action="store_true", help="store the weights in half precision")
    card.add_argument("--publish", action="store_true", help="first ship the scores measured here")
    ev.add_argument("--ref-n", type=int, default=1000, help="reference digits of the FID")
    ev.add_argument("--fp32", action="store_true", help="features in float32 (default float16)")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for folder in shipped.list_shipped():
            print(f"{folder.name}  {(folder / shipped.WEIGHTS).stat().st_size / 1e6:.2f} MB")
    elif args.cmd == "verify":
        bad = 0
        for folder in shipped.list_shipped():
            try:
                print(f"ok  {folder.name}  {shipped.verify(folder)[:16]}")
            except shipped.ShippedModelError as err:
                bad += 1
                print(f"BAD {err}", file=sys.stderr)
        for name, err in evaluators.verify_all():
            print(f"ok  evaluators/{name}" if err is None else f"BAD {err}",
                  file=sys.stdout if err is None else sys.stderr)
            bad += err is not None
        return 1 if bad else 0
    elif args.cmd == "export":
        run_dir = None if args.run_dir is None else check_dir(args.run_dir, "--run-dir")
        print(shipped.export(get_preset(args.preset), hardware=args.hardware, run_dir=run_dir,
                             fp16=args.fp16))
    elif args.cmd == "export-evaluators":
        check_int(args.ref_n, "--ref-n", 1)
        _export_evaluators(args.ref_n, args.fp32)
    else:
        if args.publish:
            print("published %s (%d new records)" % shipped.publish_scores(get_preset(args.preset)))
        print(shipped.write_card(get_preset(args.preset)))
    return 0


def _export_evaluators(ref_n: int, fp32: bool) -> None:
    import torch

    from .evaluation import evaluators
    from .evaluation.digits import export_classifier
    from .evaluation.fid import export_reference_features

    dtype = torch.float32 if fp32 else torch.float16
    print(export_classifier())
    # The FID reference of the quick profile, and the whole held-out split (real-digit FID).
    print(export_reference_features("mnist5k", "train", ref_n, seed=0, dtype=dtype))
    print(export_reference_features("mnist5k", "test", None, dtype=dtype))
    print(evaluators.write_card())

# --- dispatch ------------------------------------------------------------------------------------
# The commands of `python -m ihdm_core <command>` and of the console scripts (pyproject.toml).
COMMANDS = {
    "train": (train_main, "train a preset (or resume it); the run is cached by its config"),
    "sample": (sample_main, "draw samples from a trained run: PNGs, an .npz or a grid"),
    "evaluate": (evaluate_main, "FID, recognisability or NLL of a trained run"),
    "book": (book_main, "execute the chapters with papermill and build the HTML book"),
    "models": (models_main, "list, verify, export or re-card the shipped models (models/)"),
}


def main(argv: list[str] | None = None) -> int:
    """``python -m ihdm_core <command> [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        print(f"error: unknown command {argv[0]!r}; known: {', '.join(COMMANDS)}", file=sys.stderr)
        return USAGE_ERROR
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {help}" for name, (_, help) in COMMANDS.items()]
        print("usage: python -m ihdm_core <command> [options]    (<command> --help for its "
              "options)\n\ncommands:\n" + "\n".join(lines),
              file=sys.stderr if not argv else sys.stdout)
        return 0 if argv else USAGE_ERROR
    return run(COMMANDS[argv[0]][0], argv[1:])


def _script(main):
    """A console script of pyproject.toml: ``main`` with the one-line error handling of run."""
    return lambda: run(main)


train, sample, evaluate, book, models = map(_script, (train_main, sample_main, evaluate_main,
                                                      book_main, models_main))
