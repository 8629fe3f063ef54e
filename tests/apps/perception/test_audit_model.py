"""Adversarial audit of the perception model side: metrics against pycocotools, NMS against brute force,
letterbox / augmentation against hand-computed transforms, target encoding at the edges, the cache loader.
"""


import cv2
import numpy as np
import pytest

from apps.perception.augment import PAD_VALUE, _clip, affine, augment, crop, hflip, mosaic
from apps.perception.data import CachedDataset, encode_targets, letterbox, unletterbox_boxes
from apps.perception.decode import decode
from apps.perception.formats import Sample
from apps.perception.metrics import Detections, box_iou, evaluate
from apps.perception.nms import batched_nms, nms

# ---------------------------------------------------------------------------------------------- metrics


def _adversarial(seed, ties, shuffle_ids):
    """Images without ground truth, classes 4 and 5 without ground truth, class-specific crowd regions
    with detections inside, a flood of 130 detections of one class in some images (over maxDets = 100),
    boxes of exactly 32² and 96² pixels (both sides of each area border), scores with heavy ties."""
    rng = np.random.default_rng(seed)
    n_img = 12
    ids = (rng.permutation(n_img) if shuffle_ids else np.arange(n_img)) + 1
    samples, dets = [], []
    for i in range(n_img):
        n = 0 if i % 4 == 0 else int(rng.integers(1, 10))
        sides = rng.choice([4, 16, 31.5, 32, 32.5, 60, 96, 97, 150], (n, 2))
        sq = rng.random(n) < 0.5
        sides[sq, 1] = sides[sq, 0]
        xy = np.round(rng.uniform(0, 400, (n, 2)))
        b = np.c_[xy, xy + sides].astype(np.float32)
        c = rng.integers(0, 4, n)
        m = int(rng.integers(0, 3))
        ixy = np.round(rng.uniform(0, 400, (m, 2)))
        ig = np.c_[ixy, ixy + np.round(rng.uniform(20, 150, (m, 2)))].astype(np.float32)
        samples.append(Sample(f"{i}.jpg", 640, 640, b, c, ig, image_id=int(ids[i]),
                              ignore_classes=rng.integers(0, 4, m)))
        jit = b + np.round(rng.normal(0, 2, b.shape), 2)
        k = int(rng.integers(0, 10))
        rxy = np.round(rng.uniform(0, 400, (k, 2)))
        rand = np.c_[rxy, rxy + rng.choice([8, 32, 96, 120], (k, 2))]
        flood = 130 if i % 3 == 1 else 0
        fxy = np.round(rng.uniform(0, 500, (flood, 2)))
        db = np.r_[jit, rand, np.c_[fxy, fxy + 20], ig + 3].astype(np.float32)
        db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 1)
        dc = np.r_[np.where(rng.random(n) < 0.85, c, rng.integers(0, 6, n)), rng.integers(0, 6, k),
                   np.full(flood, 1), samples[-1].ignore_classes]
        sc = np.round(rng.random(len(db)) * 4) / 4 if ties else rng.random(len(db))
        dets.append(Detections(np.round(db, 2), np.round(sc, 5).astype(np.float32), dc.astype(np.int64)))
    return samples, dets


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties,shuffle_ids", [(False, False), (True, False), (False, True), (True, True)])
def test_metrics_match_pycocotools_on_adversarial_fixtures(seed, ties, shuffle_ids, cocoeval):
    """Tied scores across images are ranked in image-id order by COCOeval (it concatenates the images
    sorted by id): with ids not in sample order, a sample-order ranking gave other numbers (0.07 off)."""
    samples, dets = _adversarial(seed, ties, shuffle_ids)
    E = cocoeval(samples, dets)
    r = evaluate(samples, dets)
    ours = [r["mAP50_95"], r["mAP50"], r["mAP75"], r["AP_small"], r["AP_medium"], r["AP_large"]]
    np.testing.assert_allclose(ours, E.stats[:6], atol=1e-9)
    p = E.eval["precision"][:, :, :, 0, -1]  # (T, R, K) at area all, maxDets 100
    for c, v in enumerate(r["per_class"].values()):
        pc = p[:, :, c]
        if (pc > -1).any():
            assert v["AP50_95"] == pytest.approx(pc[pc > -1].mean(), abs=1e-9)
            assert v["AP50"] == pytest.approx(p[0, :, c].mean(), abs=1e-9)
        else:  # classes 4 and 5: no ground truth, left out as COCO's -1
            assert np.isnan(v["AP50_95"]) and v["n_gt"] == 0


