"""COCO-style detection metrics, written to give the same numbers as pycocotools' ``COCOeval`` (bbox).

Follows the COCO detection evaluation (cocodataset.org/#detection-eval): IoU thresholds
0.50:0.05:0.95, 101 recall points, at most 100 detections per image and class, area ranges
small < 32² <= medium < 96² <= large (pixels²: the ground truth's ``areas`` where the file gives
them, as COCO's segment areas, else box areas; detections by box area), greedy matching of
score-sorted detections to the unmatched ground truth of highest IoU; crowd / ignore regions match any
number of detections with IoU = intersection / detection area, and such matches are neither true nor
false positives.

Boxes are ``x1, y1, x2, y2`` pixels throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classes import CLASSES

IOU_THRS = np.linspace(0.5, 0.95, 10)
REC_THRS = np.linspace(0.0, 1.0, 101)
AREA_RNGS = {
    "all": (0.0, 1e10),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e10),
}


@dataclass
class Detections:
    """One image's detections: ``boxes`` float32 (K, 4) xyxy pixels, ``scores`` (K,), ``classes`` (K,);
    ``quality`` (K,) in 0..1, the decoder's rating of each box's localisation, or None; ``features``
    (K, F) float32, what the learned rescorer reads (:mod:`apps.perception.rescore`), or None;
    ``confidence`` (K,) in 0..1, the rescorer's estimate of each box's precision over the IoU thresholds
    0.5:0.95, or None."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    quality: np.ndarray | None = None
    features: np.ndarray | None = None
    confidence: np.ndarray | None = None

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64))

    def select(self, keep) -> Detections:
        """The detections at ``keep`` (a boolean mask or indices), every per-detection array alike."""
        def pick(a):
            return None if a is None else a[keep]

        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep], pick(self.quality),
                          pick(self.features), pick(self.confidence))

    def ranked(self) -> Detections:
        """The detections with the scores evaluation ranks them by: the rescorer's ``confidence`` where
        it rated them, else ``scores * quality``, else the scores (see :mod:`apps.perception.decode`)."""
        if self.confidence is not None:
            return Detections(self.boxes, self.confidence.astype(np.float32), self.classes)
        if self.quality is None:
            return self
        return Detections(self.boxes, (self.scores * self.quality).astype(np.float32), self.classes)


