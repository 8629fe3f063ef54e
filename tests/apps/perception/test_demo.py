"""The demo pipeline headless on a generated clip, the public API, and clear errors for bad sources."""

import json
import sys
import time

import cv2
import numpy as np
import pytest

import apps.perception as pc
from apps.perception.__main__ import main


def _count_frames(path):
    cap = cv2.VideoCapture(path)
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_clip_and_labels(clip):
    gt = json.loads(open(clip.replace(".mp4", ".json")).read())
    assert len(gt["frames"]) == 12 and _count_frames(clip) == 12
    ids = [o["track_id"] for f in gt["frames"] for o in f["objects"]]
    assert ids and len(set(ids)) < len(ids)  # objects persist over frames (same track ids)


def test_demo_headless_writes_video_and_summary(clip, tiny_weights, tmp_path, capsys):
    out = tmp_path / "annotated.mp4"
    main(
        [
            "demo",
            "--source",
            clip,
            "--headless",
            "--save",
            str(out),
            "--every-frame",
            "--weights",
            tiny_weights,
            "--json",
            "--line",
            "0,60,160,60",
        ]
    )
    text = capsys.readouterr().out
    assert "FPS" in text and "latency" in text and "dropped" in text
    s = json.loads(text.strip().splitlines()[-1])
    assert s["frames"] == 12 and s["dropped"] == 0 and s["status"] == "ended"
    assert set(s["stage_ms"]) == {"capture", "preprocess", "model", "decode", "track", "draw"}
    assert _count_frames(str(out)) == 12


def test_demo_bad_source_is_a_clear_error(tiny_weights, tmp_path):
    with pytest.raises(SystemExit, match="no such file or folder"):
        main(["demo", "--source", str(tmp_path / "missing.mp4"), "--headless", "--weights", tiny_weights])
    empty = tmp_path / "frames"
    empty.mkdir()
    with pytest.raises(SystemExit, match="holds no images"):
        main(["demo", "--source", str(empty), "--headless", "--weights", tiny_weights])


def test_public_api(clip, tiny_weights, tmp_path):
    det = pc.load_model(tiny_weights)
    frame = np.zeros((120, 160, 3), np.uint8)
    d = pc.detect(det, frame, conf=0.0)
    assert d.boxes.shape[1] == 4 and len(d.boxes) == len(d.scores) == len(d.classes) > 0
    assert (d.boxes[:, [0, 2]] >= 0).all() and (d.boxes[:, [0, 2]] <= 160).all()
    assert det.conf == 0.3  # the override did not stick
    assert pc.draw_detections(frame, d).shape == frame.shape
    seen = []
    r = pc.process_video(
        clip, str(tmp_path / "o.webm"), detector=det, progress=lambda k, n: seen.append((k, n))
    )
    assert r["frames"] == 12 and seen[-1] == (12, 12)
    assert {"fps", "latency_p50_ms", "latency_p95_ms", "stage_ms", "track_ids", "class_counts"} <= set(r)
    tr = pc.make_tracker()
    assert tr.update(d.boxes[:2], d.scores[:2], d.classes[:2]) is not None


# --- audit: the pipeline around the model (a stand-in detector keeps these fast) ---------------------------


class _NullDetector:
    """Finds nothing; has what ``demo.run`` needs of a detector."""

    from apps.perception.classes import CLASSES as classes

    last_timing = {"preprocess": 0.0, "model": 0.0, "decode": 0.0}

    def __call__(self, frame):
        from apps.perception.metrics import Detections

        return Detections.empty()


def test_reconnecting_is_logged_and_shown_while_the_source_is_down(monkeypatch, flaky_camera):
    # before: the loop blocked in cap.read() while the source was down, so the window froze on the last
    # frame, the overlay never said "reconnecting" and the log never did either (checked per frame only)
    from apps.perception import demo
    from apps.perception.stream import LatestFrameCapture

    camera = flaky_camera((48, 64, 3))
    monkeypatch.setattr(
        demo,
        "LatestFrameCapture",
        lambda src, **kw: LatestFrameCapture(src, _reader_factory=camera, **kw),
    )
    shown = []
    monkeypatch.setattr(demo.cv2, "imshow", lambda name, img: shown.append(img.copy()))
    monkeypatch.setattr(demo.cv2, "waitKey", lambda ms: -1)
    monkeypatch.setattr(demo.cv2, "destroyWindow", lambda name: None)
    monkeypatch.setattr(demo, "open_window", lambda name: None)
    logs = []
    s = demo.run(
        0,
        _NullDetector(),
        headless=False,
        realtime=False,
        max_frames=8,
        reconnect_timeout=5.0,
        log=logs.append,
    )
    assert s["frames"] == 8 and s["reconnects"] == 1
    down = next(i for i, m in enumerate(logs) if m.startswith("source: reconnecting"))
    # back to running after it (not necessarily last: the camera runs out after its 8th frame, and on a
    # loaded machine the capture thread may already say "reconnecting" again before the loop ends)
    assert "source: running" in logs[down + 1:]
    # frames are black; only the status line is drawn in red (BGR (0, 0, 255) in the window)
    red = [(im[..., 2] > 200) & (im[..., 1] < 60) & (im[..., 0] < 60) for im in shown]
    assert len(shown) > 8 and sum(r.any() for r in red) >= 1


