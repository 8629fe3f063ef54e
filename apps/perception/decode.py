"""Decoding CenterNet outputs into boxes (NumPy; a few hundred microseconds per frame).

Peaks are the cells equal to the 3x3 maximum of their neighbourhood (a max-pool with stride 1 and
padding 1, CenterNet's replacement for NMS); the top-k peaks above ``conf`` become boxes
``centre = (cell + offset) * stride``, ``size = exp(log size) * stride``. An optional class-aware NMS
removes the rare duplicate peaks of large objects.

Box refinement (``refine``, on by default): training supervises the box at the 3x3 cells around each
centre, so each peak's neighbours carry estimates of the same box. The decoded box is their average in
(centre, log size), weighted by the peak class's probability at each cell raised to ``REFINE_POWER``
(the peak dominates; far-off or other-object cells weigh little). Measured on the validation frames
of the committed detector: mAP50-95 +0.005 to +0.008 over the peak cell's box alone.

Localisation quality (with refinement): the nine cells' estimates of the box centre agree closely
where the network has located the object well, and scatter where it has not. Each box gets
``quality = 1 / (1 + LOC_QUALITY * spread)``, with spread the root-mean-square distance of the nine
centre estimates from their mean, in units of the box's width and height. The score (the class
probability at the peak) is what ``conf`` thresholds, what the demo shows and what tracking uses;
evaluation ranks boxes by ``score * quality`` (``Detections.ranked``), so that among boxes of the same
score the well-located ones come first, which is what average precision over IoU 0.5 to 0.95 rewards.
Tuned on the validation frames with stage 14's weights (LOC_QUALITY 2, 3, 4, 6: mAP50-95 0.6325, 0.6339,
0.6345, 0.6346 against 0.6238 ranked by score alone; mAP50 0.926, 0.924, 0.922, 0.918 against 0.927).
Thresholding the product instead lost more true objects than false ones: tracking on drives of seeds
31-34 reached MOTA 0.733 at its best threshold against 0.772 on the score.

A learned rescorer (:mod:`apps.perception.rescore`) can replace score x quality as the ranking: with
``features=True`` each detection carries what it reads (the decoder's part here, the frame's part added by
:func:`apps.perception.detector.to_frame`).

Flip test (``flip_merge``, optional, as in CenterNet's paper): the network also sees each image mirrored
left to right, and the two outputs are averaged cell by cell (the mirrored ones mapped back) before
decoding. Twice the network's time; measured on the committed detector it raises mAP50-95 by about 0.02
(see the model card's ``evaluation.flip_test``), mostly at the strict IoU thresholds: two views of an
object disagree where its box is uncertain, and averaging them halves much of that error.
"""

from __future__ import annotations

import numpy as np

from .metrics import Detections
from .nms import batched_nms


def max_pool3x3(x: np.ndarray) -> np.ndarray:
    """3x3 max over the last two axes with stride 1 and -inf padding (same shape as x)."""
    pad = [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)]
    p = np.pad(x, pad, constant_values=-np.inf)
    H, W = x.shape[-2:]
    rows = np.maximum(np.maximum(p[..., 0:H, :], p[..., 1 : H + 1, :]), p[..., 2 : H + 2, :])
    return np.maximum(np.maximum(rows[..., 0:W], rows[..., 1 : W + 1]), rows[..., 2 : W + 2])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free logistic


REFINE_POWER = 4.0
LOC_QUALITY = 3.0


def _refined(prob_c: np.ndarray, reg: np.ndarray, cls, cy, cx) -> tuple[np.ndarray, np.ndarray, dict]:
    """(K, 4) [centre x, centre y, log w, log h] in cells: the heatmap-weighted mean over each
    peak's 3x3 neighbourhood (cells past the edge weigh 0); (K,) the spread of the neighbourhood's
    centre estimates (see the module docstring); and {"size_spread", "sharpness"} (K,) each: the
    root-mean-square deviation of the neighbourhood's log-size estimates, and the mean probability of
    the peak's class at its neighbours relative to the peak's. prob_c (C, H, W), reg (4, H, W)."""
    H, W = prob_c.shape[1:]
    d = np.array([-1, 0, 1])
    ny, nx = np.broadcast_arrays(cy[:, None, None] + d[None, :, None], cx[:, None, None] + d[None, None, :])
    inside = (ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)
    ny, nx = np.clip(ny, 0, H - 1), np.clip(nx, 0, W - 1)
    # relative to the peak (the 3x3 maximum of its class, so ratios are in 0..1 and the peak weighs 1):
    # p^4 itself underflows the normaliser for low-scoring peaks (2e-4^4 = 1.6e-15), shrinking the box
    # towards the map origin
    peak = prob_c[cls, cy, cx][:, None, None]
    ratio = np.where(inside, prob_c[cls[:, None, None], ny, nx], 0.0) / np.where(peak > 0, peak, 1.0)
    wgt = np.where(peak > 0, ratio, 0.0) ** REFINE_POWER  # (K, 3, 3)
    wgt[:, 1, 1] = 1.0  # the peak itself (also where its probability is 0: then it alone)
    wgt = wgt / wgt.sum((1, 2), keepdims=True)
    r = reg[:, ny, nx]  # (4, K, 3, 3)
    est = np.stack([nx + r[0], ny + r[1], r[2], r[3]])
    box = (est * wgt[None]).sum((2, 3))  # (4, K)
    # the centre estimates' spread, every cell inside the map weighing the same
    cells = inside.sum((1, 2))
    centre = np.where(inside, est[:2], 0.0).sum((2, 3)) / cells  # (2, K)
    size = np.exp(np.clip(box[2:], -4, 6))[:, :, None, None]  # w, h in cells
    dev = np.where(inside, (((est[:2] - centre[:, :, None, None]) / size) ** 2).sum(0), 0.0)
    log_size = np.where(inside, est[2:], 0.0).sum((2, 3)) / cells  # (2, K)
    size_dev = np.where(inside, ((est[2:] - log_size[:, :, None, None]) ** 2).sum(0), 0.0)
    extras = {"size_spread": np.sqrt(size_dev.sum((1, 2)) / cells),
              "sharpness": (ratio.sum((1, 2)) - 1.0) / np.maximum(cells - 1, 1)}
    return box.T, np.sqrt(dev.sum((1, 2)) / cells), extras


