"""NMS against a brute-force reference; the decoder on hand-made heatmaps and on encoded targets."""

import numpy as np
import pytest

from apps.perception.data import encode_targets
from apps.perception.decode import decode, flip_merge, max_pool3x3
from apps.perception.metrics import Detections, box_iou
from apps.perception.nms import batched_nms, nms


def _reference(boxes, scores, classes, thr):
    keep = []
    for i in np.argsort(-scores, kind="stable"):
        if all(
            classes[j] != classes[i] or box_iou(boxes[i : i + 1], boxes[j : j + 1])[0, 0] <= thr for j in keep
        ):
            keep.append(i)
    return np.array(keep, np.int64)


@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_brute_force(rng, thr):
    xy = rng.uniform(0, 60, (150, 2))
    boxes = np.c_[xy, xy + rng.uniform(10, 40, (150, 2))].astype(np.float32)
    scores = rng.random(150).astype(np.float32)
    classes = rng.integers(0, 3, 150)
    np.testing.assert_array_equal(
        batched_nms(boxes, scores, classes, thr), _reference(boxes, scores, classes, thr)
    )
    np.testing.assert_array_equal(nms(boxes, scores, thr), _reference(boxes, scores, np.zeros(150), thr))


def test_nms_empty_and_class_separation():
    assert nms(np.zeros((0, 4)), np.zeros(0)).size == 0
    b = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    assert len(batched_nms(b, np.array([0.9, 0.8]), np.array([0, 1]))) == 2  # other class: kept
    assert nms(b, np.array([0.8, 0.9])).tolist() == [1]


def test_max_pool3x3_matches_loop(rng):
    x = rng.random((2, 3, 7, 9)).astype(np.float32)
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    ref = np.max([p[..., i : i + 7, j : j + 9] for i in range(3) for j in range(3)], axis=0)
    np.testing.assert_array_equal(max_pool3x3(x), ref)


def test_decode_hand_made_heatmap():
    heat = np.zeros((1, 3, 20, 20), np.float32)
    reg = np.zeros((1, 4, 20, 20), np.float32)
    heat[0, 1, 5, 8] = 0.9  # a peak of class 1 at cell (x=8, y=5)
    heat[0, 1, 5, 9] = 0.6  # its neighbour: not a peak
    heat[0, 2, 15, 3] = 0.5  # a second object, class 2
    heat[0, 0, 0, 0] = 0.1  # below the threshold
    reg[0, :, 5, 8] = [0.25, 0.5, np.log(3.0), np.log(2.0)]
    reg[0, :, 15, 3] = [0.0, 0.0, 0.0, np.log(4.0)]
    (d,) = decode(heat, reg, stride=4, conf=0.3, logits=False, refine=False)
    assert d.classes.tolist() == [1, 2]
    np.testing.assert_allclose(d.scores, [0.9, 0.5])
    cx, cy, w, h = (8 + 0.25) * 4, (5 + 0.5) * 4, 3 * 4, 2 * 4
    np.testing.assert_allclose(d.boxes[0], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], rtol=1e-6)
    np.testing.assert_allclose(d.boxes[1], [12 - 2, 60 - 8, 12 + 2, 60 + 8], rtol=1e-6)
    # refined: the neighbour (x=9, y=5) votes for a 1x1-cell box centred on itself, with weight
    # 0.6^4 against the peak's 0.9^4; the other cells have probability 0 (class 1) and no vote
    (r,) = decode(heat, reg, stride=4, conf=0.3, logits=False)
    a, b = 0.9**4, 0.6**4
    ex, ey = (a * 8.25 + b * 9.0) / (a + b), (a * 5.5 + b * 5.0) / (a + b)
    lw, lh = (a * np.log(3.0)) / (a + b), (a * np.log(2.0)) / (a + b)
    w, h = np.exp(lw) * 4, np.exp(lh) * 4
    np.testing.assert_allclose(r.boxes[0], [ex * 4 - w / 2, ey * 4 - h / 2, ex * 4 + w / 2, ey * 4 + h / 2],
                               rtol=1e-5)
    np.testing.assert_allclose(r.boxes[1], d.boxes[1], rtol=1e-6)  # alone: its own box
    np.testing.assert_allclose(r.scores, d.scores)


def test_refined_decode_at_the_map_corners():
    """Peaks on the edge and in the corners: cells past the edge take no part (no wrap-around)."""
    heat = np.zeros((1, 1, 6, 7), np.float32)
    reg = np.zeros((1, 4, 6, 7), np.float32)
    for y, x in ((0, 0), (0, 6), (5, 0), (5, 6), (2, 6)):
        heat[0, 0, y, x] = 0.8
        reg[0, :, y, x] = [0.1, -0.2, np.log(2.0), np.log(1.5)]
    heat[0, 0, 5, 5] = 0.4  # a weak neighbour of the (5, 6) corner, voting for a box at (5, 5)
    (d,) = decode(heat, reg, stride=4, conf=0.5, logits=False)
    centres = sorted(map(tuple, np.round((d.boxes[:, :2] + d.boxes[:, 2:]) / 8, 4)))
    a, b = 0.8**4, 0.4**4
    bottom_right = (round((a * 6.1 + b * 5.0) / (a + b), 4), round((a * 4.8 + b * 5.0) / (a + b), 4))
    assert centres == sorted([(0.1, -0.2), (6.1, -0.2), (0.1, 4.8), bottom_right, (6.1, 1.8)])