def test_saved_video_keeps_frames_of_another_size(tmp_path):
    # a folder of images of different sizes: cv2.VideoWriter silently drops frames whose size differs
    # from the first one, so the saved video lost them
    import cv2

    from apps.perception.demo import run

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, (w, h) in enumerate([(64, 48), (80, 40), (32, 64), (64, 48)]):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((h, w, 3), 200, np.uint8))
    out = tmp_path / "out.mp4"
    s = run(str(folder), _NullDetector(), save=str(out), realtime=False)
    assert s["frames"] == 4 and _count_frames(str(out)) == 4
    cap = cv2.VideoCapture(str(out))
    sizes = set()
    while True:
        ok, im = cap.read()
        if not ok:
            break
        sizes.add(im.shape[:2])
    assert sizes == {(48, 64)}


def test_summary_counts_and_percentiles():
    # every frame handed over offline: frames == captured, nothing dropped, p50 <= p95
    from apps.perception.demo import run

    s = run((np.zeros((8, 8, 3), np.uint8) for _ in range(7)), _NullDetector(), realtime=False)
    assert s["frames"] == s["captured"] == 7 and s["dropped"] == 0 and s["status"] == "ended"
    assert 0 < s["latency_ms_p50"] <= s["latency_ms_p95"]


def test_saved_video_keeps_real_time_when_frames_are_dropped(tmp_path):
    # live behaviour with a detector slower than the source: the frames it skips are filled with the last
    # annotated frame, so the video written at the source's rate lasts as long as the source (it played
    # fast-forward before: only the processed frames were written at the source's frame rate)
    from apps.perception.demo import run

    class Slow(_NullDetector):
        def __call__(self, frame):
            time.sleep(0.03)
            return super().__call__(frame)

    frames = (np.full((48, 64, 3), 10 * i, np.uint8) for i in range(20))
    out = tmp_path / "live.mp4"
    s = run(frames, Slow(), save=str(out), realtime=True, fps=100.0)
    assert s["dropped"] > 0 and s["captured"] == 20
    assert _count_frames(str(out)) == 20


def test_async_writer_reports_an_encoder_error_on_release(monkeypatch, tmp_path):
    from apps.perception import video

    class Broken:
        def write(self, f):
            raise OSError("disk full")

        def release(self):
            pass

    monkeypatch.setattr(video, "open_writer", lambda *a: Broken())
    w = video.AsyncWriter(str(tmp_path / "x.mp4"), 30.0, (8, 8))
    w.write(np.zeros((8, 8, 3), np.uint8))  # the error happens in the thread, after this returns
    with pytest.raises(RuntimeError, match="disk full"):
        w.release()  # before: the last frames' error was lost


def test_demo_save_encodes_off_the_pipeline_and_reports_encoder_errors(monkeypatch, tmp_path):
    # --save hands frames to the background encoder (the pipeline thread never calls the codec), and an
    # encoder failure ends the run with an error naming the file instead of a silently short video
    import threading

    from apps.perception import video
    from apps.perception.demo import run

    callers = []

    class Recording:
        def write(self, f):
            callers.append(threading.current_thread().name)
            if len(callers) == 3:
                raise OSError("disk full")

        def release(self):
            pass

    monkeypatch.setattr(video, "open_writer", lambda *a, **k: Recording())
    frames = (np.zeros((48, 64, 3), np.uint8) for _ in range(6))
    with pytest.raises(RuntimeError, match=r"out\.mp4.*disk full"):
        run(frames, _NullDetector(), save=str(tmp_path / "out.mp4"), realtime=False)
    assert callers and set(callers) == {"video-writer"}


def test_saved_video_holds_every_captured_frame_when_the_first_ones_were_dropped(monkeypatch, tmp_path):
    # frames dropped before the first processed one (the camera ran ahead while the pipeline started)
    # are filled too (with the first annotated frame): the video lasts as long as the source did
    from apps.perception import demo
    from apps.perception.stream import Frame

    class FakeCapture:
        """Hands over frames 2, 3 and 6 of 8 captured (0, 1, 4, 5 and 7 dropped), then ends."""

        def __init__(self, *a, **k):
            self.frames = [Frame(np.full((48, 64, 3), 30 * i, np.uint8), i, time.perf_counter())
                           for i in (2, 3, 6)]
            self.captured, self.dropped, self.reconnects, self.status, self.fps = 8, 5, 0, "running", 30.0

        def start(self):
            return self

        @property
        def finished(self):
            return not self.frames

        def read(self, timeout=None):
            if not self.frames:
                self.status = "ended"
                return None
            f = self.frames.pop(0)
            f.t_capture = time.perf_counter()
            return f

        def stop(self):
            pass

    monkeypatch.setattr(demo, "LatestFrameCapture", FakeCapture)
    out = tmp_path / "v.mp4"
    s = demo.run(iter(()), _NullDetector(), track=False, save=str(out), realtime=True)
    assert s["frames"] == 3 and s["captured"] == 8
    assert _count_frames(str(out)) == 8


def test_a_window_where_none_can_open_is_a_clear_error_before_any_frame(monkeypatch, clip, tiny_weights):
    # before: a server without a display (or opencv-python-headless) ran the model, then died in
    # cv2.imshow with "The function is not implemented. Rebuild the library with ... GTK+"
    import cv2

    from apps.perception import demo
    from apps.perception.__main__ import main

    class Refuses:
        def warmup(self):
            raise AssertionError("the detector ran before the window was checked")

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        with pytest.raises(demo.NoDisplayError, match="DISPLAY.*--headless"):
            demo.run(clip, Refuses(), headless=False)
        with pytest.raises(SystemExit, match="perception demo: error: no display.*--headless"):
            main(["demo", "--source", clip, "--weights", tiny_weights])

    def no_gui(*a, **k):
        raise cv2.error("The function is not implemented. Rebuild the library with Windows, GTK+ ...")

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(demo.cv2, "namedWindow", no_gui)
    with pytest.raises(demo.NoDisplayError, match="without GUI support.*--headless"):
        demo.run(clip, Refuses(), headless=False)
