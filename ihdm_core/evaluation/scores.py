"""Evaluate a trained run: FID (clean-fid, offline), negative ELBO in bits/dim, digit
recognisability.

    python -m ihdm_core evaluate --preset mnist-quick --metric fid --n 1000
    python -m ihdm_core evaluate --preset mnist-quick --metric nll
    python -m ihdm_core evaluate --preset mnist-quick --metric recog --n 1000

Every score is returned (and printed, and appended to ``<run dir>/scores.jsonl``) as one
record with what it needs to be read: the metric and value, the number of samples, the
reference set, the seed, the sampling noise delta, the run (config name, identity, step,
checkpoint) and the time taken.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from ..model.images import to_float
from ..training.data import load_dataset
from ..training.paths import relative_path
__all__ = ["REFERENCE_SPLIT", "sample_stream", "run_identity", "evaluate_fid", "evaluate_nll",
           "nll_indices", "evaluate_recognisability",
           "evaluate_explosions", "sampling_steps", "step_sweep", "high_frequency_rms",
           "record_score", "read_scores",
           "score", "draw_samples", "sweep_rows", "option_rows", "min_step_ratio",
           "high_frequency_trace"]

# The FID reference is the training split of the run's own data set (App. B.3: the training set
# for CIFAR-10 and LSUN, the whole data set for FFHQ and AFHQ, whose folders are used whole;
# MNIST: its training split).
REFERENCE_SPLIT = "train"


class _Clock:
    def __init__(self):
        self.seconds = 0.0


def sample_stream(run, n: int, *, delta: float | None = None, seed: int = 0, batch_size: int = 50,
                  images=None, clock: _Clock | None = None, clamp: bool = True):
    """Yield exactly ``n`` samples in [0, 1] (``clamp=False``: as the chains ended), in batches of
    at most ``batch_size``: those of the per-image seeds
    :func:`ihdm_core.training.generate.seed_range` (seed, n), so a set is the same whatever the
    batch size, and equal to ``generate(run, n, seed=seed)``.
    """
    from ..training.generate import iter_sample_seeds, seed_range

    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    images = load_dataset(run.cfg.data) if images is None and run.process.data_prior else images
    t0 = time.perf_counter()
    for _, x in iter_sample_seeds(run, seed_range(seed, n), batch_size=batch_size, delta=delta,
                                  images=images, clamp=clamp):
        if clock is not None:
            clock.seconds += time.perf_counter() - t0
        yield x
        t0 = time.perf_counter()


def run_identity(run) -> dict:
    ckpt = Path(run.run_dir) / "checkpoint.pt"
    return {"config": run.cfg.name, "identity": run.cfg.identity(), "step": run.step,
            "run_dir": relative_path(run.run_dir),
            "checkpoint": relative_path(ckpt) if ckpt.exists() else None,
            "source": getattr(run, "source", "trained")}


def _sampler(run) -> dict:
    """Sampler settings that change samples without changing the trained run: for the diffusions,
    x_hat clipping, and for continuous-time ones the number of steps, the time grid and the DCT
    clamp."""
    proc = run.process
    clip = getattr(proc, "clip_denoised", None)
    out = {} if clip is None else {"clip_denoised": bool(clip)}
    # ihdm_core.training.generate.seed_range; earlier scores drew one stream per batch
    out["seeding"] = "per-image"
    if getattr(proc, "continuous", False):
        uniform = torch.allclose(proc.times.cpu(),
                                 torch.arange(proc.K + 1, dtype=torch.float64) / proc.K)
        out["steps"] = int(proc.K)
        # a grid is named by its times (rounded: a checksum that survives float noise)
        if not uniform:
            out["grid"] = [round(float(t), 6) for t in proc.times[1:6].cpu()]
    if getattr(proc, "dct_range", None) is not None:
        out["clamp_dct"] = True
    return out


def _delta(run, delta):
    if delta is None and not run.process.data_prior:
        return None  # a diffusion, whose step noise is its schedule's
    return float(run.process.delta if delta is None else delta)


# One memoised draw, so that FID and recognisability of the same (run, n, delta, seed) in one
# session sample once. Only sets of up to _MEMO_ELEMENTS values are kept (paper-scale FID streams).
_MEMO_ELEMENTS = 50_000_000
_memo: dict = {}


def draw_samples(run, n: int, *, delta: float | None = None, seed: int = 0, batch_size: int = 50,
                 clock: _Clock | None = None, clamp: bool = True) -> torch.Tensor:
    """``n`` samples from :func:`sample_stream` (same seed, same samples), memoised and shared on
    disk (:mod:`~ihdm_core.evaluation.samplesets`); in [0, 1], or as the chains ended
    (``clamp=False``, to see how far a chain left the data range)."""
    from . import samplesets

    key = (str(run.run_dir), run.step, run.cfg.identity(), n, _delta(run, delta), seed, batch_size,
           json.dumps(_sampler(run)))
    if _memo.get("key") == key:
        return _memo["x01" if clamp else "x"]
    # Shared with other chapters (processes) through <run dir>/samples/: drawn once per set.
    set_key = samplesets.set_key(run, _delta(run, delta), _sampler(run))
    x = samplesets.load_set(run, set_key, seed, n)
    drawn = x is None
    head = samplesets.largest_below(run, set_key, seed, n) if drawn else None
    if drawn and head is not None:
        # Seed i's sample does not depend on the others': draw only the seeds the head lacks.
        from ..training.generate import iter_sample_seeds, seed_range

        t0 = time.perf_counter()
        images = load_dataset(run.cfg.data) if run.process.data_prior else None
        tail = [t for _, t in iter_sample_seeds(run, list(seed_range(seed, n))[len(head):],
                                                batch_size=batch_size, delta=delta, images=images,
                                                clamp=False)]
        x = torch.cat([head, *tail])
        if clock is not None:
            clock.seconds += time.perf_counter() - t0
    elif drawn:
        x = torch.cat(list(sample_stream(run, n, delta=delta, seed=seed, batch_size=batch_size,
                                         clock=clock, clamp=False)))
    if drawn:
        samplesets.draws["count"] += 1
        samplesets.store_set(run, set_key, seed, x)
    x01 = x.clamp(0, 1)
    if x.numel() <= _MEMO_ELEMENTS:
        _memo.update(key=key, x=x, x01=x01)
    return x01 if clamp else x


def high_frequency_rms(x: torch.Tensor) -> torch.Tensor:
    """Per image, the RMS of the highest DCT frequencies (i + j >= H) of ``2 x - 1``: where a
    Blurring Diffusion chain that leaves the data explodes first, and where data have little
    energy."""
    from ..model.heat import dct2

    h, w = x.shape[-2:]
    i, j = torch.arange(h)[:, None], torch.arange(w)[None]
    high = ((i + j) >= max(h, w)).to(x.device)
    c = dct2(2 * x.double() - 1)
    return c[..., high].pow(2).mean(dim=(-1, -2)).sqrt()


def evaluate_explosions(run, n: int = 1000, *, delta: float | None = None, seed: int = 0,
                        batch_size: int = 50, factor: float = 10.0, progress: bool = True) -> dict:
    """How many of ``n`` sampling chains exploded: final states (unclamped) whose high-frequency RMS
    exceeds ``factor`` times the training data's mean high-frequency RMS. Same draw as the
    recognisability and FID of the same (run, n, seed)."""
    t0 = time.perf_counter()
    data = load_dataset(run.cfg.data)
    if not isinstance(data, torch.Tensor):
        data = torch.stack([data[i] for i in range(min(2000, len(data)))])
    data = data[:2000]
    ref = float(high_frequency_rms(to_float(data)).mean())
    clock = _Clock()
    x = draw_samples(run, n, delta=delta, seed=seed, batch_size=batch_size, clock=clock,
                     clamp=False)
    rms = high_frequency_rms(x.cpu())
    count = int((rms > factor * ref).sum())
    return {"metric": "explosions", "value": count, "n_samples": n, "factor": factor,
            "reference": f"{run.cfg.data.dataset} high-frequency RMS {ref:.4g} (mean of "
            f"{len(data)} training images)",
            "details": {"max_ratio": float(rms.max() / ref),
                        "median_ratio": float(rms.median() / ref)},
            "seed": seed, "delta": _delta(run, delta), "run": run_identity(run),
            "time_s": {"total": time.perf_counter() - t0, "sampling": clock.seconds}}


def evaluate_fid(run, n: int = 1000, *, delta: float | None = None, seed: int = 0,
                 reference: str | None = None,
                 ref_split: str | None = None, ref_n: int | None = None, batch_size: int = 50,
                 device="cpu", progress: bool = True) -> dict:
    """FID of ``n`` samples against the reference statistics of the run's data set (clean mode)."""
    from .inception import feature_extractor, inception_features
    from .fid import fid_from_features, reference_stats

    ds, split = reference or run.cfg.data.dataset, ref_split or REFERENCE_SPLIT
    t0 = time.perf_counter()
    extractor = feature_extractor(device)
    ref = reference_stats(ds, split, ref_n, device=device, progress=progress)
    t_ref = time.perf_counter() - t0
    clock = _Clock()
    t1 = time.perf_counter()
    shape = (run.cfg.data.channels, run.cfg.data.image_size, run.cfg.data.image_size)
    if n * math.prod(shape) <= _MEMO_ELEMENTS:
        source = draw_samples(run, n, delta=delta, seed=seed, batch_size=batch_size, clock=clock)
    else:
        source = sample_stream(run, n, delta=delta, seed=seed, batch_size=batch_size, clock=clock)
    feats = inception_features(source, n, batch_size=batch_size, device=device, extractor=extractor,
                               progress=progress)
    t_feat = time.perf_counter() - t1
    value = fid_from_features(feats, ref)
    return {
        "metric": "fid", "value": value, "n_samples": n, "mode": "clean",
        "reference": ref.meta.get("reference"), "reference_n": ref.n, "seed": seed,
        "delta": _delta(run, delta),
        "sampler_batch_size": batch_size, "inception": extractor.provenance,
        "run": run_identity(run),
        "time_s": {"total": time.perf_counter() - t0, "reference_stats": t_ref,
                   "sampling": clock.seconds, "inception": t_feat - clock.seconds},
    }


