"""Tracking metrics (apps.perception.mot) against py-motmetrics, on hand-made cases and from the CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest

from apps.perception.mot import (
    METRICS,
    MOTAccumulator,
    TrackFrame,
    drop_ignored,
    evaluate_tracking,
    format_tracking_report,
    load_track_labels,
)


def _scenario(seed, frames=40, objects=8, classes=3, spread=400.0):
    """Ground truth of moving boxes and a flawed tracker's output: jitter, misses, false positives,
    identity swaps, a track re-started under a new id, the odd wrong class."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, frames // 2, objects)
    stop = np.minimum(frames, start + rng.integers(5, frames, objects))
    pos = rng.uniform(0, spread, (objects, 2))
    vel = rng.uniform(-6, 6, (objects, 2))
    size = rng.uniform(15, 60, (objects, 2))
    cls = rng.integers(0, classes, objects)
    hyp_id = np.arange(objects) + 100
    gt, hyp = [], []
    next_id = 1000
    for t in range(frames):
        on = np.nonzero((start <= t) & (t < stop))[0]
        xy = pos[on] + vel[on] * t
        boxes = np.concatenate([xy, xy + size[on]], 1)
        gt.append(TrackFrame(on, boxes, cls[on]))
        if rng.random() < 0.08 and len(on) >= 2:  # two tracks swap identities
            a, b = rng.choice(on, 2, replace=False)
            hyp_id[a], hyp_id[b] = hyp_id[b], hyp_id[a]
        if rng.random() < 0.05 and len(on):  # a track is lost and started again
            hyp_id[rng.choice(on)] = next_id
            next_id += 1
        seen = rng.random(len(on)) > 0.15
        hb = boxes[seen] + rng.normal(0, 4, (seen.sum(), 4))
        hc = cls[on][seen].copy()
        flip = rng.random(len(hc)) < 0.05
        hc[flip] = (hc[flip] + 1) % classes
        ids = list(hyp_id[on][seen])
        for _ in range(rng.poisson(0.7)):  # false positives, some persistent
            xy0 = rng.uniform(0, 400, 2)
            hb = np.concatenate([hb, [np.concatenate([xy0, xy0 + rng.uniform(15, 60, 2)])]])
            hc = np.append(hc, rng.integers(0, classes))
            ids.append(5000 + int(rng.integers(0, 4)) if rng.random() < 0.5 else next_id)
            next_id += 1
        _, first = np.unique(ids, return_index=True)  # a persistent false positive appears once a frame
        keep = np.sort(first)
        hyp.append(TrackFrame(np.asarray(ids)[keep], hb[keep], hc[keep]))
    return gt, hyp


