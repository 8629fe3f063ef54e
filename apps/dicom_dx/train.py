"""Training: cache → epochs with augmentation → per-epoch validation, checkpoint → thresholds → model card.

Loss: binary cross-entropy with logits on six outputs. The five finding outputs are trained on
chest radiographs with known labels only (a NaN label, or a gate negative, contributes nothing);
the frontal-chest output is trained on everything. Operating thresholds are chosen on the
validation set: for each finding the highest threshold reaching the stated sensitivity, and for the
gate the threshold that keeps `gate_sensitivity` of the validation chest radiographs.

Resumable: `checkpoint.safetensors` (model, optimizer, scheduler, epoch, RNG state, history) is
written after every epoch; `--resume` continues from it.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import framework as fw
import framework.nn.functional as F
from apps.dicom_dx import data as D
from apps.dicom_dx.loaders import load_any, split_records
from apps.dicom_dx.metrics import auroc, multilabel_report, operating_threshold
from apps.dicom_dx.model import OUTPUTS, build_model, json_safe, save_model
from apps.dicom_dx.synth import FINDINGS

__all__ = ["ResumeError", "TrainConfig", "train", "masked_bce", "predict_arrays", "choose_thresholds"]
log = logging.getLogger("apps.dicom_dx.train")


@dataclass
class TrainConfig:
    data: str
    out: str
    val: str | None = None
    size: int = 160
    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    sensitivity: float = 0.9
    gate_sensitivity: float = 0.995
    widths: tuple[int, int, int, int] = (16, 24, 48, 96)
    device: str = "cpu"
    workers: int = 2
    resume: bool = False
    max_train: int | None = None  # cap (for smoke tests)
    cache: str | None = None
    extra: dict = field(default_factory=dict)


def _cached(recs, cache_dir: Path, cfg: TrainConfig, progress=None):
    """The cache of these records at cfg.size, built (or rebuilt) unless the folder already holds
    exactly them: a cache built from other data, another split or other labels is never reused."""
    if not D.cache_is_current(cache_dir, cfg.size, recs):
        log.info("decoding %d images once into %s", len(recs), cache_dir)
        D.build_cache(recs, cache_dir, cfg.size, workers=cfg.workers, progress=progress)
    return D.load_cache(cache_dir, cfg.size)


def _split_cache(cfg: TrainConfig, progress=None):
    """(train arrays, val arrays); without --val, a patient-grouped 85/15 split of --data."""
    cache_dir = Path(cfg.cache or Path(cfg.out) / "cache")
    if cfg.val:
        tr, va = load_any(cfg.data), load_any(cfg.val)
        shared = {r.group for r in tr} & {r.group for r in va}
        if shared:  # validation metrics and thresholds would be optimistic: the model saw these patients
            warnings.warn(
                f"{len(shared)} patient(s) are in both the training and the validation data",
                stacklevel=3,
            )
    else:
        tr, va = split_records(load_any(cfg.data), (0.85, 0.15), seed=cfg.seed)
    return _cached(tr, cache_dir / "train", cfg, progress), _cached(va, cache_dir / "val", cfg, progress)


# What a run's trajectory depends on: resuming with other values would not continue that run
# (--epochs may grow: the schedule is rebuilt for it and fast-forwarded).
_TRAJECTORY = ("data", "val", "size", "batch_size", "lr", "weight_decay", "seed", "widths", "max_train")


def _trajectory(cfg: TrainConfig) -> dict:
    out = {}
    for k in _TRAJECTORY:
        v = getattr(cfg, k)
        if k in ("data", "val") and v is not None:
            v = str(Path(v).resolve())
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


class ResumeError(ValueError):
    """A --resume that would not continue the checkpoint's run (other options, fewer epochs)."""


