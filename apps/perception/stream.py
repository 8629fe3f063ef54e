"""Frame sources and a capture thread that keeps only the newest frame.

Sources: a camera index (``0`` or ``"0"``) or device (``/dev/video0``), a video file, a network stream
(``rtsp://``, ``http(s)://``; a URL naming a video file, which has a frame count, ends like a file), a
folder of images (sorted by name), or any iterable of RGB frames (tests, the dashboard).

:class:`LatestFrameCapture` reads in a background thread and overwrites a one-slot buffer, so when
inference is slower than the camera the consumer always gets the newest frame and the latency stays
bounded (the frames it never saw are counted as ``dropped``). Live sources that fail are reopened with
exponential backoff (0.5 s doubling to 8 s) and the status says so; the backoff and the give-up clock run
until a frame actually arrives, so a stream that accepts connections but sends nothing ends as "lost".
A network stream that cannot be opened at start (a camera still booting, a link coming up) is waited
for the same way ("connecting ..."), and fails with a :class:`SourceError` naming the stream once the
timeout has passed; a camera index, file or folder that cannot be opened is an error at once.
A file or folder ends cleanly; a reader that raises ends the capture with a :class:`SourceError`.
Files and folders are paced at their frame rate by default, as a camera would deliver them
(``realtime=False`` hands over every frame instead, for offline processing).
"""

from __future__ import annotations

import glob
import os
import re
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from .formats import IMAGE_EXTS


class SourceError(RuntimeError):
    """A source that cannot be opened (the message says which and why)."""


@dataclass
class Frame:
    """A captured frame: ``image`` uint8 (H, W, 3) RGB, ``index`` (0-based, counting every frame read),
    ``t_capture`` (``time.perf_counter()`` seconds when it was read)."""

    image: np.ndarray
    index: int
    t_capture: float


def redact(source) -> str:
    """``source`` for messages and logs, without the password of a URL (``rtsp://user:pw@host`` ->
    ``rtsp://user:***@host``): IP cameras are addressed with their credentials in the URL."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", str(source))


def source_kind(source) -> str:
    """'camera' | 'stream' | 'file' | 'folder' | 'iterable'; raises SourceError for a bad source.

    A camera is an index (``0``, ``"0"``) or a character device node (``/dev/video0``); paths may be
    ``str`` or ``os.PathLike``."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isdigit()):
        return "camera"
    if isinstance(source, str):
        if "://" in source:
            return "stream"
        if os.path.isdir(source):
            return "folder"
        if os.path.isfile(source):
            return "file"
        if os.path.exists(source) and stat.S_ISCHR(os.stat(source).st_mode):
            return "camera"  # a V4L2 device node, which OpenCV opens by path
        raise SourceError(
            f"source {source!r}: no such file or folder (expected a camera index, a video file, "
            "a folder of images or an rtsp:// / http:// URL)"
        )
    if isinstance(source, Iterable):
        return "iterable"
    raise SourceError(f"source of type {type(source).__name__} is not supported")


class _Reader:
    """Uniform blocking reader: ``read() -> RGB frame or None`` (None = failed / ended)."""

    def __init__(self, source):
        self.kind = source_kind(source)
        self.source = os.fspath(source) if isinstance(source, os.PathLike) else source
        self.fps = 30.0
        self.finite = self.kind != "camera"  # has an end (files, folders, iterables, recorded streams)
        self.cap = None
        self._files: list[str] = []
        self._pos = 0
        self._it = None
        self.open()

    def open(self) -> None:
        if self.kind in ("camera", "stream", "file"):
            numeric = isinstance(self.source, int) or str(self.source).strip().isdigit()
            arg = int(self.source) if self.kind == "camera" and numeric else self.source
            cap = cv2.VideoCapture(arg)
            if not cap.isOpened():
                cap.release()
                shown = redact(arg)
                what = {
                    "camera": f"camera {arg}",
                    "stream": f"stream {shown!r}",
                    "file": f"video file {arg!r}",
                }
                raise SourceError(
                    f"cannot open {what[self.kind]}"
                    + (" (is it a video OpenCV can decode?)" if self.kind == "file" else "")
                )
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps = float(fps) if fps and 1 <= fps <= 240 else 30.0
            if self.kind == "stream":
                # a URL may name a video file (http://host/clip.mp4): it has a frame count and ends like
                # a file; live streams (RTSP cameras, MJPEG, live HLS) report none (<= 0)
                self.finite = cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0
            self.cap = cap
        elif self.kind == "folder":
            self._files = sorted(
                p for p in glob.glob(os.path.join(self.source, "*")) if p.lower().endswith(IMAGE_EXTS)
            )
            if not self._files:
                raise SourceError(f"folder {self.source!r} holds no images ({', '.join(IMAGE_EXTS)})")
        else:
            self._it = iter(self.source)

    def read(self) -> np.ndarray | None:
        if self.cap is not None:
            ok, bgr = self.cap.read()
            return bgr[..., ::-1].copy() if ok and bgr is not None else None
        if self.kind == "folder":
            while self._pos < len(self._files):
                p = self._files[self._pos]
                self._pos += 1
                bgr = cv2.imread(p, cv2.IMREAD_COLOR)
                if bgr is not None:
                    return bgr[..., ::-1].copy()
            return None
        try:
            return np.asarray(next(self._it), np.uint8)
        except StopIteration:
            return None

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None

    @property
    def live(self) -> bool:
        """A source without an end (a camera or live stream): a failed read means reconnect."""
        return not self.finite


