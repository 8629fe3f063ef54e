"""SORT: ids persist through short misses and across crossings; the line counter counts once per track."""

import numpy as np

from apps.perception.track import LineCounter, Sort


def _run(seq, **kw):
    s = Sort(**kw)
    return [s.update(np.array(b, float).reshape(-1, 4), np.ones(len(b)), np.array(c)) for b, c in seq]


def _short_miss():
    seq = []
    for f in range(20):
        a = [100 + 5 * f, 100, 150 + 5 * f, 150]
        b = [300, 200 - 3 * f, 340, 260 - 3 * f]
        seq.append(([b], [0]) if 8 <= f <= 10 else ([a, b], [0, 0]))  # object a missed for 3 frames
    return seq


def test_id_survives_a_short_miss():
    out = _run(_short_miss(), max_age=5, min_hits=2)
    ids_a = {t.track_id for fr in out[2:] for t in fr if t.box[1] < 120}
    ids_b = {t.track_id for fr in out[2:] for t in fr if t.box[1] > 120}
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b
    # by default a track is reported only in the frames a detection continues it
    assert [len(fr) for fr in out[8:11]] == [1, 1, 1] and all(t.missed == 0 for fr in out for t in fr)
    assert {t.track_id for t in out[11] if t.box[1] < 120} == ids_a


def test_coasting_tracks_are_reported_on_their_prediction_when_asked():
    out = _run(_short_miss(), max_age=5, min_hits=2, coast=2)
    ids_a = {t.track_id for t in out[7] if t.box[1] < 120}
    coast = [[t for t in out[f] if t.track_id in ids_a] for f in (8, 9, 10)]
    assert [c[0].missed for c in coast[:2]] == [1, 2] and coast[2] == []  # for 2 frames, then hidden
    np.testing.assert_allclose(coast[1][0].box[0], 100 + 5 * 9, atol=2.0)
    assert {t.track_id for t in out[11] if t.box[1] < 120} == ids_a


def test_tracker_arguments_are_checked():
    import pytest

    bad = [(dict(max_age=-1), ">= 0"), (dict(coast=-2), ">= 0"), (dict(iou_threshold=1.5), r"\[0, 1\]")]
    for kw, msg in bad:
        with pytest.raises(ValueError, match=msg):
            Sort(**kw)


def test_long_miss_gives_a_new_id():
    seq = [([[10 + 2 * f, 10, 40 + 2 * f, 40]], [1]) if not 5 <= f < 15 else ([], []) for f in range(20)]
    out = _run(seq, max_age=3, min_hits=1)
    assert out[4][0].track_id != out[16][0].track_id


def test_classes_do_not_mix():
    seq = [([[0, 0, 20, 20]], [0])] * 3 + [([[0, 0, 20, 20]], [3])] * 3
    out = _run(seq, min_hits=1)
    assert out[0][0].track_id != [t for t in out[-1] if t.cls == 3][0].track_id


def test_line_counter():
    from apps.perception.track import Track

    lc = LineCounter((50, 0), (50, 100))
    for f in range(10):
        x = 20 + 8 * f
        lc.update(
            [
                Track(1, np.array([x - 5, 40, x + 5, 60], float), 2, 0.9, f),
                Track(2, np.array([10, 40, 20, 60], float), 0, 0.9, f),
            ]
        )  # track 2 never crosses
    assert lc.total == 1 and lc.counts in ({2: [0, 1]}, {2: [1, 0]})


# --- audit ---------------------------------------------------------------------------------------------


def _box(cx, cy, r=5.0):
    return np.array([cx - r, cy - r, cx + r, cy + r], float)


def test_line_counter_needs_the_path_to_cross_the_segment_itself():
    from apps.perception.track import Track

    lc = LineCounter((50, 0), (50, 100))
    # passes beside the segment's end: its path meets the line x=50 at y=112.5, below the segment, though
    # its new centre (60, 95) lies beside the segment (the old test looked at that centre only)
    lc.update([Track(1, _box(40, 130), 0, 0.9, 0)])
    lc.update([Track(1, _box(60, 95), 0, 0.9, 1)])
    # crosses the segment at y=97.5 and ends beside the line beyond the segment's end: must count
    lc.update([Track(2, _box(40, 80), 2, 0.9, 0)])
    lc.update([Track(2, _box(60, 115), 2, 0.9, 1)])
    assert lc.counts == {2: [1, 0]}  # moving to +x, i.e. to the left of p0 -> p1 (downwards on screen)


def test_line_counter_point_on_the_line_then_across():
    from apps.perception.track import Track

    lc = LineCounter((0, 50), (100, 50))
    for f, cy in enumerate([40, 50, 50, 60, 70]):  # stops on the line for two frames, then goes on
        lc.update([Track(7, _box(30, cy), 1, 0.9, f)])
    assert lc.total == 1 and sum(lc.counts[1]) == 1


def test_ids_are_never_reused_and_neighbours_keep_theirs():
    s = Sort(max_age=1, min_hits=1, iou_threshold=0.1)
    seen = set()
    for f in range(12):
        boxes = [[0, 0, 10, 10]] if f % 4 < 2 else []  # appears, vanishes past max_age, comes back
        out = s.update(np.array(boxes, float).reshape(-1, 4), np.ones(len(boxes)), np.zeros(len(boxes), int))
        new = {t.track_id for t in out if t.missed == 0 and t.age == 0}
        assert not (new & seen)
        seen |= {t.track_id for t in out}
    assert len(seen) == 3
    # two overlapping neighbours moving right keep their ids
    s = Sort(min_hits=1, iou_threshold=0.1)
    a, b = [0, 0, 10, 10], [6, 0, 16, 10]
    first = s.update(np.array([a, b], float), np.ones(2), np.zeros(2, int))
    ids = {tuple(np.round(t.box).astype(int)): t.track_id for t in first}
    out = s.update(np.array([[2, 0, 12, 10], [9, 0, 19, 10]], float), np.ones(2), np.zeros(2, int))
    by_id = {t.track_id: t.box for t in out}
    assert by_id[ids[tuple(a)]][0] < by_id[ids[tuple(b)]][0]  # a stays left of b