def test_localisation_quality_from_the_spread_of_the_centre_estimates():
    """Nine cells agreeing on the centre: quality 1; one cell off by d cells in x: spread sqrt(8)/9 * d / w
    (w the box width in cells), quality 1 / (1 + LOC_QUALITY * spread). Scores stay the peaks'
    probabilities (conf thresholds them); ``ranked`` multiplies in the quality, and evaluation and the
    COCO export rank by it: the well-located box first."""
    from apps.perception.decode import LOC_QUALITY
    from apps.perception.formats import Sample
    from apps.perception.metrics import evaluate, to_coco_detections

    heat = np.zeros((1, 1, 12, 24), np.float32)
    reg = np.zeros((1, 4, 12, 24), np.float32)
    for x0, p in ((5, 0.8), (17, 0.82)):  # two objects, centres (x0 + 0.5, 6.5), 4 x 2 cells
        heat[0, 0, 5:8, x0 - 1:x0 + 2] = 0.3
        heat[0, 0, 6, x0] = p
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                reg[0, :, 6 + dy, x0 + dx] = [0.5 - dx, 0.5 - dy, np.log(4.0), np.log(2.0)]
    d = 1.5
    reg[0, 0, 7, 18] += d  # one of the right object's cells votes d cells further right
    (r,) = decode(heat, reg, stride=4, conf=0.81, logits=False, nms_iou=None)
    assert len(r.scores) == 1  # conf applies to the score: the right object's 0.82 passes
    (r,) = decode(heat, reg, stride=4, conf=0.1, logits=False, nms_iou=None)
    np.testing.assert_allclose(r.scores, [0.82, 0.8])  # by score: the right object first
    spread = np.sqrt(8) / 9 * d / 4.0  # (every cell votes log 4: the refined width is 4 cells)
    np.testing.assert_allclose(r.quality, [1 / (1 + LOC_QUALITY * spread), 1.0], rtol=1e-5)
    ranked = r.ranked()
    np.testing.assert_allclose(ranked.scores, r.scores * r.quality)
    assert ranked.scores[1] > ranked.scores[0]
    (plain,) = decode(heat, reg, stride=4, conf=0.1, logits=False, nms_iou=None, refine=False)
    assert plain.quality is None and plain.ranked() is plain
    # one object, ground truth at the left box's place: ranked by the product, the left (true) box
    # comes first and AP50 is 1; ranked by score, the false right box would come first (AP50 0.5)
    gt = Sample("a", 96, 48, r.boxes[1:2].copy(), np.array([0]), np.zeros((0, 4)), image_id=1)
    assert evaluate([gt], [r], num_classes=1)["mAP50"] == pytest.approx(1.0)
    assert evaluate([gt], [Detections(r.boxes, r.scores, r.classes)], num_classes=1)["mAP50"] < 0.6
    coco = to_coco_detections([gt], [r])
    assert [c["score"] for c in coco] == [round(float(v), 5) for v in ranked.scores]


def test_encode_then_decode_round_trip():
    boxes = np.array([[10, 20, 50, 44], [100, 60, 108, 90], [30, 100, 90, 150]], np.float32)
    classes = np.array([0, 2, 1])
    t = encode_targets(boxes, classes, np.zeros((0, 4)), 160)
    assert t["heatmap"].shape == (6, 40, 40) and t["heatmap"].max() == 1.0
    assert (t["heatmap"] == 1.0).sum() == 3
    (d,) = decode(t["heatmap"][None], t["reg"][None], stride=4, conf=0.99, logits=False)
    order = np.argsort(d.boxes[:, 0])
    np.testing.assert_allclose(d.boxes[order], boxes[np.argsort(boxes[:, 0])], atol=1e-3)
    assert sorted(d.classes.tolist()) == [0, 1, 2]


def test_flip_merge_maps_the_mirrored_outputs_back():
    # what a perfect network outputs on an image and on its mirror image: merged, the same boxes come out
    boxes = np.array([[10.5, 20, 50, 44], [100, 60, 108.7, 90], [30, 100, 93, 150], [0, 8, 13, 40]], "f4")
    classes = np.array([0, 2, 1, 3])
    mirrored = boxes.copy()
    mirrored[:, [0, 2]] = 160 - boxes[:, [2, 0]]
    t = encode_targets(boxes, classes, np.zeros((0, 4)), 160)
    m = encode_targets(mirrored, classes, np.zeros((0, 4)), 160)
    assert not np.allclose(m["reg"][0], t["reg"][0])  # the mirror's offsets differ (1 - dx)
    heat, reg = flip_merge(t["heatmap"][None], t["reg"][None], m["heatmap"][None], m["reg"][None])
    np.testing.assert_allclose(heat[0], t["heatmap"], atol=1e-6)
    (d,) = decode(heat, reg, stride=4, conf=0.99, logits=False)
    order = np.argsort(d.boxes[:, 0])
    np.testing.assert_allclose(d.boxes[order], boxes[np.argsort(boxes[:, 0])], atol=1e-3)
    # a network that is wrong by +0.2 cells in dx on the image and right on the mirror: half the error
    (d2,) = decode(*flip_merge(t["heatmap"][None], t["reg"][None] + np.array([0.2, 0, 0, 0])[:, None, None],
                               m["heatmap"][None], m["reg"][None]), stride=4, conf=0.99, logits=False)
    np.testing.assert_allclose(d2.boxes[np.argsort(d2.boxes[:, 0])][:, [0, 2]],
                               boxes[np.argsort(boxes[:, 0])][:, [0, 2]] + 0.1 * 4, atol=1e-3)
    with pytest.raises(ValueError, match="flip_merge: outputs of shapes"):
        flip_merge(t["heatmap"][None], t["reg"][None], m["heatmap"][None, :, :, :-1], m["reg"][None])


def test_ignore_regions_zero_the_weight():
    t = encode_targets(np.zeros((0, 4)), np.zeros(0, int), np.array([[0, 0, 40, 20]]), 160)
    assert t["hm_weight"][0, :5, :10].sum() == 0 and t["hm_weight"][0, 5:, :].min() == 1