def test_area_borders_on_float32_coordinates_match_pycocotools(cocoeval):
    # 32 x 32 and 96 x 96 ground truth at fractional (float32) positions: COCO computes the area from the
    # coordinates in float64, the float32 product rounded e.g. 1024.0000486 down to 1024 (inside 'small')
    rng = np.random.default_rng(5)
    samples, dets = [], []
    for i in range(16):
        xy = rng.integers(0, 3000, (6, 2)) / 10
        side = rng.choice([32.0, 96.0], 6)
        b = np.c_[xy, xy + side[:, None]].astype(np.float32)
        c = rng.integers(0, 2, 6)
        samples.append(Sample(f"{i}.jpg", 640, 640, b, c, image_id=i + 1))
        fp = np.c_[rng.integers(0, 500, (3, 2)), np.zeros((3, 2))].astype(np.float32)
        fp[:, 2:] = fp[:, :2] + rng.choice([20, 32, 60, 96, 120], (3, 2))
        keep = rng.random(6) < 0.7  # some objects missed: the ranges' recalls differ
        db = np.r_[b[keep], fp]
        dc = np.r_[c[keep], rng.integers(0, 2, 3)]
        dets.append(Detections(db, np.round(rng.random(len(db)), 5).astype(np.float32), dc.astype(np.int64)))
    E = cocoeval(samples, dets)
    r = evaluate(samples, dets)
    np.testing.assert_allclose([r["AP_small"], r["AP_medium"], r["AP_large"]], E.stats[3:6], atol=1e-9)


def test_metrics_refuse_a_detection_list_of_another_length():
    samples, dets = _adversarial(0, False, False)
    with pytest.raises(ValueError, match="12 ground-truth .* 11 detection"):
        evaluate(samples, dets[:-1])


# -------------------------------------------------------------------------------------------------- NMS


def _brute_nms(boxes, scores, classes, thr):
    """Greedy NMS from the definition, IoU in float64 (metrics.box_iou): a box survives unless a kept box
    of its class overlaps it by IoU > thr."""
    keep = []
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if all(classes[j] != classes[i] or box_iou(boxes[i : i + 1], boxes[j : j + 1])[0, 0] <= thr
               for j in keep):
            keep.append(i)
    return np.array(keep, np.int64)


def test_class_aware_nms_with_negative_coordinates():
    # decoded boxes at the frame's left / top edges start below 0: the class offset (max |coordinate| + 1)
    # then moved a class-1 box onto a class-0 box, which suppressed it
    b = np.array([[0, 0, 10, 10], [-10, -10, 0, 0]], np.float32)
    assert sorted(batched_nms(b, np.array([0.9, 0.8]), np.array([0, 1]), 0.5).tolist()) == [0, 1]


def test_nms_iou_exactly_at_the_threshold_is_kept_in_every_class():
    # IoU exactly 0.5 (widths 1:2, same rows): not suppressed at thr 0.5, in any class; the float32 class
    # offset rounded such pairs to either side of the threshold
    rng = np.random.default_rng(0)
    n = 0
    for _ in range(400):
        x, y = np.float32(rng.uniform(0, 300, 2))
        a, h = np.float32(rng.uniform(1, 50, 2))
        b = np.array([[x, y, x + a, y + h], [x, y, 0, y + h], [700, 700, 710, 710]], np.float32)
        b[1, 2] = b[0, 0] + (b[0, 2] - b[0, 0]) * 2
        if box_iou(b[:1], b[1:2])[0, 0] != 0.5:
            continue
        n += 1
        for c in (0, 5):
            cls = np.array([c, c, 0])
            got = batched_nms(b, np.array([0.9, 0.8, 0.1]), cls, 0.5)
            assert sorted(got.tolist()) == [0, 1, 2]
    assert n > 100


