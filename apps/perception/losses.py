"""CenterNet training losses, composed from differentiable framework ops.

- Heatmap: the penalty-reduced pixel-wise focal loss of CenterNet (Zhou et al. 2019, eq. 1;
  alpha = 2, beta = 4), normalised by the number of objects; cells inside ignore regions weigh 0.
- Regression: L1 on [dx, dy, log w, log h] at the cells around each centre, weighted by the target's
  Gaussian weights and normalised by their sum. Log sizes make the error relative to the object size,
  which is what IoU (and so mAP50-95) measures.
- Box: optionally 1 - GIoU (Rezatofighi et al. 2019) between the decoded predicted and target boxes at
  the same cells and weights (as TTFNet does): it scores the box as mAP50-95 does, with the four
  coordinates coupled, where L1 treats them apart.
"""

from __future__ import annotations

import numpy as np

import framework as fw


def _on(device, *arrays):
    """NumPy target arrays as tensors on ``device`` (the predictions' device)."""
    ts = [fw.from_numpy(a) for a in arrays]
    return [t.to(device) if t.device != device else t for t in ts]


def focal_heatmap_loss(logits, target: np.ndarray, weight: np.ndarray, alpha: float = 2.0, beta: float = 4.0):
    """logits (N, C, H, W) Tensor; target (N, C, H, W) in 0..1, exactly 1 at centres; weight (N, 1, H, W)."""
    pos = (target >= 1.0 - 1e-6).astype(np.float32)
    neg_w = ((1.0 - target) ** beta * (1.0 - pos) * weight).astype(np.float32)
    p = fw.sigmoid(logits).clamp(1e-4, 1.0 - 1e-4)
    pos_t, neg_t = _on(logits.device, pos, neg_w)
    pos_loss = (fw.log(p) * (1.0 - p) ** alpha * pos_t).sum()
    neg_loss = (fw.log(1.0 - p) * p**alpha * neg_t).sum()
    return -(pos_loss + neg_loss) / max(float(pos.sum()), 1.0)


def reg_l1_loss(pred, target: np.ndarray, weight: np.ndarray, size_weight: float = 1.0):
    """pred (N, 4, H, W) Tensor; target (N, 4, H, W); weight (N, 1, H, W)."""
    ch = np.array([1.0, 1.0, size_weight, size_weight], np.float32).reshape(1, 4, 1, 1)
    w = (weight * ch).astype(np.float32)
    t, wt = _on(pred.device, target.astype(np.float32), w)
    return ((pred - t).abs() * wt).sum() / max(float(weight.sum()), 1e-6)


def giou_loss(pred, target: np.ndarray, weight: np.ndarray):
    """Weighted mean of 1 - GIoU at the cells with weight > 0.

    pred (N, 4, H, W) Tensor and target (N, 4, H, W), both [dx, dy, log w, log h] in cells relative to
    the cell (the cell's own position cancels, so the boxes are compared as they decode); weight
    (N, 1, H, W). Returns 0 (with a gradient of zeros) when no cell has weight.
    """
    n, _, h, w = pred.shape
    dt = pred.data.dtype
    flat_w = np.asarray(weight, dt).reshape(-1)
    idx = np.flatnonzero(flat_w > 0)
    if idx.size == 0:
        return (pred * 0.0).sum()
    cells = np.asarray(target, dt).transpose(0, 2, 3, 1).reshape(-1, 4)[idx]
    rows, wt, tg = _on(pred.device, idx.astype(np.int64), flat_w[idx], np.ascontiguousarray(cells))
    p = pred.permute(0, 2, 3, 1).reshape(-1, 4)[rows]  # (M, 4): gradients scatter back to the cells

    def corners(b):
        half_w, half_h = fw.exp(b[:, 2]) * 0.5, fw.exp(b[:, 3]) * 0.5
        return b[:, 0] - half_w, b[:, 1] - half_h, b[:, 0] + half_w, b[:, 1] + half_h

    px1, py1, px2, py2 = corners(p)
    tx1, ty1, tx2, ty2 = corners(tg)
    iw = (fw.minimum(px2, tx2) - fw.maximum(px1, tx1)).clamp(min=0.0)
    ih = (fw.minimum(py2, ty2) - fw.maximum(py1, ty1)).clamp(min=0.0)
    inter = iw * ih
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - inter
    hull = (fw.maximum(px2, tx2) - fw.minimum(px1, tx1)) * (fw.maximum(py2, ty2) - fw.minimum(py1, ty1))
    giou = inter / union - (hull - union) / hull
    return ((1.0 - giou) * wt).sum() / float(flat_w[idx].sum())
