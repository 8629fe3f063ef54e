"""Presentation helpers shared by the pages: app availability, device and version facts, error display.

The apps are written alongside the dashboard; a page whose app (or one of its functions) is not there
yet says so plainly instead of failing.
"""

from __future__ import annotations

import importlib
import platform
import sys
from importlib import metadata
from types import ModuleType

import streamlit as st

# Material Symbols icons: they ship with Streamlit's front end, so they render without emoji fonts
WIP, BLOCKED, EMPTY = ":material/construction:", ":material/block:", ":material/inbox:"
ERROR, CAMERA, REFUSED = ":material/error:", ":material/photo_camera:", ":material/do_not_disturb_on:"

APP_TITLES = {"dicom_dx": "DICOM diagnosis (apps.dicom_dx)", "perception": "Perception (apps.perception)"}


def import_app(name: str) -> tuple[ModuleType | None, str | None]:
    """Import ``apps.<name>``; returns ``(module, None)`` or ``(None, reason)``, never raises."""
    try:
        return importlib.import_module(f"apps.{name}"), None
    except Exception as exc:  # a half-written app must not take the dashboard down
        return None, f"{type(exc).__name__}: {exc}"


def require_app(name: str, *functions: str) -> ModuleType | None:
    """The app module if it imports and has ``functions``; otherwise a clear note and ``None``."""
    mod, reason = import_app(name)
    title = APP_TITLES.get(name, name)
    if mod is None:
        st.info(f"**{title} is not available yet.** It could not be imported ({reason}).", icon=WIP)
        return None
    missing = [f for f in functions if not callable(getattr(mod, f, None))]
    if missing:
        st.info(f"**{title} is not available yet**: its public API lacks "
                f"{', '.join(f'`{f}`' for f in missing)}.", icon=WIP)
        return None
    return mod


def resolve(app: str, name: str, *modules: str):
    """The public function ``name`` of ``apps.<app>``: exported at the top level, or else found in one
    of the app's public ``modules`` (``apps.<app>.<module>.<name>``). ``None`` when absent."""
    mod, _ = import_app(app)
    if mod is None:
        return None
    fn = getattr(mod, name, None)
    if callable(fn):
        return fn
    for sub in modules:
        try:
            fn = getattr(importlib.import_module(f"apps.{app}.{sub}"), name, None)
        except Exception:
            continue
        if callable(fn):
            return fn
    return None


def has(mod: ModuleType | None, name: str) -> bool:
    return mod is not None and callable(getattr(mod, name, None))


def show_error(context: str, exc: BaseException) -> None:
    """A one-line error for the user: what was being done and why it failed (no traceback)."""
    msg = str(exc).strip() or type(exc).__name__
    st.error(f"{context}: {msg}", icon=ERROR)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@st.cache_data(show_spinner=False)
def device_info() -> dict[str, str]:
    """The compute device the framework will use: CUDA GPU name via CuPy when present, else the CPU."""
    info = {"device": "cpu", "name": _cpu_name(), "cupy": "not installed"}
    try:
        from framework import backend
    except Exception as exc:  # the framework layer is broken: say so, keep the page up
        info["framework"] = f"does not import ({type(exc).__name__})"
        return info
    try:
        import os

        info["cpu cores"] = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                else os.cpu_count())
    except Exception:
        pass
    if backend._cupy is not None:
        info["cupy"] = getattr(backend._cupy, "__version__", "?")
    if backend.cuda_available():
        try:
            props = backend._cupy.cuda.runtime.getDeviceProperties(0)
            name = props["name"]
            info.update(device="cuda:0", name=name.decode() if isinstance(name, bytes) else str(name),
                        memory=f"{props['totalGlobalMem'] / 2**30:.1f} GiB")
        except Exception as exc:
            info.update(device="cuda:0", name=f"CUDA device ({exc})")
    return info


@st.cache_data(show_spinner=False)
def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for dist in ("dlsuite", "numpy", "pydicom", "pylibjpeg", "opencv-python", "streamlit", "highdicom",
                 "cupy-cuda13x", "streamlit-webrtc"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def device_badge() -> None:
    """A short line in the sidebar: which device the models run on."""
    info = device_info()
    label = f"GPU: {info['name']}" if info["device"].startswith("cuda") else "CPU (no CUDA GPU visible)"
    st.sidebar.caption(f"Compute: {label}")


def hbar(values: dict, value_name: str, container=None, fmt: str = ".2f") -> None:
    """A horizontal bar chart that keeps the order of ``values`` (st.bar_chart sorts the labels
    alphabetically, which scrambles pipeline stages); one bar per key, labels never truncated."""
    import altair as alt
    import pandas as pd

    df = pd.DataFrame({"label": [str(k) for k in values], value_name: [float(v) for v in values.values()]})
    chart = alt.Chart(df).mark_bar().encode(
        y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelLimit=360)),
        x=alt.X(f"{value_name}:Q", title=value_name),
        tooltip=["label", alt.Tooltip(f"{value_name}:Q", format=fmt)])
    (container or st).altair_chart(chart, width="stretch", height=max(120, 28 * len(df) + 50))