def _iou_pair(a, b):
    """IoU of two x1 y1 x2 y2 boxes, one pair at a time: independent of the vectorised code under test."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _oracle(gt_frames, hyp_frames, thr, class_aware):
    mm = pytest.importorskip("motmetrics", reason="py-motmetrics is the oracle for the tracking metrics")
    acc = mm.MOTAccumulator(auto_id=True)
    for gt, hyp in zip(gt_frames, hyp_frames):
        d = np.array([[1.0 - _iou_pair(g, h) for h in hyp.boxes] for g in gt.boxes], float)
        d = d.reshape(len(gt.ids), len(hyp.ids))
        d[d > 1 - thr] = np.nan  # what mm.distances.iou_matrix(max_iou=1 - thr) does (it needs NumPy < 2)
        if class_aware:
            d = np.where(gt.classes[:, None] == hyp.classes[None, :], d, np.nan)
        acc.update(gt.ids.tolist(), hyp.ids.tolist(), d)
    names = ["mota", "motp", "idf1", "idp", "idr", "precision", "recall", "num_objects", "num_predictions",
             "num_detections", "num_misses", "num_false_positives", "num_switches", "num_fragmentations",
             "num_unique_objects", "mostly_tracked", "partially_tracked", "mostly_lost"]
    s = mm.metrics.create().compute(acc, metrics=names, name="x").iloc[0]
    return s


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("class_aware", [True, False])
@pytest.mark.parametrize("spread", [400.0, 60.0])  # 60: a crowd, boxes overlapping one another
def test_matches_py_motmetrics(seed, class_aware, spread):
    gt, hyp = _scenario(seed, spread=spread)
    thr = 0.5
    acc = MOTAccumulator(thr, class_aware)
    for g, h in zip(gt, hyp):
        acc.update(g, h)
    ours = acc.summary()
    ref = _oracle(gt, hyp, thr, class_aware)
    # every case must exercise the counters being compared
    assert ours["id_switches"] > 0 and ours["false_positives"] > 0 and ours["misses"] > 0
    assert ours["fragmentations"] > 0
    for key, theirs in [("mota", "mota"), ("idf1", "idf1"), ("idp", "idp"), ("idr", "idr"),
                        ("precision", "precision"), ("recall", "recall")]:
        assert ours[key] == pytest.approx(ref[theirs], abs=1e-12), key
    assert ours["motp_iou"] == pytest.approx(1.0 - ref["motp"], abs=1e-12)
    for key, theirs in [("objects", "num_objects"), ("hypotheses", "num_predictions"),
                        ("matches", "num_detections"), ("misses", "num_misses"),
                        ("false_positives", "num_false_positives"), ("id_switches", "num_switches"),
                        ("fragmentations", "num_fragmentations"), ("gt_tracks", "num_unique_objects"),
                        ("mostly_tracked", "mostly_tracked"), ("partially_tracked", "partially_tracked"),
                        ("mostly_lost", "mostly_lost")]:
        assert ours[key] == int(ref[theirs]), key


def _trackeval_hota(gt_frames, hyp_frames, class_aware):
    """TrackEval's HOTA on the same frames: the means over its 19 alphas of HOTA, DetA, AssA, LocA."""
    te = pytest.importorskip("trackeval", reason="TrackEval is the oracle for HOTA")
    oix = {o: k for k, o in enumerate(sorted({int(o) for g in gt_frames for o in g.ids}))}
    hix = {h: k for k, h in enumerate(sorted({int(h) for t in hyp_frames for h in t.ids}))}
    sims = []
    for g, t in zip(gt_frames, hyp_frames):
        s = np.array([[_iou_pair(a, b) for b in t.boxes] for a in g.boxes], float)
        s = s.reshape(len(g.ids), len(t.ids))
        if class_aware:
            s = np.where(g.classes[:, None] == t.classes[None, :], s, 0.0)
        sims.append(s)
    data = dict(
        num_gt_dets=sum(len(g.ids) for g in gt_frames), num_tracker_dets=sum(len(t.ids) for t in hyp_frames),
        num_gt_ids=len(oix), num_tracker_ids=len(hix), similarity_scores=sims,
        gt_ids=[np.array([oix[int(o)] for o in g.ids], int) for g in gt_frames],
        tracker_ids=[np.array([hix[int(h)] for h in t.ids], int) for t in hyp_frames],
    )
    res = te.metrics.HOTA().eval_sequence(data)
    return {k: float(np.mean(res[k])) for k in ("HOTA", "DetA", "AssA", "LocA")}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("class_aware", [True, False])
@pytest.mark.parametrize("spread", [400.0, 60.0])
def test_hota_matches_trackeval(seed, class_aware, spread):
    gt, hyp = _scenario(seed + 20, spread=spread)
    acc = MOTAccumulator(0.5, class_aware)
    for g, h in zip(gt, hyp):
        acc.update(g, h)
    ours = acc.summary()
    ref = _trackeval_hota(gt, hyp, class_aware)
    assert 0.2 < ours["hota"] < 0.95  # the flawed tracker is neither hopeless nor perfect
    for key, theirs in [("hota", "HOTA"), ("deta", "DetA"), ("assa", "AssA"), ("loca", "LocA")]:
        assert ours[key] == pytest.approx(ref[theirs], abs=1e-12), key


