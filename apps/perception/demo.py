"""The real-time pipeline: capture -> pre-process -> model -> decode -> track -> draw -> show/save.

:func:`run` drives it for any source and returns a summary (frames, FPS, capture-to-display latency
p50/p95, dropped frames, per-stage milliseconds); :func:`draw` renders boxes, class names, scores,
track ids, an FPS / per-stage timing overlay and the source status (e.g. "reconnecting").
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from .metrics import Detections
from .stream import LatestFrameCapture
from .track import LineCounter, Sort, Track

STAGES = ("capture", "preprocess", "model", "decode", "track", "draw")

# One RGB colour per class, chosen to stay apart on road scenes (we draw on RGB arrays directly).
COLORS = [(29, 178, 255), (255, 140, 0), (240, 60, 60), (200, 80, 200), (80, 220, 80), (220, 220, 0)]


@dataclass
class FrameResult:
    """What the pipeline produced for one frame (passed to ``on_frame``)."""

    index: int
    image: np.ndarray  # annotated RGB frame
    detections: Detections
    tracks: list[Track]
    timing_ms: dict
    latency_ms: float
    status: str
    counts: dict = field(default_factory=dict)


def draw(
    frame_rgb: np.ndarray,
    dets: Detections,
    classes,
    tracks: list[Track] | None = None,
    timing: dict | None = None,
    fps: float | None = None,
    status: str = "",
    line=None,
    counts: dict | None = None,
) -> np.ndarray:
    """An annotated copy of ``frame_rgb`` (RGB uint8). With ``tracks`` the track boxes and ids are drawn,
    otherwise the raw detections."""
    img = np.array(frame_rgb, dtype=np.uint8, order="C", copy=True)
    H, W = img.shape[:2]
    fs = max(0.35, W / 1600)
    items = (
        [(t.box, t.cls, t.score, t.track_id, t.missed) for t in tracks]
        if tracks is not None
        else [(b, c, s, None, 0) for b, c, s in zip(dets.boxes, dets.classes, dets.scores)]
    )
    for box, c, s, tid, missed in items:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        col = COLORS[int(c) % len(COLORS)]
        cv2.rectangle(img, (x1, y1), (x2, y2), col, 1 if missed else 2, cv2.LINE_AA)
        label = f"{classes[int(c)]} {s:.2f}" + (f" #{tid}" if tid is not None else "")
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
        yt = max(y1, th + 4)
        cv2.rectangle(img, (x1, yt - th - 4), (x1 + tw + 4, yt), col, -1)
        cv2.putText(img, label, (x1 + 2, yt - 3), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), 1, cv2.LINE_AA)
    if line is not None:
        cv2.line(img, tuple(int(v) for v in line[0]), tuple(int(v) for v in line[1]), (255, 255, 255), 2)
    lines = []
    if fps is not None:
        lines.append(f"{fps:5.1f} FPS")
    if timing:
        lines.append(" ".join(f"{k[:4]} {timing[k]:.1f}" for k in STAGES if k in timing) + " ms")
    if counts:
        lines.append("count " + " ".join(f"{classes[int(c)]}: {sum(v)}" for c, v in sorted(counts.items())))
    if status and status != "running":
        lines.append(status.upper())
    for i, t in enumerate(lines):
        ts = max(0.45, W / 1300)
        y = int(20 * ts / 0.45) * (i + 1)
        col = (255, 0, 0) if t == status.upper() else (255, 255, 255)
        (tw, th), base = cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, ts, 1)
        cv2.rectangle(
            img, (2, y - th - 3), (10 + tw, y + base), (0, 0, 0), -1
        )  # a dark plate keeps it legible
        cv2.putText(img, t, (6, y), cv2.FONT_HERSHEY_SIMPLEX, ts, col, 1, cv2.LINE_AA)
    return img


def _pct(v, q):
    return float(np.percentile(v, q)) if len(v) else float("nan")


def _fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` letterboxed (aspect kept, black borders) to ``size`` = (width, height): a video writer
    silently drops frames of any other size than the one it was opened with (folders of mixed sizes)."""
    W, H = size
    h, w = img.shape[:2]
    if (w, h) == (W, H):
        return img
    r = min(W / w, H / h)
    nw, nh = max(1, int(round(w * r))), max(1, int(round(h * r)))
    out = np.zeros((H, W, 3), np.uint8)
    x0, y0 = (W - nw) // 2, (H - nh) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