def box_area(b: np.ndarray) -> np.ndarray:
    """Areas (K,) float64 of xyxy boxes (K, 4); in float64 as COCO (float32 rounded 32 x 32 boxes at
    fractional positions onto or off the 32² / 96² range borders)."""
    b = np.asarray(b, np.float64)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """IoU matrix (len(a), len(b)); where ``crowd[j]`` the denominator is the area of ``a[i]``."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    aa, ab = box_area(a)[:, None], box_area(b)[None, :]
    union = aa + ab - inter
    if crowd is not None and len(b):
        union = np.where(np.asarray(crowd, bool)[None, :], aa, union)
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _match(ious: np.ndarray, gt_ig: np.ndarray, gt_crowd: np.ndarray, thr: float):
    """One image/class/threshold: returns (dt_matched bool (D,), dt_ignored_by_match bool (D,))."""
    D, G = ious.shape
    gt_used = np.zeros(G, bool)
    dtm = np.zeros(D, bool)
    dtig = np.zeros(D, bool)
    for d in range(D):
        best, m = min(thr, 1 - 1e-10), -1
        for g in range(G):
            if gt_used[g] and not gt_crowd[g]:
                continue
            # gts are sorted non-ignored first: once a real match exists, stop at the ignored ones
            if m > -1 and not gt_ig[m] and gt_ig[g]:
                break
            if ious[d, g] < best:
                continue
            best, m = ious[d, g], g
        if m == -1:
            continue
        dtm[d] = True
        dtig[d] = gt_ig[m]
        gt_used[m] = True
    return dtm, dtig


def evaluate(gts, dets: list[Detections], num_classes: int = len(CLASSES), max_dets: int = 100) -> dict:
    """COCO metrics. ``gts``: list of :class:`apps.perception.formats.Sample` (boxes, classes, ignore,
    ignore_classes); ``dets``: one :class:`Detections` per sample, same order, ranked by their scores
    (or the rescorer's confidence, or score x localisation quality, where given: :meth:`Detections.ranked`).

    Returns a dict: ``mAP50``, ``mAP50_95``, ``mAP75``, ``AP_small/medium/large`` (0.5:0.95),
    ``per_class`` {name: {AP50, AP50_95, precision, recall, n_gt}}, ``precision`` / ``recall``
    (means over classes at IoU 0.5 at each class's max-F1 score threshold, as Ultralytics reports),
    and ``pr_curve`` (101-point precision at IoU 0.5, per class). A class/area with no ground truth is
    left out of the means (COCO's -1).
    """
    if len(gts) != len(dets):
        raise ValueError(f"evaluate: {len(gts)} ground-truth samples but {len(dets)} detection lists")
    # COCOeval ranks the detections of all images together after concatenating the images in image-id
    # order; tied scores then rank in that order (a stable sort), so take the images in that order too
    order = sorted(range(len(gts)), key=lambda i: gts[i].image_id)
    gts, dets = [gts[i] for i in order], [dets[i].ranked() for i in order]
    T, R = len(IOU_THRS), len(REC_THRS)
    prec = -np.ones((T, R, num_classes, len(AREA_RNGS)))
    f1_pr = np.zeros((num_classes, 2))
    n_gt_all = np.zeros(num_classes, int)
    for c in range(num_classes):
        for ai, (a0, a1) in enumerate(AREA_RNGS.values()):
            scores, tps, fps, npig = [], [], [], 0
            for s, dt in zip(gts, dets):
                gsel = s.classes == c
                gb = s.boxes[gsel]
                isel = (s.ignore_classes == c) | (s.ignore_classes == -1)
                ib = s.ignore[isel]
                boxes = np.concatenate([gb, ib]) if len(ib) else gb
                crowd = np.r_[np.zeros(len(gb), bool), np.ones(len(ib), bool)]
                area = box_area(boxes)
                if s.areas is not None:  # the file's object areas (COCO's segment areas), as COCOeval
                    area[: len(gb)] = s.areas[gsel]
                gt_ig = crowd | (area < a0) | (area > a1)
                order = np.argsort(gt_ig, kind="mergesort")
                boxes, crowd, gt_ig = boxes[order], crowd[order], gt_ig[order]
                npig += int((~gt_ig).sum())
                dsel = np.nonzero(dt.classes == c)[0]
                if not len(dsel):
                    continue
                dorder = dsel[np.argsort(-dt.scores[dsel], kind="mergesort")][:max_dets]
                db, ds = dt.boxes[dorder], dt.scores[dorder]
                darea = box_area(db)
                out_rng = (darea < a0) | (darea > a1)
                ious = box_iou(db, boxes, crowd)
                tp = np.zeros((T, len(db)), bool)
                fp = np.zeros((T, len(db)), bool)
                for ti, thr in enumerate(IOU_THRS):
                    dtm, dtig = _match(ious, gt_ig, crowd, thr)
                    ig = dtig | (~dtm & out_rng)
                    tp[ti] = dtm & ~ig
                    fp[ti] = ~dtm & ~ig
                scores.append(ds)
                tps.append(tp)
                fps.append(fp)
            if ai == 0:
                n_gt_all[c] = npig
            if npig == 0:
                continue
            if scores:
                sc = np.concatenate(scores)
                o = np.argsort(-sc, kind="mergesort")
                tp = np.concatenate(tps, 1)[:, o]
                fp = np.concatenate(fps, 1)[:, o]
            else:
                tp = fp = np.zeros((T, 0), bool)
            tp_c = np.cumsum(tp, 1, dtype=np.float64)
            fp_c = np.cumsum(fp, 1, dtype=np.float64)
            for ti in range(T):
                rc = tp_c[ti] / npig
                pr = tp_c[ti] / (fp_c[ti] + tp_c[ti] + np.spacing(1))
                if ai == 0 and ti == 0 and len(rc):
                    f1 = 2 * pr * rc / np.maximum(pr + rc, 1e-12)
                    k = int(np.argmax(f1))
                    f1_pr[c] = pr[k], rc[k]
                pr = np.maximum.accumulate(pr[::-1])[::-1] if len(pr) else pr  # precision envelope
                q = np.zeros(R)
                idx = np.searchsorted(rc, REC_THRS, side="left")
                ok = idx < len(pr)
                q[ok] = pr[idx[ok]]
                prec[ti, :, c, ai] = q

    def mean(p):
        v = p[p > -1]
        return float(v.mean()) if v.size else float("nan")

    names = list(CLASSES) if num_classes == len(CLASSES) else [str(i) for i in range(num_classes)]
    per_class = {}
    for c in range(num_classes):
        per_class[names[c]] = dict(
            AP50=mean(prec[0, :, c, 0]),
            AP50_95=mean(prec[:, :, c, 0]),
            precision=float(f1_pr[c, 0]),
            recall=float(f1_pr[c, 1]),
            n_gt=int(n_gt_all[c]),
        )
    has = n_gt_all > 0
    return dict(
        mAP50=mean(prec[0, :, :, 0]),
        mAP50_95=mean(prec[:, :, :, 0]),
        mAP75=mean(prec[5, :, :, 0]),
        AP_small=mean(prec[:, :, :, 1]),
        AP_medium=mean(prec[:, :, :, 2]),
        AP_large=mean(prec[:, :, :, 3]),
        precision=float(f1_pr[has, 0].mean()) if has.any() else float("nan"),
        recall=float(f1_pr[has, 1].mean()) if has.any() else float("nan"),
        per_class=per_class,
        n_images=len(gts),
        n_gt=int(n_gt_all.sum()),
        pr_curve={names[c]: prec[0, :, c, 0].round(4).tolist() for c in range(num_classes) if has[c]},
    )


def to_coco_detections(samples, dets: list[Detections]) -> list[dict]:
    """COCO results list: ``[{image_id, category_id (class + 1), bbox [x, y, w, h], score}]``, the score
    the one evaluation ranks by (:meth:`Detections.ranked`)."""
    out = []
    for s, d in zip(samples, map(Detections.ranked, dets)):
        for (x1, y1, x2, y2), sc, c in zip(d.boxes.tolist(), d.scores.tolist(), d.classes.tolist()):
            out.append(
                dict(
                    image_id=int(s.image_id),
                    category_id=int(c) + 1,
                    bbox=[round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                    score=round(float(sc), 5),
                )
            )
    return out