def test_iou_threshold_is_respected():
    gt, hyp = _scenario(3)
    loose, strict = MOTAccumulator(0.3), MOTAccumulator(0.7)
    for g, h in zip(gt, hyp):
        loose.update(g, h)
        strict.update(g, h)
    assert strict.summary()["matches"] < loose.summary()["matches"]
    assert _oracle(gt, hyp, 0.7, True)["num_detections"] == strict.summary()["matches"]


def _box(x, y, w=20, h=20):
    return [x, y, x + w, y + h]


def test_hand_made_counts():
    """Object 1 is followed by track 10 for two frames, missed, then picked up by track 11: one miss,
    one switch, one fragmentation. Object 2 is tracked throughout. A stray track is one false positive."""
    gt = [TrackFrame([1, 2], [_box(0, 0), _box(100, 0)], [0, 0]) for _ in range(5)]
    hyp = [
        TrackFrame([10, 20], [_box(1, 0), _box(100, 1)], [0, 0]),
        TrackFrame([10, 20], [_box(1, 0), _box(100, 1)], [0, 0]),
        TrackFrame([20, 30], [_box(100, 1), _box(300, 300)], [0, 0]),
        TrackFrame([11, 20], [_box(0, 1), _box(100, 1)], [0, 0]),
        TrackFrame([11, 20], [_box(0, 1), _box(100, 1)], [0, 0]),
    ]
    m = evaluate_tracking(gt, hyp)["overall"]
    assert (m["objects"], m["hypotheses"], m["misses"], m["false_positives"]) == (10, 10, 1, 1)
    assert (m["id_switches"], m["fragmentations"], m["matches"]) == (1, 1, 9)
    assert m["mota"] == pytest.approx(1 - (1 + 1 + 1) / 10)
    # identity: object 1 pairs with track 10 or 11 (2 frames each), object 2 with track 20 (5)
    assert m["idf1"] == pytest.approx(2 * 7 / 20)
    assert (m["mostly_tracked"], m["mostly_lost"], m["gt_tracks"], m["tracks"]) == (2, 0, 2, 4)


def test_a_track_carried_over_goes_to_one_object_only():
    """Track 10 follows object 1, then object 2 (object 1 absent); when both are back on top of each other,
    both were last matched to track 10: only one may keep it, the other is a switch to track 11."""
    gt = [TrackFrame([1], [_box(0, 0)], [0]), TrackFrame([2], [_box(1, 0)], [0]),
          TrackFrame([1, 2], [_box(0, 0), _box(1, 0)], [0, 0])]
    hyp = [TrackFrame([10], [_box(0, 0)], [0]), TrackFrame([10], [_box(1, 0)], [0]),
           TrackFrame([10, 11], [_box(0, 0), _box(1, 1)], [0, 0])]
    acc = MOTAccumulator()
    for g, h in zip(gt, hyp):
        acc.update(g, h)
    m = acc.summary()
    assert (m["matches"], m["id_switches"], m["false_positives"], m["misses"]) == (4, 1, 0, 0)
    ref = _oracle(gt, hyp, 0.5, True)
    assert (int(ref["num_detections"]), int(ref["num_switches"])) == (4, 1)


def test_perfect_tracking_scores_one():
    gt, _ = _scenario(1)
    m = evaluate_tracking(gt, [TrackFrame(g.ids + 7, g.boxes, g.classes) for g in gt])["overall"]
    assert m["mota"] == m["idf1"] == m["motp_iou"] == m["precision"] == m["recall"] == 1.0
    assert m["hota"] == pytest.approx(1.0) and m["assa"] == pytest.approx(1.0)
    assert m["id_switches"] == m["fragmentations"] == m["mostly_lost"] == 0