class LatestFrameCapture:
    """Background capture into a one-frame buffer.

    Args:
        source: see module docstring.
        realtime: pace files/folders/iterables at ``fps`` and drop what the consumer misses (default
            True); False = hand every frame over, the reader waits for the consumer.
        fps: pacing rate for folders and iterables (files use their own rate).
        reconnect_timeout: seconds a live source may stay down before capture gives up.
        wait_at_start: keep trying a source that cannot be opened yet, for ``reconnect_timeout`` seconds
            (the capture thread does; a bad source then ends with a SourceError from ``read``). Default:
            network streams only; other sources raise SourceError here at once.
    Attributes: ``captured``, ``dropped``, ``status`` ("running" | "connecting ..." | "reconnecting ..."
    | "ended" | "lost" | "failed"), ``reconnects``, ``finished`` (the capture thread is done).
    """

    def __init__(
        self,
        source,
        realtime: bool = True,
        fps: float | None = None,
        reconnect_timeout: float = 30.0,
        wait_at_start: bool | None = None,
        _reader_factory=_Reader,
    ):
        self._factory = _reader_factory
        self.source = source
        self.kind = source_kind(source)  # raises SourceError right away for a missing file or folder
        if wait_at_start is None:
            wait_at_start = self.kind == "stream"
        self.status = "running"
        self._open_error: SourceError | None = None
        try:
            self.reader = _reader_factory(source)  # raises SourceError for a source that cannot be opened
        except SourceError as e:
            if not wait_at_start:
                raise
            self.reader, self._open_error, self.status = None, e, "connecting"
        self._fps = float(fps) if fps else None
        self.realtime = realtime
        self.reconnect_timeout = reconnect_timeout
        self.captured = self.dropped = self.reconnects = 0
        self._slot: Frame | None = None
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._done = False
        self._error: BaseException | None = None
        # backoff state, kept until a frame arrives (a reopen that yields nothing does not reset it)
        self._down_since: float | None = None
        self._delay, self._attempt = 0.5, 0
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    @property
    def fps(self) -> float:
        """The pacing rate: the one given, else the source's own (30 until a waited-for source opens)."""
        if self._fps:
            return self._fps
        return self.reader.fps if self.reader is not None else 30.0

    def start(self) -> LatestFrameCapture:
        self._thread.start()
        return self

    def _put(self, img: np.ndarray) -> None:
        with self._cv:
            if not self.realtime:
                while self._slot is not None and not self._stop.is_set():
                    self._cv.wait(0.05)
            if self._slot is not None:
                self.dropped += 1
            self._slot = Frame(img, self.captured, time.perf_counter())
            self.captured += 1
            self._cv.notify_all()

    @property
    def finished(self) -> bool:
        """True once the capture thread has stopped (source ended, lost, failed or stopped)."""
        return self._done

    def _reopen(self) -> bool:
        """(Re)open a live source with exponential backoff; False when it stays down too long. The clock
        and the delay carry over between calls until a frame is read (see ``_run``). With no reader
        yet (a stream that could not be opened at start) this is the first connection."""
        first = self.reader is None
        if self._down_since is None:
            self._down_since, self._delay, self._attempt = time.monotonic(), 0.5, 0
        if not first:
            self.reader.close()
        verb = "connecting" if first else "reconnecting"
        while not self._stop.is_set():
            if time.monotonic() - self._down_since > self.reconnect_timeout:
                self.status = "failed" if first else "lost"
                return False
            self._attempt += 1
            delay, self._delay = self._delay, min(self._delay * 2, 8.0)
            self.status = f"{verb} (attempt {self._attempt}, retry in {delay:.1f} s)"
            if self._stop.wait(delay):
                return False
            try:
                self.reader = self._factory(self.source)
            except SourceError as e:
                self._open_error = e
                continue
            self.reconnects += not first
            self.status = "running"
            return True
        return False

    def _run(self) -> None:
        try:
            if self.reader is None and not self._reopen():
                if self.status == "failed":
                    raise SourceError(
                        f"{self._open_error}; still not reachable after {self.reconnect_timeout:g} s"
                    )
                return  # stopped while waiting
            period = 1.0 / self.fps if self.fps > 0 else 0.0
            paced = self.realtime and not self.reader.live
            t_next = time.perf_counter()
            while not self._stop.is_set():
                try:
                    img = self.reader.read()
                except Exception:
                    if not self.reader.live:
                        raise
                    img = None  # a live reader that throws is a lost source: reopen it
                if img is None:
                    if self.reader.live and self._reopen():
                        continue
                    if self.status == "running":
                        self.status = "ended"
                    break
                self._down_since = None  # a frame: the source is back, the next failure starts afresh
                if paced:
                    # deliver at the source's frame rate, like a camera would
                    t_next += period
                    delay = t_next - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    else:
                        t_next = time.perf_counter()
                self._put(img)
        except Exception as e:  # surfaced to the consumer by read()
            self._error = e
            self.status = "failed"
        finally:
            if self.reader is not None:
                self.reader.close()
            with self._cv:
                self._done = True
                self._cv.notify_all()

    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet returned; blocks until one arrives (or ``timeout`` seconds pass).
        None when the source ended (see ``status``) or on timeout; raises :class:`SourceError` once the
        frames before a reader error have been handed over."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._slot is None:
                if self._done:
                    if self._error is not None:
                        e = self._error
                        if isinstance(e, SourceError) and self.reader is None:
                            raise e  # never opened: the error names the source and the wait
                        raise SourceError(f"reading {self.kind} source failed: {e}") from e
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cv.wait(0.05 if left is None else min(left, 0.05))
            f, self._slot = self._slot, None
            self._cv.notify_all()
            return f

    def stop(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