def flip_merge(
    heat: np.ndarray, reg: np.ndarray, heat_mirrored: np.ndarray, reg_mirrored: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The average of the network's outputs on images (``heat``, ``reg``) and on the same images mirrored
    left to right (``*_mirrored``), the latter mapped back to the images' frame: both maps flipped along
    their width, and the centre offset dx becomes 1 - dx (cell q of the mirror is cell G-1-q of the image,
    and a centre at G - x there is at x here). Sizes are unchanged by the mirror. Heatmaps are averaged as
    logits (the decoder picks peaks on logits). All arrays (N, C or 4, H, W); returns (heat, reg)."""
    if heat.shape != heat_mirrored.shape or reg.shape != reg_mirrored.shape:
        raise ValueError(
            f"flip_merge: outputs of shapes {heat.shape}, {reg.shape} and mirrored {heat_mirrored.shape}, "
            f"{reg_mirrored.shape} differ"
        )
    back = np.array(reg_mirrored[..., ::-1], np.float32)
    back[:, 0] = 1.0 - back[:, 0]
    return (np.asarray(heat, np.float32) + heat_mirrored[..., ::-1]) * 0.5, (reg + back) * 0.5


def decode(
    heat: np.ndarray,
    reg: np.ndarray,
    stride: int = 4,
    conf: float = 0.25,
    top_k: int = 100,
    nms_iou: float | None = 0.7,
    logits: bool = True,
    refine: bool = True,
    features: bool = False,
) -> list[Detections]:
    """Boxes for each image of a batch, in model-input pixels (xyxy).

    Args:
        heat: (N, C, H, W) heatmap logits (``logits=True``) or probabilities.
        reg: (N, 4, H, W) [dx, dy, log w, log h], offsets and sizes in cells.
        conf: score threshold; top_k: most peaks kept per image; nms_iou: class-aware NMS IoU
            threshold applied after peak picking (None = off); refine: average each box over the
            peak's 3x3 neighbourhood and rate its localisation (``Detections.quality``; see the module
            docstring), else the peak cell's box alone (no quality); features: also give each
            detection the decoder's part of the rescorer's features (``Detections.features``, see
            :func:`apps.perception.rescore.decoder_features`; needs ``refine``).
    """
    if features and not refine:
        raise ValueError("decode: features=True needs refine=True (the features come from the refinement)")
    heat = np.asarray(heat, np.float32)
    reg = np.asarray(reg, np.float32)
    prob = sigmoid(heat) if logits else heat
    N, C, H, W = prob.shape
    # peaks on the logits where given (sigmoid is monotonic): in float32 neighbouring logits of 19 and 20
    # are both probability 1.0, and equal probabilities would make both cells peaks (a duplicate box)
    peaks = np.where(heat == max_pool3x3(heat), prob, 0.0).reshape(N, -1)
    out = []
    for n in range(N):
        s = peaks[n]
        k = min(top_k, s.size)
        idx = np.argpartition(-s, k - 1)[:k]
        idx = idx[s[idx] >= conf]
        idx = idx[np.argsort(-s[idx], kind="stable")]
        cls, cell = np.divmod(idx, H * W)
        cy, cx = np.divmod(cell, W)
        quality = np.ones(len(idx), np.float32) if refine else None
        feats = None
        if refine and len(idx):
            box, spread, extras = _refined(prob[n], reg[n], cls, cy, cx)
            ex, ey, lw, lh = box.T
            quality = (1.0 / (1.0 + LOC_QUALITY * spread)).astype(np.float32)
            if features:
                from .rescore import decoder_features

                feats = decoder_features(prob[n], reg[n], cls, cy, cx, box, spread, extras)
        else:
            r = reg[n][:, cy, cx]
            ex, ey, lw, lh = cx + r[0], cy + r[1], r[2], r[3]
            if features:  # (no peaks: features needs refine)
                from .rescore import N_DECODER_FEATURES

                feats = np.zeros((0, N_DECODER_FEATURES), np.float32)
        x, y = ex * stride, ey * stride
        w = np.exp(np.clip(lw, -4, 6)) * stride
        h = np.exp(np.clip(lh, -4, 6)) * stride
        boxes = np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], 1).astype(np.float32)
        scores = s[idx].astype(np.float32)
        classes = cls.astype(np.int64)
        d = Detections(boxes, scores, classes, quality, feats)
        if nms_iou is not None and len(boxes) > 1:
            d = d.select(batched_nms(boxes, scores, classes, nms_iou))
        out.append(d)
    return out
