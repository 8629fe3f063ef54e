"""A learned rescoring of the detector's boxes: how likely each box is to count at COCO's IoU thresholds.

Average precision over IoU 0.5:0.95 ranks every box of a class across the whole set by one score: a
box that is found but loosely fitted should rank below a tight one. The heatmap's score says that an
object is there, not how well its box fits. The decoder's spread quality (:mod:`apps.perception.decode`)
was a first, hand-made answer. Ranking by the true IoU would lift the committed detector's validation
mAP50-95 from 0.642 to 0.675: the room there is.

Here a small MLP (the framework's: 21 inputs, two hidden layers of 64, one output) reads what the decoder
already knows about each box and predicts the fraction of the ten IoU thresholds at which COCO's greedy
matching would count it a true positive (0 for a false or duplicate box). Its output is the box's
``confidence``: the order in which evaluation and the COCO export rank boxes. The score stays what
``conf`` thresholds, what the demo shows and what tracking follows, as with the spread quality.

The inputs (:data:`FEATURES`), all read off the network's outputs, the box and the other boxes of the
frame: the peak's logit; the spread of the 3x3 neighbourhood's centre and log-size estimates; the box's
log width, log height and aspect; how sharply the class probability falls off around the peak; the
second class's probability at the peak; the peak cell's own offset; the peak's rank in the frame; the
box's position in the frame and whether it runs past the frame's edge; its largest IoU with a
higher-scored box; its class. Measured without them on the hidden activations instead (432 values at
the peak's 3x3 cells): it overfitted and scored lower on validation.

The rescorer is trained on the detector's own outputs on frames it was not trained on (``python -m
apps.perception rescorer``), chosen on the validation frames, and is valid only for the detector weights
and input size it was trained with: :func:`load` checks both (``detector_sha256``, ``input_size``).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from .classes import NUM_CLASSES
from .metrics import IOU_THRS, Detections, _match, box_iou

DECODER_FEATURES = (
    "logit / 5",
    "centre spread x 3",
    "log-size spread x 3",
    "log width / 3",
    "log height / 3",
    "log aspect",
    "peak sharpness",
    "sqrt(second class probability)",
    "peak dx - 0.5",
    "peak dy - 0.5",
    "log(1 + rank) / 4",
)
FRAME_FEATURES = (
    "centre y / frame height",
    "centre x / frame width",
    "past the frame edge",
    "largest IoU with a higher-scored box",
)
FEATURES = DECODER_FEATURES + FRAME_FEATURES + tuple(f"class {i}" for i in range(NUM_CLASSES))
N_DECODER_FEATURES = len(DECODER_FEATURES)
N_FEATURES = len(FEATURES)


def decoder_features(prob_c, reg, cls, cy, cx, box, spread, extras) -> np.ndarray:
    """(K, N_DECODER_FEATURES) float32 for K peaks sorted by score (:func:`apps.perception.decode.decode`):
    prob_c (C, H, W) probabilities, reg (4, H, W), the peaks' class and cell, their refined boxes (K, 4)
    [cx, cy, log w, log h] in cells, centre spreads and the refinement's extras."""
    k = len(cls)
    score = np.clip(prob_c[cls, cy, cx].astype(np.float64), 1e-6, 1 - 1e-6)
    other = prob_c[:, cy, cx].copy()
    other[cls, np.arange(k)] = 0.0
    second = other.max(0) if k else np.zeros(0)
    lw, lh = box[:, 2], box[:, 3]
    cols = [
        (np.log(score) - np.log1p(-score)) / 5,
        spread * 3,
        extras["size_spread"] * 3,
        lw / 3,
        lh / 3,
        lw - lh,
        extras["sharpness"],
        np.sqrt(second),
        reg[0, cy, cx] - 0.5,
        reg[1, cy, cx] - 0.5,
        np.log1p(np.arange(k)) / 4,
    ]
    return np.stack(cols, 1).astype(np.float32) if k else np.zeros((0, N_DECODER_FEATURES), np.float32)


