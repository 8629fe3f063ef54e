"""Capture thread: keeps only the newest frame for a slow consumer, hands over every frame offline,
reconnects a lost live source, and gives clear errors for bad sources."""

import time

import numpy as np
import pytest

from apps.perception.stream import LatestFrameCapture, SourceError, _Reader, source_kind


def _frames(n, h=8, w=8):
    for i in range(n):
        yield np.full((h, w, 3), i % 256, np.uint8)


def test_slow_consumer_gets_fresh_frames_and_drops_stale_ones():
    cap = LatestFrameCapture(_frames(60), realtime=True, fps=200.0).start()  # a 200 FPS "camera"
    got = []
    while True:
        f = cap.read()
        if f is None:
            break
        got.append(f)
        age_ms = (time.perf_counter() - f.t_capture) * 1e3
        assert age_ms < 100  # never a backlog (a queue would age by 15 ms per frame)
        time.sleep(0.02)  # a consumer at 50 FPS
    cap.stop()
    idx = [f.index for f in got]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)
    assert cap.captured == 60
    assert cap.dropped > 20 and len(got) + cap.dropped == 60
    assert cap.status == "ended"


def test_offline_mode_delivers_every_frame():
    cap = LatestFrameCapture(_frames(25), realtime=False).start()
    got = []
    while (f := cap.read()) is not None:
        got.append(int(f.image[0, 0, 0]))
        time.sleep(0.002)
    cap.stop()
    assert got == list(range(25)) and cap.dropped == 0


def test_reconnects_with_backoff(flaky_camera):
    camera = flaky_camera((4, 4, 3))
    cap = LatestFrameCapture(0, reconnect_timeout=5.0, _reader_factory=camera).start()
    statuses, n = set(), 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4.0 and cap.reconnects < 1:
        statuses.add(cap.status.split(" ")[0])
        n += cap.read(timeout=0.1) is not None
    cap.stop()
    assert cap.reconnects == 1 and camera.opens == 3
    assert "reconnecting" in statuses


def test_bad_sources():
    with pytest.raises(SourceError, match="no such file or folder"):
        LatestFrameCapture("/nonexistent/clip.mp4")
    assert source_kind("rtsp://127.0.0.1:1/x") == "stream"
    assert source_kind(3) == "camera" and source_kind("0") == "camera"


def test_unreadable_file_and_empty_folder(tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(SourceError, match="cannot open video file"):
        _Reader(str(bad))
    with pytest.raises(SourceError, match="holds no images"):
        _Reader(str(tmp_path))


# --- audit -----------------------------------------------------------------------------------------------


class _DeadStream:
    """A live source that opens every time (the server accepts the connection) but never sends a frame
    after its first two."""

    opens = 0
    live = True

    def __init__(self, source):
        type(self).opens += 1
        self.kind, self.fps, self.n = "stream", 100.0, 0
        self.limit = 2 if type(self).opens == 1 else 0

    def read(self):
        self.n += 1
        return np.zeros((4, 4, 3), np.uint8) if self.n <= self.limit else None

    def close(self):
        pass


def test_source_that_reopens_but_sends_nothing_backs_off_and_gives_up():
    # before: every successful reopen reset the backoff to 0.5 s and the clock, so a stream that accepts
    # connections but sends no frames was retried twice a second for ever and never reported "lost"
    _DeadStream.opens = 0
    cap = LatestFrameCapture("rtsp://cam/x", reconnect_timeout=1.0, _reader_factory=_DeadStream).start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 6.0:
        if cap.read(timeout=0.1) is None and cap.finished:
            break
    cap.stop()
    assert cap.status == "lost"
    assert _DeadStream.opens <= 4  # backoff 0.5 s, 1 s: two reopens before the 1 s budget is spent


def test_a_reader_that_raises_ends_with_a_clear_error():
    def frames():
        yield np.zeros((4, 4, 3), np.uint8)
        raise OSError("disk unplugged")

    cap = LatestFrameCapture(frames(), realtime=False).start()
    assert cap.read(timeout=2.0) is not None
    with pytest.raises(SourceError, match="disk unplugged"):
        for _ in range(50):
            cap.read(timeout=0.1)
    cap.stop()
    assert cap.status == "failed"


def test_pathlike_and_device_sources(tmp_path):
    from pathlib import Path

    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((6, 8, 3), np.uint8))
    assert source_kind(tmp_path) == "folder"
    cap = LatestFrameCapture(Path(tmp_path), realtime=False).start()
    f = cap.read(timeout=2.0)
    cap.stop()
    assert f is not None and f.image.shape == (6, 8, 3)
    # a V4L2 device node (/dev/video0) is a camera, not "no such file"; /dev/null is a character device too
    assert source_kind("/dev/null") == "camera"


