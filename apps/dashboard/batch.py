"""Batch analysis: a folder (or an uploaded zip) of studies through ``apps.dicom_dx.analyze`` into
SQLite with a progress bar; then the results table with filters, summary charts and a CSV download.
Re-running with the same results file resumes: instances already analysed by the model are skipped."""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from apps.dashboard import common, present, uploads

st.title("Batch analysis")
st.caption("Point it at a folder of studies (recursive; DICOMDIR understood) or upload a zip. Results go to "
           "SQLite with pseudonymous ids; a broken file is recorded with its reason and the batch goes on.")
common.device_badge()

dx = common.require_app("dicom_dx")
if dx is None:
    st.stop()
analyze = common.resolve("dicom_dx", "analyze", "analyze", "batch")
read_results = common.resolve("dicom_dx", "read_results", "analyze", "batch", "results")
sample_files = common.resolve("dicom_dx", "sample_files", "samples", "assets")

WORK = Path(tempfile.gettempdir()) / "dlsuite-dashboard"


def _default_folder() -> str:
    if sample_files is not None:
        files = [Path(p) for p in sample_files()]
        if files:
            return str(files[0].parent)
    return str(Path(dx.__file__).parent / "assets")


# -------------------------------------------------------------------------------------------- input
how = st.radio("Studies", ["Folder on this machine", "Upload a zip"], horizontal=True, key="batch_how")
folder: Path | None = None
if how == "Folder on this machine":
    text = st.text_input("Folder", value=_default_folder(), key="batch_folder")
    folder = Path(text).expanduser()
    if not folder.exists():
        st.error(f"No such folder or file: {folder}", icon=common.REFUSED)
        folder = None
