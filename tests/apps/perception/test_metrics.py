"""The evaluator against pycocotools' COCOeval on fixtures with crowd regions and all size ranges."""

import contextlib
import io

import numpy as np
import pytest

from apps.perception.formats import Sample, to_coco_gt
from apps.perception.metrics import Detections, box_iou, evaluate, to_coco_detections


def _fixture(seed, n_images=30):
    rng = np.random.default_rng(seed)
    samples, dets = [], []
    for i in range(n_images):
        n = int(rng.integers(0, 8))
        xy = rng.uniform(0, 500, (n, 2))
        wh = np.exp(rng.uniform(np.log(4), np.log(220), (n, 2)))  # small, medium and large
        b = np.c_[xy, xy + wh].astype(np.float32)
        c = rng.integers(0, 6, n)
        m = int(rng.integers(0, 3))
        ixy = rng.uniform(0, 500, (m, 2))
        ig = np.c_[ixy, ixy + rng.uniform(10, 120, (m, 2))].astype(np.float32)
        samples.append(
            Sample(f"{i}.jpg", 640, 640, b, c, ig, image_id=i + 1, ignore_classes=rng.integers(0, 6, m))
        )
        k = int(rng.integers(0, 10))
        noise = rng.normal(0, 1, b.shape) * np.c_[wh, wh] * 0.08  # noise relative to the size
        rand = np.c_[rng.uniform(0, 500, (k, 2)), np.zeros((k, 2))]
        rand[:, 2:] = rand[:, :2] + rng.uniform(4, 150, (k, 2))
        db = np.r_[b + noise, rand, ig[:1] + 2].astype(np.float32)  # the last one falls in a crowd
        db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 1)
        dc = np.r_[
            np.where(rng.random(n) < 0.9, c, rng.integers(0, 6, n)),
            rng.integers(0, 6, k),
            samples[-1].ignore_classes[:1],
        ]
        dets.append(Detections(db, rng.random(len(db)).astype(np.float32), dc.astype(np.int64)))
    return samples, dets


def _cocoeval(samples, dets):
    COCO = pytest.importorskip("pycocotools.coco").COCO
    COCOeval = pytest.importorskip("pycocotools.cocoeval").COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = to_coco_gt(samples)
        gt.createIndex()
        dt = gt.loadRes(to_coco_detections(samples, dets))
        E = COCOeval(gt, dt, "bbox")
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E.stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pycocotools(seed):
    samples, dets = _fixture(seed)
    for d in dets:  # the json rounds boxes to 0.01 px and scores to 1e-5; compare on the same numbers
        d.boxes = np.round(d.boxes, 2)
        d.scores = np.round(d.scores, 5)
    stats = _cocoeval(samples, dets)
    r = evaluate(samples, dets)
    ours = [r["mAP50_95"], r["mAP50"], r["mAP75"], r["AP_small"], r["AP_medium"], r["AP_large"]]
    np.testing.assert_allclose(ours, stats[:6], atol=1e-3)
    assert 0.05 < r["mAP50"] < 0.95  # the fixture is neither trivial nor hopeless


def test_perfect_and_empty():
    samples, dets = _fixture(3, 10)
    perfect = [
        Detections(s.boxes.copy(), np.ones(len(s.boxes), np.float32), s.classes.copy()) for s in samples
    ]
    r = evaluate(samples, perfect)
    assert r["mAP50"] == pytest.approx(1.0) and r["mAP50_95"] == pytest.approx(1.0)
    r = evaluate(samples, [Detections.empty() for _ in samples])
    assert r["mAP50"] == 0.0


def test_box_iou_and_crowd():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 100, 100]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 100 / 10000]])
    # against a crowd region the denominator is the detection's own area
    np.testing.assert_allclose(box_iou(a, b, crowd=np.array([False, True])), [[50 / 150, 1.0]])