def test_video_file_over_http_ends_instead_of_replaying(clip):
    # an http(s) URL may be a finite video file, not a live stream: at its end the capture must end,
    # not "reconnect" and play the file again from the start for ever
    import functools
    import http.server
    import os
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=os.path.dirname(clip))
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/{os.path.basename(clip)}"
        cap = LatestFrameCapture(url, realtime=False, reconnect_timeout=2.0).start()
        n, t0 = 0, time.monotonic()
        while n < 40 and time.monotonic() - t0 < 10:
            f = cap.read(timeout=0.2)
            if f is None and cap.finished:
                break
            n += f is not None
        cap.stop()
    finally:
        srv.shutdown()
        srv.server_close()
    assert n == 12 and cap.status == "ended" and cap.reconnects == 0


def test_folder_with_non_ascii_name_and_upper_case_extensions(tmp_path):
    import cv2

    d = tmp_path / "caméra_路"
    d.mkdir()
    for i, ext in enumerate([".PNG", ".jpg", ".JPEG"]):
        ok, buf = cv2.imencode(ext.lower().replace("jpeg", "jpg"), np.full((6, 8, 3), 50 * i, np.uint8))
        (d / f"{i}{ext}").write_bytes(buf.tobytes())
    (d / "notes.txt").write_text("not a frame")
    cap = LatestFrameCapture(str(d), realtime=False).start()
    got = []
    while (f := cap.read(timeout=2.0)) is not None:
        got.append(f.image.shape)
    cap.stop()
    assert got == [(6, 8, 3)] * 3 and cap.status == "ended"


def test_stream_error_does_not_print_the_camera_password():
    # IP cameras are addressed as rtsp://user:password@host/...; errors and logs must not leak the password
    with pytest.raises(SourceError) as e:
        _Reader("rtsp://admin:s3cret@127.0.0.1:1/stream1")
    assert "s3cret" not in str(e.value) and "127.0.0.1:1/stream1" in str(e.value)


class _LateStream:
    """A network stream that refuses its first two connections (a camera still booting), then sends 4
    frames and ends like a recorded stream."""

    opens = 0
    live = False

    def __init__(self, source):
        type(self).opens += 1
        if type(self).opens <= 2:
            raise SourceError(f"cannot open stream {source!r}")
        self.kind, self.fps, self.n = "stream", 50.0, 0

    def read(self):
        self.n += 1
        return np.full((4, 4, 3), self.n, np.uint8) if self.n <= 4 else None

    def close(self):
        pass


def test_stream_not_up_at_start_is_waited_for():
    # before: a stream that could not be opened when the demo started was an immediate error
    _LateStream.opens = 0
    cap = LatestFrameCapture("rtsp://cam/x", reconnect_timeout=5.0, realtime=False,
                             _reader_factory=_LateStream)
    assert cap.status == "connecting" and cap.fps == 30.0
    cap.start()
    statuses, got, t0 = set(), [], time.monotonic()
    while time.monotonic() - t0 < 5.0:
        statuses.add(cap.status.split(" ")[0])
        f = cap.read(timeout=0.05)
        if f is not None:
            got.append(int(f.image[0, 0, 0]))
        elif cap.finished:
            break
    cap.stop()
    assert "connecting" in statuses and "reconnecting" not in statuses
    assert got == [1, 2, 3, 4] and cap.status == "ended"
    assert _LateStream.opens == 3 and cap.reconnects == 0 and cap.fps == 50.0  # the stream's own rate


def test_stream_that_never_comes_up_fails_naming_it_without_the_password():
    cap = LatestFrameCapture("rtsp://admin:s3cret@127.0.0.1:1/stream1", reconnect_timeout=0.6).start()
    t0 = time.monotonic()
    with pytest.raises(SourceError) as e:
        while time.monotonic() - t0 < 10.0:
            cap.read(timeout=0.1)
    cap.stop()
    msg = str(e.value)
    assert "127.0.0.1:1/stream1" in msg and "not reachable after 0.6 s" in msg and "s3cret" not in msg
    assert cap.status == "failed" and cap.finished


def test_only_network_streams_are_waited_for_at_start():
    class Refused:
        def __init__(self, source):
            raise SourceError("cannot open camera 0")

    with pytest.raises(SourceError, match="cannot open camera 0"):
        LatestFrameCapture(0, _reader_factory=Refused)  # a camera index: an error at once
    with pytest.raises(SourceError, match="cannot open camera 0"):
        LatestFrameCapture("rtsp://cam/x", wait_at_start=False, _reader_factory=Refused)
    cap = LatestFrameCapture("rtsp://cam/x", reconnect_timeout=0.1, _reader_factory=Refused)
    cap.stop()  # never started: stopping is harmless
    assert cap.status == "connecting"
