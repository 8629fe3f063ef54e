"""Non-maximum suppression on NumPy arrays (boxes ``x1, y1, x2, y2`` pixels)."""

from __future__ import annotations

import numpy as np


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float = 0.5) -> np.ndarray:
    """Greedy NMS. Returns the kept indices, highest score first.

    Vectorised: one IoU matrix for all pairs, then a single pass that only reads precomputed rows
    (O(K²) memory, fine for the few hundred candidates a decoder produces).
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    order = np.argsort(-np.asarray(scores), kind="stable")
    b = boxes[order]
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    iw = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    iou = inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-9)
    # only a higher-scoring box can suppress a lower one: keep the strict upper triangle
    over = np.triu(iou > iou_thr, k=1)
    keep = np.ones(len(b), bool)
    for i in range(len(b)):
        if keep[i]:
            keep[over[i]] = False
    return order[keep]


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_thr: float = 0.5
) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Shifts each class's boxes by a class-dependent offset larger than any coordinate, so one
    :func:`nms` call does all classes at once.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    off = (np.abs(boxes).max() + 1.0) * np.asarray(classes, np.float32)[:, None]
    return nms(boxes + off, scores, iou_thr)