def nll_indices(n_images: int, n: int | None, seed: int = 0) -> torch.Tensor:
    """Which of ``n_images`` held-out images :func:`evaluate_nll` scores for ``n`` and ``seed``,
    sorted."""
    if n is None or n >= n_images:
        return torch.arange(n_images)
    return torch.randperm(n_images, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def evaluate_nll(run, *, split: str = "test", n: int | None = None, delta: float | None = None,
                 seed: int = 0, batch_size: int = 250, progress: bool = True) -> dict:
    """Negative ELBO (App. A.2-A.3) of held-out images in bits/dim, KDE prior on the training
    images."""
    from ..model.likelihood import negative_elbo

    images = load_dataset(run.cfg.data.dataset, split=split)
    if n is not None and n < len(images):
        idx = nll_indices(len(images), n, seed)
        images = (images[idx] if isinstance(images, torch.Tensor)
                  else torch.utils.data.Subset(images, idx.tolist()))
    train_images = load_dataset(run.cfg.data)
    res = negative_elbo(run.net, run.process, images, train_images, delta=delta,
                        batch_size=batch_size, seed=seed, progress=progress)
    res.pop("per_image_terms")
    res.pop("per_image_bits_per_dim")
    return {"metric": "nll", "value": res["bits_per_dim"], "unit": "bits/dim (upper bound)",
            "n_samples": res["n_images"], "reference": f"{run.cfg.data.dataset} {split}",
            "seed": seed, "delta": res["delta"], "run": run_identity(run),
            "time_s": {"total": res["time_s"]}, "details": res}


def evaluate_recognisability(run, n: int = 1000, *, delta: float | None = None, seed: int = 0,
                             batch_size: int = 50, threshold: float = 0.9,
                             progress: bool = True) -> dict:
    """Share of ``n`` samples that the mnist5k digit CNN classifies with confidence >= threshold."""
    from .digits import digit_classifier, recognisability

    if run.cfg.data.channels != 1 or run.cfg.data.image_size != 28:
        raise ValueError("recognisability is defined for 28 x 28 grayscale digits (MNIST-like "
                         "runs)")
    t0 = time.perf_counter()
    clf = digit_classifier(progress=progress)
    clock = _Clock()
    x = draw_samples(run, n, delta=delta, seed=seed, batch_size=batch_size, clock=clock)
    res = recognisability(x, threshold=threshold, classifier=clf)
    return {"metric": "recognisability", "value": res["share_confident"], "n_samples": n,
            "reference": "mnist5k digit CNN (train 4500, test accuracy "
                         f"{res['classifier_test_accuracy']:.4f})",
            "seed": seed, "delta": _delta(run, delta), "run": run_identity(run),
            "time_s": {"total": time.perf_counter() - t0, "sampling": clock.seconds},
            "details": res}


def _scores_path(run) -> Path:
    return Path(run.run_dir) / "scores.jsonl"


def record_score(run, record: dict) -> Path:
    """Append a score record to ``<run dir>/scores.jsonl``."""
    path = _scores_path(run)
    with open(path, "a") as fh:
        fh.write(json.dumps(dict(record,
                                 recorded=record.get("recorded")
                                 or time.strftime("%Y-%m-%dT%H:%M:%S")),
                            default=str) + "\n")
    return path


def read_scores(run) -> list[dict]:
    """Scores recorded for ``run``: for a shipped model, first those measured when its weights were
    shipped (``models/<run>/scores.jsonl``), then those measured here."""
    paths = [_scores_path(run)]
    if getattr(run, "source", "trained") == "shipped":
        from ..training.shipped import shipped_dir

        paths.insert(0, shipped_dir(run.cfg) / "scores.jsonl")
    return [json.loads(line) for path in paths if path.exists()
            for line in path.read_text().splitlines() if line.strip()]


# The evaluators score() dispatches to, each with the arguments that name a measurement and their
# defaults: a record is reused when its key (these, as called) matches. progress and device
# change how, not what, so they are never part of a key.
_EVALUATORS = {
    "fid": (evaluate_fid, {"n": 1000, "delta": None, "seed": 0, "reference": None,
                           "ref_split": None, "ref_n": None, "batch_size": 50}),
    "nll": (evaluate_nll, {"split": "test", "n": None, "delta": None, "seed": 0,
                           "batch_size": 250}),
    "recognisability": (evaluate_recognisability, {"n": 1000, "delta": None, "seed": 0,
                                                   "batch_size": 50, "threshold": 0.9}),
    "explosions": (evaluate_explosions, {"n": 1000, "delta": None, "seed": 0, "batch_size": 50,
                                         "factor": 10.0}),
}
_NOT_KEY = {"progress", "device"}


def score(run, metric: str, *, recompute: bool = False, **kwargs) -> dict:
    """A score of ``run``, taken from ``<run dir>/scores.jsonl`` when one was recorded with the
    same arguments and checkpoint, otherwise computed with ``evaluate_<metric>`` and recorded.

    Chapters share scores this way (the same FID is not recomputed by every chapter that shows
    it). ``kwargs`` are the evaluator's (n, delta, seed, ...); the delta is resolved to the
    run's own when not given, so the key names exactly what was measured.
    """
    if metric not in _EVALUATORS:
        raise ValueError(f"metric must be one of {sorted(_EVALUATORS)}, got {metric!r}")
    fn, defaults = _EVALUATORS[metric]
    unknown = set(kwargs) - set(defaults) - _NOT_KEY
    if unknown:
        raise TypeError(f"{fn.__name__} takes no {sorted(unknown)}")
    if not run.process.data_prior:
        kwargs.pop("delta", None)  # a diffusion: its step noise is fixed by the schedule
    key = dict(defaults, **{k: v for k, v in kwargs.items() if k not in _NOT_KEY})
    if "delta" in defaults:
        key["delta"] = _delta(run, key.get("delta"))
    if metric != "nll" and _sampler(run):
        key["sampler"] = _sampler(run)  # samples of an unclipped diffusion are another measurement
    ident = run_identity(run)
    if not recompute:
        for rec in reversed(read_scores(run)):
            if (rec.get("metric") == metric and rec.get("key") == key
                and rec["run"].get("identity") == ident["identity"]
                    and rec["run"].get("step") == ident["step"]):
                return rec
    rec = fn(run, **kwargs)
    rec["key"] = key
    rec["recorded"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    record_score(run, rec)
    return rec


def sampling_steps(run, sweep, n_default: int) -> list[tuple[int, int]]:
    """(T, n) pairs to score ``run`` at: ``sweep`` for a continuous-time diffusion, which samples on
    any number of steps; its own K (with ``n_default`` samples) for everything else."""
    if getattr(run.process, "continuous", False):
        return [(int(T), int(n)) for T, n in sweep]
    return [(run.process.K, int(n_default))]


def step_sweep(run, sweep, *, n_default: int, seed: int = 0, fid_ref_n: int | None = None,
               metrics=("recognisability", "fid", "explosions"), **options) -> list[dict]:
    """Score ``run`` at every (T, n) of :func:`sampling_steps` (sampling ``options`` such as
    ``grid`` or ``clamp_dct`` applied); one record per T with the score records by metric. Scores
    are cached per run like every :func:`score`, so chapters and scripts share them."""
    out = []
    for T, n in sampling_steps(run, sweep, n_default):
        r = run if (T == run.process.K and not options) else run.sampled_with(
            steps=T if getattr(run.process, "continuous", False) else None, **options)
        rec = {"steps": T, "samples": n, "run": r}
        for metric in metrics:
            extra = {"ref_n": fid_ref_n} if metric == "fid" else {}
            rec[metric] = score(r, metric, n=n, seed=seed, **extra)
        out.append(rec)
    return out


# --- tables of chapter 9 (the three processes at equal budget)
# ---------------------------------------

def sweep_rows(name: str, recs: list[dict], train_minutes: float) -> list[dict]:
    """One table row per :func:`step_sweep` record (all three metrics) of the process ``name``: its
    training cost, the sampling cost (network evaluations per sample) and the scores."""
    return [{"process": name, "config": rec["run"].cfg.name, "training steps": rec["run"].step,
             "train time (min)": round(train_minutes, 1), "network evals / sample": rec["steps"],
             "samples": rec["samples"], "recognisability": rec["recognisability"]["value"],
             "FID": rec["fid"]["value"],
             "exploded chains": f"{rec['explosions']['value']} of {rec['samples']}"}
            for rec in recs]


def option_rows(option: str, recs: list[dict]) -> list[dict]:
    """One table row per :func:`step_sweep` record scored for recognisability and explosions, for
    the sampling or training ``option`` it was run with."""
    return [{"model": rec["run"].cfg.name, "option": option, "steps": rec["steps"],
             "samples": rec["samples"],
             "recognisability": rec["recognisability"]["value"],
             "exploded chains": rec["explosions"]["value"]}
            for rec in recs]


def min_step_ratio(run, steps: int, **options) -> float:
    """The smallest per-frequency step ratio alpha_t / alpha_s over all steps of ``run`` sampled on
    ``steps`` steps (with sampling ``options`` such as ``grid="edge"``)."""
    return float(run.sampled_with(steps=steps, **options).process.step_ratios().min())


def high_frequency_trace(run, n: int, *, seed: int = 0):
    """Sample ``n`` chains and return (t_k, high-frequency RMS of each chain's state (n, L),
    sigma_t)
    at the levels k = 1..K: :func:`high_frequency_rms` of every state the sampler passes, against
    the noise level the forward process gives the same frequencies (data have almost no energy
    there). The prior draw uses ``seed``, the step noise ``seed + 1``."""
    from ..model.sampling import sample

    proc, trace = run.process, {}
    z_K = proc.prior_sample(n, None, generator=torch.Generator().manual_seed(seed))
    sample(run.net, proc, z_K, generator=torch.Generator(device=proc.device).manual_seed(seed + 1),
           callback=lambda s: trace.__setitem__(s["k"],
                                                high_frequency_rms(proc.to_data(s["x"])).cpu()))
    ks = sorted(k for k in trace if k > 0)
    return proc.times.cpu()[ks], torch.stack([trace[k] for k in ks], 1), proc.sigma.cpu()[ks]
