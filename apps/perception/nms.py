"""Non-maximum suppression on NumPy arrays (boxes ``x1, y1, x2, y2`` pixels).

A box is suppressed by a kept, higher-scoring box (of its class, for :func:`batched_nms`) that overlaps
it by IoU > ``iou_thr``; IoU exactly at the threshold keeps it (as torchvision). Zero-area boxes overlap
nothing (IoU 0). IoUs are computed in float64, so pairs exactly at the threshold are not rounded to
either side.
"""

from __future__ import annotations

import numpy as np


def _greedy(boxes, scores, iou_thr: float, classes=None) -> np.ndarray:
    """Kept indices, highest score first (ties in input order); only same-class pairs suppress.

    Vectorised: one IoU matrix for all pairs, then a single pass that only reads precomputed rows
    (O(K²) memory, fine for the few hundred candidates a decoder produces).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    b = boxes[order]
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    iw = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = area[:, None] + area[None, :] - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    over = iou > iou_thr
    if classes is not None:
        # a class mask rather than torchvision's per-class coordinate offset, which maps boxes of
        # different classes onto each other when coordinates are negative and rounds IoUs in float32
        c = np.asarray(classes).reshape(-1)[order]
        over &= c[:, None] == c[None, :]
    # only a higher-scoring box can suppress a lower one: keep the strict upper triangle
    over = np.triu(over, k=1)
    keep = np.ones(len(b), bool)
    for i in range(len(b)):
        if keep[i]:
            keep[over[i]] = False
    return order[keep]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float = 0.5) -> np.ndarray:
    """Greedy NMS over boxes (K, 4). Returns the kept indices (int64), highest score first."""
    return _greedy(boxes, scores, iou_thr)


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_thr: float = 0.5
) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other. Returns the kept indices
    (int64), highest score first."""
    return _greedy(boxes, scores, iou_thr, classes)