@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_fuzz_against_brute_force(thr):
    """Negative coordinates, identical boxes, zero-area boxes, tied scores, coordinates on a coarse grid
    (so that IoUs exactly at the thresholds occur), several classes."""
    rng = np.random.default_rng(int(thr * 10))
    for _ in range(20):
        k = int(rng.integers(1, 40))
        xy = rng.integers(-20, 40, (k, 2)).astype(np.float32)
        wh = rng.integers(0, 30, (k, 2)).astype(np.float32)  # zero width or height included
        b = np.c_[xy, xy + wh]
        dup = rng.random(k) < 0.2
        b[dup] = b[0]
        s = (rng.integers(0, 5, k) / 4).astype(np.float32)  # ties
        c = rng.integers(0, 3, k)
        np.testing.assert_array_equal(np.sort(batched_nms(b, s, c, thr)), np.sort(_brute_nms(b, s, c, thr)))
        np.testing.assert_array_equal(batched_nms(b, s, c, thr), _brute_nms(b, s, c, thr))
        np.testing.assert_array_equal(nms(b, s, thr), _brute_nms(b, s, np.zeros(k), thr))


def test_nms_identical_and_zero_area_boxes():
    b = np.array([[5, 5, 15, 15]] * 3 + [[3, 3, 3, 9], [3, 3, 3, 9]], np.float32)
    s = np.array([0.5, 0.9, 0.7, 0.8, 0.6], np.float32)
    # identical boxes: the best one only; zero-area boxes overlap nothing (IoU 0, not NaN): both kept
    assert nms(b, s, 0.5).tolist() == [1, 3, 4]


# ----------------------------------------------------------------------------------------------- decode


def test_refined_decode_at_a_low_score_threshold():
    # a peak of probability 2e-4: its weight (p^4 = 1.6e-15) fell under the normaliser's 1e-12 floor, and
    # the refined box shrank towards the map origin
    heat = np.zeros((1, 2, 10, 10), np.float32)
    reg = np.zeros((1, 4, 10, 10), np.float32)
    heat[0, 0, 5, 6] = 2e-4
    reg[0, :, 5, 6] = [0.5, 0.5, np.log(2), np.log(3)]
    (plain,) = decode(heat, reg, stride=4, conf=1e-4, logits=False, refine=False, nms_iou=None)
    (refined,) = decode(heat, reg, stride=4, conf=1e-4, logits=False, refine=True, nms_iou=None)
    np.testing.assert_allclose(plain.boxes, [[22, 16, 30, 28]], rtol=1e-6)
    np.testing.assert_allclose(refined.boxes, plain.boxes, rtol=1e-5)


def test_saturated_logits_give_one_peak():
    # logits 20 and 19 are both probability 1.0 in float32: peak picking on probabilities found two peaks
    # (a duplicate box of the same object); on logits (sigmoid is monotonic) only the true maximum
    heat = np.full((1, 1, 8, 8), -10.0, np.float32)
    reg = np.zeros((1, 4, 8, 8), np.float32)
    heat[0, 0, 3, 3], heat[0, 0, 3, 4] = 20.0, 19.0
    (d,) = decode(heat, reg, stride=4, conf=0.5, nms_iou=None)
    assert len(d.boxes) == 1 and d.scores[0] == pytest.approx(1.0)


# -------------------------------------------------------------------------------------------- letterbox


def _profile_edges(cov: np.ndarray) -> np.ndarray:
    """Sub-pixel xyxy of a filled rectangle from its coverage map (0..1): along each axis the mass gives
    the side and the centroid the centre (resampling keeps both)."""
    out = []
    for axis in (0, 1):
        p = cov.sum(axis=axis)
        p = p / p.max()
        n = p.sum()
        c = ((np.arange(len(p)) + 0.5) * p).sum() / n
        out.append((c - n / 2, c + n / 2))
    (x1, x2), (y1, y2) = out
    return np.array([x1, y1, x2, y2])