def frame_features(
    decoder: np.ndarray,
    unclipped: np.ndarray,
    clipped: np.ndarray,
    classes: np.ndarray,
    width: int,
    height: int,
) -> np.ndarray:
    """The full (K, N_FEATURES) rows: ``decoder`` features, then the box's place in the frame (from its
    ``unclipped`` and ``clipped`` xyxy frame pixels), its largest IoU with a box ranked above it (rows in
    score order), and its class one-hot."""
    k = len(decoder)
    cxy = (unclipped[:, :2] + unclipped[:, 2:]) / 2
    past = (
        (unclipped[:, 0] < 0) | (unclipped[:, 1] < 0) | (unclipped[:, 2] > width) | (unclipped[:, 3] > height)
    ).astype(np.float32)
    above = np.zeros(k)
    if k > 1:
        above = np.tril(box_iou(clipped, clipped), -1).max(1)
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[np.asarray(classes, np.int64)]
    extra = np.stack([cxy[:, 1] / height, cxy[:, 0] / width, past, above], 1) if k else np.zeros((0, 4))
    return np.concatenate([decoder, extra.astype(np.float32), onehot], 1).astype(np.float32)


def coco_targets(d: Detections, sample) -> tuple[np.ndarray, np.ndarray]:
    """What COCO's matching makes of each detection of one frame: (K, 10) float32, 1 where it is a true
    positive at IoU threshold t (the evaluator's own greedy matching, :func:`apps.perception.metrics._match`,
    in the order of ``d.scores``: each ground-truth box matched once, ignore regions taking any number),
    and (K,) bool, the detections an ignore region takes at IoU 0.5 (neither true nor false: left out of
    training)."""
    k = len(d.scores)
    hit = np.zeros((k, len(IOU_THRS)), np.float32)
    ignored = np.zeros(k, bool)
    order = np.argsort(-d.scores, kind="mergesort")
    for c in np.unique(d.classes):
        rows = order[d.classes[order] == c]
        gt = sample.boxes[sample.classes == c]
        ign = sample.ignore[(sample.ignore_classes == c) | (sample.ignore_classes == -1)]
        crowd = np.r_[np.zeros(len(gt), bool), np.ones(len(ign), bool)]
        ious = box_iou(d.boxes[rows], np.concatenate([gt, ign]), crowd)
        for t, thr in enumerate(IOU_THRS):
            matched, by_ignore = _match(ious, crowd, crowd, thr)
            hit[rows, t] = matched & ~by_ignore
            if t == 0:
                ignored[rows] = by_ignore
    return hit, ignored


class Rescorer:
    """The trained MLP with its input standardisation. ``meta``: input_size, detector_sha256, hidden,
    features (names), training notes."""

    def __init__(self, net, mean: np.ndarray, std: np.ndarray, meta: dict):
        self.net, self.mean, self.std, self.meta = (
            net,
            np.asarray(mean, np.float32),
            np.asarray(std, np.float32),
            meta,
        )
        self.net.eval()

    @staticmethod
    def build(hidden: int = 64, n_features: int = N_FEATURES):
        import framework.nn as nn

        return nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def logits(self, features: np.ndarray) -> np.ndarray:
        import framework as fw

        if features.ndim != 2 or features.shape[1] != len(self.mean):
            raise ValueError(
                f"Rescorer: expected features of shape (K, {len(self.mean)}), got {features.shape}"
            )
        with fw.no_grad():
            z = self.net(fw.from_numpy(((features - self.mean) / self.std).astype(np.float32)))
        return z.numpy().reshape(-1)

    def __call__(self, d: Detections) -> Detections:
        """``d`` (with full features, see :func:`frame_features`) with its ``confidence`` set."""
        if d.features is None:
            raise ValueError("Rescorer: the detections carry no features (decode with features=True)")
        conf = 0.5 * (np.tanh(0.5 * self.logits(d.features)) + 1.0) if len(d.scores) else np.zeros(0)
        return dataclasses.replace(d, confidence=conf.astype(np.float32))

    def save(self, path: str) -> None:
        import framework as fw

        fw.save(
            {
                "net": self.net.state_dict(),
                "mean": fw.from_numpy(self.mean),
                "std": fw.from_numpy(self.std),
                "meta": self.meta,
            },
            path,
        )


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load(path: str, weights: str | None = None, input_size: int | None = None) -> Rescorer:
    """A saved :class:`Rescorer`. With ``weights`` / ``input_size`` given, refuses (ValueError, saying
    which) one trained for other detector weights or another input size: its inputs would mean
    something else."""
    import framework as fw

    state = fw.load(path)
    if not isinstance(state, dict) or not {"net", "mean", "std", "meta"} <= set(state):
        raise ValueError(f"{path!r} is not a rescorer file (expected net, mean, std and meta)")
    meta = state["meta"]
    if weights is not None and meta.get("detector_sha256") != sha256_file(weights):
        raise ValueError(f"rescorer {path!r} was trained for other detector weights than {weights!r}")
    if input_size is not None and int(meta.get("input_size", -1)) != int(input_size):
        raise ValueError(
            f"rescorer {path!r} was trained at input size {meta.get('input_size')}, the detector "
            f"runs at {input_size}"
        )
    mean = state["mean"].numpy()
    net = Rescorer.build(int(meta.get("hidden", 64)), len(mean))
    net.load_state_dict(state["net"])
    return Rescorer(net, mean, state["std"].numpy(), meta)


