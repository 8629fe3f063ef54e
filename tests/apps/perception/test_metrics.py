"""The evaluator against pycocotools' COCOeval on fixtures with crowd regions and all size ranges."""


import numpy as np
import pytest

from apps.perception.formats import Sample, to_coco_gt
from apps.perception.metrics import Detections, box_iou, evaluate


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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pycocotools(seed, cocoeval):
    samples, dets = _fixture(seed)
    for d in dets:  # the json rounds boxes to 0.01 px and scores to 1e-5; compare on the same numbers
        d.boxes = np.round(d.boxes, 2)
        d.scores = np.round(d.scores, 5)
    stats = cocoeval(samples, dets).stats
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


def test_sizes_follow_the_files_object_areas_as_pycocotools(tmp_path, cocoeval):
    # COCO files give each object's segment area, smaller than its box; COCOeval sizes small / medium /
    # large by it. A box-area evaluator would put many of these objects one range up.
    import json

    from apps.perception.formats import load_coco

    samples, dets = _fixture(3)
    rng = np.random.default_rng(7)
    for s in samples:
        wh = s.boxes[:, 2:] - s.boxes[:, :2]
        s.areas = wh[:, 0] * wh[:, 1] * rng.uniform(0.15, 0.5, len(s.boxes))
    for d in dets:
        d.boxes = np.round(d.boxes, 2)
        d.scores = np.round(d.scores, 5)
    gt = to_coco_gt(samples)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    loaded = load_coco(str(tmp_path / "gt.json"))
    for a, b in zip(samples, loaded):  # the round trip keeps the areas (the loader clips the boxes)
        np.testing.assert_allclose(b.areas, a.areas, rtol=1e-6)
    stats = cocoeval(loaded, dets).stats
    r = evaluate(loaded, dets)
    np.testing.assert_allclose([r["AP_small"], r["AP_medium"], r["AP_large"]], stats[3:6], atol=1e-3)
    by_box = evaluate([Sample(s.image, s.width, s.height, s.boxes, s.classes, s.ignore, s.image_id,
                              s.ignore_classes) for s in loaded], dets)
    # the areas do change the ranges here
    assert max(abs(by_box[k] - r[k]) for k in ("AP_small", "AP_medium", "AP_large")) > 0.01


def test_coco_area_must_be_a_number(tmp_path):
    import json

    from apps.perception.formats import load_coco

    d = dict(images=[dict(id=1, file_name="a.jpg", width=100, height=100)],
             annotations=[dict(id=5, image_id=1, category_id=3, bbox=[10, 10, 20, 20], area="big")],
             categories=[dict(id=3, name="car")])
    (tmp_path / "a.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="annotation 5: area must be a number"):
        load_coco(str(tmp_path / "a.json"))
    d["annotations"][0].pop("area")
    (tmp_path / "a.json").write_text(json.dumps(d))
    (s,) = load_coco(str(tmp_path / "a.json"))
    assert s.areas.tolist() == [400.0]