def test_class_aware_matching_and_per_class():
    gt = [TrackFrame([1, 2], [_box(0, 0), _box(100, 0)], [0, 2])] * 3
    hyp = [TrackFrame([5, 6], [_box(0, 0), _box(100, 0)], [1, 2])] * 3  # object 1 seen as the wrong class
    aware = evaluate_tracking(gt, hyp)
    assert aware["overall"]["matches"] == 3 and aware["overall"]["false_positives"] == 3
    assert evaluate_tracking(gt, hyp, class_aware=False)["overall"]["matches"] == 6
    pc = aware["per_class"]
    assert set(pc) == {"car", "truck/bus", "pedestrian"}  # classes 0, 1, 2; the others have nothing
    assert pc["car"]["recall"] == 0.0 and pc["truck/bus"]["precision"] == 0.0
    assert pc["pedestrian"]["mota"] == 1.0


def test_ignored_objects_count_neither_way():
    gt = TrackFrame([1, 2], [_box(0, 0), _box(100, 0)], [0, 0], ignore=[False, True])
    hyp = TrackFrame([7, 8, 9], [_box(0, 0), _box(101, 0), _box(300, 0)], [0, 3, 0])
    g, h = drop_ignored(gt, hyp, 0.5)
    # the hit on the ignored object goes, whatever its class
    assert g.ids.tolist() == [1] and h.ids.tolist() == [7, 9]
    m = evaluate_tracking([gt], [hyp])["overall"]
    assert (m["objects"], m["matches"], m["misses"], m["false_positives"]) == (1, 1, 0, 1)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="id appears twice"):
        TrackFrame([1, 1], [_box(0, 0), _box(5, 5)], [0, 0])
    with pytest.raises(ValueError, match="non-finite"):
        TrackFrame([1], [[0, 0, np.nan, 3]], [0])
    with pytest.raises(ValueError, match="one of each"):
        TrackFrame([1, 2], [_box(0, 0)], [0, 0])
    with pytest.raises(ValueError, match="2 ground-truth frames but 1"):
        evaluate_tracking([TrackFrame([], [], [])] * 2, [TrackFrame([], [], [])])
    with pytest.raises(ValueError, match="iou_threshold"):
        MOTAccumulator(0.0)


def test_no_ground_truth_gives_undefined_not_zero():
    m = evaluate_tracking([TrackFrame([], [], [])] * 2, [TrackFrame([3], [_box(0, 0)], [0])] * 2)["overall"]
    assert m["mota"] is None and m["recall"] is None and m["precision"] == 0.0 and m["false_positives"] == 2


def test_labels_file(tmp_path, clip):
    frames = load_track_labels(clip.rsplit(".", 1)[0] + ".json")
    doc = json.load(open(clip.rsplit(".", 1)[0] + ".json"))
    assert len(frames) == len(doc["frames"]) == 12
    assert frames[3].ids.tolist() == [o["track_id"] for o in doc["frames"][3]["objects"]]
    assert frames[3].ignore.tolist() == [o["ignore"] for o in doc["frames"][3]["objects"]]
    bad = tmp_path / "bad.json"

    def one(obj):
        return json.dumps({"frames": [{"frame": 0, "objects": [obj]}]})

    for text, msg in [("{", "not valid JSON"), ('{"x": 1}', "'frames' list"),
                      ('{"classes": ["a"], "frames": []}', "not the detector's"),
                      (one({"bbox": [0, 0, 1]}), "frame 0: each object"),
                      (one({"bbox": [5, 0, 1, 1], "cls": 0, "track_id": 1}), "x2 < x1"),
                      (one({"bbox": [0, 0, 1, 1], "cls": 9, "track_id": 1}), "out of range"),
                      ('{"frames": [{"frame": 1, "objects": []}]}', r"frames\[0\]")]:
        bad.write_text(text)
        with pytest.raises(ValueError, match=msg):
            load_track_labels(str(bad))


def test_report_lists_every_class_row():
    gt, hyp = _scenario(2)
    m = evaluate_tracking(gt, hyp)
    text = format_tracking_report(m)
    assert text.splitlines()[2].split()[0] == "all" and len(text.splitlines()) == 3 + len(m["per_class"])
    assert set(m["overall"]) == set(METRICS)


