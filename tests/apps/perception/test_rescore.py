"""The box rescorer (apps/perception/rescore.py): COCO-style training targets (greedy matching per IoU
threshold, duplicates and ignore regions), the features the decoder and the frame mapping give, the
MLP's training and its file (round trip, refusals of other weights or input size, damaged files), its
use by the Detector and the evaluation (confidence ranks, the score stays), and the CLI command."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import framework as fw
from apps.perception import rescore
from apps.perception.decode import decode
from apps.perception.detector import Detector, to_frame
from apps.perception.formats import Sample
from apps.perception.metrics import IOU_THRS, Detections, evaluate

RNG = np.random.default_rng(5)


def _sample(boxes, classes, ignore=()):
    return Sample(
        "f",
        200,
        100,
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(classes, np.int64),
        np.array(ignore, np.float32).reshape(-1, 4),
    )


def test_coco_targets_greedy_duplicates_classes_and_ignore():
    gt = _sample([[10, 10, 50, 50], [100, 20, 140, 80]], [0, 2], ignore=[[160, 0, 200, 40]])
    d = Detections(
        np.array(
            [
                [10, 10, 50, 50],  # exact: a hit at every threshold
                [12, 10, 50, 50],  # a duplicate of the same object, lower score: never a hit
                [100, 20, 140, 70],  # IoU 50/60 = 0.833 with the pedestrian
                [100, 20, 140, 80],  # the pedestrian exactly, but as class 1: a false box
                [165, 5, 195, 35],  # inside the ignore region, matching nothing
                [60, 60, 90, 90],
            ],
            np.float32,
        ),  # a false box
        np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], np.float32),
        np.array([0, 0, 2, 1, 0, 0]),
    )
    hit, ignored = rescore.coco_targets(d, gt)
    np.testing.assert_array_equal(hit[0], np.ones(10))
    np.testing.assert_array_equal(hit[1], np.zeros(10))
    np.testing.assert_array_equal(hit[2], (IOU_THRS <= 50 / 60).astype(np.float32))
    np.testing.assert_array_equal(hit[3:], np.zeros((3, 10)))
    np.testing.assert_array_equal(ignored, [False, False, False, False, True, False])
    # the lower-scored duplicate takes the object when it ranks first
    d2 = Detections(d.boxes[:2], np.array([0.5, 0.9], np.float32), d.classes[:2])
    hit2, _ = rescore.coco_targets(d2, gt)
    assert hit2[0].sum() == 0 and hit2[1].sum() == (IOU_THRS <= 38 / 40 + 1e-9).sum()


def test_ranking_by_the_targets_is_the_best_ranking():
    """The targets are what evaluation counts: ranking each frame's boxes by them beats the scores."""
    gts, dets, oracle = [], [], []
    for _ in range(20):
        n = 4
        xy = RNG.uniform(0, 150, (n, 2))
        g = np.c_[xy, xy + RNG.uniform(10, 40, (n, 2))].astype(np.float32)
        s = _sample(g, RNG.integers(0, 3, n))
        jitter = RNG.normal(0, 4, (n, 4)).astype(np.float32)
        d = Detections(g + jitter, RNG.uniform(0.2, 1, n).astype(np.float32), s.classes.copy())
        hit, _ = rescore.coco_targets(d, s)
        gts.append(s)
        dets.append(d)
        oracle.append(Detections(d.boxes, hit.mean(1).astype(np.float32), d.classes))
    assert evaluate(gts, oracle)["mAP50_95"] > evaluate(gts, dets)["mAP50_95"] + 0.02


def _maps(size=128):
    g = size // 4
    heat = np.full((1, 6, g, g), -8.0, np.float32)
    reg = np.zeros((1, 4, g, g), np.float32)
    reg[0, :2] = 0.5
    for y, x, c, lw in ((10, 12, 0, np.log(4.0)), (20, 1, 3, np.log(6.0)), (5, 25, 5, np.log(2.0))):
        heat[0, c, y - 1 : y + 2, x - 1 : x + 2] = 1.0
        heat[0, c, y, x] = 3.0
        reg[0, 2:, y - 1 : y + 2, x - 1 : x + 2] = lw
        for i in (-1, 0, 1):  # every neighbour points at the peak cell's centre
            reg[0, 0, y - 1 : y + 2, x + i] = 0.5 - i
            reg[0, 1, y + i, x - 1 : x + 2] = 0.5 - i
    return heat, reg


def test_decoder_and_frame_features():
    heat, reg = _maps()
    (d,) = decode(heat, reg, 4, 0.1, features=True)
    assert d.features.shape == (3, rescore.N_DECODER_FEATURES)
    np.testing.assert_allclose(d.features[:, 0], 3.0 / 5, rtol=1e-5)  # the peak logit
    np.testing.assert_allclose(d.features[:, 1:3], 0.0, atol=1e-5)  # nine equal centre and size estimates
    np.testing.assert_allclose(d.features[:, 10], np.log1p(np.arange(3)) / 4)  # rank
    meta = (1.0, 0.0, 14.0)  # a 128 x 100 frame letterboxed into the 128 square
    f = to_frame(d, meta, 128, 100)
    assert f.features.shape == (len(f.boxes), rescore.N_FEATURES)
    names = rescore.FEATURES
    col = {n: names.index(n) for n in ("centre y / frame height", "past the frame edge")}
    for row, cls in zip(f.features, f.classes):
        assert row[rescore.N_DECODER_FEATURES + 4 + cls] == 1.0 and row[-6:].sum() == 1.0
    # the cyclist at cell x 1 is 24 px wide around x 6: it runs past the left edge
    cyc = int(np.flatnonzero(f.classes == 3)[0])
    assert f.features[cyc, col["past the frame edge"]] == 1.0
    car = int(np.flatnonzero(f.classes == 0)[0])
    assert f.features[car, col["past the frame edge"]] == 0.0
    np.testing.assert_allclose(
        f.features[car, col["centre y / frame height"]], (10.5 * 4 - 14) / 100, rtol=1e-5
    )
    with pytest.raises(ValueError, match="refine"):
        decode(heat, reg, 4, 0.1, refine=False, features=True)


