"""CenterNet training losses, composed from differentiable framework ops.

- Heatmap: the penalty-reduced pixel-wise focal loss of CenterNet (Zhou et al. 2019, eq. 1;
  alpha = 2, beta = 4), normalised by the number of objects; cells inside ignore regions weigh 0.
- Regression: L1 on [dx, dy, log w, log h] at the cells around each centre, weighted by the target's
  Gaussian weights and normalised by their sum. Log sizes make the error relative to the object size,
  which is what IoU (and so mAP50-95) measures.
"""

from __future__ import annotations

import numpy as np

import framework as fw


def focal_heatmap_loss(logits, target: np.ndarray, weight: np.ndarray, alpha: float = 2.0, beta: float = 4.0):
    """logits (N, C, H, W) Tensor; target (N, C, H, W) in 0..1, exactly 1 at centres; weight (N, 1, H, W)."""
    pos = (target >= 1.0 - 1e-6).astype(np.float32)
    neg_w = ((1.0 - target) ** beta * (1.0 - pos) * weight).astype(np.float32)
    p = fw.sigmoid(logits).clamp(1e-4, 1.0 - 1e-4)
    pos_t, neg_t = fw.from_numpy(pos), fw.from_numpy(neg_w)
    if logits.device != pos_t.device:
        pos_t, neg_t = pos_t.to(logits.device), neg_t.to(logits.device)
    pos_loss = (fw.log(p) * (1.0 - p) ** alpha * pos_t).sum()
    neg_loss = (fw.log(1.0 - p) * p**alpha * neg_t).sum()
    return -(pos_loss + neg_loss) / max(float(pos.sum()), 1.0)


def reg_l1_loss(pred, target: np.ndarray, weight: np.ndarray, size_weight: float = 1.0):
    """pred (N, 4, H, W) Tensor; target (N, 4, H, W); weight (N, 1, H, W)."""
    ch = np.array([1.0, 1.0, size_weight, size_weight], np.float32).reshape(1, 4, 1, 1)
    w = (weight * ch).astype(np.float32)
    t, wt = fw.from_numpy(target.astype(np.float32)), fw.from_numpy(w)
    if pred.device != t.device:
        t, wt = t.to(pred.device), wt.to(pred.device)
    return ((pred - t).abs() * wt).sum() / max(float(weight.sum()), 1e-6)
