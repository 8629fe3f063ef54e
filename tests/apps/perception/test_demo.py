"""The demo pipeline headless on a generated clip, the public API, and clear errors for bad sources."""

import json

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