@pytest.mark.parametrize("w,h,box", [
    (1242, 375, (1000, 300, 1230, 370)),  # KITTI frames: the short side rounds 96.6 -> 97 px
    (375, 1242, (300, 1000, 370, 1230)),  # portrait
    (641, 481, (500, 400, 637, 479)),
    (33, 17, (20, 10, 31, 16)),  # upscaled
    (640, 480, (10, 10, 630, 470)),
])
def test_letterbox_round_trip_is_sub_pixel_on_odd_and_portrait_frames(w, h, box):
    # the image was resized to round(side * r) pixels but boxes mapped back with r: 1.45 px off at the
    # bottom of a KITTI frame
    img = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    out, meta = letterbox(img, 320)
    r, px, py = meta
    cov = out[..., 0] / 255.0
    cov[out[..., 0] == PAD_VALUE] = 0.0
    assert (out[: int(py)] == PAD_VALUE).all() and (out[:, : int(px)] == PAD_VALUE).all()
    back = unletterbox_boxes(_profile_edges(cov)[None].astype(np.float32), meta, w, h)[0]
    np.testing.assert_allclose(back, box, atol=0.1)  # original pixels


def test_letterbox_takes_gray_rgba_uint16_and_strided_frames():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (75, 101, 3), dtype=np.uint8)
    ref, meta = letterbox(rgb, 64)
    gray = rgb[..., 1].copy()
    g_ref, _ = letterbox(np.repeat(gray[..., None], 3, 2), 64)
    for name, x, want in [
        ("gray", gray, g_ref),
        ("gray (H, W, 1)", gray[..., None], g_ref),
        ("RGBA", np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)]), ref),
        ("uint16", rgb.astype(np.uint16) * 257, ref),
        ("negative strides", rgb[:, ::-1][:, ::-1], ref),
        ("channel view", np.dstack([rgb[..., ::-1]])[..., ::-1], ref),
    ]:
        out, m = letterbox(x, 64)
        assert out.dtype == np.uint8 and out.shape == (64, 64, 3), name
        assert m == meta, name
        np.testing.assert_array_equal(out, want, err_msg=name)
    # a portrait frame given as a transposed (non-contiguous) view
    out, (r, px, py) = letterbox(rgb.transpose(1, 0, 2), 64)
    assert py == 0 and px > 0
    for bad in (rgb.astype(np.float32) / 255, rgb.astype(np.int32), np.zeros((5, 5, 2), np.uint8)):
        with pytest.raises(ValueError, match="letterbox"):
            letterbox(bad, 64)


def _fake_detector(heat, reg, size, conf=0.3):
    """A Detector whose network returns fixed maps (the post-processing is what is tested)."""
    from apps.perception.detector import Detector

    det = Detector.__new__(Detector)
    det.size, det.conf, det.nms_iou, det.device = size, conf, 0.7, "cpu"
    det.rect = False  # the fixed maps are those of the size x size square (padding bands included)
    det.last_timing = {}
    det.forward = lambda x: (np.repeat(heat, len(x), 0), np.repeat(reg, len(x), 0))
    return det


def _maps_with_a_peak_in_the_padding(size=64):
    g = size // 4
    heat = np.full((1, 6, g, g), -9.0, np.float32)
    reg = np.zeros((1, 4, g, g), np.float32)
    heat[0, 2, 1, 5] = 3.0  # a 1-cell box in the top padding band of a landscape frame
    heat[0, 0, 8, 8] = 3.0  # and one in the picture
    reg[0, 2:, 8, 8] = np.log(3.0)
    return heat, reg


