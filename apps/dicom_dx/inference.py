"""Inference on single images: the gate, then findings at the model card's thresholds.

pred = load_default_model()
result = predict(read_dicom(path), pred)   # or predict(path, pred)
result.accepted, result.gate.reason, result.probabilities, result.findings
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import framework as fw
from apps.dicom_dx.data import preprocess
from apps.dicom_dx.gate import GateConfig, GateDecision, check_image, check_metadata, decide
from apps.dicom_dx.io import DicomImage, read_dicom
from apps.dicom_dx.model import ChestNet, build_model, load_model
from apps.dicom_dx.synth import FINDINGS

__all__ = ["ASSETS", "Predictor", "Prediction", "load_default_model", "predict"]

ASSETS = Path(__file__).parent / "assets"


@dataclass
class Predictor:
    """A model with its card: thresholds, gate threshold, input size and version."""

    model: ChestNet
    card: dict
    device: str = "cpu"

    @property
    def size(self) -> int:
        return int(self.card["preprocessing"]["size"])

    @property
    def version(self) -> str:
        return str(self.card.get("version", "unknown"))

    @property
    def thresholds(self) -> dict[str, float]:
        return {f: float(self.card["thresholds"][f]) for f in FINDINGS}

    @property
    def gate_config(self) -> GateConfig:
        return GateConfig(
            image_threshold=float(self.card.get("gate", {}).get("threshold", 0.5)),
            min_size=int(self.card.get("gate", {}).get("min_size", GateConfig.min_size)),
        )

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """x: (B, 1, S, S) preprocessed → (B, 6) probabilities (five findings, frontal chest)."""
        self.model.eval()
        with fw.no_grad():
            logits = self.model(fw.tensor(np.ascontiguousarray(x, np.float32), device=self.device))
        z = np.asarray(logits.to("cpu").numpy(), np.float64)
        return 1.0 / (1.0 + np.exp(-z))


@dataclass
class Prediction:
    """What the app reports for one image. `findings` (finding → bool) and `probabilities` are
    empty when the gate rejected the input."""

    gate: GateDecision
    probabilities: dict[str, float] = field(default_factory=dict)
    findings: dict[str, bool] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    model_version: str = ""
    timing_ms: dict[str, float] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.gate.accepted

    @property
    def no_finding(self) -> bool | None:
        return None if not self.accepted else not any(self.findings.values())

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "gate": self.gate.as_dict(),
            "probabilities": self.probabilities,
            "findings": self.findings,
            "no_finding": self.no_finding,
            "thresholds": self.thresholds,
            "model_version": self.model_version,
            "timing_ms": self.timing_ms,
        }


_DEFAULT: Predictor | None = None


def load_default_model(weights: str | os.PathLike | None = None, device: str = "cpu") -> Predictor:
    """The committed model (apps/dicom_dx/assets/model.safetensors + model_card.json), or another
    one given by path; $DICOM_DX_MODEL overrides the default. Cached after the first call."""
    global _DEFAULT
    env = os.environ.get("DICOM_DX_MODEL")
    if weights is None and env:
        weights = env
    if weights is None and _DEFAULT is not None and _DEFAULT.device == device:
        return _DEFAULT
    model, card = load_model(Path(weights) if weights else ASSETS / "model.safetensors")
    model.to(device)
    pred = Predictor(model=model, card=card, device=device)
    if weights is None:
        _DEFAULT = pred
    return pred


def untrained_predictor(size: int = 64, widths=(8, 8, 16, 16), seed: int = 0) -> Predictor:
    """A tiny randomly initialised predictor (tests, demos without weights)."""
    fw.manual_seed(seed)
    model = build_model({"widths": list(widths)})
    card = {
        "version": f"untrained-{seed}",
        "preprocessing": {"size": size},
        "thresholds": dict.fromkeys(FINDINGS, 0.5),
        "gate": {"threshold": 0.0, "min_size": 16},
        "architecture": {"widths": list(widths)},
    }
    return Predictor(model=model, card=card)


def predict(image: DicomImage | str | os.PathLike | bytes, predictor: Predictor | None = None) -> Prediction:
    """Gate then findings for one image (a DicomImage, a path or the file's bytes). Raises
    DicomReadError for unreadable input, ValueError for a DicomImage whose pixels are not a display
    image (NaN/inf, or floats outside [0, 1]: see data.display_image)."""
    t0 = time.perf_counter()
    pred = predictor or load_default_model()
    img = image if isinstance(image, DicomImage) else read_dicom(image)
    t1 = time.perf_counter()
    cfg = pred.gate_config
    pre = check_metadata(img.meta, cfg) or check_image(img, cfg)
    if pre is not None:
        return Prediction(
            gate=pre, model_version=pred.version, timing_ms={"decode": (t1 - t0) * 1e3, "inference": 0.0}
        )
    x = preprocess(img.gray, pred.size)[None]
    p = pred.probabilities(x)[0]
    t2 = time.perf_counter()
    if not np.isfinite(p).all():  # NaN >= threshold is False: it would read as "no finding"
        gate = GateDecision(False, "the model returned NaN or inf: no findings can be reported", "model")
        timing = {"decode": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3}
        return Prediction(gate=gate, model_version=pred.version, timing_ms=timing)
    gate = decide(img, float(p[-1]), cfg)
    timing = {"decode": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3}
    if not gate.accepted:
        return Prediction(gate=gate, model_version=pred.version, timing_ms=timing)
    thr = pred.thresholds
    probs = {f: float(p[k]) for k, f in enumerate(FINDINGS)}
    return Prediction(
        gate=gate,
        probabilities=probs,
        findings={f: probs[f] >= thr[f] for f in FINDINGS},
        thresholds=thr,
        model_version=pred.version,
        timing_ms=timing,
    )
