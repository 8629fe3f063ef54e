"""Synthetic frontal chest radiographs (and gate negatives) written as real DICOM files.

No chest X-ray data set can be downloaded here, so this module draws radiographs from a simple
physical model: an attenuation map (line integrals through soft tissue, lungs, mediastinum, heart,
diaphragm, ribs, clavicles, spine, breast shadows, pulmonary vessels) to which findings add or remove
attenuation, then an acquisition model (exposure, quantum and electronic noise, detector blur,
patient rotation and shift, collimation, L/R marker) and DICOM encoding with realistic variety
(MONOCHROME1/2, Bits Stored 10–16, signed pixels, rescale, window presets and VOI LUT functions,
pixel spacing, compressed transfer syntaxes).

Geometry is drawn in normalised body coordinates X, Y ∈ [-1, 1] (X to the image right = patient's
left on a PA view, Y downwards); a unit of 1 is ~180 mm on an adult chest.

Findings (multi-label): opacity (consolidation), nodule/mass, pleural effusion, cardiomegaly,
pneumothorax. Gate negatives: knee, hand, pelvis, skull, abdomen radiographs, CT and MR slices,
ultrasound, photographs — with correct, missing or deliberately wrong metadata.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

__all__ = [
    "FINDINGS",
    "NEGATIVE_KINDS",
    "Study",
    "render_chest",
    "render_negative",
    "make_study",
    "write_dataset",
    "generate",
]

FINDINGS = ("opacity", "nodule", "effusion", "cardiomegaly", "pneumothorax")
NEGATIVE_KINDS = ("knee", "hand", "pelvis", "skull", "abdomen", "ct", "mr", "us", "photo")
DX_SOP = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
CR_SOP = "1.2.840.10008.5.1.4.1.1.1"
CT_SOP = "1.2.840.10008.5.1.4.1.1.2"
MR_SOP = "1.2.840.10008.5.1.4.1.1.4"
US_SOP = "1.2.840.10008.5.1.4.1.1.6.1"
SC_SOP = "1.2.840.10008.5.1.4.1.1.7"
UID_ROOT = "1.2.826.0.1.3680043.10.1042."  # a made-up root under the pydicom-documented prefix

_FIRST = [
    "ALEX",
    "JANE",
    "JOHN",
    "MARIA",
    "WEI",
    "FATIMA",
    "OLIVIA",
    "NOAH",
    "LUCA",
    "AMARA",
    "IVAN",
    "SOFIA",
    "KENJI",
    "PRIYA",
    "OMAR",
    "ELENA",
    "TOMAS",
    "GRACE",
    "YUSUF",
    "NINA",
]
_LAST = [
    "DOE",
    "SMITH",
    "GARCIA",
    "NGUYEN",
    "MUELLER",
    "ROSSI",
    "KOWALSKI",
    "OKAFOR",
    "TANAKA",
    "SILVA",
    "HANSEN",
    "DUBOIS",
    "PATEL",
    "IVANOVA",
    "COHEN",
    "MARTIN",
    "LEE",
    "BROWN",
    "SATO",
    "ALI",
]


def _grid(h: int, w: int, cx: float, cy: float, scale: float, angle: float):
    """Body coordinates (X, Y) for each pixel of an (h, w) image; the body is centred at (cx, cy)
    in image-normalised units, scaled by `scale` and rotated by `angle` radians."""
    aspect = w / h
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    xn = (x / (w - 1) * 2 - 1) * aspect
    yn = y / (h - 1) * 2 - 1
    xn, yn = xn - cx, yn - cy
    c, s = math.cos(angle), math.sin(angle)
    X = (c * xn + s * yn) / scale
    Y = (-s * xn + c * yn) / scale
    return X, Y


def _sig(d, width):
    """Soft step: 1 inside (d < 0), 0 outside, over `width` (same units as d)."""
    return 1.0 / (1.0 + np.exp(np.clip(d / max(width, 1e-6), -40, 40)))


def _blur(a, sigma_px):
    if sigma_px <= 0.3:
        return a
    k = int(2 * round(3 * sigma_px) + 1)
    return cv2.GaussianBlur(a, (k, k), sigma_px)


def _smooth_noise(rng, h, w, sigma_px):
    n = _blur(rng.standard_normal((h, w)).astype(np.float32), sigma_px)
    return n / (n.std() + 1e-6)


@dataclass
class Study:
    """One synthetic instance before encoding: modality values (float32 (H, W) or RGB uint8 (H, W, 3)),
    labels and acquisition parameters."""

    pixels: np.ndarray
    kind: str  # "chest" or one of NEGATIVE_KINDS
    labels: dict[str, int] = field(default_factory=dict)
    boxes: dict[str, list[int]] = field(default_factory=dict)  # finding → [x0, y0, x1, y1] pixels
    spacing_mm: float = 0.15
    extras: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Chest radiograph
# ----------------------------------------------------------------------------------------------


def _lung_masks(X, Y, p):
    """Two lung fields (soft masks in [0, 1]) and each lung's lateral half-width profile."""
    masks = []
    for side in (-1, 1):
        c = side * p["lung_cx"]
        top = p["apex_y"] + (0.02 if side > 0 else 0.0)
        base = p["dia_y"] + (0.05 if side > 0 else 0.0)  # the right hemidiaphragm (image left) sits higher
        hw = p["lung_hw"] * np.clip((Y - top) / 0.5, 0, 1) ** 0.45 + 1e-3
        u = (X - c) / hw
        dome = base - p["dome"] * (1 - np.clip(u, -1, 1) ** 2)
        inside_x = np.abs(u) - 1.0
        inside_y = np.maximum(top - Y, Y - dome)
        d = np.maximum(inside_x * hw, inside_y)
        m = _sig(d, 0.012)
        # The mediastinum cuts the medial edge.
        m = m * _sig(p["med_hw"] - side * X, 0.015)
        masks.append(m)
    return masks


