"""Grad-CAM (Selvaraju et al., 2017) heatmaps per finding, through the framework's forward hooks.

For finding k: A = activations of `model.features` (C, h, w), captured by a forward hook;
α_c = mean over (h, w) of ∂logit_k/∂A_c (fw.autograd.grad); CAM = ReLU(Σ_c α_c A_c), bilinearly
resized to the image and scaled to [0, 1] (all zeros when the map is flat). The (h, w) map is
resized once, straight to the requested size: going through the model's S × S first interpolated
twice and drifted from the map's bilinear upsampling by up to ~5 % of its range.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np

import framework as fw
from apps.dicom_dx.data import preprocess
from apps.dicom_dx.inference import Predictor, load_default_model
from apps.dicom_dx.io import DicomImage, read_dicom
from apps.dicom_dx.synth import FINDINGS

__all__ = ["gradcam", "explain", "overlay", "write_overlays"]


def gradcam(
    predictor: Predictor,
    x: np.ndarray,
    findings: list[str] | None = None,
    size: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """x: (1, S, S) preprocessed input → finding → float32 heatmap in [0, 1] of shape `size` (H, W),
    default (S, S). The input covers the whole image (resized without keeping the aspect), so the
    map resized to the image's (H, W) lines up with it."""
    names = list(FINDINGS) if findings is None else list(findings)
    unknown = [f for f in names if f not in FINDINGS]
    if unknown:
        raise ValueError(
            f"no Grad-CAM for {', '.join(map(repr, unknown))}: findings are {', '.join(FINDINGS)}"
        )
    if not names:
        return {}
    model = predictor.model
    model.eval()
    captured = {}
    me = threading.get_ident()

    def hook(_module, _args, output):
        # The model may be shared (dashboard sessions run in threads): keep our own forward's
        # activations, not those of a prediction another thread runs meanwhile.
        if threading.get_ident() == me:
            captured.setdefault("a", output)

    handle = model.features.register_forward_hook(hook)
    try:
        with fw.enable_grad():
            inp = fw.tensor(np.ascontiguousarray(x[None], np.float32), device=predictor.device)
            logits = model(inp)
            a = captured["a"]
            out = {}
            for i, f in enumerate(names):
                k = FINDINGS.index(f)
                (g,) = fw.autograd.grad(logits[0, k], a, retain_graph=i < len(names) - 1)
                ga = np.asarray(g.to("cpu").numpy(), np.float32)[0]
                av = np.asarray(a.detach().to("cpu").numpy(), np.float32)[0]
                cam = np.maximum((ga.mean(axis=(1, 2))[:, None, None] * av).sum(0), 0)
                h, w = size or x.shape[-2:]
                cam = cv2.resize(cam, (w, h), interpolation=cv2.INTER_LINEAR)
                mx = float(cam.max())
                out[f] = (cam / mx).astype(np.float32) if mx > 1e-12 else np.zeros((h, w), np.float32)
    finally:
        handle.remove()
    return out


def explain(
    image: DicomImage | str | os.PathLike | bytes,
    predictor: Predictor | None = None,
    findings: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Heatmaps at the image's own size: finding → (H, W) float32 in [0, 1]."""
    pred = predictor or load_default_model()
    img = image if isinstance(image, DicomImage) else read_dicom(image)
    return gradcam(pred, preprocess(img.gray, pred.size), findings, size=img.gray.shape)


def overlay(gray: np.ndarray, heat: np.ndarray, alpha: float = 0.45, max_side: int = 1024) -> np.ndarray:
    """RGB uint8 overlay of a heatmap (JET colour map) on the grayscale image, downsized so that its
    longer side is at most max_side."""
    h, w = gray.shape
    s = min(1.0, max_side / max(h, w))
    size = (max(1, int(w * s)), max(1, int(h * s)))
    g = cv2.resize(gray.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    hm = cv2.resize(heat.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    base = np.repeat((np.clip(g, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    col = cv2.applyColorMap((np.clip(hm, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    a = (alpha * np.clip(hm, 0, 1))[..., None]
    return (base * (1 - a) + col * a).astype(np.uint8)


def write_overlays(
    image: DicomImage, heatmaps: dict[str, np.ndarray], out_dir: str | Path, stem: str
) -> list[Path]:
    """One PNG per finding: <out_dir>/<stem>_<finding>.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for f, hm in heatmaps.items():
        p = out_dir / f"{stem}_{f}.png"
        cv2.imwrite(str(p), overlay(image.gray, hm)[..., ::-1])
        paths.append(p)
    return paths