def test_kalman_shapes_and_velocity():
    from apps.perception.track import KalmanBoxTracker

    k = KalmanBoxTracker(np.array([0, 0, 20, 10], float), 0, 0.9, 1)
    assert k.x.shape == (7,) and k.P.shape == (7, 7) and k.F.shape == (7, 7) and k.H.shape == (4, 7)
    for f in range(1, 15):
        k.predict()
        k.update(np.array([4 * f, 0, 20 + 4 * f, 10], float), 0.9)
    np.testing.assert_allclose(k.x[4], 4.0, atol=0.3)  # learned 4 px/frame
    np.testing.assert_allclose(k.predict(), [60, 0, 80, 10], atol=1.0)


def test_line_counter_memory_stays_bounded_and_a_returning_track_is_not_counted_twice():
    import numpy as np

    from apps.perception.track import Track

    lc = LineCounter((50, 0), (50, 100), forget_after=300)

    def at(tid, x):
        return Track(tid, np.array([x - 2, 48, x + 2, 52], np.float32), 0, 0.9, 1)

    # 5000 short-lived tracks, each crossing once over three frames
    for k in range(5000):
        for x in (40, 45, 60):
            lc.update([at(10_000 + k, x)])
    assert sum(lc.counts[0]) == 5000
    assert len(lc._last) <= 400 and len(lc._seen) <= 400 and len(lc._done) <= 400
    # one track crosses, goes unseen for 200 updates (less than forget_after), crosses back: counted once
    lc2 = LineCounter((50, 0), (50, 100), forget_after=300)
    lc2.update([at(1, 40)])
    lc2.update([at(1, 60)])
    for _ in range(200):
        lc2.update([])
    lc2.update([at(1, 40)])
    lc2.update([at(1, 60)])
    assert lc2.total == 1


def test_line_counter_ignores_predicted_positions():
    """A coasting track reports its Kalman prediction: crossing the line on predictions alone (the object
    stopped while unseen) is not a count; seen again on the far side, it counts once."""
    from apps.perception.track import Track

    def tr(x, missed=0):
        return Track(7, np.array([x - 5, 40, x + 5, 60], float), 0, 0.9, 0, missed)

    lc = LineCounter((50, 0), (50, 100))
    for x, m in [(30, 0), (40, 0), (48, 1), (56, 2), (64, 3)]:  # across on predictions only
        lc.update([tr(x, m)])
    assert lc.total == 0
    lc.update([tr(46, 0)])  # seen again, still before the line: the object had stopped
    assert lc.total == 0
    for x, m in [(52, 1), (58, 0)]:  # crossed while unseen, then seen beyond the line
        lc.update([tr(x, m)])
    assert lc.counts == {0: [0, 1]} or lc.counts == {0: [1, 0]}
    assert lc.total == 1


def test_sort_reports_coasting_tracks_as_missed_so_the_counter_waits():
    """End to end: the tracker's coasting output carries ``missed``, which the counter skips."""
    s = Sort(max_age=8, min_hits=1, coast=8)
    lc = LineCounter((50, 0), (50, 100))
    for f in range(10):  # moving right at 8 px per frame towards the line at x = 50
        x = -40 + 8 * f  # (a box 40 px wide: IoU 0.67 between frames, one track)
        lc.update(s.update(np.array([[x - 20, 40, x + 20, 60]], float), np.ones(1), np.zeros(1, int)))
    for _ in range(6):  # unseen: the prediction carries the box over the line
        out = s.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))
        assert len(out) == 1 and out[0].missed > 0
        lc.update(out)
    assert (out[0].box[0] + out[0].box[2]) / 2 > 50 and lc.total == 0


def test_class_agnostic_keeps_one_track_through_class_flicker():
    """A detector flickering car / truck on one object: by class, the track splits at each flicker;
    class-agnostic, one id throughout, reported as the score-weighted majority class."""
    classes = [0, 0, 1, 0, 0, 1, 0, 0]
    scores = [0.9, 0.9, 0.6, 0.9, 0.9, 0.6, 0.9, 0.9]
    seq = [(np.array([[10 + 2 * f, 10, 60 + 2 * f, 50]], float), np.array([scores[f]]), np.array([c]))
           for f, c in enumerate(classes)]
    split, one = Sort(min_hits=1), Sort(min_hits=1, class_agnostic=True)
    ids_split, ids_one, cls_one = set(), set(), []
    for b, s, c in seq:
        ids_split |= {t.track_id for t in split.update(b, s, c) if t.missed == 0}
        fresh = [t for t in one.update(b, s, c) if t.missed == 0]
        ids_one |= {t.track_id for t in fresh}
        cls_one += [t.cls for t in fresh]
    assert len(ids_split) > 1
    assert len(ids_one) == 1 and set(cls_one) == {0}


def test_class_agnostic_track_follows_a_lasting_change_of_class():
    s = Sort(min_hits=1, class_agnostic=True)
    out = []
    for f in range(8):  # a "pedestrian" that the detector settles on calling a cyclist
        c = 2 if f < 2 else 3
        out.append(s.update(np.array([[100, 50 + f, 120, 110 + f]], float), np.ones(1), np.array([c])))
    assert {t.track_id for fr in out for t in fr} == {1}
    assert out[1][0].cls == 2 and out[-1][0].cls == 3
