"""Tracking quality: the committed detector and SORT on synthetic drives, scored against their labels.

    python -m benchmarks.tracking [--clips 4] [--frames 300] [--seed 41] [--threads 1] [--out FILE.json]

Renders ``--clips`` drives (seeds ``--seed``, ``--seed`` + 1, ...; 640x480 at 30 FPS) to MP4, as the demo
would read them, runs the detector once on every frame, then the tracker in several settings on the same
detections. Each clip is scored by :mod:`apps.perception.mot` (HOTA, CLEAR MOT and IDF1; IoU 0.5 for
the last two, classes must agree; ignored objects count neither way). Settings:

- ``default``: ``Sort()`` as the demo runs it;
- ``coasting``: the defaults before 2026-11-27 (max_age 5, min_hits 2, tracks reported on their Kalman
  prediction for up to max_age frames after their last detection);
- ``across_classes``: the defaults with association across classes (``--across-classes``).

Prints JSON: per setting, the counts summed over the clips, MOTA and IDF1 over all clips, and each clip's
MOTA and IDF1; for the default setting the same per class. ``--conf`` sets the detector's score threshold
(default: the model card's); ``--sweep-conf 0.2,0.25,...`` also scores the default setting at each of
those thresholds (``conf_sweep``), from the same detections, for choosing the operating point.
The defaults were chosen on seeds 31-32 and checked on 33-34 (see ``Sort``); the default seeds here are
new ones.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile

from benchmarks._report import emit

SETTINGS = {
    "default": {},
    "coasting": dict(max_age=5, min_hits=2, coast=5),
    "across_classes": dict(class_agnostic=True),
}
COUNTS = ("objects", "hypotheses", "matches", "misses", "false_positives", "id_switches", "fragmentations",
          "gt_tracks", "mostly_tracked", "mostly_lost")


def _detect_clip(det, path):
    import cv2

    cap = cv2.VideoCapture(path)
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        d = det(bgr[..., ::-1].copy())
        out.append((d.boxes, d.scores, d.classes))
    cap.release()
    return out


def _above(dets, conf):
    """Each frame's (boxes, scores, classes) with the scores >= conf."""
    out = []
    for boxes, scores, classes in dets:
        keep = scores >= conf
        out.append((boxes[keep], scores[keep], classes[keep]))
    return out


def _total(per_clip, per_clip_class=True):
    """Counts summed over the clips, MOTA and IDF1 over all of them (IDF1 from each clip's IDTP)."""
    t = {k: sum(m[k] for m in per_clip) for k in COUNTS}
    idtp = sum((m["idf1"] or 0.0) * (m["objects"] + m["hypotheses"]) / 2 for m in per_clip)
    t["mota"] = round(1.0 - (t["misses"] + t["false_positives"] + t["id_switches"]) / t["objects"], 4) \
        if t["objects"] else None
    both = t["objects"] + t["hypotheses"]
    t["idf1"] = round(2 * idtp / both, 4) if both else None
    hotas = [m["hota"] for m in per_clip if m["hota"] is not None]
    t["hota_clip_mean"] = round(float(sum(hotas) / len(hotas)), 4) if hotas else None  # HOTA does not add up
    if per_clip_class:
        t["hota_per_clip"] = [round(m["hota"], 4) for m in per_clip]
        t["mota_per_clip"] = [round(m["mota"], 4) for m in per_clip]
        t["idf1_per_clip"] = [round(m["idf1"], 4) for m in per_clip]
    return t


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--seed", type=int, default=41)
    ap.add_argument("--threads", type=int, default=1, help="inference threads (BLAS, conv pool)")
    ap.add_argument("--conf", type=float, default=None, help="detector score threshold (default: the card's)")
    ap.add_argument("--sweep-conf", default="", help="comma-separated thresholds to score the default "
                    "tracker at as well")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    try:
        sweep = [float(v) for v in a.sweep_conf.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--sweep-conf: expected numbers separated by commas, got {a.sweep_conf!r}") \
            from None
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "FRAMEWORK_CONV_THREADS"):
        os.environ.setdefault(v, str(a.threads))
    from apps.perception import (
        evaluate_tracking,
        frame_from_tracks,
        load_default_model,
        load_track_labels,
        make_tracker,
        model_card,
    )
    from apps.perception.synth import write_video

    det = load_default_model(rescore=False)  # as the demo runs it
    conf = det.conf if a.conf is None else a.conf
    det.conf = min([conf] + sweep)  # detections once at the lowest threshold, filtered for each
    scores = {name: [] for name in SETTINGS}
    swept = {c: [] for c in sweep}
    classes = {}  # default setting: class -> its scores in each clip where it appears
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.clips):
            clip = os.path.join(tmp, f"drive{k}.mp4")
            labels = os.path.join(tmp, f"drive{k}.json")
            write_video(clip, a.frames, seed=a.seed + k, labels_json=labels)
            gt = load_track_labels(labels)
            low = _detect_clip(det, clip)
            if len(low) != len(gt):
                raise SystemExit(f"clip {k}: read {len(low)} frames of {len(gt)} written")
            dets = _above(low, conf)
            for name, options in SETTINGS.items():
                tracker = make_tracker(**options)
                hyp = [frame_from_tracks(tracker.update(*d)) for d in dets]
                m = evaluate_tracking(gt, hyp)
                scores[name].append(m["overall"])
                if name == "default":
                    for c, s in m["per_class"].items():
                        classes.setdefault(c, []).append(s)
            for c in sweep:
                tracker = make_tracker()
                swept[c].append(evaluate_tracking(gt, [frame_from_tracks(tracker.update(*d))
                                                       for d in _above(low, c)])["overall"])
    result = dict(
        benchmark="tracking",
        command="python -m benchmarks.tracking " + " ".join(sys.argv[1:] if argv is None else argv),
        clips=a.clips,
        frames_per_clip=a.frames,
        seeds=list(range(a.seed, a.seed + a.clips)),
        detector=dict(input_size=det.size, conf=conf, card_metrics=model_card().get("metrics", {})),
        scoring="apps.perception.mot: IoU >= 0.5, classes must agree, ignored objects count neither way",
        settings={name: dict(options=SETTINGS[name], **_total(s)) for name, s in scores.items()},
        default_per_class={c: _total(s, per_clip_class=False) for c, s in classes.items()},
        **({"conf_sweep": {str(c): _total(s, per_clip_class=False) for c, s in swept.items()}}
           if sweep else {}),
        machine=dict(platform=platform.platform(), processor=platform.processor() or platform.machine()),
    )
    emit(result, a.out)
    return result


if __name__ == "__main__":
    main()
