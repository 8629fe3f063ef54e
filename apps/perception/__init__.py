"""apps.perception: real-time object detection and tracking on dash-camera frames.

Classes: car, truck/bus, pedestrian, cyclist, traffic light, traffic sign (:data:`CLASSES`).

Public API (what the dashboard and scripts call; frames are RGB uint8 (H, W, 3) NumPy arrays, boxes
are float32 (K, 4) ``x1, y1, x2, y2`` in frame pixels):

- ``load_default_model(device="cpu", conf=None, flip_test=False) -> Detector``: the committed model
  (``assets/detector.safetensors`` + ``assets/model_card.json``). Alias: ``load_detector``.
  ``load_model(weights, card=None, device="cpu", conf=None, flip_test=False) -> Detector`` for other
  weights. ``flip_test``: average each frame's outputs with its mirror image's (finer boxes, twice the
  network's time).
- ``detect(detector, frame, conf=None) -> Detections`` with ``.boxes``, ``.scores`` (K,), ``.classes`` (K,)
  (int ids into CLASSES). ``detector(frame)`` does the same at the detector's threshold and fills
  ``detector.last_timing`` (ms per stage).
- ``draw_detections(frame, detections_or_tracks, timing=None, fps=None) -> RGB frame`` (annotated copy).
- ``process_video(source, out_path=None, detector=None, conf=None, progress=None, on_frame=None,
  track=True, max_frames=None, realtime=False, line=None) -> dict``: runs the whole pipeline on a video
  file / folder / camera index / URL / iterable of frames; writes an annotated video when ``out_path``
  is given (.webm = VP9, .mp4 = H.264 or MPEG-4); calls ``progress(done, total)`` and
  ``on_frame(FrameResult)`` per frame (return True to stop). The dict has frames, fps,
  latency_p50_ms, latency_p95_ms, stage_ms {capture, preprocess, model, decode, track, draw},
  dropped, track_ids (distinct tracks), class_counts (distinct tracks per class), line_counts.
- ``make_tracker(max_age=8, min_hits=3, iou_threshold=0.3, class_agnostic=False, coast=0) -> Sort``;
  ``tracker.update(boxes, scores, classes) -> list[Track]`` (``.track_id``, ``.box``, ``.cls``, ``.score``,
  ``.missed``) once per frame.
- ``evaluate_tracking(gt_frames, hyp_frames) -> dict``: MOTA, IDF1, ID switches, ... of tracks against
  labelled frames (``load_track_labels(path)``, ``frame_from_tracks(tracks)``; :mod:`apps.perception.mot`).
- ``sample_video() -> str | None``: the bundled synthetic drive clip; ``model_card() -> dict``.
- ``evaluate(samples, detections) -> dict``: COCO-style metrics (see :mod:`apps.perception.metrics`).

CLI: ``python -m apps.perception {synth,cache,train,evaluate,demo,track}`` (console script ``perception``).
"""

from __future__ import annotations

import os

from .classes import CLASSES, NUM_CLASSES

# NumPy-based names load on first use, so that the CLI can set the BLAS / conv thread counts before
# NumPy starts (see ``__main__``).
_LAZY = {
    "Detections": "metrics",
    "evaluate": "metrics",
    "LineCounter": "track",
    "evaluate_tracking": "mot",
    "frame_from_tracks": "mot",
    "load_track_labels": "mot",
    "Sort": "track",
    "Track": "track",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLASSES",
    "NUM_CLASSES",
    "Detections",
    "LineCounter",
    "Sort",
    "Track",
    "detect",
    "draw_detections",
    "evaluate",
    "evaluate_tracking",
    "frame_from_tracks",
    "load_default_model",
    "load_detector",
    "load_model",
    "load_track_labels",
    "make_tracker",
    "model_card",
    "process_video",
    "sample_video",
]

_ASSETS = os.path.join(os.path.dirname(__file__), "assets")


