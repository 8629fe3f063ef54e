"""Perception: annotated playback of a video (bundled synthetic drive, a new labelled one, or an upload)
with boxes, track ids, FPS and per-stage timings, and the tracks scored against labels when there are
some; a camera snapshot through the detector; live webcam via streamlit-webrtc when that optional
extra is installed."""

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

pc = common.require_app("perception", "load_default_model", "detect", "draw_detections", "process_video")
if pc is None:
    st.stop()

WORK = Path(tempfile.gettempdir()) / "dlsuite-dashboard" / "video"
# The annotated frames are kept (as JPEG, ~50 KB each) until the WebM is written: cap a run at two
# minutes of 30 FPS video; the CLI (`python -m apps.perception demo --headless --save`) has no cap.
MAX_FRAMES = 3600


@st.cache_resource(show_spinner="Loading the detector…", max_entries=8)
def _detector(conf: float, flip_test: bool = False):
    """One Detector per score threshold and flip-test setting (the model is small; a shared one must not
    be mutated)."""
    return pc.load_default_model(conf=conf, flip_test=flip_test)


@st.cache_data(show_spinner=False)
def _sample_videos() -> list[str]:
    if common.has(pc, "sample_video"):
        clip = pc.sample_video()
        if clip:
            return [str(clip)]
    root = Path(pc.__file__).parent / "assets"
    return sorted(str(p) for ext in uploads.VIDEO_EXTENSIONS for p in root.rglob(f"*.{ext}"))


@st.cache_resource(show_spinner="Rendering a synthetic drive…")
def _synthetic_clip() -> str | None:
    """Fallback when no clip is bundled: render a short one with the app's generator."""
    from apps.perception import synth  # the app's public generator

    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "synthetic_drive.webm"
    if not out.exists():
        synth.write_video(str(out), n_frames=90, seed=7)
    return str(out)


@st.cache_resource(show_spinner="Rendering a labelled synthetic drive…", max_entries=4)
def _labelled_drive(seed: int, frames: int) -> tuple[str, str]:
    """A new drive from the app's generator, with its per-frame labels (boxes, classes, track ids)."""
    from apps.perception import synth

    WORK.mkdir(parents=True, exist_ok=True)
    clip, labels = WORK / f"drive_s{seed}_{frames}.mp4", WORK / f"drive_s{seed}_{frames}.json"
    if not (clip.exists() and labels.exists()):
        synth.write_video(str(clip), n_frames=frames, seed=seed, labels_json=str(labels))
    return str(clip), str(labels)


def _source_fps(path: str) -> float:
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        return float(cap.get(cv2.CAP_PROP_FPS) or 30.0)
    finally:
        cap.release()


def _process(src: str, conf: float, out: str, live, bar, labels: str | None = None,
             flip_test: bool = False) -> dict:
    """The app's real-time pipeline on a file, every frame (no pacing). Annotated frames are kept as
    JPEG (a few ms each, so the measured FPS stays the pipeline's) and encoded to WebM afterwards;
    ``live`` shows some of them while the clip is processed and ``bar`` follows progress. With
    ``labels`` (a labels file the app reads) the result's ``tracking`` holds the tracks' scores;
    ``flip_test``: the detector's flip-test mode."""
    import time

    from apps.perception import evaluate_tracking, frame_from_tracks, load_track_labels

    last = [0.0]
    frames: list[bytes] = []
    tracks = []

    def progress(done: int, total: int | None) -> None:
        bar.progress(min(1.0, done / total) if total else 0.0,
                     text=f"frame {done}" + (f"/{total}" if total else ""))

    def on_frame(res) -> None:
        frames.append(present.jpeg(res.image))
        if labels:
            tracks.append(frame_from_tracks(res.tracks))
        now = time.perf_counter()
        if now - last[0] > 0.3:  # a glimpse of the annotated frames while the clip is processed
            last[0] = now
            live.image(res.image, width="stretch", caption=f"frame {res.index + 1}")

    result = pc.process_video(src, None, detector=_detector(conf, flip_test), progress=progress,
                              on_frame=on_frame, track=True, realtime=False, max_frames=MAX_FRAMES)
    if frames:
        bar.progress(1.0, text="Encoding the annotated video…")
        present.encode_webm(frames, _source_fps(src), out)
    if labels and tracks:
        gt = load_track_labels(labels, n_frames=len(tracks), truncate=len(tracks) >= MAX_FRAMES)
        result["tracking"] = evaluate_tracking(gt, tracks)
    return result