else:
    up = st.file_uploader("Zip of DICOM files", type=["zip"], key="batch_zip",
                          max_upload_size=uploads.MAX_ZIP_BYTES // uploads.MiB)
    if up is not None:
        data = up.getvalue()
        problem = uploads.check_zip(up.name, data)
        if problem:
            st.error(problem, icon=common.REFUSED)
        else:
            # one folder per archive content: uploading the same zip again resumes instead of re-analysing
            folder = WORK / "uploads" / hashlib.sha1(data).hexdigest()[:16]
            if not folder.exists():
                try:
                    n = uploads.safe_extract(data, folder)
                    st.caption(f"Unpacked {n} files.")
                except ValueError as exc:
                    st.error(f"{up.name}: {exc}", icon=common.REFUSED)
                    folder = None

default_db = WORK / "batch_results.sqlite"
db_text = st.text_input("Results file (SQLite)", value=str(default_db), key="batch_db",
                        help="Re-running into the same file resumes: finished instances are skipped.")
db = Path(db_text).expanduser()

if analyze is None:
    st.info("Running an analysis needs `apps.dicom_dx.analyze`, which is not available yet; existing "
            "results files can still be browsed below.", icon=common.WIP)
run = st.button("Run analysis", type="primary", disabled=folder is None or analyze is None, key="batch_run")


def _progress_callback(bar):
    """The app's ``progress(done, total, row)`` drawn as a progress bar with the rate and last status."""
    t0 = time.perf_counter()

    def report(done: int, total: int, row: dict | None = None) -> None:
        frac = min(1.0, done / total) if total else 0.0
        rate = done / max(time.perf_counter() - t0, 1e-9)
        last = (row or {}).get("status", "")
        text = f"{done}/{total} instances — {rate:.1f}/s" + (f" — last: {last}" if last else "")
        bar.progress(frac, text=text)

    return report


if run and folder is not None:
    bar = st.progress(0.0, text="Finding studies…")
    t0 = time.perf_counter()
    try:
        # inside the try: the results file's folder may be impossible (a path through a file, no rights)
        db.parent.mkdir(parents=True, exist_ok=True)
        summary = analyze([str(folder)], str(db), progress=_progress_callback(bar))
        bar.progress(1.0, text=f"Done in {time.perf_counter() - t0:.1f} s")
        st.session_state["batch_summary"] = present.as_dict(summary) if summary is not None else {}
    except Exception as exc:
        common.show_error("Batch analysis failed", exc)

if st.session_state.get("batch_summary"):
    s = st.session_state["batch_summary"]
    facts = {k: v for k, v in s.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    if facts:
        cols = st.columns(min(len(facts), 7))
        for col, (k, v) in zip(cols, list(facts.items())[:7]):
            col.metric(k.replace("_", " "), f"{v:.2f}" if isinstance(v, float) else str(v))


# ------------------------------------------------------------------------------------------ results
@st.cache_data(show_spinner=False)
def _load(path: str, mtime: float) -> pd.DataFrame:
    """The results table; ``mtime`` is only part of the cache key so a new run is re-read."""
    if read_results is not None:
        return pd.DataFrame(read_results(path))
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        best = max(tables, key=lambda t: con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0])
        return pd.read_sql_query(f'SELECT * FROM "{best}"', con)


if not db.exists():
    st.info("No results yet: run an analysis.", icon=common.EMPTY)
    st.stop()

try:
    df = _load(str(db), db.stat().st_mtime)
except Exception as exc:
    common.show_error(f"Could not read {db.name}", exc)
    st.stop()

cols = present.batch_columns(df)
st.subheader(f"Results — {len(df)} instances in {db.name}")

f1, f2, f3 = st.columns(3)
findings = list(cols["prob"])
want = f1.multiselect("Positive for", findings, key="batch_filter_findings")
gate_vals = sorted(df[cols["gate"]].dropna().astype(str).unique()) if cols["gate"] else []
gate_pick = f2.multiselect("Gate", gate_vals, key="batch_filter_gate")
errors_only = f3.checkbox("Errors only", key="batch_filter_errors")

view = df
for name in want:
    dec = cols["decision"].get(name)
    if dec:
        view = view[present.truthy(view[dec])]
    elif name in cols["threshold"]:
        view = view[view[cols["prob"][name]] >= view[cols["threshold"][name]]]
if gate_pick:
    view = view[view[cols["gate"]].astype(str).isin(gate_pick)]
if errors_only and cols["error"]:
    view = view[view[cols["error"]].notna() & (view[cols["error"]].astype(str) != "")]

PHI_COLUMNS = ("patient_id", "patient_name")
show_phi = st.checkbox("Show patient identity columns", value=False, key="batch_show_phi",
                       help="Only filled when the analysis was run with include_phi; hidden by default.")
if not show_phi:
    view = view.drop(columns=[c for c in view.columns if str(c).lower() in PHI_COLUMNS])
first = [c for c in ("file", cols["gate"], "gate_reason", *cols["decision"].values(), *cols["prob"].values(),
                     "no_finding", cols["error"], "error_detail") if c in view.columns]
view = view[list(dict.fromkeys(first)) + [c for c in view.columns if c not in first]]
config = {c: st.column_config.ProgressColumn(n, min_value=0.0, max_value=1.0, format="%.3f")
          for n, c in cols["prob"].items()}
st.dataframe(view, hide_index=True, width="stretch", column_config=config,
             height=min(400, 35 * (len(view) + 1) + 3))
st.download_button("Download CSV", view.to_csv(index=False).encode(), file_name=f"{db.stem}.csv",
                   mime="text/csv", key="batch_csv")

st.subheader("Summary")
c1, c2 = st.columns(2)
if cols["gate"]:
    c1.caption("Gate decisions")
    common.hbar(df[cols["gate"]].astype(str).value_counts().to_dict(), "instances", c1, fmt=".0f")
positives = {}
for name, pcol in cols["prob"].items():
    dec = cols["decision"].get(name)
    if dec:
        positives[name] = int(present.truthy(df[dec]).sum())
    elif name in cols["threshold"]:
        positives[name] = int((df[pcol] >= df[cols["threshold"][name]]).sum())
if positives:
    c2.caption("Positive instances per finding")
    common.hbar(positives, "positive instances", c2, fmt=".0f")
if cols["error"]:
    errs = df[cols["error"]].dropna().astype(str)
    errs = errs[errs != ""]
    if len(errs):
        st.caption(f"{len(errs)} instances not analysed, by reason")
        common.hbar(errs.str.split(":").str[0].value_counts().to_dict(), "instances", fmt=".0f")
