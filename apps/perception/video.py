"""Video writing with a browser-playable codec where OpenCV's build has one."""

from __future__ import annotations

import cv2


def open_writer(path: str, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An opened ``cv2.VideoWriter`` for ``path`` (size = (width, height)).

    Tries H.264 ('avc1', plays in browsers), then VP9 for .webm, then MPEG-4 part 2 ('mp4v').
    Raises RuntimeError if none opens.
    """
    fourccs = ["VP90", "VP80"] if path.lower().endswith(".webm") else ["avc1", "H264", "mp4v"]
    for cc in fourccs:
        w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*cc), float(fps), tuple(int(s) for s in size))
        if w.isOpened():
            return w
        w.release()
    raise RuntimeError(f"cannot open a video writer for {path!r} (tried {', '.join(fourccs)})")