def _detections_table(dets, classes) -> pd.DataFrame:
    boxes = np.asarray(dets.boxes, float).reshape(-1, 4)
    return pd.DataFrame({"class": [classes[int(c)] for c in dets.classes],
                         "score": np.asarray(dets.scores, float).round(3),
                         "x1": boxes[:, 0].round(1), "y1": boxes[:, 1].round(1),
                         "x2": boxes[:, 2].round(1), "y2": boxes[:, 3].round(1)})


def _show_summary(result: dict) -> None:
    cols = st.columns(4)
    cols[0].metric("Frames", f"{result.get('frames', 0)}")
    cols[1].metric("FPS (end to end)", f"{result.get('fps', 0):.1f}")
    cols[2].metric("Latency p50", f"{result.get('latency_p50_ms', float('nan')):.1f} ms")
    cols[3].metric("Latency p95", f"{result.get('latency_p95_ms', float('nan')):.1f} ms")
    stages = result.get("stage_ms") or {}
    if stages:
        st.caption("Mean milliseconds per frame, by stage")
        common.hbar(stages, "ms per frame")
    counts = result.get("class_counts") or {}
    if counts:
        st.caption(f"{result.get('track_ids', 0)} distinct tracks, by class")
        common.hbar(dict(sorted(counts.items(), key=lambda kv: -kv[1])), "tracks", fmt=".0f")
    st.caption(f"{result.get('detections', 0)} detections over the clip; source status: "
               f"{result.get('status', '?')}.")
    if result.get("tracking"):
        _show_tracking(result["tracking"])


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def _show_tracking(m: dict) -> None:
    """The tracks against the labels: CLEAR MOT and identity scores, overall and per class."""
    st.subheader("Tracking quality")
    o = m["overall"]
    cols = st.columns(5)
    cols[0].metric("HOTA", _pct(o["hota"]))
    cols[1].metric("MOTA", _pct(o["mota"]))
    cols[2].metric("IDF1", _pct(o["idf1"]))
    cols[3].metric("ID switches", f"{o['id_switches']}")
    cols[4].metric("Mostly tracked", f"{o['mostly_tracked']} of {o['gt_tracks']}")
    rows = [("all", o)] + list(m["per_class"].items())
    st.dataframe(pd.DataFrame({
        "class": [n for n, _ in rows],
        "HOTA": [_pct(s["hota"]) for _, s in rows],
        "MOTA": [_pct(s["mota"]) for _, s in rows],
        "IDF1": [_pct(s["idf1"]) for _, s in rows],
        "recall": [_pct(s["recall"]) for _, s in rows],
        "precision": [_pct(s["precision"]) for _, s in rows],
        "ID switches": [s["id_switches"] for _, s in rows],
        "objects": [s["objects"] for _, s in rows],
    }), hide_index=True, width="stretch")
    st.caption(f"{m['frames']} frames; a track hits an object at IoU ≥ {m['iou_threshold']:g} and of its "
               "class; ignored objects (too occluded or small to label) count neither way. "
               "HOTA balances finding the objects and keeping their identities, averaged over IoU thresholds "
               "from 0.05 to 0.95; MOTA = 1 − (misses + false positives + ID switches) / objects; IDF1: the "
               "share of boxes whose identity is right over the whole clip.")


video_tab, snap_tab, live_tab = st.tabs(["Video", "Camera snapshot", "Live webcam"])