def load_model(
    weights: str | None = None,
    card: str | None = None,
    device: str = "cpu",
    conf: float | None = None,
    flip_test: bool = False,
    rescore: bool = True,
):
    """A :class:`~apps.perception.detector.Detector` from safetensors weights (default: committed model);
    ``rescore``: with the rescorer its model card names (:mod:`apps.perception.rescore`)."""
    from .detector import DEFAULT_WEIGHTS
    from .detector import load_model as _load

    return _load(weights or DEFAULT_WEIGHTS, card, device, conf, flip_test, rescore)


def load_default_model(device: str = "cpu", conf: float | None = None, flip_test: bool = False,
                       rescore: bool = True):
    """The committed default detector (``rescore=False``: without its box rescorer, which only orders boxes
    for evaluation: the real-time loop has no use for it)."""
    return load_model(None, None, device, conf, flip_test, rescore)


load_detector = load_default_model


def detect(detector, frame, conf: float | None = None):
    """Detections for one RGB frame at score threshold ``conf`` (default: the detector's)."""
    if conf is None:
        return detector(frame)
    old = detector.conf
    detector.conf = float(conf)
    try:
        return detector(frame)
    finally:
        detector.conf = old


def draw_detections(frame, dets, timing: dict | None = None, fps: float | None = None):
    """An annotated copy of ``frame``: ``dets`` is a :class:`Detections` or a list of :class:`Track`."""
    from .demo import draw
    from .metrics import Detections

    if isinstance(dets, list):
        return draw(frame, Detections.empty(), CLASSES, dets, timing, fps)
    return draw(frame, dets, CLASSES, None, timing, fps)


def make_tracker(**options):
    """A :class:`~apps.perception.track.Sort` tracker; ``options`` are its arguments (max_age, min_hits,
    iou_threshold, class_agnostic, coast), its defaults where left out."""
    from .track import Sort

    return Sort(**options)


def model_card() -> dict:
    """The committed default model's card (classes, input size, metrics, training, retrain command)."""
    import json

    with open(os.path.join(_ASSETS, "model_card.json")) as f:
        return json.load(f)


def sample_video() -> str | None:
    p = os.path.join(_ASSETS, "drive_clip.mp4")
    return p if os.path.exists(p) else None


def process_video(
    source,
    out_path: str | None = None,
    detector=None,
    conf: float | None = None,
    progress=None,
    on_frame=None,
    track: bool = True,
    max_frames: int | None = None,
    realtime: bool = False,
    line=None,
    tracker_options: dict | None = None,
) -> dict:
    """Detect (and track) on every frame of ``source``; see the module docstring for the result keys.
    ``tracker_options``: arguments of the :class:`~apps.perception.track.Sort` tracker."""
    from .demo import run

    det = detector or load_default_model()
    total = None
    if isinstance(source, str) and os.path.isfile(source):
        import cv2

        cap = cv2.VideoCapture(source)
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        cap.release()
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    ids: dict[int, int] = {}

    def _cb(res):
        for t in res.tracks:
            ids.setdefault(t.track_id, t.cls)
        if progress is not None:
            progress(res.index + 1, total)
        return on_frame(res) if on_frame is not None else None

    old = det.conf
    if conf is not None:
        det.conf = float(conf)
    try:
        s = run(
            source,
            det,
            track=track,
            headless=True,
            save=out_path,
            realtime=realtime,
            max_frames=max_frames,
            line=line,
            on_frame=_cb,
            track_across_classes=bool((tracker_options or {}).get("class_agnostic", False)),
            tracker_options={k: v for k, v in (tracker_options or {}).items() if k != "class_agnostic"},
        )
    finally:
        det.conf = old
    s["latency_p50_ms"], s["latency_p95_ms"] = s["latency_ms_p50"], s["latency_ms_p95"]
    s["track_ids"] = len(ids)
    counts: dict[str, int] = {}
    for c in ids.values():
        counts[CLASSES[c]] = counts.get(CLASSES[c], 0) + 1
    s["class_counts"] = counts
    return s