def test_detector_single_and_batch_agree_and_drop_boxes_outside_the_frame():
    # __call__ dropped boxes clipped to nothing (wholly in the padding), detect_batch kept them
    heat, reg = _maps_with_a_peak_in_the_padding()
    det = _fake_detector(heat, reg, 64)
    frames = [np.zeros((30, 64, 3), np.uint8), np.zeros((30, 64), np.uint8)]  # padding: 17 rows above
    single = [det(f) for f in frames]
    batch = det.detect_batch(frames)
    for a, b in zip(single, batch):
        assert len(a.boxes) == 1 and a.classes.tolist() == [0]
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_predict_cache_drops_boxes_outside_the_frame(tmp_path):
    # evaluation must see what the Detector delivers: boxes in the padding are not false positives of it
    import json

    import framework as fw
    from apps.perception.evaluate import predict_cache

    np.save(tmp_path / "images.npy", np.zeros((2, 64, 64, 3), np.uint8))
    np.save(tmp_path / "boxes.npy", np.zeros((0, 6), np.float32))
    (tmp_path / "meta.json").write_text(json.dumps(dict(n=2, seed=0, size=64, source_size=[64, 30])))
    heat, reg = _maps_with_a_peak_in_the_padding()

    class Fixed:
        def to(self, device):
            return self

        def eval(self):
            return self

        def __call__(self, x):
            n = x.shape[0]
            return fw.from_numpy(np.repeat(heat, n, 0)), fw.from_numpy(np.repeat(reg, n, 0))

    dets = predict_cache(Fixed(), str(tmp_path), 64)
    assert [d.classes.tolist() for d in dets] == [[0], [0]]
    # a limit inside a batch: the last batch ran past it (a --limit 200 evaluation decoded 208 frames, and
    # the metrics' zip hid it)
    assert len(predict_cache(Fixed(), str(tmp_path), 64, limit=1)) == 1
    assert len(predict_cache(Fixed(), str(tmp_path), 64, limit=3, batch=2)) == 2


def test_detector_on_gray_rgba_uint16_and_portrait_frames(tiny_weights):
    from apps.perception.detector import load_model

    det = load_model(tiny_weights, conf=0.0)
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (50, 90, 3), dtype=np.uint8)
    ref = det(rgb)
    rgba = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    for x in (rgba, rgb.astype(np.uint16) * 257, rgb[:, ::-1][:, ::-1]):
        d = det(x)
        np.testing.assert_allclose(d.boxes, ref.boxes, atol=1e-4)
    for x in (rgb[..., 0], rgb.transpose(1, 0, 2)):
        d = det(x)
        h, w = x.shape[:2]
        assert len(d.boxes) and (d.boxes[:, [0, 2]] <= w).all() and (d.boxes[:, [1, 3]] <= h).all()
        assert (d.boxes >= 0).all()


# ----------------------------------------------------------------------------------------- augmentation


class _ListCache:
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _single_rect(rng, size=96):
    img = np.full((size, size, 3), PAD_VALUE, np.uint8)
    w, h = rng.integers(8, 40, 2)
    x, y = rng.integers(3 - w, size - 3), rng.integers(3 - h, size - 3)  # some cut by the frame edge
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, size), min(y + h, size)
    img[y1:y2, x1:x2] = 250
    return img, np.array([[x1, y1, x2, y2]], np.float32)


def _check_one(img, b, ig):
    """A single 250-grey rectangle: a kept box bounds its pixels within one pixel on every side; if it
    went to the ignore regions, one of them covers its pixels."""
    m = img[..., 0] > (250 + PAD_VALUE) / 2
    ys, xs = np.nonzero(m)
    if len(b):
        assert len(b) == 1
        got = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        np.testing.assert_allclose(b[0], got, atol=1.0)
    elif len(xs):  # a sliver: covered by an ignore region
        got = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        assert any((g[:2] <= got[:2] + 1).all() and (g[2:] >= got[2:] - 1).all() for g in ig), (got, ig)


def test_flip_affine_crop_mosaic_move_boxes_with_the_pixels():
    rng = np.random.default_rng(0)
    for t in range(40):
        img, b = _single_rect(rng)
        c, ig = np.array([3]), np.zeros((0, 4), np.float32)
        fi, fb, fig = hflip(img, b, ig)
        _check_one(fi, fb, fig)
        ai, ab, ac, aig = affine(img, b, c, ig, np.random.default_rng(t), 80, scale=(0.7, 1.4), translate=0.3)
        _check_one(ai, ab, aig)
        ci, cb, cc, cig = crop(img, b, c, ig, np.random.default_rng(t), 48)
        _check_one(ci, cb, cig)
        assert len(cb) == len(cc) and len(ab) == len(ac)
    for t in range(30):  # mosaic: four frames of one rectangle each, told apart by their hue
        items = [_hue_frame(rng, k) for k in range(4)]
        m, mb, mc, mig = mosaic(_ListCache(items), [0, 1, 2, 3], np.random.default_rng(t), 96)
        _check_hues(m, mb, mc, mig)


