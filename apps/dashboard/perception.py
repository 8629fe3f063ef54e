"""Perception: annotated playback of a video (bundled synthetic drive or an upload) with boxes, track
ids, FPS and per-stage timings; a camera snapshot through the detector; live webcam via
streamlit-webrtc when that optional extra is installed."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from apps.dashboard import common, present, uploads

st.title("Perception")
st.caption("Cars, trucks/buses, pedestrians, cyclists, traffic lights and signs, detected and tracked on "
           "dash-camera frames.")
common.device_badge()

pc = common.require_app("perception", "load_detector", "detect")
if pc is None:
    st.stop()

WORK = Path(tempfile.gettempdir()) / "dlsuite-dashboard" / "video"


@st.cache_resource(show_spinner="Loading the detector…")
def _detector():
    return pc.load_detector()


@st.cache_data(show_spinner=False)
def _sample_videos() -> list[str]:
    if common.has(pc, "sample_video"):
        v = pc.sample_video()
        return [str(v)] if v else []
    root = Path(pc.__file__).parent / "assets"
    return sorted(str(p) for ext in uploads.VIDEO_EXTENSIONS for p in root.rglob(f"*.{ext}"))


@st.cache_resource(show_spinner=False, max_entries=8)
def _process(digest: str, src: str, conf: float, _progress=None):
    """Run the app's video pipeline once per (video, threshold); returns (output path, result)."""
    WORK.mkdir(parents=True, exist_ok=True)
    # WebM/VP9: Chromium and Firefox play it, and OpenCV's wheels can write it (they lack H.264)
    out = WORK / f"{digest[:16]}_{int(conf * 100)}.webm"
    result = pc.process_video(src, str(out), detector=_detector(), conf=conf, progress=_progress)
    return str(out), result


def _class_names() -> list[str]:
    names = getattr(pc, "CLASSES", None) or getattr(pc, "CLASS_NAMES", None)
    return list(names) if names else []


def _detections_table(dets) -> pd.DataFrame:
    boxes = np.asarray(present.field(dets, "boxes", default=np.zeros((0, 4))), float).reshape(-1, 4)
    scores = np.asarray(present.field(dets, "scores", default=np.zeros(len(boxes))), float)
    classes = present.field(dets, "classes", "labels", default=np.zeros(len(boxes), int))
    names = _class_names()
    labels = [names[int(c)] if names and not isinstance(c, str) and 0 <= int(c) < len(names) else str(c)
              for c in classes]
    return pd.DataFrame({"class": labels, "score": scores.round(3),
                         "x1": boxes[:, 0].round(1), "y1": boxes[:, 1].round(1),
                         "x2": boxes[:, 2].round(1), "y2": boxes[:, 3].round(1)})


def _show_timings(result) -> None:
    fps = present.field(result, "fps", "fps_mean", default=None)
    frames = present.field(result, "frames", "n_frames", default=None)
    p50 = present.field(result, "latency_p50_ms", "p50_ms", default=None)
    p95 = present.field(result, "latency_p95_ms", "p95_ms", default=None)
    cols = st.columns(4)
    for col, label, val, fmt in ((cols[0], "Frames", frames, "{:.0f}"), (cols[1], "FPS", fps, "{:.1f}"),
                                 (cols[2], "Latency p50", p50, "{:.1f} ms"),
                                 (cols[3], "Latency p95", p95, "{:.1f} ms")):
        if isinstance(val, (int, float)):
            col.metric(label, fmt.format(val))
    stages = present.field(result, "stage_ms", "stages_ms", "timings_ms", "stages", default=None)
    if isinstance(stages, dict) and stages:
        st.caption("Mean time per stage (ms per frame)")
        ser = pd.Series({k: float(v) for k, v in stages.items() if isinstance(v, (int, float))}, name="ms")
        st.bar_chart(ser, height=220, horizontal=True)
    tracks = present.field(result, "track_ids", "tracks", default=None)
    counts = present.field(result, "class_counts", "counts", default=None)
    if tracks is not None:
        n = tracks if isinstance(tracks, int) else len(tracks)
        st.caption(f"{n} distinct tracks over the clip.")
    if isinstance(counts, dict) and counts:
        st.caption("Tracks per class")
        st.bar_chart(pd.Series(counts, name="tracks"), height=200, horizontal=True)


video_tab, snap_tab, live_tab = st.tabs(["Video", "Camera snapshot", "Live webcam"])

