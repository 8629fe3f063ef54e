"""Home: what the suite does, the device in use, the default models with their model-card metrics,
and the versions of everything that matters."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from apps.dashboard import common, results

ROOT = Path(__file__).resolve().parents[2]

st.title("dlsuite — deep learning for radiology and driving perception")
st.markdown(
    "One repository, three layers: **our own define-by-run deep-learning framework** (NumPy on the CPU, "
    "CuPy and hand-written CUDA kernels on NVIDIA GPUs, a PyTorch-shaped API), and two applications built "
    "on it:\n"
    "- **DICOM diagnosis** — reads chest radiographs from DICOM (every common transfer syntax, the "
    "standard's display pipeline), refuses inputs that are not frontal chest radiographs, reports "
    "findings against per-finding operating thresholds and explains them with Grad-CAM; batch analysis "
    "of whole folders into SQLite, resumable.\n"
    "- **Perception** — real-time object detection and tracking on dash-camera frames (cars, trucks/buses, "
    "pedestrians, cyclists, traffic lights and signs) with per-stage timings.\n\n"
    "Use the navigation on the left. Everything runs locally; nothing leaves this machine."
)

dev = common.device_info()
c1, c2, c3 = st.columns(3)
c1.metric("Compute device", "GPU" if dev["device"].startswith("cuda") else "CPU")
c2.metric("Device name", dev["name"] or "unknown")
c3.metric("CUDA via CuPy", dev["cupy"])


@st.cache_data(show_spinner=False)
def _cards(app: str) -> list[tuple[str, dict]]:
    """Model cards (JSON) shipped with an app: through its ``model_card()`` if it has one, else the
    ``*card*.json`` files in its assets folder."""
    mod, _ = common.import_app(app)
    if common.has(mod, "model_card"):
        try:
            card = mod.model_card()
            if isinstance(card, dict):
                return [(f"apps.{app}.model_card()", card)]
        except Exception:
            pass
    out = []
    for path in sorted((ROOT / "apps" / app / "assets").rglob("*card*.json")):
        try:
            out.append((str(path.relative_to(ROOT)), json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return out


def _show_card(source: str, card: dict) -> None:
    name = card.get("name") or card.get("model") or Path(source).stem
    st.markdown(f"**{name}** — `{source}`")
    summary = results.card_summary(card)
    headline = list(summary["headline"].items())
    for start in range(0, min(len(headline), 12), 6):  # at most two rows of six
        row = headline[start:start + 6]
        for col, (k, v) in zip(st.columns(6), row):
            col.metric(k.split(" · ", 1)[-1], f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}", help=k)
    for title, rows in summary["tables"].items():
        st.caption(title)
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if summary["facts"]:
        facts = summary["facts"]
        with st.expander("About this model"):
            st.table({"field": list(facts), "value": [str(v) for v in facts.values()]})
    with st.expander("Full model card (JSON)"):
        st.json(card)


st.header("Default models")
for app, title in common.APP_TITLES.items():
    st.subheader(title)
    mod, reason = common.import_app(app)
    cards = _cards(app)
    if not cards:
        why = f" (the app does not import: {reason})." if mod is None else \
            ". The default model has not been committed yet."
        st.info("No model card found yet" + why, icon=common.WIP)
    for source, card in cards:
        _show_card(source, card)

st.header("Environment")
left, right = st.columns(2)
left.table({"": list(dev), "device": list(dev.values())})
ver = common.versions()
right.table({"package": list(ver), "version": list(ver.values())})
