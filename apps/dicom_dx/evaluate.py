"""Evaluation of a model on a labelled data set, through the same decode → gate → model path as
`analyze` (so what is measured is what users get).

Findings: AUROC per finding and macro, sensitivity/specificity and confusion matrices at the
model card's thresholds, expected calibration error and a reliability diagram PNG; computed on the
frontal chest radiographs of the set. Gate: share of chest radiographs rejected and of negatives
rejected, overall, per kind and per metadata condition (true / missing / wrong attributes).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from apps.dicom_dx.analyze import _decode_job
from apps.dicom_dx.data import process_pool
from apps.dicom_dx.deid import pseudonym_key
from apps.dicom_dx.inference import Predictor, load_default_model
from apps.dicom_dx.loaders import load_any
from apps.dicom_dx.metrics import multilabel_report, reliability_bins, reliability_png
from apps.dicom_dx.synth import FINDINGS

__all__ = ["evaluate"]
log = logging.getLogger("apps.dicom_dx.evaluate")


def evaluate(
    data: str | os.PathLike,
    predictor: Predictor | None = None,
    *,
    out_json: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    workers: int = 2,
    batch_size: int = 32,
    limit: int | None = None,
    progress=None,
) -> dict:
    """Evaluate on a data set folder (any layout `loaders.load_any` knows). Returns the report
    dict (also written to out_json when given)."""
    t0 = time.perf_counter()
    pred = predictor or load_default_model()
    records = load_any(data)
    if limit:
        records = records[:limit]
    key = pseudonym_key()
    jobs = [(str(r.path), pred.size, pred.gate_config, key, False) for r in records]
    ex = process_pool(workers) if workers > 0 else None
    results = ex.map(_decode_job, *zip(*jobs), chunksize=8) if ex else (_decode_job(*j) for j in jobs)
    n = len(records)
    probs = np.full((n, len(FINDINGS) + 1), np.nan)
    status = np.empty(n, object)
    reasons: list[str] = [""] * n
    buf: list[int] = []
    xs: list[np.ndarray] = []

    def flush():
        if buf:
            probs[buf] = pred.probabilities(np.stack(xs))
            buf.clear()
            xs.clear()

    try:
        for i, res in enumerate(results):
            status[i] = res["status"]
            reasons[i] = res.get("gate_reason") or res.get("error_reason") or ""
            if res["status"] == "pending":
                buf.append(i)
                xs.append(res["x"])
                if len(buf) >= batch_size:
                    flush()
            if progress is not None:
                progress(i + 1, n)
        flush()
    finally:
        if ex:
            ex.shutdown()
    thr_gate = pred.gate_config.image_threshold
    accepted = np.array([s == "pending" for s in status]) & (np.nan_to_num(probs[:, -1], nan=-1) >= thr_gate)
    chest = np.array([r.frontal_chest == 1 for r in records])
    labels = np.stack([r.labels for r in records]) if records else np.zeros((0, len(FINDINGS)))
    # An image whose model output is not finite is neither scored nor silently dropped: counted.
    finite = np.isfinite(probs[:, : len(FINDINGS)]).all(axis=1)
    nonfinite = np.array([s == "pending" for s in status], bool) & ~finite
    if nonfinite.any():
        log.warning("%d decoded images gave a non-finite model output; left out of the metrics",
                    int(nonfinite.sum()))  # fmt: skip
    scored = chest & finite
    report = multilabel_report(
        labels[scored], probs[scored, : len(FINDINGS)], list(FINDINGS), pred.thresholds
    )
    curves = {f: reliability_bins(labels[scored, k], probs[scored, k]) for k, f in enumerate(FINDINGS)}
    if plot:
        reliability_png(plot, curves)
    # Findings as users see them: only accepted chest images get findings.
    acc_chest = chest & accepted
    gate: dict = {
        "threshold": thr_gate,
        "n_chest": int(chest.sum()),
        "n_negatives": int((~chest).sum()),
        "chest_rejected": float((~accepted[chest]).mean()) if chest.any() else None,
        "negatives_rejected": float((~accepted[~chest]).mean()) if (~chest).any() else None,
        "by_kind": {},
        "by_metadata": {},
    }
    for r, a in zip(records, accepted):
        if r.frontal_chest:
            continue
        kind, meta = r.extra.get("kind", "other"), r.extra.get("metadata", "true")
        for grp, k in (("by_kind", kind), ("by_metadata", meta)):
            d = gate[grp].setdefault(k, [0, 0])
            d[0] += int(not a)
            d[1] += 1
    for grp in ("by_kind", "by_metadata"):
        gate[grp] = {k: {"rejected": v[0] / v[1], "n": v[1]} for k, v in gate[grp].items()}
    errors = {}
    for s, why in zip(status, reasons):
        if s == "error":
            errors[why] = errors.get(why, 0) + 1
    out = {
        "data": str(data),
        "model_version": pred.version,
        "n": n,
        "n_scored_chest": int(scored.sum()),
        "n_nonfinite_outputs": int(nonfinite.sum()),
        "macro_auroc": report["macro_auroc"],
        "findings": report["findings"],
        "reliability": {
            f: {"mean_predicted": c[1].tolist(), "observed": c[2].tolist(), "count": c[3].tolist()}
            for f, c in curves.items()
        },
        "gate": gate,
        "accepted_chest_with_findings": int(acc_chest.sum()),
        "errors": errors,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        # Strict JSON (RFC 8259 has no NaN): an undefined metric (one class only) is written as null.
        Path(out_json).write_text(json.dumps(json_safe(out), indent=1, allow_nan=False))
    return out


def json_safe(o):
    if isinstance(o, dict):
        return {k: json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o