def test_training_learns_a_rule_and_the_file_round_trips(tmp_path):
    x = RNG.standard_normal((4000, rescore.N_FEATURES)).astype(np.float32)
    target = 1 / (1 + np.exp(-(2 * x[:, 1] - x[:, 3])))
    weights = np.ones(len(x), np.float32)
    weights[:200] = 0.0
    target[:200] = 1 - target[:200]  # rows of weight 0 teach nothing
    model = rescore.train(
        x,
        target,
        weights,
        {"input_size": 640, "detector_sha256": "abc"},
        hidden=16,
        steps=600,
        batch=512,
        lr=1e-2,
    )
    d = Detections(
        np.zeros((len(x), 4), np.float32), np.ones(len(x), np.float32), np.zeros(len(x), np.int64), features=x
    )
    conf = model(d).confidence
    assert np.corrcoef(conf[200:], target[200:])[0, 1] > 0.97
    assert np.abs(conf[:200] - (1 - target[:200])).mean() < 0.05  # the rule, not their flipped labels
    path = str(tmp_path / "r.safetensors")
    model.save(path)
    back = rescore.load(path, input_size=640)
    np.testing.assert_array_equal(back(d).confidence, conf)
    assert back.meta["features"] == list(rescore.FEATURES)
    with pytest.raises(ValueError, match="input size 640, the detector runs at 320"):
        rescore.load(path, input_size=320)
    weights_file = tmp_path / "w.safetensors"
    weights_file.write_bytes(b"other weights")
    with pytest.raises(ValueError, match="other detector weights"):
        rescore.load(path, weights=str(weights_file))
    fw.save({"a": fw.ones(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not a rescorer file"):
        rescore.load(str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="features of shape"):
        model(Detections(d.boxes[:2], d.scores[:2], d.classes[:2], features=x[:2, :5]))
    with pytest.raises(ValueError, match="same, non-zero number"):
        rescore.train(x[:10], target[:9], weights[:10], {})


def test_detector_with_a_rescorer_keeps_scores_and_ranks_by_confidence():
    heat, reg = _maps()
    det = Detector.__new__(Detector)
    det.size, det.conf, det.nms_iou, det.device, det.rect = 128, 0.1, 0.7, "cpu", False
    det.last_timing = {}
    det.forward = lambda x: (np.repeat(heat, len(x), 0), np.repeat(reg, len(x), 0))
    frame = np.zeros((100, 128, 3), np.uint8)
    plain = det(frame)
    net = rescore.Rescorer.build(8)
    mean, std = np.zeros(rescore.N_FEATURES, np.float32), np.ones(rescore.N_FEATURES, np.float32)
    det.rescorer = rescore.Rescorer(net, mean, std, {})
    rated = det(frame)
    np.testing.assert_array_equal(rated.boxes, plain.boxes)
    np.testing.assert_array_equal(rated.scores, plain.scores)  # conf, the demo and tracking read these
    assert rated.confidence.shape == rated.scores.shape and np.all(
        (rated.confidence > 0) & (rated.confidence < 1)
    )
    np.testing.assert_array_equal(rated.ranked().scores, rated.confidence)
    (batch,) = det.detect_batch([frame])
    np.testing.assert_array_equal(batch.confidence, rated.confidence)


def test_the_committed_model_loads_its_rescorer_and_a_mismatch_is_refused_with_a_warning(tmp_path):
    import shutil

    from apps.perception import load_model
    from apps.perception.detector import ASSETS

    det = load_model()
    card = json.load(open(os.path.join(ASSETS, "model_card.json")))
    if "rescorer" not in card:
        pytest.skip("the committed model card names no rescorer")
    assert det.rescorer is not None and det.rescorer.meta["input_size"] == det.size
    assert load_model(rescore=False).rescorer is None
    # the same card and rescorer beside other weights: refused, with a warning naming why
    for name in ("model_card.json", card["rescorer"]["file"]):
        shutil.copy(os.path.join(ASSETS, name), tmp_path / name)
    state = fw.load(os.path.join(ASSETS, "detector.safetensors"))
    state["hm.bias"] = state["hm.bias"] + 0.01
    fw.save(state, str(tmp_path / "detector.safetensors"))
    with pytest.warns(UserWarning, match="rescorer not used: .*other detector weights"):
        other = load_model(str(tmp_path / "detector.safetensors"))
    assert other.rescorer is None


def test_cli_trains_a_rescorer_on_a_cache(tmp_path):
    from apps.perception.data import build_cache

    cache = str(tmp_path / "cache")
    build_cache(cache, n=3, seed=77, size=640)
    out = str(tmp_path / "r.safetensors")
    cmd = [
        sys.executable,
        "-m",
        "apps.perception",
        "rescorer",
        "--data",
        cache,
        "--val",
        cache,
        "--out",
        out,
        "--steps",
        "30",
        "--hidden",
        "8",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 3 and summary["boxes"] > 0
    assert set(summary["val"]) == {"score_x_quality", "rescorer"}
    loaded = rescore.load(out, input_size=640)
    assert loaded.meta["frames"] == 3 and len(loaded.meta["detector_sha256"]) == 64
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "exists" in again.stderr  # never overwritten
    bad = subprocess.run(cmd[:5] + [str(tmp_path)] + cmd[6:], capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "not a cache" in bad.stderr
