"""Small presentation helpers without Streamlit: image overlays, windowing for the viewer, and turning
the apps' result objects into table rows.

The apps return dataclasses or dicts; ``field`` reads either, so the pages don't depend on which.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np

PHI_MASK = "•••• (hidden)"


def field(obj: Any, *names: str, default: Any = None) -> Any:
    """The first of ``names`` present on ``obj`` (attribute or mapping key), else ``default``."""
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if not isinstance(obj, dict) and hasattr(obj, name):
            return getattr(obj, name)
    return default


def as_dict(obj: Any) -> dict:
    if isinstance(obj, dict):
        return dict(obj)
    if is_dataclass(obj):
        return asdict(obj)
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")} if hasattr(obj, "__dict__") else {}


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float in [0, 1] (H, W) or (H, W, 3) → uint8 for ``st.image``."""
    return (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def window_image(values: np.ndarray, center: float, width: float, photometric: str,
                 mask: np.ndarray | None = None, apply_window=None) -> np.ndarray:
    """Re-window modality values for the viewer: VOI (LINEAR, PS3.3 C.11.2.1.2) then MONOCHROME1
    inversion *after* VOI (C.7.6.3.1.2), padding black. ``apply_window(values, Window)`` is the app's
    implementation when given; the fallback is the same LINEAR formula. Returns float32 in [0, 1]."""
    width = max(float(width), 1.0)
    if apply_window is not None:
        out = apply_window(values, center, width)
    else:
        c, w = center - 0.5, width - 1.0
        x = values.astype(np.float64, copy=False)
        out = np.clip((x - c) / max(w, 1e-9) + 0.5, 0.0, 1.0) if w > 0 else (x > c).astype(np.float64)
    if photometric.strip().upper() == "MONOCHROME1":
        out = 1.0 - out
    if mask is not None:
        out = np.where(mask, 0.0, out)
    return np.asarray(out, np.float32)


def _colormap(h: np.ndarray) -> np.ndarray:
    """A perceptually ordered blue→cyan→yellow→red map of ``h`` in [0, 1] → (…, 3) float in [0, 1]."""
    stops = np.array([0.0, 0.35, 0.65, 1.0])
    colours = np.array([[0.05, 0.1, 0.6], [0.0, 0.8, 0.9], [1.0, 0.9, 0.1], [0.9, 0.05, 0.05]])
    return np.stack([np.interp(h, stops, colours[:, c]) for c in range(3)], -1)


def overlay(gray: np.ndarray, heat: np.ndarray, opacity: float) -> np.ndarray:
    """Blend a heatmap over a grayscale (or RGB) image. ``gray`` float (H, W[, 3]) in [0, 1]; ``heat``
    (h, w) in [0, 1], resized to (H, W) if needed; returns uint8 (H, W, 3). Transparency grows where
    the heatmap is weak so the anatomy stays readable."""
    base = gray if gray.ndim == 3 else np.repeat(gray[..., None], 3, -1)
    heat = np.asarray(heat, np.float32)
    if heat.shape != base.shape[:2]:
        import cv2

        heat = cv2.resize(heat, (base.shape[1], base.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat = np.clip(np.nan_to_num(heat), 0.0, 1.0)
    a = (opacity * np.clip(heat * 1.5, 0.0, 1.0))[..., None]
    return to_uint8((1 - a) * base[..., :3] + a * _colormap(heat))


def thumbnail(image: np.ndarray, max_side: int = 1024) -> np.ndarray:
    """Downscale (area interpolation) so the longest side is at most ``max_side``: a 3000-px radiograph
    is 36 MB of float32 per rerun otherwise, and the screen shows ~1000 px anyway."""
    h, w = image.shape[:2]
    s = max(h, w)
    if s <= max_side:
        return image
    import cv2

    f = max_side / s
    return cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def masked_metadata(meta: Any, show_identity: bool) -> list[dict[str, str]]:
    """Rows ``{"attribute", "value"}`` for the metadata table: the public attributes, then the patient
    attributes, masked unless ``show_identity``."""
    public = meta.public() if hasattr(meta, "public") else {k: v for k, v in as_dict(meta).items()
                                                             if k != "phi"}
    rows = [{"attribute": k, "value": "" if v is None else str(v)} for k, v in public.items()]
    phi = field(meta, "phi", default={}) or {}
    for k, v in phi.items():
        rows.append({"attribute": k, "value": str(v) if show_identity else PHI_MASK})
    return rows


# ------------------------------------------------------------------------------------------- findings
def gate_verdict(pred: Any) -> tuple[bool, str]:
    """``(accepted, reason)`` from a prediction: either flat fields or a nested ``gate`` object."""
    gate = field(pred, "gate", default=None)
    src = gate if gate is not None and not isinstance(gate, (bool, str)) else pred
    accepted = field(src, "accepted", "is_accepted", "passed", "ok", default=None)
    if accepted is None and isinstance(gate, bool):
        accepted = gate
    if accepted is None:
        decision = str(field(src, "decision", "verdict", default="accepted")).lower()
        accepted = decision in ("accept", "accepted", "pass", "passed", "ok", "chest")
    reason = field(src, "reason", "gate_reason", "message", default="") or ""
    return bool(accepted), str(reason)


def findings_rows(pred: Any) -> list[dict]:
    """Rows ``{finding, probability, threshold, positive}`` from a prediction.

    Accepted shapes: ``probabilities`` (name → p) with ``findings`` (name → bool decision) and
    ``thresholds`` (name → t) — apps.dicom_dx's ``Prediction``; or ``findings`` as a list of objects or
    dicts with name/probability/threshold; or ``findings`` as name → probability."""
    probs = field(pred, "probabilities", "probs", default=None)
    findings = field(pred, "findings", default=None)
    thresholds = field(pred, "thresholds", default={}) or {}
    rows = []
    if isinstance(probs, dict) and probs:
        decisions = findings if isinstance(findings, dict) else {}
        for name, p in probs.items():
            rows.append(_row(name, float(p), thresholds.get(name), decisions.get(name)))
    elif isinstance(findings, dict):
        for name, v in findings.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                rows.append(_row(name, float(v), thresholds.get(name), None))
            else:
                p = float(field(v, "probability", "prob", "p", "score"))
                t = field(v, "threshold", default=thresholds.get(name))
                rows.append(_row(name, p, t, field(v, "positive", "present", "decision", default=None)))
    elif findings is not None:
        for f in findings:
            name = str(field(f, "name", "finding", "label"))
            p = float(field(f, "probability", "prob", "p", "score"))
            t = field(f, "threshold", default=thresholds.get(name))
            rows.append(_row(name, p, t, field(f, "positive", "present", "decision", default=None)))
    return rows


def _row(name: str, p: float, t: Any, pos: Any) -> dict:
    t = None if t is None else float(t)
    if isinstance(pos, str):
        pos = pos.lower() in ("positive", "present", "yes", "true", "1")
    if pos is None:
        pos = t is not None and p >= t
    return {"finding": name, "probability": p, "threshold": t, "positive": bool(pos)}


# ---------------------------------------------------------------------------------------- batch table
_PROB = (("p_", ""), ("prob_", ""), ("", "_prob"), ("", "_probability"), ("", "_p"))
_DEC = (("dx_", ""), ("pos_", ""), ("", "_positive"), ("", "_decision"), ("dec_", ""), ("", "_pos"))
_THR = (("thr_", ""), ("", "_threshold"), ("", "_thr"))


def _match(col: str, patterns) -> str | None:
    for pre, suf in patterns:
        if col.startswith(pre) and col.endswith(suf) and len(col) > len(pre) + len(suf):
            return col[len(pre):len(col) - len(suf)] if suf else col[len(pre):]
    return None


def batch_columns(df) -> dict:
    """Which columns of a results table hold what: ``gate`` and ``error`` column names (or None), and
    per finding the ``prob`` / ``decision`` / ``threshold`` columns, found from common naming schemes
    (``p_<finding>``, ``<finding>_prob``, ``<finding>_positive``...)."""
    cols = [str(c) for c in df.columns]
    low = {c.lower(): c for c in cols}
    out: dict = {"gate": None, "error": None, "prob": {}, "decision": {}, "threshold": {}}
    # apps.dicom_dx's schema: status (accepted / rejected / error), error_reason
    out["gate"] = low.get("status") or low.get("gate") or low.get("gate_decision")
    out["error"] = low.get("error_reason") or low.get("error")
    for c in cols:
        lc = c.lower()
        if out["gate"] is None and "gate" in lc and "reason" not in lc and "score" not in lc:
            out["gate"] = c
        if out["error"] is None and "error" in lc:
            out["error"] = c
    for c in cols:
        if c in (out["gate"], out["error"]):
            continue
        for key, pats in (("prob", _PROB), ("decision", _DEC), ("threshold", _THR)):
            name = _match(c, pats)
            if name and (key != "prob" or _is_numeric(df[c])):
                out[key].setdefault(name, c)
                break
    # a probability with neither a decision nor a threshold (e.g. the gate's p_chest) is not a finding
    out["prob"] = {n: c for n, c in out["prob"].items() if n in out["decision"] or n in out["threshold"]}
    return out


def _is_numeric(series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def truthy(series):
    """A boolean Series from a decision column stored as 0/1 (possibly float with NULLs), bool or text."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return series.fillna(False).astype(bool)
    if pd.api.types.is_numeric_dtype(series):
        return series.fillna(0) > 0.5
    return series.astype(str).str.strip().str.lower().isin(["1", "1.0", "true", "positive", "yes", "y"])


# -------------------------------------------------------------------------------------------- video
def jpeg(rgb) -> bytes:
    """An RGB uint8 frame as JPEG bytes (quality 85): a compact way to keep a clip's annotated frames."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("could not encode a frame as JPEG")
    return buf.tobytes()


def encode_webm(jpegs: list[bytes], fps: float, path: str) -> str:
    """Write JPEG frames as a WebM (VP8) file that browsers play. VP8 rather than VP9: OpenCV's VP9
    encoder is ~6× slower here, and both play everywhere WebM does. Returns ``path``."""
    import cv2

    if not jpegs:
        raise ValueError("no frames to encode")
    first = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR)
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"VP80"), float(fps or 30.0), (w, h))
    if not writer.isOpened():
        raise RuntimeError("this OpenCV build cannot write WebM (VP8) video")
    try:
        for data in jpegs:
            writer.write(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    finally:
        writer.release()
    return path