def _vessels(rng, X, Y, hilum_x, hilum_y, lung, h, w, n_branches=45):
    """Pulmonary vessel markings: tapering lines radiating from the hilum."""
    img = np.zeros((h, w), np.float32)
    scale_px = w / (X[0, -1] - X[0, 0] + 1e-6)  # pixels per body unit along x
    for side in (-1, 1):
        hx, hy = side * hilum_x, hilum_y
        for _ in range(n_branches):
            ang = (
                rng.uniform(-math.pi * 0.95, math.pi * 0.95)
                if side > 0
                else rng.uniform(0.05 * math.pi, 1.95 * math.pi)
            )
            # bias away from the midline
            dx, dy = math.cos(ang), math.sin(ang)
            if dx * side < -0.2:
                dx = -dx
            length = rng.uniform(0.25, 0.6)
            x0, y0, width = hx, hy, rng.uniform(0.010, 0.018)
            pts = []
            steps = 8
            for _s in range(steps):
                x1 = x0 + dx * length / steps + rng.normal(0, 0.01)
                y1 = y0 + dy * length / steps + rng.normal(0, 0.01)
                pts.append((x0, y0, x1, y1, width))
                x0, y0, width = x1, y1, width * 0.85
            for a, b, c, d, wd in pts:
                # body → pixel: invert the grid approximately (no rotation at this stage)
                pa = _to_px(a, b, X, Y)
                pb = _to_px(c, d, X, Y)
                cv2.line(
                    img, pa, pb, float(rng.uniform(0.6, 1.0)), max(1, int(round(wd * scale_px))), cv2.LINE_AA
                )
    return _blur(img, 0.8) * lung


def _to_px(x, y, X, Y):
    """Body coordinates → pixel (col, row) for an unrotated grid (X linear in col, Y in row)."""
    h, w = X.shape
    x0, x1 = X[0, 0], X[0, -1]
    y0, y1 = Y[0, 0], Y[-1, 0]
    return int(round((x - x0) / (x1 - x0) * (w - 1))), int(round((y - y0) / (y1 - y0) * (h - 1)))