# -------------------------------------------------------------------------------------------- video
with video_tab:
    src_kind = st.radio("Video", ["Bundled synthetic clip", "Upload"], horizontal=True, key="pc_source")
    src_path, digest = None, None
    if src_kind == "Bundled synthetic clip":
        vids = _sample_videos()
        if not vids:
            st.info("No bundled clip yet (apps/perception/assets/).", icon="📭")
        else:
            src_path = st.selectbox("Clip", vids, format_func=lambda p: Path(p).name, key="pc_clip")
            digest = hashlib.sha1(f"{src_path}:{Path(src_path).stat().st_mtime}".encode()).hexdigest()
    else:
        up = st.file_uploader("Video file", type=list(uploads.VIDEO_EXTENSIONS), key="pc_upload")
        if up is not None:
            data = up.getvalue()
            problem = uploads.check_video(up.name, data)
            if problem:
                st.error(problem, icon="🚫")
            else:
                digest = hashlib.sha1(data).hexdigest()
                WORK.mkdir(parents=True, exist_ok=True)
                src_path = str(WORK / f"in_{digest[:16]}{Path(up.name).suffix.lower()}")
                if not Path(src_path).exists():
                    Path(src_path).write_bytes(data)
    conf = st.slider("Score threshold", 0.05, 0.95, 0.3, 0.05, key="pc_conf")
    if not common.has(pc, "process_video"):
        st.info("Video processing is not available yet (`apps.perception.process_video` is missing).",
                icon="🚧")
    elif src_path:
        if st.button("Run detection and tracking", type="primary", key="pc_run"):
            bar = st.progress(0.0, text="Processing…")

            def _progress(done, total=None, *_, **__):
                frac = min(1.0, done / total) if total else 0.0
                bar.progress(frac, text=f"frame {done}" + (f"/{total}" if total else ""))

            try:
                st.session_state["pc_last"] = (digest, conf) + _process(digest, src_path, conf, _progress)
                bar.progress(1.0, text="Done")
            except Exception as exc:
                bar.empty()
                common.show_error("Video processing failed", exc)
        last = st.session_state.get("pc_last")
        if last and last[0] == digest:
            _, used_conf, out_path, result = last
            if Path(out_path).exists():
                st.video(Path(out_path).read_bytes(), format="video/webm")
            st.caption(f"Annotated playback (score ≥ {used_conf:.2f}): boxes, class, score and track id; "
                       "FPS and per-stage milliseconds are drawn on each frame.")
            _show_timings(result)

# ----------------------------------------------------------------------------------------- snapshot
with snap_tab:
    st.write("Take a picture with your camera (or upload an image) and run it through the detector.")
    shot = st.camera_input("Camera", key="pc_camera")
    img_up = st.file_uploader("…or an image", type=["png", "jpg", "jpeg"], key="pc_image")
    raw = shot.getvalue() if shot is not None else (img_up.getvalue() if img_up is not None else None)
    if raw:
        import cv2

        bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            st.error("That file is not an image OpenCV can decode.", icon="🚫")
        else:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            snap_conf = st.slider("Score threshold", 0.05, 0.95, 0.3, 0.05, key="pc_snap_conf")
            try:
                dets = pc.detect(_detector(), rgb, conf=snap_conf)
                drawn = pc.draw_detections(rgb, dets) if common.has(pc, "draw_detections") else rgb
                table = _detections_table(dets)
                st.image(drawn, caption=f"{len(table)} detections", width="stretch")
                st.dataframe(table, hide_index=True, width="stretch")
            except Exception as exc:
                common.show_error("Detection failed", exc)

# --------------------------------------------------------------------------------------------- live
with live_tab:
    try:
        import streamlit_webrtc  # noqa: F401  (optional extra)

        HAVE_WEBRTC = True
    except ImportError:
        HAVE_WEBRTC = False
    if not HAVE_WEBRTC:
        st.info("Live webcam needs the optional extra **streamlit-webrtc**: "
                "`pip install -e \".[webrtc]\"`, then reload this page. The browser asks for camera access; "
                "frames are processed on this machine.", icon="📷")
    else:
        from streamlit_webrtc import webrtc_streamer

        detector = _detector()
        live_conf = st.slider("Score threshold", 0.05, 0.95, 0.3, 0.05, key="pc_live_conf")

        def _callback(frame):
            import av

            rgb = frame.to_ndarray(format="rgb24")
            dets = pc.detect(detector, rgb, conf=live_conf)
            out = pc.draw_detections(rgb, dets) if common.has(pc, "draw_detections") else rgb
            return av.VideoFrame.from_ndarray(np.ascontiguousarray(out), format="rgb24")

        webrtc_streamer(key="pc_live", video_frame_callback=_callback,
                        media_stream_constraints={"video": True, "audio": False})
