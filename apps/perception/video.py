"""Video writing: a browser-playable codec where OpenCV's build has one, encoded in a background thread."""

from __future__ import annotations

import queue
import threading

import cv2
import numpy as np


def open_writer(path: str, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An opened ``cv2.VideoWriter`` for ``path`` (size = (width, height)).

    .webm: VP8 (plays in every browser; about 4x faster to encode than VP9), then VP9.
    Otherwise H.264 ('avc1', browser-playable, absent from the PyPI OpenCV wheels), then MPEG-4 part 2
    ('mp4v', plays in desktop players, not in browsers). Raises RuntimeError if none opens.
    """
    fourccs = ["VP80", "VP90"] if path.lower().endswith(".webm") else ["avc1", "mp4v"]
    for cc in fourccs:
        w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*cc), float(fps), tuple(int(s) for s in size))
        if w.isOpened():
            return w
        w.release()
    raise RuntimeError(f"cannot open a video writer for {path!r} (tried {', '.join(fourccs)})")


class AsyncWriter:
    """Encodes frames in a background thread so a slow codec does not stall the pipeline.

    ``write`` takes BGR uint8 frames and blocks only when ``depth`` frames are already waiting (every
    frame is written; none is dropped). ``release`` flushes and closes; an error of the encoding thread
    is raised by the next ``write`` or by ``release``.
    """

    def __init__(self, path: str, fps: float, size: tuple[int, int], depth: int = 64):
        self.path = path
        self._w = open_writer(path, fps, size)
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._err: BaseException | None = None
        self._t = threading.Thread(target=self._run, name="video-writer", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            f = self._q.get()
            if f is None:
                break
            try:
                self._w.write(f)
            except BaseException as e:  # surfaced on the next write/release
                self._err = e

    def write(self, frame_bgr: np.ndarray) -> None:
        if self._err is not None:
            raise RuntimeError(f"writing {self.path!r} failed: {self._err}")
        self._q.put(np.ascontiguousarray(frame_bgr))

    def release(self) -> None:
        self._q.put(None)
        self._t.join()
        self._w.release()
        if self._err is not None:
            raise RuntimeError(f"writing {self.path!r} failed: {self._err}")