def test_ignore_regions_move_exactly_as_boxes():
    # the same rectangle given as a label and as an ignore region comes out as the same rectangle
    rng = np.random.default_rng(1)
    for t in range(30):
        img, b = _single_rect(rng)
        c = np.array([0])
        outs = [hflip(img, b, b.copy())[1:],
                affine(img, b, c, b.copy(), np.random.default_rng(t), 80, translate=0.3)[1::2],
                crop(img, b, c, b.copy(), np.random.default_rng(t), 48)[1::2]]
        items = [(img, b, c, b.copy())] * 4
        outs.append(mosaic(_ListCache(items), [0, 1, 2, 3], np.random.default_rng(t), 96)[1::2])
        for ob, oig in outs:
            for box in ob:
                assert any(np.allclose(g, box, atol=1e-4) for g in oig), (box, oig)


HUES = np.arange(12) * 15  # OpenCV hue units (0..179): HSV jitter moves them by at most 1.5 %


def _hue_frame(rng, k, size=96):
    """A grey frame holding one rectangle of hue HUES[k] (class k), maybe cut by the frame edge."""
    img = np.full((size, size, 3), PAD_VALUE, np.uint8)
    w, h = rng.integers(8, 40, 2)
    x, y = rng.integers(3 - w, size - 3), rng.integers(3 - h, size - 3)  # at least 3 px visible
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, size), min(y + h, size)
    rgb = cv2.cvtColor(np.array([[[HUES[k], 255, 220]]], np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    img[y1:y2, x1:x2] = rgb
    return img, np.array([[x1, y1, x2, y2]], np.float32), np.array([k]), np.zeros((0, 4), np.float32)


def _check_hues(img, boxes, classes, ignore):
    """Each kept box of class k bounds, within one pixel, the pixels of hue k connected to it (chroma
    past half of the rectangle's: blending with grey scales chroma linearly, so that is the edge); the
    pixels of a hue whose box was dropped lie in an ignore region."""
    from scipy import ndimage

    chroma = img.max(2).astype(float) - img.min(2)
    hue = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 0].astype(float)
    near = np.argmin(np.abs((hue[..., None] - HUES + 90) % 180 - 90), axis=2)
    for k in np.unique(np.r_[classes, near[chroma > 20]]):
        mk = (near == k) & (chroma > 20)
        if not mk.any():
            continue
        mk &= chroma > chroma[mk].max() / 2
        lab, n = ndimage.label(mk)
        for sl in ndimage.find_objects(lab):
            got = np.array([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop], np.float32)
            mine = boxes[classes == k]
            hit = [b for b in mine if (np.abs(b - got) <= 1.0).all()]
            if hit:
                continue
            assert any((g[:2] <= got[:2] + 1).all() and (g[2:] >= got[2:] - 1).all() for g in ignore), (
                k, got, mine, ignore)
    for b, k in zip(boxes, classes):  # and each box has its pixels
        x1, y1, x2, y2 = np.round(b).astype(int)
        inner = near[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1] == k
        assert inner.size == 0 or inner.all(), (b, k)


def test_augment_keeps_boxes_on_their_pixels_through_mosaic_flip_and_hsv_jitter():
    rng = np.random.default_rng(3)
    cache = _ListCache([_hue_frame(rng, k) for k in range(12)])
    for i in range(12):
        for mosaic_p in (0.0, 1.0):
            out, b, c, ig = augment(cache, i, np.random.default_rng(100 + i), 96, mosaic_p=mosaic_p)
            assert out.shape == (96, 96, 3) and out.dtype == np.uint8
            assert b.dtype == np.float32 and c.dtype == np.int64 and ig.dtype == np.float32
            assert ((b >= 0) & (b <= 96)).all() and ((ig >= 0) & (ig <= 96)).all()
            _check_hues(out, b, c, ig)


def test_affine_maps_pixel_centres_as_the_boxes():
    # cv2.warpAffine maps pixel indices (centres at integers), boxes are continuous (centres at i + 0.5):
    # a zoom s then put the picture 0.5 (1 - s) px off its boxes (0.2 px at s = 1.4)
    h, w = 40, 50
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.dstack([xx + 0.5, yy + 0.5, np.zeros_like(xx)])  # each pixel holds its centre's coordinates
    for s in (0.75, 1.4):
        b = np.array([[10, 10, 30, 25]], np.float32)
        out, ob, _, _ = affine(img, b, np.array([0]), np.zeros((0, 4), np.float32),
                               np.random.default_rng(0), 64, scale=(s, s), translate=0.1)
        sx = (ob[0, 2] - ob[0, 0]) / 20
        tx = ob[0, 0] - sx * 10
        ty = ob[0, 1] - sx * 10
        assert sx == pytest.approx(s, rel=1e-5)
        # interior output pixel (i, j) centre (j + 0.5, i + 0.5) comes from source (u - t) / s
        i, j = 30, 32
        np.testing.assert_allclose(out[i, j, :2], [(j + 0.5 - tx) / s, (i + 0.5 - ty) / s], atol=2e-3)


def test_clip_degenerate_boxes_and_ignore_regions():
    boxes = np.array([
        [10, 10, 10, 30],  # zero width from the start: dropped, not an ignore region
        [0, 0, 40, 40],  # cut to 10 x 10 of 40 x 40 (6 %): becomes an ignore region
        [28, 5, 60, 9],  # 4 px tall, kept whole
        [29, 20, 31, 25],  # 1 px left inside: an ignore region (a sliver)
    ], np.float32)
    classes = np.arange(4)
    ignore = np.array([[-5, -5, 32, 3], [35, 0, 50, 10]], np.float32)  # partly in / wholly outside
    b, c, ig = _clip(boxes, classes, ignore, 30, 0, 60, 60)
    assert c.tolist() == [2]
    np.testing.assert_array_equal(b, [[30, 5, 60, 9]])
    np.testing.assert_array_equal(ig, [[30, 0, 32, 3], [35, 0, 50, 10], [30, 0, 40, 40], [30, 20, 31, 25]])


# ---------------------------------------------------------------------------------------------- targets


def test_targets_at_the_map_edges_decode_back():
    size = 64
    boxes = np.array([[0, 0, 6, 5], [58, 59, 64, 64], [61, 10, 64, 30], [0, 40, 2.5, 43]], np.float32)
    classes = np.array([0, 1, 2, 3])
    t = encode_targets(boxes, classes, np.zeros((0, 4)), size)
    for k, (x1, y1, x2, y2) in enumerate(boxes / 4):
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        assert t["heatmap"][classes[k], int(cy), int(cx)] == 1.0
    (d,) = decode(t["heatmap"][None], t["reg"][None], stride=4, conf=0.99, logits=False, nms_iou=None)
    o = np.lexsort((d.classes,))
    np.testing.assert_allclose(d.boxes[o], boxes, atol=1e-4)


def test_targets_for_objects_smaller_than_a_cell_and_overlapping_centres():
    size = 64
    boxes = np.array([
        [20, 20, 21.5, 22],  # 1.5 x 2 px: smaller than a 4-px cell
        [17, 17, 25, 25],  # another class, same centre cell (5, 5)
        [16, 16, 26, 26],  # same class as the one above, same cell, larger
    ], np.float32)
    classes = np.array([0, 1, 1])
    t = encode_targets(boxes, classes, np.zeros((0, 4)), size)
    hm = t["heatmap"]
    assert hm[0, 5, 5] == 1.0 and hm[1, 5, 5] == 1.0  # both classes keep their peak
    assert (hm == 1.0).sum() == 2
    # the smallest object owns the shared cell's regression (written last)
    np.testing.assert_allclose(t["reg"][:, 5, 5], [20.75 / 4 - 5, 21 / 4 - 5, np.log(1.5 / 4), np.log(2 / 4)],
                               rtol=1e-5)
    assert t["reg_weight"][0, 5, 5] == 1.0


def test_a_neighbouring_smaller_object_does_not_take_over_a_centre_cell():
    # a car centred in cell (10, 10) and a pedestrian centred in the next cell (11, 10): the pedestrian's
    # 3x3 regression cells (written after the larger car) overwrote the car's centre cell, so the car's
    # peak regressed the pedestrian's box
    car = [16, 24, 72, 60]  # centre (44, 42): cell x 11, y 10
    ped = [46, 34, 50, 50]  # centre (48, 42): cell x 12, y 10
    boxes = np.array([car, ped], np.float32)
    classes = np.array([0, 2])
    t = encode_targets(boxes, classes, np.zeros((0, 4)), 96)
    assert t["heatmap"][0, 10, 11] == 1.0 and t["heatmap"][2, 10, 12] == 1.0
    (d,) = decode(t["heatmap"][None], t["reg"][None], stride=4, conf=0.99, logits=False, refine=False,
                  nms_iou=None)
    got = {int(c): b for b, c in zip(d.boxes, d.classes)}
    np.testing.assert_allclose(got[0], car, atol=1e-4)
    np.testing.assert_allclose(got[2], ped, atol=1e-4)


def test_ignore_region_inside_an_object_keeps_the_objects_cells():
    t = encode_targets(np.array([[20, 20, 40, 40]]), np.array([0]), np.array([[0, 0, 64, 64]]), 64)
    hw = t["hm_weight"][0]
    assert hw[7, 7] == 1.0 and hw[0, 0] == 0.0 and hw[15, 15] == 0.0


# ---------------------------------------------------------------------------------------------- caches


def test_cached_dataset_negative_index_gets_its_own_labels(tmp_path):
    # ds[-1] read the last image with the rows of starts[-1]:starts[0], i.e. no labels at all
    np.save(tmp_path / "images.npy", np.arange(3 * 4 * 4 * 3, dtype=np.uint8).reshape(3, 4, 4, 3))
    rows = np.array([[2, 1, 0, 0, 2, 2], [0, 0, 1, 1, 3, 3], [2, -1, 0, 0, 1, 1]], np.float32)
    np.save(tmp_path / "boxes.npy", rows)
    ds = CachedDataset(str(tmp_path))
    for i, j in ((-1, 2), (-3, 0)):
        a, b = ds[i], ds[j]
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert len(ds[-1][1]) == 1 and len(ds[-1][3]) == 1
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(IndexError):
        ds[-4]


# ----------------------------------------------------------------------------------------------- losses


def test_focal_loss_matches_centernet_eq1_with_ignore_weights():
    import framework as fw
    from apps.perception.losses import focal_heatmap_loss

    rng = np.random.default_rng(0)
    boxes = np.array([[4, 4, 20, 18], [30, 8, 34, 12], [40, 40, 60, 62]], np.float32)
    t = encode_targets(boxes, np.array([0, 1, 0]), np.array([[0, 40, 30, 64]]), 64, num_classes=2)
    tgt, wt = t["heatmap"][None], t["hm_weight"][None]
    logits = rng.normal(0, 2, tgt.shape).astype(np.float64)
    got = float(focal_heatmap_loss(fw.from_numpy(logits), tgt, wt).item())
    p = np.clip(1 / (1 + np.exp(-logits)), 1e-4, 1 - 1e-4)
    pos = tgt == 1.0
    n_pos = pos.sum()
    assert n_pos == 3
    want = -(np.log(p) * (1 - p) ** 2)[pos].sum() - (np.log(1 - p) * p**2 * (1 - tgt) ** 4 * wt)[~pos].sum()
    assert got == pytest.approx(want / n_pos, rel=1e-9)
    # no object: the negatives alone, not divided by zero
    t0 = encode_targets(np.zeros((0, 4)), np.zeros(0, int), np.zeros((0, 4)), 64, num_classes=2)
    got0 = float(focal_heatmap_loss(fw.from_numpy(logits), t0["heatmap"][None], t0["hm_weight"][None]).item())
    assert got0 == pytest.approx(-(np.log(1 - p) * p**2).sum(), rel=1e-9)