# -------------------------------------------------------------------------------------------- video
with video_tab:
    src_kind = st.radio("Video", ["Bundled synthetic clip", "New labelled drive", "Upload"], horizontal=True,
                        key="pc_source")
    src_path, digest, labels_path = None, None, None
    if src_kind == "New labelled drive":
        st.caption("A drive the detector has never seen, rendered by the app's generator with its labels, so "
                   "that the tracks can be scored.")
        c1, c2 = st.columns(2)
        seed = int(c1.number_input("Seed", 0, 10**6, 101, key="pc_seed"))
        n_frames = int(c2.number_input("Frames (30 per second)", 10, 900, 150, 10, key="pc_frames"))
        try:
            src_path, labels_path = _labelled_drive(seed, n_frames)
            digest = hashlib.sha1(f"drive:{seed}:{n_frames}".encode()).hexdigest()
        except Exception as exc:
            common.show_error("Could not render the drive", exc)
    elif src_kind == "Bundled synthetic clip":
        vids = _sample_videos()
        if vids:
            src_path = st.selectbox("Clip", vids, format_func=lambda p: Path(p).name, key="pc_clip")
        else:
            try:
                src_path = _synthetic_clip()
                st.caption("No clip is bundled yet: a 3-second synthetic drive was rendered with the app's "
                           "generator.")
            except Exception as exc:
                common.show_error("Could not render a synthetic clip", exc)
        if src_path:
            digest = hashlib.sha1(f"{src_path}:{Path(src_path).stat().st_mtime}".encode()).hexdigest()
    else:
        up = st.file_uploader("Video file", type=list(uploads.VIDEO_EXTENSIONS), key="pc_upload",
                              max_upload_size=uploads.MAX_VIDEO_BYTES // uploads.MiB)
        if up is not None:
            data = up.getvalue()
            problem = uploads.check_video(up.name, data)
            if problem:
                st.error(problem, icon=common.REFUSED)
            else:
                digest = hashlib.sha1(data).hexdigest()
                WORK.mkdir(parents=True, exist_ok=True)
                src_path = str(WORK / f"in_{digest[:16]}{Path(up.name).suffix.lower()}")
                if not Path(src_path).exists():
                    Path(src_path).write_bytes(data)
        lab = st.file_uploader("Labels, to score the tracks (optional): synth JSON, KITTI tracking txt or "
                               "MOTChallenge gt.txt", type=["json", "txt"], key="pc_labels")
        if lab is not None and src_path:
            from apps.perception import load_track_labels

            raw = lab.getvalue()
            name = f"labels_{hashlib.sha1(raw).hexdigest()[:16]}{Path(lab.name).suffix.lower()}"
            labels_path = str(WORK / name)
            Path(labels_path).write_bytes(raw)
            try:  # a bad file is named now, not after the whole video has run
                load_track_labels(labels_path)
                digest = hashlib.sha1((digest + labels_path).encode()).hexdigest()
            except ValueError as exc:
                st.error(str(exc).replace(labels_path, lab.name), icon=common.REFUSED)
                labels_path = None
    conf = st.slider("Score threshold", 0.05, 0.95, 0.3, 0.05, key="pc_conf")
    flip = st.checkbox(
        "Flip test", key="pc_flip",
        help="Also run each frame mirrored and average the two: boxes located more precisely (held-out "
             "mAP50-95 0.647 → 0.671) for twice the network's work; the CLI's `--threads 2 --flip-test` "
             "runs the two views at once.")
    if src_path and st.button("Run detection and tracking", type="primary", key="pc_run"):
        out = str(WORK / f"{digest[:16]}_{int(conf * 100)}{'_flip' if flip else ''}.webm")
        bar = st.progress(0.0, text="Loading…")
        live = st.empty()
        try:
            result = _process(src_path, conf, out, live, bar, labels_path, flip)
            live.empty()
            bar.empty()
            if not result.get("frames"):
                st.error("No frame could be read from this video (unsupported codec or broken file).",
                         icon=common.REFUSED)
            else:
                st.session_state["pc_last"] = {"digest": digest, "conf": conf, "flip_test": flip, "out": out,
                                               "result": result}
        except Exception as exc:
            live.empty()
            bar.empty()
            common.show_error("Video processing failed", exc)
    last = st.session_state.get("pc_last")
    if last and last["digest"] == digest:
        if Path(last["out"]).exists():
            st.video(Path(last["out"]).read_bytes(), format="video/webm")
        st.caption(f"Annotated playback (score ≥ {last['conf']:.2f}): boxes, class, score and track id; FPS "
                   "and per-stage milliseconds are drawn on each frame.")
        _show_summary(last["result"])
        if last["result"].get("frames", 0) >= MAX_FRAMES:
            st.caption(f"Only the first {MAX_FRAMES} frames were processed here; the CLI has no limit.")

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
            st.error("That file is not an image OpenCV can decode.", icon=common.REFUSED)
        else:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            snap_conf = st.slider("Score threshold", 0.05, 0.95, 0.3, 0.05, key="pc_snap_conf")
            snap_flip = st.checkbox(
                "Flip test", key="pc_snap_flip",
                help="Also run the mirrored image and average the two: boxes located more precisely "
                     "(held-out mAP50-95 0.647 → 0.671), twice the network's time.")
            try:
                dets = pc.detect(_detector(snap_conf, snap_flip), rgb)
                drawn = pc.draw_detections(rgb, dets)
                table = _detections_table(dets, pc.CLASSES)
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
                "frames are processed on this machine.", icon=common.CAMERA)
    else:
        from streamlit_webrtc import webrtc_streamer

        live_conf = st.slider("Score threshold", 0.05, 0.95, 0.3, 0.05, key="pc_live_conf")
        detector = _detector(live_conf)

        def _callback(frame):
            import av

            rgb = frame.to_ndarray(format="rgb24")
            dets = pc.detect(detector, rgb)
            out = pc.draw_detections(rgb, dets, timing=detector.last_timing)
            return av.VideoFrame.from_ndarray(np.ascontiguousarray(out), format="rgb24")

        webrtc_streamer(key="pc_live", video_frame_callback=_callback,
                        media_stream_constraints={"video": True, "audio": False})
