"""DICOM diagnosis: upload studies or pick a bundled sample; a window/level viewer that honours the
file's VOI and photometric interpretation; the input gate's verdict; findings against their operating
thresholds; Grad-CAM per finding; metadata with the patient's identity masked unless asked for."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st

from apps.dashboard import common, present, uploads

st.title("DICOM diagnosis")
st.caption("Frontal chest radiographs: opacity, nodule/mass, pleural effusion, cardiomegaly, pneumothorax. "
           "Research software, not a medical device.")
common.device_badge()

dx = common.require_app("dicom_dx")
if dx is None:
    st.stop()
# The app's public functions (top-level exports, else their public modules)
read_dicom = common.resolve("dicom_dx", "read_dicom", "io")
read_header = common.resolve("dicom_dx", "read_header", "io")
load_model = common.resolve("dicom_dx", "load_default_model", "inference")
predict = common.resolve("dicom_dx", "predict", "inference")
explain = common.resolve("dicom_dx", "explain", "explain")
sample_files = common.resolve("dicom_dx", "sample_files", "samples", "assets")
apply_window = common.resolve("dicom_dx", "apply_window", "pipeline")
Window = common.resolve("dicom_dx", "Window", "pipeline")
if read_dicom is None:
    st.info("**The DICOM reader is not available yet** (`apps.dicom_dx.read_dicom`).", icon=common.WIP)
    st.stop()


# ------------------------------------------------------------------------------------------- cached
@st.cache_resource(show_spinner="Loading the diagnosis model…")
def _model():
    return load_model()


def _model_or_reason():
    """(model, None), or (None, why it is unavailable): a missing model leaves the viewer working."""
    if predict is None or load_model is None:
        return None, "apps.dicom_dx has no predict / load_default_model yet"
    try:
        return _model(), None
    except Exception as exc:  # e.g. the default weights are not committed yet
        return None, str(exc) or type(exc).__name__


@st.cache_data(show_spinner=False)
def _samples() -> list[str]:
    if sample_files is not None:
        return [str(p) for p in sample_files()]
    root = Path(dx.__file__).parent / "assets"
    return sorted(str(p) for p in root.rglob("*.dcm"))


@st.cache_data(show_spinner=False, max_entries=64)
def _file_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


# Decoded images and predictions live in cache_resource (shared, not copied): pickling a 3000-px float32
# radiograph into cache_data on every rerun would cost more than decoding it. Nobody mutates them.
@st.cache_resource(show_spinner="Decoding…", max_entries=16)
def _read(digest: str, frame: int, _data: bytes):
    return read_dicom(_data, frame=frame)


@st.cache_resource(show_spinner="Analysing…", max_entries=32)
def _predict(digest: str, frame: int, _image):
    return predict(_image, _model())


@st.cache_resource(show_spinner="Computing Grad-CAM…", max_entries=64)
def _explain(digest: str, frame: int, finding: str, _image):
    return explain(_image, _model(), [finding])[finding]


@st.cache_resource(show_spinner=False, max_entries=16)
def _viewer_values(digest: str, frame: int, _image, max_side: int = 1024):
    """(values, mask) downscaled once for the viewer, so slider moves only re-window ~1 Mpx."""
    import cv2
    import numpy as np

    values = present.thumbnail(_image.values.astype(np.float32), max_side)
    mask = _image.mask
    if mask is not None:
        mask = cv2.resize(mask.astype(np.uint8), values.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    return values, mask


# ------------------------------------------------------------------------------------------- inputs
source = st.radio("Input", ["Bundled sample", "Upload"], horizontal=True, key="dx_source")
inputs: list[tuple[str, bytes]] = []
if source == "Bundled sample":
    samples = _samples()
    if not samples:
        st.info("No bundled sample studies yet (apps/dicom_dx/assets/).", icon=common.EMPTY)
    else:
        pick = st.selectbox("Sample study", samples, format_func=lambda p: Path(p).name, key="dx_sample")
        inputs = [(Path(pick).name, _file_bytes(pick))]
else:
    # no type filter: DICOM files often have no extension; the browser refuses files over the limit
    files = st.file_uploader("DICOM files (.dcm, or files without extension)", accept_multiple_files=True,
                             key="dx_upload", max_upload_size=uploads.MAX_DICOM_BYTES // uploads.MiB)
    for i, f in enumerate(files or []):
        data = f.getvalue()
        label = uploads.upload_label(i, f.name)  # file names often carry patient names: not shown
        problem = uploads.check_dicom(label, data)
        if problem:
            st.error(problem, icon=common.REFUSED)
        else:
            inputs.append((label, data))

if not inputs:
    st.stop()


def _analyse(name: str, data: bytes, frame: int = 0):
    """(digest, image, prediction, error message) for one input; errors are messages, never tracebacks.
    image is None when unreadable; prediction is None when no model is available."""
    digest = hashlib.sha1(data).hexdigest()
    try:
        image = _read(digest, frame, data)
    except Exception as exc:  # the reader raises typed errors whose message names the reason
        msg = str(exc).removeprefix("<bytes>: ") or type(exc).__name__
        return digest, None, None, f"{name}: {msg}"
    if _model_or_reason()[0] is None:
        return digest, image, None, None
    try:
        return digest, image, _predict(digest, frame, image), None
    except Exception as exc:
        return digest, image, None, f"{name}: analysis failed ({exc})"


if len(inputs) > 1:
    summary = []
    for name, data in inputs:
        _, _, pred, err = _analyse(name, data)
        if err:
            summary.append({"file": name, "gate": "error", "positive findings": err})
            continue
        if pred is None:
            summary.append({"file": name, "gate": "not analysed (no model yet)", "positive findings": "—"})
            continue
        ok, reason = present.gate_verdict(pred) if pred is not None else (True, "")
        pos = [r["finding"] for r in present.findings_rows(pred) if r["positive"]] if ok and pred else []
        summary.append({"file": name, "gate": "accepted" if ok else f"rejected: {reason}",
                        "positive findings": ", ".join(pos) or ("none" if ok else "—")})
    st.subheader(f"{len(inputs)} files")
    st.dataframe(pd.DataFrame(summary), hide_index=True, width="stretch")
    file_names = [n for n, _ in inputs]
    chosen = st.selectbox("Show", range(len(inputs)), format_func=lambda i: file_names[i], key="dx_show")
    name, data = inputs[chosen]
else:
    name, data = inputs[0]

frame = 0
try:
    header = read_header(data) if read_header is not None else None
except Exception:
    header = None
if header is not None and getattr(header, "n_frames", 1) > 1:
    # keyed per file: another file's frame index may be out of this one's range
    file_key = hashlib.sha1(data).hexdigest()[:12]
    frame = st.slider("Frame", 0, header.n_frames - 1, 0, key=f"dx_frame_{file_key}")

digest, image, pred, error = _analyse(name, data, frame)
if error:
    st.error(error, icon=common.REFUSED)
    st.stop()

meta = image.meta

# --------------------------------------------------------------------------------------------- gate
accepted, reason = present.gate_verdict(pred) if pred is not None else (True, "")
if pred is None:
    st.info(f"The diagnosis model is not available ({_model_or_reason()[1]}): showing the image and its "
            "metadata only.", icon=common.WIP)
elif not accepted:
    st.error(f"**Not analysed — this input is not a frontal chest radiograph.** {reason}",
             icon=common.BLOCKED)

# ----------------------------------------------------------------------------------------- findings
rows = present.findings_rows(pred) if pred is not None and accepted else []
positives = [r["finding"] for r in rows if r["positive"]]
if pred is not None and accepted:
    st.subheader("Findings")
    if positives:
        st.warning("Positive at the operating threshold: " + ", ".join(f"**{p}**" for p in positives))
    else:
        st.success("No finding above its operating threshold.")
    if rows:
        df = pd.DataFrame(rows)
        df["decision"] = df["positive"].map({True: "POSITIVE", False: "negative"})
        st.dataframe(
            df[["finding", "probability", "threshold", "decision"]], hide_index=True, width="stretch",
            column_config={
                "probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0,
                                                               format="%.3f", width="large"),
                "threshold": st.column_config.NumberColumn("threshold", format="%.3f"),
            })
show_cam = bool(rows) and explain is not None
viewer_col, side_col = st.columns(2, gap="medium")

# ------------------------------------------------------------------------------------------- viewer
with viewer_col:
    st.subheader("Viewer")
    if image.is_color or image.values is None:
        st.caption(f"{meta.photometric} colour image: shown as decoded (window/level applies to grayscale).")
        shown = present.thumbnail(image.image)
    else:
        import numpy as np

        values, vmask = _viewer_values(digest, frame, image)
        finite = values[np.isfinite(values)] if vmask is None else values[~vmask & np.isfinite(values)]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        lo, hi = np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0)
        file_win = image.window
        presets = {}
        if file_win is not None:
            presets[f"File VOI ({file_win.source}: C {file_win.center:g} / W {file_win.width:g})"] = (
                file_win.center, file_win.width)
        else:
            presets["File VOI LUT"] = None
        presets["Percentile 0.5–99.5 %"] = ((lo + hi) / 2, max(hi - lo, 1.0))
        presets["Full range"] = ((vmin + vmax) / 2, max(vmax - vmin, 1.0))
        span = max(vmax - vmin, 1.0)
        k = digest[:8]

        def _apply_preset():
            val = presets.get(st.session_state[f"wl_preset_{k}"])
            if val is not None:
                st.session_state[f"wl_c_{k}"], st.session_state[f"wl_w_{k}"] = float(val[0]), float(val[1])

        first = next(iter(presets.values())) or presets["Percentile 0.5–99.5 %"]
        st.session_state.setdefault(f"wl_c_{k}", float(first[0]))
        st.session_state.setdefault(f"wl_w_{k}", float(first[1]))
        preset = st.radio("Window preset", list(presets) + ["Custom"], key=f"wl_preset_{k}",
                          on_change=_apply_preset, horizontal=True)
        step = float(10 ** np.floor(np.log10(span / 500))) if span > 0 else 1.0
        # the sliders' ranges hold every preset: a file's own window is often far wider than its pixels'
        # span (W 4096 on a 12-bit detector whose image uses a few hundred values) or centred outside it,
        # and a value outside a slider's range is a Streamlit exception
        known = [v for v in presets.values() if v is not None]
        known += [(st.session_state[f"wl_c_{k}"], st.session_state[f"wl_w_{k}"])]
        c_lo = min([vmin - span / 2] + [float(c) for c, _ in known])
        c_hi = max([vmax + span / 2] + [float(c) for c, _ in known])
        w_hi = max([2 * span] + [float(w) for _, w in known])
        c1, c2 = st.columns(2)
        center = c1.slider("Window centre (level)", c_lo, c_hi, key=f"wl_c_{k}",
                           step=step, disabled=preset != "Custom")
        width = c2.slider("Window width", 1.0, w_hi, key=f"wl_w_{k}", step=step,
                          disabled=preset != "Custom")
        if presets.get(preset, 0) is None:  # the file's own VOI LUT sequence: keep the app's rendering
            shown = present.thumbnail(image.image)
        else:
            win_fn = None
            if apply_window is not None and Window is not None:  # the app's VOI (PS3.3 C.11.2.1.2/3)
                func = file_win.function if (file_win is not None and preset.startswith("File")) else "LINEAR"
                win_fn = lambda v, c, w: apply_window(v, Window(c, w, func, "user"))  # noqa: E731
            shown = present.window_image(values, center, width, meta.photometric, vmask, win_fn)
    st.image(present.to_uint8(shown), width="stretch",
             caption=f"{meta.modality or '?'} {meta.body_part or ''} {meta.view_position or ''} — "
                     f"{meta.columns}×{meta.rows} px, {meta.photometric}")

# ------------------------------------------------------------------------------------------ Grad-CAM
if show_cam:
    with side_col:
        st.subheader("Grad-CAM")
        cam_names = [r["finding"] for r in rows if r["finding"].lower() not in ("no finding", "no_finding")]
        default = cam_names.index(positives[0]) if positives and positives[0] in cam_names else 0
        c1, c2 = st.columns(2)
        # keyed per image: the default (the first positive finding) differs from one image to the next,
        # and a shared key would keep the previous image's choice while showing the new default
        which = c1.selectbox("Explain finding", cam_names, index=default, key=f"dx_cam_finding_{digest[:12]}")
        opacity = c2.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="dx_cam_opacity")
        try:
            heat = _explain(digest, frame, which, image)
            heat = present.field(heat, "heatmap", "cam", default=heat)
            st.image(present.overlay(shown, heat, opacity), width="stretch",
                     caption=f"Grad-CAM: {which} (opacity {opacity:.2f}), on the viewer's window")
        except Exception as exc:
            common.show_error("Grad-CAM failed", exc)

# ------------------------------------------------------------------------------------------ metadata
with side_col if not show_cam else st.container():
    st.subheader("Metadata")
    show_id = st.checkbox("Show patient identity", value=False, key="dx_show_phi",
                          help="Patient attributes are masked by default.")
    st.dataframe(pd.DataFrame(present.masked_metadata(meta, show_id)), hide_index=True, width="stretch",
                 height=320)
