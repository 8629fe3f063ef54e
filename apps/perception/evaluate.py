"""Evaluating a detector: on a cached synthetic set or on a labelled folder in any supported format.

Detections are taken at a low score threshold (0.001, top 100 per image) as COCO evaluation expects;
boxes are mapped back to the original frame so the small / medium / large areas are in original
pixels. ``--save-json`` writes COCO-format detections (``category_id = class + 1``).
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np

from .data import STRIDE, CachedDataset, unletterbox_boxes
from .decode import decode
from .formats import Sample, load_any
from .metrics import Detections, evaluate, to_coco_detections

EVAL_CONF = 0.001


def _cache_meta(root: str) -> tuple[tuple[float, float, float], int, int]:
    with open(os.path.join(root, "meta.json")) as f:
        m = json.load(f)
    w, h = m["source_size"]
    s = m["size"]
    r = min(s / w, s / h)
    return (r, float((s - int(round(w * r))) // 2), float((s - int(round(h * r))) // 2)), w, h


def cache_samples(root: str, limit: int | None = None) -> list[Sample]:
    """Ground truth of a cache in original-frame pixels."""
    ds = CachedDataset(root)
    meta, w, h = _cache_meta(root)
    n = len(ds) if limit is None else min(limit, len(ds))
    out = []
    for i in range(n):
        _, b, c, ig = ds[i]
        out.append(
            Sample(
                f"{i:06d}",
                w,
                h,
                unletterbox_boxes(b, meta, w, h),
                c,
                unletterbox_boxes(ig, meta, w, h),
                image_id=i + 1,
            )
        )
    return out


def predict_cache(
    model,
    root: str,
    size: int = 320,
    limit: int | None = None,
    batch: int = 16,
    device: str = "cpu",
    conf: float = EVAL_CONF,
    flip_test: bool = False,
    rescorer=None,
    features: bool = False,
) -> list[Detections]:
    """Run ``model`` (a CenterNet, moved to ``device``) over a cache; detections in original-frame pixels.
    ``flip_test``: average each frame's outputs with its mirror image's (see :class:`Detector`);
    ``rescorer``: rate each box (:mod:`apps.perception.rescore`); ``features``: keep the rescorer's
    features on the detections (implied by ``rescorer``)."""
    import framework as fw

    from .detector import _to_numpy, flip_forward, to_frame

    ds = CachedDataset(root)
    meta, w, h = _cache_meta(root)
    n = len(ds) if limit is None else min(limit, len(ds))
    model.to(device).eval()

    def network(x):
        t = fw.from_numpy(np.ascontiguousarray(x))
        heat, reg = model(t.to(device) if device != "cpu" else t)
        return _to_numpy(heat), _to_numpy(reg)

    out = []
    with fw.no_grad():
        for s in range(0, n, batch):
            x = np.ascontiguousarray(ds.images[s : min(s + batch, n)].transpose(0, 3, 1, 2), dtype=np.float32)
            x /= 255.0
            heat, reg = flip_forward(network, x) if flip_test else network(x)
            keep = features or rescorer is not None
            for d in decode(heat, reg, STRIDE, conf, top_k=100, nms_iou=0.7, features=keep):
                d = to_frame(d, meta, w, h)  # as the Detector delivers them
                out.append(d if rescorer is None else rescorer(d))
    return out


def evaluate_cache(
    model,
    root: str,
    size: int = 320,
    limit: int | None = None,
    device: str = "cpu",
    save_json: str | None = None,
    flip_test: bool = False,
    rescorer=None,
) -> dict:
    gts = cache_samples(root, limit)
    dets = predict_cache(model, root, size, limit, device=device, flip_test=flip_test, rescorer=rescorer)
    if save_json:
        with open(save_json, "w") as f:
            json.dump(to_coco_detections(gts, dets), f)
    return evaluate(gts, dets)


def evaluate_folder(
    detector,
    path: str,
    save_json: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    kitti_difficulty: str | None = None,
) -> dict:
    """Evaluate a :class:`Detector` on a labelled folder (YOLO / COCO / KITTI / VOC, see ``load_any``;
    ``kitti_difficulty``: "easy" / "moderate" / "hard", KITTI's benchmark levels)."""
    samples = load_any(path, kitti_difficulty)[:limit]
    old = detector.conf
    detector.conf = EVAL_CONF
    dets = []
    it = samples
    if progress:
        from tqdm import tqdm

        it = tqdm(samples, desc="evaluate", dynamic_ncols=True)
    try:
        for s in it:
            bgr = cv2.imread(s.image, cv2.IMREAD_COLOR)
            if bgr is None:
                raise FileNotFoundError(f"cannot read image {s.image!r}")
            dets.append(detector(bgr[..., ::-1].copy()))
    finally:
        detector.conf = old
    if save_json:
        with open(save_json, "w") as f:
            json.dump(to_coco_detections(samples, dets), f)
    return evaluate(samples, dets)


def format_report(m: dict) -> str:
    lines = [
        f"images {m['n_images']}  objects {m['n_gt']}",
        f"mAP50 {m['mAP50']:.4f}  mAP50-95 {m['mAP50_95']:.4f}  mAP75 {m['mAP75']:.4f}  "
        f"P {m['precision']:.3f}  R {m['recall']:.3f}",
        f"AP small {m['AP_small']:.4f}  medium {m['AP_medium']:.4f}  large {m['AP_large']:.4f}",
        f"{'class':<14}{'n':>6}{'AP50':>8}{'AP50-95':>9}{'P':>7}{'R':>7}",
    ]
    for k, v in m["per_class"].items():
        lines.append(
            f"{k:<14}{v['n_gt']:>6}{v['AP50']:>8.4f}{v['AP50_95']:>9.4f}{v['precision']:>7.3f}{v['recall']:>7.3f}"
        )
    return "\n".join(lines)