def _bbox(mask, thr=0.3):
    """[x0, y0, x1, y1] of the mask above `thr`, or half its peak when that is lower: a nodule over
    the heart is drawn at 30 % and, interpolated, could fall just short of 0.3 (labelled, no box)."""
    ys, xs = np.nonzero(mask > min(thr, 0.5 * float(mask.max())))
    if len(xs) == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def render_chest(
    rng: np.random.Generator, shape: tuple[int, int], findings: dict[str, int], severity: float = 1.0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Attenuation map (float32 (H, W), roughly 0 = air … 3 = bone through the trunk) of a PA chest,
    and a soft mask (H, W) per finding present. Drawn on an unrotated, unshifted body grid;
    `make_study` applies the pose and the acquisition."""
    h, w = shape
    X, Y = _grid(h, w, 0.0, 0.0, 1.0, 0.0)
    female = rng.random() < 0.5
    p = dict(
        lung_cx=rng.uniform(0.36, 0.44),
        apex_y=rng.uniform(-0.78, -0.68),
        dia_y=rng.uniform(0.38, 0.52),
        lung_hw=rng.uniform(0.25, 0.31),
        dome=rng.uniform(0.08, 0.16),
        med_hw=rng.uniform(0.08, 0.12),
    )
    thorax_hw = p["lung_cx"] + p["lung_hw"]
    att = np.zeros((h, w), np.float32)
    # Trunk, shoulders, neck, arms.
    trunk_hw = thorax_hw + rng.uniform(0.08, 0.16)
    trunk = _sig(np.abs(X) - trunk_hw, 0.02) * _sig(-0.72 - Y, -0.04)
    neck = _sig(np.abs(X) - rng.uniform(0.17, 0.23), 0.02) * _sig(Y + 0.72, 0.03)
    shoulders = _sig(np.hypot((np.abs(X) - trunk_hw + 0.05) / 0.35, (Y + 0.66) / 0.16) - 1, 0.05)
    arms = _sig(np.abs(np.abs(X) - trunk_hw - 0.13) - 0.09, 0.02) * _sig(-0.62 - Y, -0.05)
    body = np.clip(trunk + neck + shoulders + 0.8 * arms, 0, 1)
    thickness = np.sqrt(np.clip(1 - (X / (trunk_hw + 0.05)) ** 2, 0.05, 1))
    att += 1.0 * body * thickness
    if female:
        for side in (-1, 1):
            att += 0.18 * _sig(np.hypot((X - side * 0.5) / 0.28, (Y - 0.42) / 0.2) - 1, 0.08) * body
    lungs = _lung_masks(X, Y, p)
    lung = np.clip(lungs[0] + lungs[1], 0, 1)
    # Heart: an ellipse shifted to the patient's left; cardiomegaly widens it (CTR > 0.55).
    ctr = rng.uniform(0.56, 0.68) if findings.get("cardiomegaly") else rng.uniform(0.38, 0.49)
    heart_hw = ctr * thorax_hw
    heart_cx = rng.uniform(0.06, 0.12) + (0.04 if findings.get("cardiomegaly") else 0)
    heart_cy = p["dia_y"] - rng.uniform(0.13, 0.2)
    heart = _sig(np.hypot((X - heart_cx) / heart_hw, (Y - heart_cy) / rng.uniform(0.2, 0.26)) - 1, 0.02)
    heart *= _sig(Y - p["dia_y"] - 0.05, 0.02)
    lung = lung * (1 - heart)
    # Mediastinum, aortic knob, trachea (air), spine with vertebrae.
    med = _sig(np.abs(X - 0.01) - p["med_hw"], 0.02) * _sig(Y - heart_cy, 0.05) * _sig(-0.85 - Y, -0.03)
    knob = _sig(np.hypot((X - p["med_hw"] - 0.01) / 0.07, (Y + 0.3) / 0.06) - 1, 0.02)
    trachea = _sig(np.abs(X) - 0.035, 0.008) * _sig(Y + 0.15, 0.02) * _sig(-0.95 - Y, -0.02)
    vert = 0.5 + 0.5 * np.cos((Y - rng.uniform(0, 1)) / 0.085 * 2 * math.pi)
    spine = _sig(np.abs(X) - 0.065, 0.01) * (0.8 + 0.4 * vert)
    att += 0.4 * np.clip(med + knob, 0, 1) + 0.22 * heart + 0.2 * spine - 0.15 * trachea
    # Lungs replace tissue with air; more air where the chest is thicker.
    att -= 0.62 * lung * thickness
    # Below the diaphragm: liver and spleen are dense.
    abdomen = (1 - np.clip(lungs[0] + lungs[1] + heart, 0, 1)) * _sig(p["dia_y"] - 0.12 - Y, -0.04) * body
    att += 0.25 * abdomen * _sig(np.abs(X) - trunk_hw + 0.05, 0.03)
    # Ribs: posterior arcs descending laterally, with cortical edges; anterior ribs fainter.
    ribs = np.zeros_like(att)
    for k in range(10):
        for side in (-1, 1):
            y0 = p["apex_y"] + 0.04 + k * rng.uniform(0.105, 0.12)
            u = np.clip(side * X - 0.05, 0, None)
            yc = y0 + 0.95 * u**2 - 0.22 * u
            d = np.abs(Y - yc) - 0.026
            band = _sig(d, 0.006) * (side * X > 0.04) * _sig(side * X - thorax_hw - 0.02, 0.02)
            cortex = np.exp(-((d / 0.006) ** 2)) * (side * X > 0.04) * _sig(side * X - thorax_hw - 0.02, 0.02)
            ribs += 0.07 * band + 0.05 * cortex
            ya = y0 + 0.22 + 0.35 * (thorax_hw - u) ** 2  # anterior rib
            ribs += 0.05 * _sig(np.abs(Y - ya) - 0.03, 0.01) * _sig(u - thorax_hw + 0.02, -0.03) * (u > 0.1)
    att += ribs * np.clip(body, 0, 1)
    for side in (-1, 1):  # clavicles
        t = np.clip((side * X - 0.07) / 0.5, 0, 1)
        yc = -0.7 + 0.12 * t - 0.1 * t * (1 - t) + rng.uniform(-0.03, 0.03)
        cl = _sig(np.abs(Y - yc) - 0.028, 0.006) * (side * X > 0.07) * (side * X < 0.6)
        att += 0.22 * cl
    # Pulmonary vessels (hidden where a pneumothorax removes lung).
    vessels = _vessels(rng, X, Y, 0.17, -0.05, lung, h, w)
    masks: dict[str, np.ndarray] = {}
    sev = severity
    if findings.get("pneumothorax"):
        side = rng.choice([-1, 1])
        lm = lungs[0 if side < 0 else 1] * (1 - heart)
        lm8 = (lm > 0.5).astype(np.uint8)
        dist = cv2.distanceTransform(lm8, cv2.DIST_L2, 5) / (w / (X[0, -1] - X[0, 0]))
        depth = rng.uniform(0.05, 0.13) * sev
        lateral = (side * X > side * side * p["lung_cx"] - 0.05) | (Y < p["apex_y"] + 0.25)
        ptx = ((dist < depth) & (dist > 0) & lateral & (Y < p["dia_y"] - 0.05)).astype(np.float32)
        ptx = _blur(ptx, 1.0)
        edge = np.exp(-(((dist - depth) / 0.005) ** 2)) * lateral * (lm > 0.5)
        vessels = vessels * (1 - ptx)
        att += -0.1 * ptx + 0.1 * edge + 0.05 * lm * (1 - ptx) * (dist > depth)
        masks["pneumothorax"] = ptx
    att += 0.14 * vessels
    if findings.get("opacity"):
        # An opacity lies in the lung: a centre drawn behind the heart or past the lung's edge gave a
        # mask peaking near 0 (nothing drawn, yet labelled present), so such a draw is redrawn.
        for _ in range(50):
            side = rng.choice([-1, 1])
            cx = side * p["lung_cx"] + rng.uniform(-0.08, 0.08)
            cy = rng.uniform(p["apex_y"] + 0.35, p["dia_y"] - 0.08)
            r = rng.uniform(0.09, 0.2) * (0.6 + 0.4 * sev)
            blob = np.hypot(X - cx, Y - cy) / r + 0.35 * _smooth_noise(rng, h, w, max(2, w / 60))
            op = _sig(blob - 1, 0.15) * lung
            if op.max() >= 0.6:
                break
        bronch = _blur((_smooth_noise(rng, h, w, w / 200) > 1.6).astype(np.float32), 1.0) * op
        att += rng.uniform(0.35, 0.5) * op - 0.1 * bronch
        masks["opacity"] = op
    if findings.get("nodule"):
        side = rng.choice([-1, 1])
        cx = side * p["lung_cx"] + rng.uniform(-0.12, 0.12)
        cy = rng.uniform(p["apex_y"] + 0.15, p["dia_y"] - 0.12)
        r = rng.uniform(0.035, 0.1) * (0.7 + 0.3 * sev)  # ~12–36 mm diameter
        lob = 1 + 0.08 * np.cos(rng.integers(3, 7) * np.arctan2(Y - cy, X - cx) + rng.uniform(0, 6))
        nod = _sig(np.hypot(X - cx, Y - cy) / (r * lob) - 1, 0.06) * np.clip(lung + 0.3, 0, 1)
        att += rng.uniform(0.35, 0.55) * nod
        masks["nodule"] = nod
    if findings.get("effusion"):
        sides = [-1, 1] if rng.random() < 0.3 else [rng.choice([-1, 1])]
        eff = np.zeros_like(att)
        for side in sides:
            lm = lungs[0 if side < 0 else 1]
            hgt = rng.uniform(0.1, 0.28) * (0.6 + 0.4 * sev)
            c = side * p["lung_cx"]
            lat = np.clip(side * (X - c) / p["lung_hw"], -1, 1)
            level = p["dia_y"] + (0.05 if side > 0 else 0) - hgt - 0.12 * hgt * (lat + 1)  # meniscus
            eff += lm * _sig(level - Y, 0.025)
            # fluid also blunts the costophrenic angle outside the lung edge
        eff = np.clip(eff, 0, 1)
        att += 0.55 * eff
        masks["effusion"] = eff
    if findings.get("cardiomegaly"):
        masks["cardiomegaly"] = heart
    return att.astype(np.float32), masks


# ----------------------------------------------------------------------------------------------
# Gate negatives
# ----------------------------------------------------------------------------------------------


def _bone(X, Y, x0, y0, x1, y1, r, sharp=0.01):
    """A bone shaft: capsule from (x0, y0) to (x1, y1) with radius r → (body, cortex) masks."""
    px, py = X - x0, Y - y0
    dx, dy = x1 - x0, y1 - y0
    t = np.clip((px * dx + py * dy) / (dx * dx + dy * dy), 0, 1)
    d = np.hypot(px - t * dx, py - t * dy) - r
    return _sig(d, sharp), np.exp(-((d / (0.25 * r + 1e-3)) ** 2)) * (d > -0.5 * r)


def render_negative(rng: np.random.Generator, kind: str, shape: tuple[int, int]) -> np.ndarray:
    """Attenuation map (radiographs), HU-like values (CT), intensities (MR, US) or RGB uint8 (photo)."""
    h, w = shape
    X, Y = _grid(
        h, w, rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), rng.uniform(0.85, 1.15), rng.uniform(-0.3, 0.3)
    )
    if kind == "knee":
        soft = _sig(np.abs(X) - rng.uniform(0.45, 0.6), 0.05)
        fem, fc = _bone(X, Y, 0, -1.3, 0, -0.15, rng.uniform(0.16, 0.2))
        cond = _sig(np.hypot(X / 0.38, (Y + 0.12) / 0.16) - 1, 0.02)
        tib, tc = _bone(X, Y, 0, 0.12, 0, 1.4, rng.uniform(0.15, 0.19))
        plat = _sig(np.hypot(X / 0.4, (Y - 0.15) / 0.09) - 1, 0.02)
        fib, fbc = _bone(X, Y, 0.3, 0.25, 0.28, 1.4, 0.05)
        pat = _sig(np.hypot((X - 0.05) / 0.14, (Y + 0.3) / 0.2) - 1, 0.02)
        bone = np.clip(fem + cond + tib + plat + 0.7 * fib + 0.5 * pat, 0, 1.6)
        return (0.6 * soft + 0.9 * bone + 0.4 * (fc + tc + fbc)).astype(np.float32)
    if kind == "hand":
        att = np.zeros((h, w), np.float32)
        palm = _sig(np.hypot(X / 0.45, (Y - 0.45) / 0.45) - 1, 0.04)
        att += 0.5 * palm
        for i, a in enumerate(np.linspace(-0.5, 0.5, 5)):
            ln = rng.uniform(0.9, 1.3) * (0.7 if i in (0, 4) else 1)
            x1, y1 = math.sin(a) * ln * 1.1, 0.2 - math.cos(a) * ln * 1.1
            soft, _ = _bone(X, Y, math.sin(a) * 0.3, 0.3, x1, y1, 0.1)
            b, c = _bone(X, Y, math.sin(a) * 0.25, 0.55, x1 * 0.95, y1 * 0.95, 0.045)
            att += 0.5 * soft + 0.6 * b + 0.3 * c
        return att
    if kind == "pelvis":
        body = _sig(np.abs(X) - 1.1, 0.05)
        ilium = sum(_sig(np.hypot((X - s * 0.55) / 0.4, (Y + 0.3) / 0.35) - 1, 0.03) for s in (-1, 1))
        heads = sum(_sig(np.hypot(X - s * 0.6, Y - 0.25) / 0.15 - 1, 0.02) for s in (-1, 1))
        femurs = sum(_bone(X, Y, s * 0.65, 0.3, s * 0.75, 1.5, 0.13)[0] for s in (-1, 1))
        sac = _sig(np.hypot(X / 0.18, (Y + 0.1) / 0.3) - 1, 0.03)
        holes = sum(_sig(np.hypot((X - s * 0.35) / 0.12, (Y - 0.45) / 0.15) - 1, 0.02) for s in (-1, 1))
        gas = _smooth_noise(rng, h, w, w / 40) > 1.2
        return (
            1.0 * body
            + 0.6 * ilium
            + 0.7 * heads
            + 0.7 * femurs
            + 0.5 * sac
            - 0.4 * holes
            - 0.25 * gas * body
        ).astype(np.float32)
    if kind == "skull":
        outer = _sig(np.hypot(X / 0.75, Y / 0.9) - 1, 0.01)
        inner = _sig(np.hypot(X / 0.69, Y / 0.84) - 1, 0.01)
        face = _sig(np.hypot(X / 0.5, (Y - 0.75) / 0.35) - 1, 0.04)
        orbits = sum(_sig(np.hypot((X - s * 0.25) / 0.14, (Y - 0.35) / 0.12) - 1, 0.02) for s in (-1, 1))
        return (0.8 * outer + 0.9 * (outer - inner) + 0.6 * face - 0.3 * orbits).astype(np.float32)
    if kind == "abdomen":
        body = _sig(np.abs(X) - 1.05, 0.05) * np.sqrt(np.clip(1 - (X / 1.1) ** 2, 0.05, 1))
        spine = _sig(np.abs(X) - 0.1, 0.01)
        liver = _sig(np.hypot((X + 0.45) / 0.55, (Y + 0.55) / 0.4) - 1, 0.05)
        gas = (_smooth_noise(rng, h, w, w / 50) > 1.0) * _sig(np.abs(X) - 0.8, 0.05) * (Y > -0.4)
        iliac = sum(_sig(np.hypot((X - s * 0.55) / 0.35, (Y - 0.85) / 0.3) - 1, 0.03) for s in (-1, 1))
        return (
            1.0 * body + 0.35 * spine + 0.25 * liver - 0.35 * _blur(gas.astype(np.float32), 2) + 0.4 * iliac
        ).astype(np.float32)
    if kind == "ct":
        body = _sig(np.hypot(X / 0.9, Y / 0.65) - 1, 0.005)
        hu = -1000 + 1040 * body
        chest = rng.random() < 0.5  # an axial chest CT slice is a hard negative
        if chest:
            for s in (-1, 1):
                hu -= 900 * _sig(np.hypot((X - s * 0.4) / 0.3, Y / 0.45) - 1, 0.01)
            hu += 300 * _sig(np.hypot((X - 0.05) / 0.22, (Y + 0.05) / 0.2) - 1, 0.01)
        else:
            hu += 30 * _sig(np.hypot((X + 0.3) / 0.4, (Y + 0.05) / 0.35) - 1, 0.01)
        hu += 900 * _sig(np.hypot(X / 0.1, (Y - 0.45) / 0.09) - 1, 0.005)  # vertebra
        return (hu + 15 * rng.standard_normal((h, w))).astype(np.float32)
    if kind == "mr":
        head = _sig(np.hypot(X / 0.7, Y / 0.85) - 1, 0.01)
        brain = _sig(np.hypot(X / 0.62, Y / 0.77) - 1, 0.01)
        white = brain * (_smooth_noise(rng, h, w, w / 30) > -0.2)
        vent = sum(_sig(np.hypot((X - s * 0.1) / 0.06, (Y + 0.05) / 0.2) - 1, 0.01) for s in (-1, 1))
        img = 300 * head + 400 * brain + 250 * _blur(white.astype(np.float32), 2) - 500 * vent * brain
        return np.clip(img + 20 * rng.standard_normal((h, w)), 0, None).astype(np.float32)
    if kind == "us":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.hypot(xx - w / 2, yy + h * 0.05) / h
        th = np.arctan2(xx - w / 2, yy + h * 0.05)
        fan = (r < 0.95) & (r > 0.08) & (np.abs(th) < 0.6)
        speckle = rng.rayleigh(1.0, (h, w)).astype(np.float32)
        tissue = 0.5 + 0.3 * _smooth_noise(rng, h, w, w / 25)
        cyst = _sig(np.hypot(xx / w - 0.5 - rng.uniform(-0.1, 0.1), yy / h - 0.55) / 0.12 - 1, 0.05)
        img = fan * speckle * np.clip(tissue * (1 - 0.9 * cyst), 0, None) * np.exp(-1.2 * r)
        return np.clip(img / (np.percentile(img, 99.5) + 1e-6) * 255, 0, 255).astype(np.float32)
    if kind == "photo":
        yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        sky = np.array(rng.uniform(0.3, 1.0, 3), np.float32) * (1 - 0.5 * yy)
        img = np.broadcast_to(sky, (h, w, 3)).copy()
        for _ in range(rng.integers(3, 9)):
            col = rng.uniform(0, 1, 3).astype(np.float32)
            cx, cy, rx, ry = (
                rng.uniform(0, w),
                rng.uniform(h * 0.3, h),
                rng.uniform(w * 0.05, w * 0.3),
                rng.uniform(h * 0.05, h * 0.3),
            )
            cv2.ellipse(
                img,
                (int(cx), int(cy)),
                (int(rx), int(ry)),
                float(rng.uniform(0, 180)),
                0,
                360,
                tuple(float(c) for c in col),
                -1,
            )
        img += 0.04 * rng.standard_normal((h, w, 3)).astype(np.float32)
        return (np.clip(_blur(img, 1.0), 0, 1) * 255).astype(np.uint8)
    raise ValueError(f"unknown negative kind {kind!r}; expected one of {NEGATIVE_KINDS}")


# ----------------------------------------------------------------------------------------------
# Acquisition and DICOM encoding
# ----------------------------------------------------------------------------------------------


def _acquire(
    rng, att: np.ndarray, out_shape: tuple[int, int], masks: dict[str, np.ndarray], pose: bool = True
):
    """Pose (rotation, shift, magnification), collimation, upsampling to the detector size, detector
    blur and noise. Returns the 'for presentation' signal in [0, 1] (1 = most attenuation) and the
    warped masks."""
    h, w = att.shape
    if pose:
        ang = rng.uniform(-6, 6)
        sc = rng.uniform(0.92, 1.08)
        m = cv2.getRotationMatrix2D(
            (w / 2 + rng.uniform(-0.04, 0.04) * w, h / 2 + rng.uniform(-0.04, 0.04) * h), ang, sc
        )
        m[:, 2] += (rng.uniform(-0.04, 0.04) * w, rng.uniform(-0.04, 0.04) * h)
        att = cv2.warpAffine(att, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        masks = {
            k: cv2.warpAffine(v.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR)
            for k, v in masks.items()
        }
    H, W = out_shape
    big = cv2.resize(att, (W, H), interpolation=cv2.INTER_CUBIC)
    masks = {k: cv2.resize(v, (W, H), interpolation=cv2.INTER_LINEAR) for k, v in masks.items()}
    # Exposure: transmitted fraction exp(-mu*att); the processed image is ~log of it, then a
    # tone curve; quantum noise is larger where fewer photons arrive (dense regions).
    mu = rng.uniform(1.2, 1.8)
    trans = np.exp(-mu * np.clip(big, -0.5, 4))
    photons = rng.uniform(800, 4000)
    noisy = trans + np.sqrt(trans / photons) * rng.standard_normal((H, W)).astype(np.float32)
    noisy += _blur(rng.standard_normal((H, W)).astype(np.float32), 2.0) * rng.uniform(0.001, 0.004)
    sig = -np.log(np.clip(noisy, 1e-4, None)) / (mu * 3.0)
    sig = _blur(sig.astype(np.float32), rng.uniform(0.3, 1.0) * W / 1000)
    gamma = rng.uniform(0.8, 1.25)
    sig = np.clip(sig, 0, 1) ** gamma
    # Heel effect: exposure varies smoothly along the anode-cathode axis.
    sig = sig * (1 + rng.uniform(-0.05, 0.05) * np.linspace(-1, 1, H, dtype=np.float32)[:, None])
    if rng.random() < 0.5:  # collimation: unexposed borders come out white
        b = [int(rng.uniform(0, 0.06) * s) for s in (H, H, W, W)]
        coll = np.zeros((H, W), bool)
        coll[: b[0]], coll[H - b[1] :], coll[:, : b[2]], coll[:, W - b[3] :] = True, True, True, True
        sig = np.where(coll, 0.98, sig)
    if rng.random() < 0.8:  # lead L/R marker
        s = max(1, W // 400)
        org = (int(rng.uniform(0.05, 0.15) * W), int(rng.uniform(0.08, 0.15) * H))
        mark = np.zeros((H, W), np.uint8)
        cv2.putText(mark, "L" if rng.random() < 0.5 else "R", org, cv2.FONT_HERSHEY_SIMPLEX, s, 255, 2 * s)
        sig = np.where(mark > 0, 1.0, sig)
    return np.clip(sig, 0, 1).astype(np.float32), masks


def _size(rng, size_range):
    lo, hi = size_range
    H = int(rng.uniform(lo, hi))
    W = int(H * rng.uniform(0.82, 1.05))
    return H, W


def make_study(
    rng: np.random.Generator,
    *,
    kind: str = "chest",
    prevalence: dict[str, float] | float = 0.2,
    size_range: tuple[int, int] = (1500, 3000),
    render_max: int = 512,
) -> Study:
    """Draw one synthetic study. For chests, each finding is present independently with its
    prevalence; sizes are drawn in `size_range` (rows); anatomy is rendered at most `render_max`
    pixels high and upsampled (fine noise is added at the full size)."""
    if kind == "chest":
        prev = prevalence if isinstance(prevalence, dict) else {f: float(prevalence) for f in FINDINGS}
        findings = {f: int(rng.random() < prev.get(f, 0.0)) for f in FINDINGS}
        H, W = _size(rng, size_range)
        rh = min(H, render_max)
        rw = int(round(rh * W / H))
        att, masks = render_chest(rng, (rh, rw), findings, severity=rng.uniform(0.6, 1.0))
        sig, masks = _acquire(rng, att, (H, W), masks)
        boxes = {k: b for k, v in masks.items() if (b := _bbox(v)) is not None}
        labels = dict(findings)
        labels["no_finding"] = int(not any(findings.values()))
        spacing = 0.16 * 2000 / H * rng.uniform(0.9, 1.1)  # ~320–350 mm field of view
        return Study(pixels=sig, kind="chest", labels=labels, boxes=boxes, spacing_mm=spacing)
    sizes = {"ct": (512, 512), "mr": (256, 256), "us": (480, 640), "photo": (600, 800)}
    if kind in sizes:
        H, W = sizes[kind]
        if size_range[1] < 400:  # tests ask for small images
            H, W = (max(32, H * size_range[1] // 800), max(32, W * size_range[1] // 800))
        pix = render_negative(rng, kind, (H, W))
        return Study(pixels=pix, kind=kind, labels={}, spacing_mm={"ct": 0.7, "mr": 0.9}.get(kind, 0.3))
    H, W = _size(rng, (size_range[0] * 0.6, size_range[1] * 0.8))
    rh = min(H, render_max)
    att = render_negative(rng, kind, (rh, int(round(rh * W / H))))
    sig, _ = _acquire(rng, att / max(float(att.max()), 1e-3) * 2.2, (H, W), {}, pose=False)
    return Study(pixels=sig, kind=kind, labels={}, spacing_mm=0.15 * 2000 / H)


_BODY_PART = {
    "chest": "CHEST",
    "knee": "KNEE",
    "hand": "HAND",
    "pelvis": "PELVIS",
    "skull": "SKULL",
    "abdomen": "ABDOMEN",
    "ct": "CHEST",
    "mr": "HEAD",
    "us": "ABDOMEN",
    "photo": "",
}


def _uid(rng) -> str:
    return UID_ROOT + str(int(rng.integers(10**15, 10**16))) + "." + str(int(rng.integers(10**9, 10**10)))


def _patient(ds: Dataset, rng) -> None:
    ds.PatientName = f"{rng.choice(_LAST)}^{rng.choice(_FIRST)}"
    # one patient per study here: 7 random digits alone collide (about one pair in 4000 studies), which
    # would merge two patients in patient-grouped splits and raise false "shared patient" warnings
    # between separately generated sets; the study's UID tail makes the ID unique without drawing
    # anything more (every other attribute of a seed's files stays as it was)
    ds.PatientID = f"PID{int(rng.integers(10**6, 10**7))}-{str(ds.StudyInstanceUID)[-5:]}"
    ds.PatientBirthDate = (
        f"{int(rng.integers(1930, 2005))}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 28)):02d}"
    )
    ds.PatientSex = str(rng.choice(["M", "F", "O"]))
    ds.AccessionNumber = f"ACC{int(rng.integers(10**7, 10**8))}"
    ds.InstitutionName = str(
        rng.choice(["Synthetic General Hospital", "Imaginary Clinic", "Nowhere Medical Centre"])
    )
    ds.ReferringPhysicianName = f"{rng.choice(_LAST)}^{rng.choice(_FIRST)}"
    ds.StudyDate = (
        f"20{int(rng.integers(15, 26)):02d}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 28)):02d}"
    )
    ds.StudyTime = f"{int(rng.integers(0, 24)):02d}{int(rng.integers(0, 60)):02d}00"
    ds.StudyID = str(int(rng.integers(1, 10**4)))
    ds.SeriesNumber, ds.InstanceNumber = 1, 1


def to_dataset(
    study: Study, rng: np.random.Generator, *, metadata: str = "true", transfer_syntax: str | None = None
) -> Dataset:
    """Encode a Study as a DICOM data set.

    metadata: "true" (Modality and Body Part match the content), "missing" (no Body Part, generic
    Modality OT) or "wrong" (claims to be a DX chest whatever the content) — the latter two exercise
    the gate's image check."""
    ds = Dataset()
    fm = FileMetaDataset()
    kind = study.kind
    xray = kind in ("chest", "knee", "hand", "pelvis", "skull", "abdomen")
    modality = {"ct": "CT", "mr": "MR", "us": "US", "photo": "XC"}.get(kind, str(rng.choice(["DX", "CR"])))
    sop_class = {"CT": CT_SOP, "MR": MR_SOP, "US": US_SOP, "XC": SC_SOP, "DX": DX_SOP, "CR": CR_SOP}[modality]
    body_part = _BODY_PART[kind]
    if metadata == "missing":
        body_part, modality = "", "OT"
    elif metadata == "wrong":
        body_part, modality = "CHEST", "DX"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _uid(rng)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _uid(rng), _uid(rng)
    ds.Modality = modality
    if body_part:
        ds.BodyPartExamined = body_part
    if kind == "chest" or (xray and rng.random() < 0.7):
        ds.ViewPosition = "PA" if kind != "chest" or rng.random() < 0.8 else "AP"
    ds.SeriesDescription = {"chest": "CHEST PA", "ct": "AXIAL 5mm", "mr": "T2 AX", "us": "ABD"}.get(
        kind, kind.upper()
    )
    _patient(ds, rng)
    pix = study.pixels
    H, W = pix.shape[:2]
    ds.Rows, ds.Columns = H, W
    if pix.ndim == 3:  # photographs: RGB
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        arr = pix.astype(np.uint8)
        ts = ExplicitVRLittleEndian
    else:
        ds.SamplesPerPixel = 1
        if kind in ("ct", "mr", "us"):
            bits, signed = (12, 0) if kind == "ct" else ((12, 0) if kind == "mr" else (8, 0))
            if kind == "ct":
                arr = np.clip(np.rint(pix + 1024), 0, 4095).astype(np.uint16)
                ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
                ds.WindowCenter, ds.WindowWidth = [40, -600], [400, 1500]
            elif kind == "mr":
                arr = np.clip(np.rint(pix), 0, 4095).astype(np.uint16)
            else:
                arr = np.clip(np.rint(pix), 0, 255).astype(np.uint8)
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated = 8 if arr.dtype == np.uint8 else 16
            ds.BitsStored, ds.HighBit, ds.PixelRepresentation = (
                bits if arr.dtype != np.uint8 else 8,
                (bits if arr.dtype != np.uint8 else 8) - 1,
                signed,
            )
            ts = transfer_syntax or ExplicitVRLittleEndian
        else:
            arr, ts = _encode_xray(ds, pix, rng, transfer_syntax)
        sp = [f"{study.spacing_mm:.4f}", f"{study.spacing_mm:.4f}"]
        if xray and ds.Modality in ("DX", "OT"):
            ds.ImagerPixelSpacing = sp
        else:
            ds.PixelSpacing = sp
    fm.MediaStorageSOPClassUID = ds.SOPClassUID
    fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = UID_ROOT + "1"
    ds.file_meta = fm
    ds.PixelData = arr.tobytes()
    ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"
    if ts in (RLELossless, JPEGLSLossless, JPEG2000Lossless):
        # pydicom's compress() gives the instance a new random UID by default: keep ours, drawn from
        # the study's generator, so that a seed reproduces every file byte for byte.
        ds.compress(
            ts,
            arr,
            encoding_plugin="pylibjpeg" if ts == JPEG2000Lossless else "",
            generate_instance_uid=False,
        )
    else:
        fm.TransferSyntaxUID = ts
    return ds


def _encode_xray(ds: Dataset, sig: np.ndarray, rng, transfer_syntax):
    """The X-ray acquisition variety: MONOCHROME1/2, Bits Stored 10–16, signed or not, rescale,
    window presets (one or two, LINEAR or SIGMOID, or none), transfer syntax."""
    bits = int(rng.choice([10, 12, 12, 14, 15, 16]))
    signed = int(rng.random() < 0.1 and bits < 16)
    mono1 = rng.random() < 0.4
    top = 2**bits - 1
    lo = rng.uniform(0.0, 0.08) * top
    hi = rng.uniform(0.85, 1.0) * top
    stored = lo + sig * (hi - lo)
    if mono1:
        stored = top - stored
    stored = np.rint(np.clip(stored, 0, top))
    if signed:
        stored = stored - 2 ** (bits - 1)
        arr = stored.astype(np.int16)
    else:
        arr = stored.astype(np.uint16)
    ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, signed
    slope, intercept = 1.0, 0.0
    if rng.random() < 0.2:
        slope, intercept = float(rng.choice([0.5, 2.0])), float(rng.choice([0, -100, 1000]))
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "US"
    values = arr.astype(np.float64) * slope + intercept
    body = values[
        values.shape[0] // 8 : -values.shape[0] // 8 : 4, values.shape[1] // 8 : -values.shape[1] // 8 : 4
    ]
    a, b = np.percentile(body, [1, 99])
    r = rng.random()
    if r < 0.75:
        c1, w1 = (a + b) / 2 * rng.uniform(0.97, 1.03), (b - a) * rng.uniform(1.0, 1.3)
        ds.WindowCenter = [round(c1, 1), round(c1 + 0.1 * (b - a), 1)] if rng.random() < 0.4 else round(c1, 1)
        ds.WindowWidth = (
            [round(w1, 1), round(0.6 * w1, 1)]
            if isinstance(ds.WindowCenter, list) or ds["WindowCenter"].VM > 1
            else round(w1, 1)
        )
        if ds["WindowCenter"].VM > 1:
            ds.WindowCenterWidthExplanation = ["STANDARD", "LUNG"]
        if rng.random() < 0.25:
            ds.VOILUTFunction = "SIGMOID"
            ds.WindowWidth = (
                [round(x * 0.7, 1) for x in ds.WindowWidth]
                if ds["WindowWidth"].VM > 1
                else round(float(ds.WindowWidth) * 0.7, 1)
            )
    ds.PresentationLUTShape = "INVERSE" if mono1 else "IDENTITY"
    if transfer_syntax is None:
        t = rng.random()
        ts = (
            ExplicitVRLittleEndian
            if t < 0.55
            else ImplicitVRLittleEndian
            if t < 0.65
            else RLELossless
            if t < 0.75
            else JPEGLSLossless
            if t < 0.88
            else JPEG2000Lossless
            if t < 0.95
            else DeflatedExplicitVRLittleEndian
        )
    else:
        ts = pydicom.uid.UID(transfer_syntax)
    if signed and ts == JPEGLSLossless:
        ts = ExplicitVRLittleEndian  # keep JPEG-LS to unsigned data (codec support varies)
    return arr, ts


def write_dataset(ds: Dataset, path: Path) -> None:
    """Write as a PS3.10 file (preamble, DICM, file meta); the encoding follows the meta's syntax."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


LABEL_FIELDS = [
    "file",
    "kind",
    "metadata",
    "frontal_chest",
    *FINDINGS,
    "no_finding",
    "boxes",
    "seed",
    "index",
]


_OWN_FILE = re.compile(r"\d{6}\.dcm")


def _check_only_synthetic(out: Path) -> None:
    """ValueError naming the first file in ``out`` that :func:`generate` would not have written."""
    if not out.is_dir():
        return
    for entry in sorted(out.iterdir()):
        if entry.name == "labels.csv" and entry.is_file():
            continue
        if entry.name in ("chest", "other") and entry.is_dir():
            foreign = next((p for p in sorted(entry.iterdir()) if not _OWN_FILE.fullmatch(p.name)), None)
            if foreign is None:
                continue
            entry = foreign
        raise ValueError(f"{entry} was not written by synth: synthetic studies go into a new folder, or one "
                         "that synth made (never mixed with real ones)")


def generate(
    out: str | Path,
    n: int,
    seed: int = 0,
    *,
    prevalence: float | dict[str, float] = 0.2,
    negatives: int = 0,
    negative_metadata: tuple[float, float, float] = (0.5, 0.25, 0.25),
    size_range: tuple[int, int] = (1500, 3000),
    render_max: int = 512,
    transfer_syntax: str | None = None,
    progress=None,
) -> Path:
    """Write `n` chest studies and `negatives` gate negatives as DICOM files under `out`, plus
    `labels.csv` (one row per file; no patient attributes). Deterministic for a given seed: file i
    uses np.random.default_rng([seed, i]), so a partial run can be extended or re-made.

    negative_metadata: fractions of negatives written with true / missing / wrong metadata.
    Returns the path of labels.csv.

    ``out`` may hold only what this function writes (``chest/``, ``other/``, ``labels.csv``): synthetic
    studies are never mixed into a folder of real ones, whose files could also be overwritten."""
    out = Path(out)
    _check_only_synthetic(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    total = n + negatives
    for i in range(total):
        rng = np.random.default_rng([seed, i])
        if i < n:
            kind, meta = "chest", "true"
        else:
            kind = NEGATIVE_KINDS[(i - n) % len(NEGATIVE_KINDS)]
            t = rng.random()
            meta = (
                "true"
                if t < negative_metadata[0]
                else "missing"
                if t < sum(negative_metadata[:2])
                else "wrong"
            )
        study = make_study(
            rng, kind=kind, prevalence=prevalence, size_range=size_range, render_max=render_max
        )
        ds = to_dataset(study, rng, metadata=meta, transfer_syntax=transfer_syntax)
        rel = f"{'chest' if kind == 'chest' else 'other'}/{i:06d}.dcm"
        write_dataset(ds, out / rel)
        row = {
            "file": rel,
            "kind": kind,
            "metadata": meta,
            "frontal_chest": int(kind == "chest"),
            "boxes": json.dumps(study.boxes, separators=(",", ":")),
            "seed": seed,
            "index": i,
        }
        for f in (*FINDINGS, "no_finding"):
            row[f] = study.labels.get(f, "") if kind == "chest" else ""
        rows.append(row)
        if progress is not None:
            progress(i + 1, total)
    path = out / "labels.csv"
    with open(path, "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=LABEL_FIELDS)
        wr.writeheader()
        wr.writerows(rows)
    return path


SAMPLES = (
    ("chest_normal", "chest", {}),
    ("chest_opacity", "chest", {"opacity": 1.0}),
    ("chest_nodule", "chest", {"nodule": 1.0}),
    ("chest_effusion_cardiomegaly", "chest", {"effusion": 1.0, "cardiomegaly": 1.0}),
    ("chest_pneumothorax", "chest", {"pneumothorax": 1.0}),
    ("knee", "knee", {}),
    ("ct_slice", "ct", {}),
)


def make_samples(out: str | Path, seed: int = 2024, size: int = 640) -> list[Path]:
    """The small bundled sample files (apps/dicom_dx/assets/samples): one per finding, a normal study
    and two gate negatives, JPEG-LS lossless at ~size px to keep the repository small."""
    out = Path(out)
    paths = []
    for i, (name, kind, prev) in enumerate(SAMPLES):
        rng = np.random.default_rng([seed, i])
        study = make_study(rng, kind=kind, prevalence=prev, size_range=(size, size + 1), render_max=size)
        ds = to_dataset(study, rng, transfer_syntax=JPEGLSLossless if kind == "chest" else None)
        write_dataset(ds, out / f"{name}.dcm")
        paths.append(out / f"{name}.dcm")
    return paths