def test_track_cli_scores_against_labels(clip, tiny_weights):
    labels = clip.rsplit(".", 1)[0] + ".json"
    r = subprocess.run(
        [sys.executable, "-m", "apps.perception", "track", "--source", clip, "--weights", tiny_weights,
         "--headless", "--gt", labels, "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])["tracking"]
    truth = [o for fr in json.load(open(labels))["frames"] for o in fr["objects"] if not o["ignore"]]
    assert m["frames"] == 12 and m["overall"]["objects"] == len(truth)
    o = m["overall"]
    assert o["matches"] + o["misses"] == o["objects"]
    assert "MOTA" in r.stderr


def test_track_cli_rejects_labels_of_another_length(clip, tiny_weights, tmp_path):
    doc = json.load(open(clip.rsplit(".", 1)[0] + ".json"))
    doc["frames"] = doc["frames"][:5]
    short = tmp_path / "short.json"
    short.write_text(json.dumps(doc))
    r = subprocess.run(
        [sys.executable, "-m", "apps.perception", "track", "--source", clip, "--weights", tiny_weights,
         "--headless", "--gt", str(short)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode != 0 and "5 frames of labels" in r.stderr and "12" in r.stderr


def test_kitti_tracking_labels(tmp_path):
    tail = "1.5 1.6 3.9 1.0 1.0 10.0 0.0"
    p = tmp_path / "0000.txt"
    p.write_text("\n".join([
        f"0 0 Car 0 0 -1 10 20 50 60 {tail}",
        f"0 1 Pedestrian 0 0 -1 100 20 120 80 {tail}",
        f"0 -1 DontCare -1 -1 -10 200 200 220 220 {tail}",
        f"0 -1 DontCare -1 -1 -10 300 200 320 220 {tail}",
        f"2 0 Van 0 0 -1 12 20 52 60 {tail}",
        f"2 3 Misc 0 0 -1 0 0 5 5 {tail}",
        f"2 4 Person 0 0 -1 400 20 420 80 {tail} 0.9",
    ]) + "\n")
    fr = load_track_labels(str(p))
    assert len(fr) == 3 and len(fr[1].ids) == 0  # frame 1 has no line: an empty frame
    assert fr[0].ids[:2].tolist() == [0, 1] and fr[0].classes[:2].tolist() == [0, 2]
    assert fr[0].ignore.tolist() == [False, False, True, True] and (fr[0].ids[2:] < 0).all()
    np.testing.assert_array_equal(fr[0].boxes[0], [10, 20, 50, 60])
    assert fr[2].ids.tolist() == [0, 4] and fr[2].classes.tolist() == [0, 2]  # Van: car; Misc dropped
    assert len(load_track_labels(str(p), n_frames=5)) == 5
    assert len(load_track_labels(str(p), n_frames=2, truncate=True)) == 2
    with pytest.raises(ValueError, match="labels frame 2 but the video has only 2 frames"):
        load_track_labels(str(p), n_frames=2)


def test_motchallenge_labels(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text("\n".join([
        "1,1,10,20,40,40,1,1,0.9",  # a pedestrian: counts
        "1,2,100,20,20,60,0,1,0.5",  # not to be considered: dropped
        "1,3,200,20,20,60,1,7,1.0",  # a static person: a distractor, ignored
        "2,1,12,20,40,40,1,1,0.9",
        "2,5,300,300,50,30,1,3,1.0",  # a car: MOTChallenge does not score it
    ]) + "\n")
    fr = load_track_labels(str(p))
    assert len(fr) == 2
    assert fr[0].ignore.tolist() == [False, True] and fr[0].ids[0] == 1 and fr[0].classes[0] == 2
    np.testing.assert_array_equal(fr[0].boxes[0], [10, 20, 50, 60])
    assert fr[1].ids.tolist() == [1]
    p.write_text("1,7,10,20,40,40,1,-1,-1,-1\n")  # MOT15: 10 fields, every line a pedestrian
    assert load_track_labels(str(p))[0].classes.tolist() == [2]


@pytest.mark.parametrize("text, msg", [
    ("1,1,10,20,40\n", "6 to 10 comma-separated"),
    ("1,1,10,20,-4,40,1,1,1\n", "not finite, right >= left"),
    ("0,1,10,20,4,40,1,1,1\n", "before the first frame"),
    ("1,1,10,20,4,40,1,1,1\n1,1,50,20,4,40,1,1,1\n", "track 1 appears twice in frame 1"),
    ("1,a,10,20,4,40,1,1,1\n", "must be numbers"),
    ("0 0 Car 0 0 -1 10 20 50\n", "KITTI tracking line has 17 fields"),
    ("0 0 Car 0 0 -1 10 20 50 x 1 1 1 1 1 1 0\n", "after the type must be numbers"),
])
def test_text_labels_errors_name_the_line(tmp_path, text, msg):
    p = tmp_path / "labels.txt"
    p.write_text(text)
    with pytest.raises(ValueError, match=msg) as e:
        load_track_labels(str(p))
    assert f"{p}:" in str(e.value)


def test_only_the_scored_classes_count():
    gt = [TrackFrame([1, 2], [_box(0, 0), _box(100, 0)], [0, 2])] * 3
    hyp = [TrackFrame([5, 6, 7], [_box(0, 0), _box(100, 0), _box(300, 0)], [0, 2, 5])] * 3
    every = evaluate_tracking(gt, hyp)
    assert every["overall"]["false_positives"] == 3 and every["scored"][-1] == "traffic sign"
    peds = evaluate_tracking(gt, hyp, scored=[2])
    o = peds["overall"]
    assert (o["objects"], o["hypotheses"], o["false_positives"], o["mota"]) == (3, 3, 0, 1.0)
    assert peds["scored"] == ["pedestrian"] and set(peds["per_class"]) == {"pedestrian"}
    with pytest.raises(ValueError, match="scored classes"):
        evaluate_tracking(gt, hyp, scored=[9])


def test_track_cli_scores_motchallenge_labels_for_chosen_classes(clip, tiny_weights, tmp_path):
    doc = json.load(open(clip.rsplit(".", 1)[0] + ".json"))
    rows = []
    for fr in doc["frames"]:
        for o in fr["objects"]:
            x1, y1, x2, y2 = o["bbox"]
            mot_class = 1 if o["cls"] == 2 and not o["ignore"] else 8  # pedestrians; the rest distractors
            rows.append(f"{fr['frame'] + 1},{o['track_id']},{x1},{y1},{x2 - x1},{y2 - y1},1,{mot_class},1")
    gt = tmp_path / "gt.txt"
    gt.write_text("\n".join(rows) + "\n")
    cmd = [sys.executable, "-m", "apps.perception", "track", "--source", clip, "--weights", tiny_weights,
           "--headless", "--gt", str(gt), "--json"]
    r = subprocess.run(cmd + ["--score-classes", "pedestrian"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])["tracking"]
    peds = sum(o["cls"] == 2 and not o["ignore"] for fr in doc["frames"] for o in fr["objects"])
    assert m["scored"] == ["pedestrian"] and m["overall"]["objects"] == peds and m["frames"] == 12
    r = subprocess.run(cmd + ["--score-classes", "pedestrian,bus driver"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode != 0 and "'bus driver' is not one of" in r.stderr


@pytest.mark.parametrize("fmt", ["mot", "kitti"])
def test_written_tracks_read_back(tmp_path, fmt):
    from apps.perception.mot import TrackWriter
    from apps.perception.track import Track

    _, hyp = _scenario(4, frames=12)
    path = tmp_path / f"tracks.{fmt}.txt"
    with TrackWriter(str(path), fmt) as w:
        for k, fr in enumerate(hyp):
            w.write(k, [Track(int(i), b, int(c), 0.5, 0) for i, b, c in zip(fr.ids, fr.boxes, fr.classes)])
    back = load_track_labels(str(path), n_frames=len(hyp))
    for a, b in zip(hyp, back):
        assert a.ids.tolist() == b.ids.tolist()
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.0101)  # 2 decimals; MOT rounds x and w apart
        # MOTChallenge's results format has no class: its rows read back as pedestrians
        assert b.classes.tolist() == (a.classes.tolist() if fmt == "kitti" else [2] * len(a.ids))
    with pytest.raises(ValueError, match="track format"):
        TrackWriter(str(path), "csv")


def test_track_cli_saves_the_tracks_it_scored(clip, tiny_weights, tmp_path):
    labels = clip.rsplit(".", 1)[0] + ".json"
    out = tmp_path / "tracks.txt"
    r = subprocess.run(
        [sys.executable, "-m", "apps.perception", "track", "--source", clip, "--weights", tiny_weights,
         "--headless", "--gt", labels, "--save-tracks", str(out), "--tracks-format", "kitti", "--json",
         "--min-hits", "1", "--conf", "0.05"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    reported = json.loads(r.stdout.strip().splitlines()[-1])["tracking"]
    saved = load_track_labels(str(out), n_frames=12)
    again = evaluate_tracking(load_track_labels(labels), saved)
    assert sum(len(f.ids) for f in saved) > 0  # a low threshold: even the untrained model's boxes show
    for key in ("objects", "hypotheses", "matches", "false_positives", "id_switches"):
        assert again["overall"][key] == reported["overall"][key], key


def test_track_cli_on_a_kitti_tracking_sequence(clip, tiny_weights, tmp_path):
    """KITTI's layout: a folder of frames (image_02/0000/NNNNNN.png) and label_02/0000.txt."""
    import cv2

    from apps.perception.classes import CLASSES

    doc = json.load(open(clip.rsplit(".", 1)[0] + ".json"))
    seq = tmp_path / "image_02" / "0000"
    seq.mkdir(parents=True)
    cap = cv2.VideoCapture(clip)
    k = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        cv2.imwrite(str(seq / f"{k:06d}.png"), bgr)
        k += 1
    assert k == 12
    kitti_type = {"car": "Car", "truck/bus": "Truck", "pedestrian": "Pedestrian", "cyclist": "Cyclist"}
    lines, counted = [], 0
    for fr in doc["frames"]:
        for o in fr["objects"]:
            name = "DontCare" if o["ignore"] else kitti_type.get(CLASSES[o["cls"]], "Misc")
            tid = -1 if name == "DontCare" else o["track_id"]
            counted += name not in ("DontCare", "Misc")
            lines.append(f"{fr['frame']} {tid} {name} 0 0 -10 " + " ".join(f"{v:.2f}" for v in o["bbox"])
                         + " -1 -1 -1 -1000 -1000 -1000 -10")
    (tmp_path / "label_02").mkdir()
    labels = tmp_path / "label_02" / "0000.txt"
    labels.write_text("\n".join(lines) + "\n")
    r = subprocess.run(
        [sys.executable, "-m", "apps.perception", "track", "--source", str(seq), "--weights", tiny_weights,
         "--headless", "--gt", str(labels), "--json", "--score-classes", "car,truck/bus,pedestrian,cyclist"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])["tracking"]
    assert m["frames"] == 12 and m["overall"]["objects"] == counted > 0
    assert m["scored"] == ["car", "truck/bus", "pedestrian", "cyclist"]


def test_save_tracks_never_overwrites_the_labels(clip, tiny_weights, tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_bytes(open(clip.rsplit(".", 1)[0] + ".json", "rb").read())
    before = labels.read_bytes()
    r = subprocess.run(
        [sys.executable, "-m", "apps.perception", "track", "--source", clip, "--weights", tiny_weights,
         "--headless", "--gt", str(labels), "--save-tracks", str(labels)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode != 0 and "would be overwritten" in r.stderr
    assert labels.read_bytes() == before


def test_saved_video_never_overwrites_the_source(clip, tiny_weights, tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(open(clip, "rb").read())
    before = src.read_bytes()
    r = subprocess.run(
        [sys.executable, "-m", "apps.perception", "demo", "--source", str(src), "--weights", tiny_weights,
         "--headless", "--save", str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode != 0 and "--save" in r.stderr and "would be overwritten" in r.stderr
    assert src.read_bytes() == before