class NoDisplayError(OSError):
    """A window was asked for where none can open (no display, or an OpenCV built without a GUI)."""


def open_window(name: str) -> None:
    """Open the demo's window, or say plainly why none can open here (before any frame is read)."""
    hint = "; run with --headless (add --save out.mp4 to keep the annotated video)"
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not display:
        # (checked first: some OpenCV GUI back-ends abort the whole process without a display)
        raise NoDisplayError("no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset)" + hint)
    try:
        cv2.namedWindow(name, cv2.WINDOW_AUTOSIZE)
    except cv2.error as e:
        raise NoDisplayError("this OpenCV cannot open windows (a build without GUI support, such as "
                             "opencv-python-headless)" + hint) from e


def run(
    source,
    detector,
    *,
    track: bool = True,
    headless: bool = True,
    save: str | None = None,
    realtime: bool = True,
    max_frames: int | None = None,
    line=None,
    on_frame: Callable[[FrameResult], bool | None] | None = None,
    window: str = "perception",
    fps: float | None = None,
    reconnect_timeout: float = 30.0,
    log: Callable[[str], None] | None = None,
    track_across_classes: bool = False,
    tracker_options: dict | None = None,
) -> dict:
    """Run the pipeline on ``source`` until it ends, ``max_frames`` frames, 'q'/Esc in the window, or
    ``on_frame`` returning True.

    Args:
        source: camera index, video file, folder, rtsp/http URL, or an iterable of RGB frames.
        detector: a :class:`apps.perception.detector.Detector` (or any callable frame -> Detections
            with ``classes`` and ``last_timing``).
        track: run SORT and draw track ids; line: ((x0, y0), (x1, y1)) to count crossings;
            track_across_classes: SORT associates regardless of class (``Sort(class_agnostic=True)``);
            tracker_options: other :class:`~apps.perception.track.Sort` arguments (max_age, min_hits,
            iou_threshold, coast).
        headless: no window; save: path of an annotated video to write (.mp4 / .webm).
        realtime: live-camera behaviour (pace files, drop stale frames); False = every frame.
    Returns: summary dict (frames, seconds, fps, latency_ms_p50/p95, dropped, captured, stage_ms
    (median per stage; stage_ms_mean: means), reconnects, status, counts, detections).

    While no frame comes (a stalled or reconnecting source) the status is logged and drawn on the last
    frame in the window, which stays responsive to 'q'/Esc. Frames of another size than the first are
    letterboxed into the saved video (a writer has one frame size); frames dropped for want of time are
    filled with the last annotated frame, so the video plays at the source's speed.
    """
    if not headless:
        open_window(window)
    cap = LatestFrameCapture(source, realtime=realtime, fps=fps, reconnect_timeout=reconnect_timeout)
    tracker = Sort(class_agnostic=track_across_classes, **(tracker_options or {})) if track else None
    counter = LineCounter(*line) if line is not None else None
    writer, written, written_index = None, None, -1
    lat, stage_all, n, n_det = [], {k: [] for k in STAGES}, 0, 0
    if hasattr(detector, "warmup"):
        detector.warmup()  # first calls allocate buffers and thread pools: keep them out of the figures
    fps_ema, t_prev, last_status, last_out = None, None, "running", None
    t_start = time.perf_counter()
    cap.start()
    try:
        while max_frames is None or n < max_frames:
            t0 = time.perf_counter()
            f, stop = cap.read(timeout=0.1), False
            while f is None and not cap.finished and not stop:
                # no frame yet: if the source is down say so now (a frame only comes once it is back)
                if log is not None and cap.status != last_status:
                    log(f"source: {cap.status}")
                    last_status = cap.status
                if not headless and last_out is not None:
                    shown = draw(last_out, Detections.empty(), detector.classes, status=cap.status)
                    cv2.imshow(window, shown[..., ::-1])
                    stop = (cv2.waitKey(1) & 0xFF) in (27, ord("q"))
                f = cap.read(timeout=0.1)
            if f is None and not stop:
                f = cap.read(timeout=0)  # a last frame put just before the capture finished
            if f is None or stop:
                break
            t1 = time.perf_counter()
            dets = detector(f.image)
            timing = dict(capture=(t1 - t0) * 1e3, **detector.last_timing)
            t2 = time.perf_counter()
            tracks = tracker.update(dets.boxes, dets.scores, dets.classes) if tracker else None
            if counter is not None and tracks is not None:
                counter.update(tracks)
            t3 = time.perf_counter()
            timing["track"] = (t3 - t2) * 1e3
            now = time.perf_counter()
            if t_prev is not None:
                inst = 1.0 / max(now - t_prev, 1e-6)
                fps_ema = inst if fps_ema is None else 0.9 * fps_ema + 0.1 * inst
            t_prev = now
            out = draw(
                f.image,
                dets,
                detector.classes,
                tracks,
                timing,
                fps_ema,
                cap.status,
                line,
                counter.counts if counter else None,
            )
            timing["draw"] = (time.perf_counter() - t3) * 1e3
            if save:
                if writer is None:
                    from .video import AsyncWriter

                    writer_size = (out.shape[1], out.shape[0])
                    # encoding runs in its own thread (OpenCV releases the GIL): off the frame's path
                    writer = AsyncWriter(save, fps or cap.fps, writer_size)
                bgr = np.ascontiguousarray(_fit(out, writer_size)[..., ::-1])
                # frames the pipeline had no time for (dropped) hold the last annotated one (the first
                # one for those dropped before it), so the video, written at the source's rate, lasts as
                # long as the source did (no fast-forward)
                for _ in range(f.index - written_index - 1):
                    writer.write(bgr if written is None else written)
                writer.write(bgr)
                written, written_index = bgr, f.index
            last_out = out
            if not headless:
                cv2.imshow(window, out[..., ::-1])
                stop = (cv2.waitKey(1) & 0xFF) in (27, ord("q"))
            t_disp = time.perf_counter()
            latency = (t_disp - f.t_capture) * 1e3
            lat.append(latency)
            for k in STAGES:
                stage_all[k].append(timing.get(k, 0.0))
            n += 1
            n_det += len(dets.scores)
            if on_frame is not None:
                res = FrameResult(
                    f.index,
                    out,
                    dets,
                    tracks or [],
                    timing,
                    latency,
                    cap.status,
                    dict(counter.counts) if counter else {},
                )
                stop = bool(on_frame(res)) or stop
            if log is not None and cap.status != last_status:
                log(f"source: {cap.status}")  # only on changes (reconnecting, back to running, ended)
                last_status = cap.status
            if stop:
                break
    finally:
        t_end = time.perf_counter()  # before the writer's flush: the figures are the pipeline's
        cap.stop()
        if not headless:
            try:
                cv2.destroyWindow(window)
            except cv2.error:  # (closed by the user already: nothing to do)
                pass
        if writer is not None:
            if cap.finished and written is not None:  # the source ended: frames dropped after the last
                for _ in range(cap.captured - 1 - written_index):
                    writer.write(written)
            writer.release()
    secs = t_end - t_start
    return dict(
        frames=n,
        seconds=round(secs, 3),
        fps=round(n / secs, 2) if secs > 0 else 0.0,
        latency_ms_p50=round(_pct(lat, 50), 2),
        latency_ms_p95=round(_pct(lat, 95), 2),
        captured=cap.captured,
        dropped=cap.dropped,
        reconnects=cap.reconnects,
        status=cap.status,
        stage_ms={k: round(_pct(v, 50), 2) for k, v in stage_all.items()},
        stage_ms_mean={k: round(float(np.mean(v)) if v else float("nan"), 2) for k, v in stage_all.items()},
        detections=n_det,
        line_counts={detector.classes[int(c)]: v for c, v in (counter.counts.items() if counter else [])},
        saved=save,
    )


def format_summary(s: dict) -> str:
    """One human-readable block for the end of a demo run."""
    st = " | ".join(f"{k} {v:.1f}/{s['stage_ms_mean'][k]:.1f}" for k, v in s["stage_ms"].items())
    out = (
        f"frames {s['frames']} in {s['seconds']:.1f} s = {s['fps']:.1f} FPS | latency capture->display "
        f"p50 {s['latency_ms_p50']:.1f} ms, p95 {s['latency_ms_p95']:.1f} ms | captured {s['captured']}, "
        f"dropped {s['dropped']}, reconnects {s['reconnects']} | source {s['status']}\n"
        f"stage ms (median/mean): {st}"
    )
    if s.get("line_counts"):
        out += "\nline crossings: " + ", ".join(
            f"{k} {sum(v)} ({v[0]} / {v[1]})" for k, v in s["line_counts"].items()
        )
    if s.get("saved"):
        out += f"\nannotated video: {s['saved']}"
    return out