def _check_resume(cfg: TrainConfig, meta: dict) -> None:
    """Refuse a resume that would not continue the checkpoint's run, naming what differs."""
    saved = meta.get("config")
    if saved is not None:  # checkpoints written before this check carry no config
        now = _trajectory(cfg)
        diff = [f"{k} {saved.get(k)!r} -> {now[k]!r}" for k in _TRAJECTORY if saved.get(k) != now[k]]
        if diff:
            raise ResumeError(
                "--resume with other training options than the checkpoint's run: "
                + "; ".join(diff)
                + " (use the run's options, or a new --out)"
            )
    if int(meta["epoch"]) > cfg.epochs:
        raise ResumeError(
            f"--resume: the checkpoint has {meta['epoch']} epochs done, more than --epochs {cfg.epochs}"
        )


def _targets(labels: np.ndarray, chest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(targets, weights), both (N, 6): findings weighted 1 where known on chest images."""
    n = len(labels)
    t = np.zeros((n, len(OUTPUTS)), np.float32)
    w = np.zeros((n, len(OUTPUTS)), np.float32)
    known = ~np.isnan(labels) & (chest[:, None] == 1)
    t[:, : len(FINDINGS)] = np.where(known, labels, 0)
    w[:, : len(FINDINGS)] = known
    t[:, -1] = chest
    w[:, -1] = 1.0
    return t, w


def masked_bce(logits, targets, weights):
    """Σ w·BCE-with-logits / max(Σ w, 1): the mean over the known (weight-1) entries of the batch;
    logits, targets, weights (B, 6) Tensors, weights from `_targets` (0 for unknown labels and for
    the findings of gate negatives, so those entries get no gradient)."""
    total = float(max(float(weights.sum().item()), 1.0))
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weights, reduction="sum") / total


def predict_arrays(model, images_u8: np.ndarray, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Probabilities (N, 6) for cached uint8 images (N, S, S), no augmentation."""
    model.eval()
    out = []
    with fw.no_grad():
        for idx in D.batches(len(images_u8), batch_size):
            x = D.from_u8(images_u8[idx])[:, None]
            logits = model(fw.tensor(x, device=device))
            out.append(1 / (1 + np.exp(-np.asarray(logits.to("cpu").numpy(), np.float64))))
    return np.concatenate(out) if out else np.zeros((0, len(OUTPUTS)))


def _validate(model, val, cfg) -> dict:
    images, labels, chest = val
    p = predict_arrays(model, images, device=cfg.device)
    ch = chest == 1
    aucs = {f: auroc(labels[ch, k], p[ch, k]) for k, f in enumerate(FINDINGS)}
    return {
        "auroc": aucs,
        "macro_auroc": float(np.nanmean(list(aucs.values()))),
        "gate_auroc": auroc(chest.astype(np.float32), p[:, -1]),
        "probs": p,
    }


def choose_thresholds(
    p: np.ndarray, labels: np.ndarray, chest: np.ndarray, sensitivity: float, gate_sensitivity: float
) -> tuple[dict[str, float], float, list[str]]:
    """Per-finding operating thresholds on chest images, and the gate threshold on the
    frontal-chest output (positives = chest radiographs, negatives = the rest).

    A finding (or the gate) without a positive validation case has no threshold at a sensitivity: it
    gets 0.5, with a warning, and its name (or "gate") is in the third value returned, which the
    model card records as ``thresholds_defaulted``."""
    ch = chest == 1
    thresholds, defaulted = {}, []
    for k, f in enumerate(FINDINGS):
        if (labels[ch, k] == 1).any():
            thresholds[f] = operating_threshold(labels[ch, k], p[ch, k], sensitivity)
        else:
            thresholds[f] = 0.5
            defaulted.append(f)
    gate_thr = 0.5
    if ch.any():
        gate_thr = operating_threshold(ch.astype(np.float32), p[:, -1], gate_sensitivity)
    else:
        defaulted.append("gate")
    if defaulted:
        warnings.warn(
            f"no positive validation case for {', '.join(defaulted)}: threshold 0.5, not chosen at the "
            "stated sensitivity (the model card lists it under thresholds_defaulted)",
            stacklevel=2,
        )
    return thresholds, float(gate_thr), defaulted


def train(cfg: TrainConfig, progress=None) -> dict:
    """Train and write model.safetensors + model_card.json into cfg.out; returns the card."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    (tr_x, tr_y, tr_c), val = _split_cache(cfg)
    if cfg.max_train:
        tr_x, tr_y, tr_c = tr_x[: cfg.max_train], tr_y[: cfg.max_train], tr_c[: cfg.max_train]
    targets, weights = _targets(tr_y, tr_c)
    if not (tr_c == 0).any():  # e.g. NIH, RSNA or CheXpert alone: chest radiographs only
        warnings.warn(
            "the training data has no gate negatives (other anatomy or modalities): the frontal-chest "
            "output cannot learn to reject anything, so the image check of the input gate will accept "
            "every image; add negatives (python -m apps.dicom_dx synth --n 0 --negatives N)",
            stacklevel=2,
        )
    log.info("train %d images (%d chest), val %d images", len(tr_x), int(tr_c.sum()), len(val[0]))
    fw.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model({"widths": list(cfg.widths)})
    model.to(cfg.device)
    opt = fw.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(tr_x) / cfg.batch_size)))
    sched = fw.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    history: list[dict] = []
    start_epoch = 0
    seconds_before = 0.0  # wall time of the interrupted runs this one continues
    ckpt = out / "checkpoint.safetensors"
    if cfg.resume and ckpt.exists():
        state = fw.load(str(ckpt))
        _check_resume(cfg, json.loads(state["meta"]))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        meta_epoch = int(json.loads(state["meta"])["epoch"])
        # Rebuild the schedule for the (possibly changed) number of epochs and fast-forward it, rather
        # than loading a state whose total step count may be smaller than this run's.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(meta_epoch * steps_per_epoch):
                sched.step()
        meta = json.loads(state["meta"])
        start_epoch, history = int(meta["epoch"]), meta["history"]
        seconds_before = float(meta.get("seconds", sum(h["seconds"] for h in history)))
        # The generator that shuffles and augments continues where the interrupted run left it, so
        # that a resumed run is the run it continues (reseeding started another trajectory).
        if "rng" in meta:
            rng.bit_generator.state = meta["rng"]
        else:  # a checkpoint written before the state was kept
            rng = np.random.default_rng(cfg.seed + 1000 * start_epoch)
        log.info("resumed from epoch %d", start_epoch)
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        te = time.time()
        losses = []
        it = D.batches(len(tr_x), cfg.batch_size, rng)
        bar = (
            tqdm(
                it,
                total=steps_per_epoch,
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                file=sys.stderr,
                disable=tqdm is None or not sys.stderr.isatty(),
            )
            if tqdm
            else it
        )
        for idx in bar:
            x = D.standardize(D.augment(tr_x[idx], rng))[:, None]
            t = fw.tensor(targets[idx], device=cfg.device)
            w = fw.tensor(weights[idx], device=cfg.device)
            logits = model(fw.tensor(x, device=cfg.device))
            loss = masked_bce(logits, t, w)
            loss_value = float(loss.item())
            if not np.isfinite(loss_value):  # before the step: NaN weights are never written
                raise FloatingPointError(
                    f"training diverged: non-finite loss at epoch {epoch + 1}, step {len(losses) + 1} "
                    f"(try a lower --lr than {cfg.lr}); the checkpoint keeps epoch {epoch}"
                )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss_value)
            if tqdm and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        v = _validate(model, val, cfg)
        rec = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "val_macro_auroc": v["macro_auroc"],
            "val_auroc": v["auroc"],
            "val_gate_auroc": v["gate_auroc"],
            "seconds": round(time.time() - te, 1),
        }
        history.append(rec)
        log.info(
            "epoch %d/%d loss %.4f val macro AUROC %.4f gate AUROC %.4f (%s) %.0fs",
            epoch + 1,
            cfg.epochs,
            rec["loss"],
            rec["val_macro_auroc"],
            rec["val_gate_auroc"],
            " ".join(f"{k}={a:.3f}" for k, a in v["auroc"].items()),
            rec["seconds"],
        )
        fw.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "meta": json.dumps(
                    json_safe(
                        {
                            "epoch": epoch + 1,
                            "history": history,
                            "rng": rng.bit_generator.state,
                            "config": _trajectory(cfg),
                            "seconds": seconds_before + time.time() - t0,
                        }
                    ),
                    allow_nan=False,
                ),
            },
            str(ckpt),
        )
        if progress is not None:
            progress(epoch + 1, cfg.epochs, rec)
    # Operating points on the validation set.
    v = _validate(model, val, cfg)
    images, labels, chest = val
    p = v["probs"]
    ch = chest == 1
    thresholds, gate_thr, defaulted = choose_thresholds(
        p, labels, chest, cfg.sensitivity, cfg.gate_sensitivity
    )
    report = multilabel_report(labels[ch], p[ch, : len(FINDINGS)], list(FINDINGS), thresholds)
    gate_val = {
        "threshold": gate_thr,
        "chest_rejected": float((p[ch, -1] < gate_thr).mean()) if ch.any() else None,
        "negatives_rejected": float((p[~ch, -1] < gate_thr).mean()) if (~ch).any() else None,
        "n_chest": int(ch.sum()),
        "n_negatives": int((~ch).sum()),
    }
    card = {
        "name": "dicom_dx chest radiograph classifier",
        "version": time.strftime("%Y%m%d-%H%M%S", time.gmtime()),
        "outputs": list(OUTPUTS),
        "findings": list(FINDINGS),
        "architecture": {
            "type": "ChestNet (compact ResNet)",
            "widths": list(cfg.widths),
            "dropout": 0.0,
            "parameters": int(sum(int(np.prod(q.shape)) for q in model.parameters())),
        },
        "preprocessing": {
            "input": "DICOM display pipeline (Modality LUT, VOI, MONOCHROME1 inverted) → gray [0,1]",
            "resize": f"area interpolation to {cfg.size}x{cfg.size} (aspect not kept)",
            "quantise": "rounded to 8 bits (the training cache's uint8; inference rounds alike)",
            "normalise": "per-image zero mean, unit variance",
            "size": cfg.size,
        },
        "thresholds": thresholds,
        "thresholds_defaulted": defaulted,
        "threshold_rule": f"max specificity with sensitivity ≥ {cfg.sensitivity} on validation, "
        "set midway to the next lower negative score (metrics.operating_threshold)",
        "gate": {
            "threshold": gate_thr,
            "rule": "metrics.operating_threshold on the frontal-chest output at sensitivity "
            f"{cfg.gate_sensitivity}"
            " (validation chest radiographs against negatives)",
            "validation": gate_val,
        },
        "validation": {"macro_auroc": report["macro_auroc"], "findings": report["findings"]},
        "history": history,
        "data": {
            "train": cfg.data,
            "val": cfg.val or "85/15 split of train by patient",
            "n_train": int(len(tr_x)),
            "n_val": int(len(images)),
            **cfg.extra,
        },
        "training": {
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "weight_decay": cfg.weight_decay,
            "optimizer": "AdamW + OneCycleLR",
            "seed": cfg.seed,
            "augmentation": D.AUGMENTATION,
            "loss": "masked BCE with logits",
            "device": cfg.device,
            "seconds": round(seconds_before + time.time() - t0, 1),  # all runs of a resumed training
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(),
        },
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("extra",)},
    }
    card = json_safe(card)  # what the caller gets is what the file holds
    save_model(model, card, out / "model.safetensors", out / "model_card.json")
    return card