def train(
    features: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    meta: dict,
    hidden: int = 64,
    steps: int = 6000,
    batch: int = 4096,
    lr: float = 3e-3,
    weight_decay: float = 1e-3,
    seed: int = 0,
    progress=None,
) -> Rescorer:
    """Fit a :class:`Rescorer`: binary cross-entropy of its output against ``targets`` (K,) in 0..1 (the
    fraction of IoU thresholds each box is a true positive at), each row weighted by ``weights``
    (0 leaves it out); AdamW on random batches, cosine learning rate."""
    import framework as fw
    import framework.nn.functional as F

    if len(features) != len(targets) or len(features) != len(weights) or len(features) == 0:
        raise ValueError(
            f"rescore.train: {len(features)} feature rows, {len(targets)} targets, {len(weights)} "
            "weights: need the same, non-zero number"
        )
    fw.manual_seed(seed)
    mean = features.mean(0).astype(np.float32)
    std = (features.std(0) + 1e-6).astype(np.float32)
    net = Rescorer.build(hidden, features.shape[1])
    net.train()
    opt = fw.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    x = fw.from_numpy(((features - mean) / std).astype(np.float32))
    y = fw.from_numpy(np.asarray(targets, np.float32))
    w = fw.from_numpy(np.asarray(weights, np.float32))
    rng = np.random.default_rng(seed)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
        b = fw.from_numpy(rng.integers(0, len(features), batch))
        loss = F.binary_cross_entropy_with_logits(net(x[b]).reshape(-1), y[b], weight=w[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if progress is not None and (step % 500 == 0 or step == steps - 1):
            progress(step, float(loss.item()))
    return Rescorer(
        net, mean, std, {**meta, "hidden": hidden, "features": list(FEATURES), "steps": steps, "seed": seed}
    )


def collect(model, roots: list[str], device: str = "cpu"):
    """The training rows for a rescorer: ``model`` run over the caches ``roots``, each detection's
    features, target (fraction of IoU thresholds it is a true positive at) and weight (0 for boxes only
    an ignore region takes). Returns (features (K, N_FEATURES), targets (K,), weights (K,), frames)."""
    from .evaluate import cache_samples, predict_cache

    feats, targets, weights, frames = [], [], [], 0
    for root in roots:
        gts = cache_samples(root)
        dets = predict_cache(model, root, device=device, features=True)
        for d, g in zip(dets, gts):
            hit, ignored = coco_targets(d, g)
            feats.append(d.features)
            targets.append(hit.mean(1))
            weights.append((~ignored).astype(np.float32))
        frames += len(gts)
    return np.concatenate(feats), np.concatenate(targets), np.concatenate(weights), frames
