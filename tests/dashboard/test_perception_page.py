"""Perception page through AppTest: a camera-style snapshot through the detector, a short video through
the real-time pipeline (annotated playback, FPS, per-stage timings), and a broken video."""

from pathlib import Path

import numpy as np
import pytest

PAGE = "apps/dashboard/perception.py"


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


@pytest.fixture(scope="module")
def model_ready():
    pdet = pytest.importorskip("apps.perception.detector")
    if not Path(pdet.DEFAULT_WEIGHTS).exists():
        pytest.skip("the default perception model is not committed yet (apps/perception/assets/)")
    return pdet


@pytest.fixture(scope="module")
def scene():
    """One synthetic road scene (RGB uint8) with its labels, from the app's generator."""
    synth = pytest.importorskip("apps.perception.synth")
    img, anns = synth.random_scene(np.random.default_rng(11), 640, 480)
    return img, anns


def _png(rgb) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return buf.tobytes()


def _small_video(path: Path, frames: int = 8) -> bytes:
    import cv2

    synth = pytest.importorskip("apps.perception.synth")
    rng = np.random.default_rng(3)
    img, _ = synth.random_scene(rng, 320, 240)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 240))
    for i in range(frames):
        w.write(np.ascontiguousarray(np.roll(img, 4 * i, axis=1)[..., ::-1]))  # a slow pan
    w.release()
    return path.read_bytes()


def test_page_loads_with_tabs_and_webrtc_note(app):
    app.switch_page(PAGE).run()
    assert not app.exception
    assert app.title[0].value == "Perception"
    labels = [t.label for t in app.tabs]
    assert labels == ["Video", "Camera snapshot", "Live webcam"]
    try:
        import streamlit_webrtc  # noqa: F401
    except ImportError:
        assert "streamlit-webrtc" in texts(app.info)


def test_snapshot_through_detector(app, model_ready, scene):
    img, anns = scene
    app.switch_page(PAGE).run()
    app.get("file_uploader")[-1].set_value(("road.png", _png(img), "image/png"))  # the "…or an image" box
    app.run()
    assert not app.exception, app.exception
    assert not app.error, texts(app.error)
    table = app.dataframe[-1].value
    assert list(table.columns)[:2] == ["class", "score"]
    assert len(table) >= 1
    classes = set(model_ready.CLASSES) if hasattr(model_ready, "CLASSES") else None
    if classes:
        assert set(table["class"]) <= classes
    assert (table["x2"] > table["x1"]).all() and (table["y2"] > table["y1"]).all()
    # the flip test: the same objects, their boxes located anew (averaged with the mirrored image's)
    app.checkbox(key="pc_snap_flip").check().run()
    assert not app.exception, app.exception
    flipped = app.dataframe[-1].value
    assert abs(len(flipped) - len(table)) <= max(1, len(table) // 5)
    cols = ["x1", "y1", "x2", "y2"]
    assert not np.allclose(flipped[cols].to_numpy()[:1], table[cols].to_numpy()[:1], atol=1e-3)


def test_video_upload_runs_pipeline(app, model_ready, tmp_path):
    data = _small_video(tmp_path / "pan.mp4", frames=8)
    app.switch_page(PAGE).run()
    app.radio(key="pc_source").set_value("Upload").run()
    app.file_uploader(key="pc_upload").set_value(("pan.mp4", data, "video/mp4"))
    app.run()
    app.button(key="pc_run").click().run(timeout=180)
    assert not app.exception, app.exception
    assert not app.error, texts(app.error)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Frames"] == "8"
    assert float(metrics["FPS (end to end)"]) > 0
    assert len(app.get("video")) == 1
    assert len(app.get("vega_lite_chart")) >= 1  # per-stage milliseconds
    assert app.session_state["pc_last"]["flip_test"] is False
    # again with the flip test: the pipeline runs the detector's flip-test mode
    app.checkbox(key="pc_flip").check().run()
    app.button(key="pc_run").click().run(timeout=180)
    assert not app.exception, app.exception
    assert not app.error, texts(app.error)
    assert app.session_state["pc_last"]["flip_test"] is True
    assert app.session_state["pc_last"]["out"].endswith("_flip.webm")
    assert {m.label: m.value for m in app.metric}["Frames"] == "8"


def test_broken_video_gives_message(app, model_ready):
    app.switch_page(PAGE).run()
    app.radio(key="pc_source").set_value("Upload").run()
    app.file_uploader(key="pc_upload").set_value(("broken.mp4", b"\x00\x01garbage" * 100, "video/mp4"))
    app.run()
    app.button(key="pc_run").click().run(timeout=60)
    assert not app.exception, app.exception
    assert app.error and ("No frame could be read" in texts(app.error) or "failed" in texts(app.error))


def test_not_a_video_is_refused(app):
    app.switch_page(PAGE).run()
    app.radio(key="pc_source").set_value("Upload").run()
    app.file_uploader(key="pc_upload").set_value(("empty.mp4", b"", "video/mp4"))
    app.run()
    assert not app.exception
    assert "empty" in texts(app.error)


def test_new_labelled_drive_scores_the_tracks(app, model_ready):
    app.switch_page(PAGE).run()
    app.radio(key="pc_source").set_value("New labelled drive").run()
    app.number_input(key="pc_frames").set_value(20).run(timeout=120)
    app.button(key="pc_run").click().run(timeout=240)
    assert not app.exception, app.exception
    assert not app.error, texts(app.error)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Frames"] == "20"
    mota = metrics["MOTA"]
    assert mota == "n/a" or float(mota.rstrip(" %")) <= 100.0
    assert "ID switches" in metrics and " of " in metrics["Mostly tracked"]
    hota = metrics["HOTA"]
    assert hota == "n/a" or 0.0 <= float(hota.rstrip(" %")) <= 100.0
    table = app.dataframe[-1].value
    assert table["class"].iloc[0] == "all" and table["objects"].iloc[0] > 0
    assert table["objects"].iloc[0] == table["objects"].iloc[1:].sum()  # every object has one class


def test_bad_labels_are_named_before_the_run(app, model_ready, tmp_path):
    data = _small_video(tmp_path / "pan.mp4", frames=4)
    app.switch_page(PAGE).run()
    app.radio(key="pc_source").set_value("Upload").run()
    app.file_uploader(key="pc_upload").set_value(("pan.mp4", data, "video/mp4"))
    app.run()
    app.file_uploader(key="pc_labels").set_value(("gt.txt", b"1,1,10,20\n", "text/plain"))
    app.run()
    assert not app.exception, app.exception
    assert "gt.txt:1" in texts(app.error) and "comma-separated" in texts(app.error)
