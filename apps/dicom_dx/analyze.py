"""Batch analysis: folders, files and DICOMDIRs in, one SQLite row per instance out.

Pipeline: a process pool decodes and preprocesses files (DICOM parsing and the display pipeline are
CPU-bound Python/NumPy) while the main process batches the model's inference and writes rows, so
decoding and inference overlap. Each batch is committed in one transaction: an interrupted run
loses at most the batch in flight, and a re-run skips every instance already analysed by the same
model version (matched first by a file fingerprint, without reading the file, then by the
pseudonymised SOP Instance UID). A broken file gets a row with its error reason and the batch goes
on. Rows, logs and exports carry pseudonymous ids unless include_phi=True.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apps.dicom_dx.data import preprocess, process_pool
from apps.dicom_dx.deid import pseudonym, pseudonym_key, safe_path_label
from apps.dicom_dx.gate import GateConfig, check_image, check_metadata
from apps.dicom_dx.inference import Predictor, load_default_model
from apps.dicom_dx.io import DicomReadError, read_dicom
from apps.dicom_dx.synth import FINDINGS

__all__ = [
    "AnalyzeSummary",
    "iter_inputs",
    "analyze",
    "open_db",
    "export_csv",
    "export_json",
    "SCHEMA_COLUMNS",
]
log = logging.getLogger("apps.dicom_dx.analyze")

SCHEMA_COLUMNS = (
    [
        "instance_key",
        "model_version",
        "file_key",
        "file",
        "study_id",
        "series_id",
        "instance_id",
        "status",
        "gate_stage",
        "gate_reason",
        "p_chest",
    ]
    + [f"p_{f}" for f in FINDINGS]
    + [f"dx_{f}" for f in FINDINGS]
    + [
        "no_finding",
        "error_reason",
        "error_detail",
        "modality",
        "body_part",
        "view_position",
        "rows",
        "columns",
        "decode_ms",
        "infer_ms",
        "total_ms",
        "heatmaps",
        "analysed_utc",
        "patient_id",
        "patient_name",
    ]
)
_RETRY_REASONS = ("unreadable", "worker_failed")
_TYPES = {
    "p_chest": "REAL",
    "rows": "INTEGER",
    "columns": "INTEGER",
    "no_finding": "INTEGER",
    "decode_ms": "REAL",
    "infer_ms": "REAL",
    "total_ms": "REAL",
    **{f"p_{f}": "REAL" for f in FINDINGS},
    **{f"dx_{f}": "INTEGER" for f in FINDINGS},
}


@dataclass
class AnalyzeSummary:
    total: int = 0
    analysed: int = 0
    skipped: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: int = 0
    seconds: float = 0.0
    decode_seconds: float = 0.0
    infer_seconds: float = 0.0
    error_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def open_db(path: str | os.PathLike) -> sqlite3.Connection:
    """Open (creating if needed) the results database; WAL so readers (the dashboard) never block."""
    con = sqlite3.connect(str(path), timeout=30)
    con.execute("PRAGMA journal_mode=WAL")
    cols = ", ".join(f"{c} {_TYPES.get(c, 'TEXT')}" for c in SCHEMA_COLUMNS)
    con.execute(f"CREATE TABLE IF NOT EXISTS results ({cols}, PRIMARY KEY (instance_key, model_version))")
    con.execute("CREATE INDEX IF NOT EXISTS results_file ON results (file_key, model_version)")
    con.execute("CREATE INDEX IF NOT EXISTS results_label ON results (file, model_version)")
    con.commit()
    return con


# Extensions that name DICOM instances. Anything else is sniffed: PACS exports name files by their
# SOP Instance UID ("1.2.840.113619.2.55.3.604688119.868.1234.5") or by scanner conventions
# ("IM_0001.IMA", "I0000123"), whose "suffix" says nothing about the content.
_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima")


def _looks_dicom(p: Path) -> bool:
    """A DICOM file by its extension, else by its content: the "DICM" prefix after the 128-byte
    preamble (PS3.10 7.1), or a headerless data set starting with a group 0002 or 0008 element."""
    if p.suffix.lower() in _DICOM_SUFFIXES:
        return True
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    headerless = len(head) > 8 and head[:2] in (b"\x08\x00", b"\x02\x00") and head[3] == 0
    return head[128:132] == b"DICM" or headerless


def _resolve_file_id(root: Path, parts: list[str]) -> Path:
    """The file a DICOMDIR's Referenced File ID (PS3.3 F.3.2.2) names, below the DICOMDIR's folder.
    File IDs are upper case (PS3.12), but Linux shows an ISO 9660 disc without Rock Ridge in lower
    case, sometimes with a ";1" version suffix: match each component case-insensitively when the
    exact path does not exist. A file that is really missing keeps its exact path (recorded as an
    error by analyze)."""
    exact = root.joinpath(*parts)
    if exact.exists():
        return exact

    def norm(name: str) -> str:
        return name.split(";", 1)[0].rstrip(".").upper()

    cur = root
    for part in parts:
        nxt = cur / part
        if not nxt.exists():
            try:
                nxt = next((c for c in sorted(cur.iterdir()) if norm(c.name) == norm(part)), None)
            except OSError:
                nxt = None
            if nxt is None:
                return exact
        cur = nxt
    return cur


def _dicomdir_files(path: Path) -> list[Path]:
    """The instances a DICOMDIR references; a DICOMDIR that cannot be read is returned itself, so
    that it gets an error row with its reason instead of stopping the batch."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(path))
        out = []
        for rec in ds.get("DirectoryRecordSequence", []):
            ref = rec.get("ReferencedFileID")
            if ref:
                parts = [ref] if isinstance(ref, str) else list(ref)
                out.append(_resolve_file_id(path.parent, [str(x).strip() for x in parts]))
    except Exception:  # noqa: BLE001 - pydicom raises many types on damaged files
        log.warning("%s: a DICOMDIR that cannot be read; recorded as an error", safe_path_label(path))
        return [path]
    missing = sum(not f.exists() for f in out)
    if missing:
        log.warning(
            "%s: the DICOMDIR references %d file(s) that do not exist; recorded as errors",
            safe_path_label(path),
            missing,
        )
    return out


def iter_inputs(inputs: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files to analyse, in a stable order: folders recursively (DICOM-looking files only), files
    as given, DICOMDIR files expanded to the instances they reference. Raises FileNotFoundError for
    an input that does not exist (a usage error)."""
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if not p.exists():
            raise FileNotFoundError(f"input does not exist: {p}")
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            found = [f for f in found if f.name.upper() != "DICOMDIR"]  # its instances are in the tree
            files = [f for f in found if _looks_dicom(f)]
            if len(files) < len(found):  # a count only: folder and file names may carry identity
                log.info("%d file(s) in an input folder are not DICOM: left out", len(found) - len(files))
        elif p.name.upper() == "DICOMDIR":
            files = _dicomdir_files(p)
        else:
            files = [p]
        for f in files:
            r = f.resolve()
            if r not in seen:
                seen.add(r)
                yield f


def _file_key(p: Path, key: bytes) -> str:
    try:
        st = p.stat()
        version = f"{st.st_size}|{st.st_mtime_ns}"
    except OSError:  # a DICOMDIR's reference to a file that is not there
        version = "missing"
    return pseudonym(f"{p.resolve()}|{version}", "file", key)


def _decode_job(path: str, size: int, gate: GateConfig, key: bytes, include_phi: bool) -> dict:
    """Runs in a worker: read, display pipeline, metadata gate, preprocessing."""
    t0 = time.perf_counter()
    p = Path(path)
    label = str(p) if include_phi else safe_path_label(p)
    out: dict = {"path": path, "file": label}
    try:
        img = read_dicom(p)
    except DicomReadError as e:
        detail = str(e)
        if not include_phi and detail.startswith(p.name + ":"):  # messages start with the file name
            detail = label + detail[len(p.name) :]
        out.update(status="error", error_reason=e.reason, error_detail=detail)
        out["decode_ms"] = (time.perf_counter() - t0) * 1e3
        return out
    except FileNotFoundError:
        out.update(status="error", error_reason="missing_file", error_detail=f"{label}: no such file")
        out["decode_ms"] = (time.perf_counter() - t0) * 1e3
        return out
    except (OSError, ValueError, MemoryError) as e:
        out.update(status="error", error_reason="unreadable", error_detail=type(e).__name__)
        out["decode_ms"] = (time.perf_counter() - t0) * 1e3
        return out
    m = img.meta
    out.update(
        instance_id=pseudonym(m.sop_uid, "instance", key),
        study_id=pseudonym(m.study_uid, "study", key),
        series_id=pseudonym(m.series_uid, "series", key),
        modality=m.modality,
        body_part=m.body_part,
        view_position=m.view_position,
        rows=m.rows,
        columns=m.columns,
    )
    if include_phi:
        out.update(
            patient_id=m.phi.get("PatientID", ""),
            patient_name=m.phi.get("PatientName", ""),
            study_id=m.study_uid,
            series_id=m.series_uid,
            instance_id=m.sop_uid,
        )
    pre = check_metadata(m, gate) or check_image(img, gate)
    if pre is not None:
        out.update(status="rejected", gate_stage=pre.stage, gate_reason=pre.reason)
    else:
        out["x"] = preprocess(img.gray, size)
        # the gate's final decision needs the model; keep what decide() needs besides p_chest
        out["status"] = "pending"
    out["decode_ms"] = (time.perf_counter() - t0) * 1e3
    return out


class _Inline:
    """A stand-in executor that runs jobs in the caller (workers=0, and tests)."""

    def submit(self, fn, *args):
        f: Future = Future()
        try:
            f.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001
            f.set_exception(e)
        return f

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def analyze(
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    predictor: Predictor | None = None,
    csv_path: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
    heatmaps: str | os.PathLike | None = None,
    workers: int = 2,
    batch_size: int = 16,
    include_phi: bool = False,
    progress: Callable[[int, int, dict], None] | None = None,
    limit: int | None = None,
) -> AnalyzeSummary:
    """Analyse every instance under `inputs` into the SQLite database `out`.

    progress(done, total, row) is called after each instance (row: the stored values, without
    pixels). Returns counts and timings. Re-running resumes: instances already in the database for
    this model version are skipped."""
    t_start = time.perf_counter()
    pred = predictor or load_default_model()
    key = pseudonym_key()
    version = pred.version
    gate = pred.gate_config
    con = open_db(out)
    # Files whose failure may be transient (an I/O error on a network share, a lost worker) are
    # tried again by a re-run; a file that is broken stays recorded and skipped.
    done_files = {
        r[0]
        for r in con.execute(
            "SELECT file_key FROM results WHERE model_version=? AND NOT (status='error' AND "
            f"COALESCE(error_reason, '') IN ({', '.join('?' * len(_RETRY_REASONS))}))",
            (version, *_RETRY_REASONS),
        )
    }
    done_instances = {
        r[0] for r in con.execute("SELECT instance_key FROM results WHERE model_version=?", (version,))
    }
    files = list(iter_inputs(inputs))
    if limit is not None:
        files = files[:limit]
    summary = AnalyzeSummary(total=len(files))
    todo = []
    for f in files:
        fk = _file_key(f, key)
        if fk in done_files:
            summary.skipped += 1
        else:
            todo.append((f, fk))
    log.info(
        "%d files, %d already analysed by model %s, %d to do", len(files), summary.skipped, version, len(todo)
    )
    if progress is not None and summary.skipped:
        progress(summary.skipped, summary.total, {"status": "skipped"})
    # A decoder that kills its worker process (a crash in a C codec on a damaged file) breaks the
    # whole pool, and every file in flight fails with it. Those files are retried in a fresh pool one
    # at a time, so that only the file that crashes a worker on its own is recorded as such.
    pool: list = [process_pool(workers) if workers > 0 else _Inline()]
    broken = [False]
    retry: deque[tuple[Path, str]] = deque()
    pending: dict[Future, tuple[Path, str, bool]] = {}
    window = max(2 * batch_size, 4 * max(workers, 1))
    it = iter(todo)
    ready: list[dict] = []
    done_count = summary.skipped
    try:

        def refill():
            while True:
                if broken[0]:
                    if pending:
                        return  # the broken pool's other futures have yet to fail
                    pool[0].shutdown(wait=True, cancel_futures=True)
                    pool[0], broken[0] = process_pool(workers), False
                if len(pending) >= window:
                    return
                if retry:
                    if pending:
                        return  # a suspect runs alone: if the pool breaks again, it is the cause
                    (f, fk), alone = retry.popleft(), True
                else:
                    try:
                        f, fk = next(it)
                    except StopIteration:
                        return
                    alone = False
                try:
                    fut = pool[0].submit(_decode_job, str(f), pred.size, gate, key, include_phi)
                except BrokenProcessPool:  # it broke before this file ran: not a suspect, resubmit
                    broken[0] = True
                    retry.appendleft((f, fk))
                    continue
                pending[fut] = (f, fk, alone)
                if alone:
                    return

        refill()
        while pending or ready:
            if pending:
                finished, _ = wait(
                    list(pending), timeout=None if len(ready) < batch_size else 0, return_when=FIRST_COMPLETED
                )
                for fut in finished:
                    f, fk, alone = pending.pop(fut)
                    try:
                        res = fut.result()
                    except BrokenProcessPool:
                        broken[0] = True
                        if not alone:
                            retry.append((f, fk))
                            continue
                        res = _error_row(f, "worker_crashed", "the decoding process died on this file")
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except BaseException as e:  # noqa: BLE001 - a worker failure must not stop the batch
                        res = _error_row(f, "worker_failed", type(e).__name__)
                    res["file_key"] = fk
                    ready.append(res)
                refill()
            if len(ready) >= batch_size or (not pending and ready):
                batch, ready = ready[:batch_size], ready[batch_size:]
                duplicates: list[dict] = []
                rows = _finish(batch, pred, gate, heatmaps, done_instances, version, key, summary, duplicates)
                _write(con, rows)
                for r in rows + duplicates:  # every file counts, so the progress reaches the total
                    done_count += 1
                    if progress is not None:
                        progress(done_count, summary.total, r)
    except KeyboardInterrupt:
        log.warning("interrupted: %d instances stored; re-run to resume", done_count)
        raise
    finally:
        pool[0].shutdown(wait=False, cancel_futures=True)
        summary.seconds = time.perf_counter() - t_start
        if csv_path:
            export_csv(con, csv_path, version)
        if json_path:
            export_json(con, json_path, version)
        con.close()
    log.info(
        "done: %d analysed (%d accepted, %d rejected, %d errors), %d skipped in %.1fs",
        summary.analysed,
        summary.accepted,
        summary.rejected,
        summary.errors,
        summary.skipped,
        summary.seconds,
    )
    return summary


def _error_row(f: Path, reason: str, detail: str) -> dict:
    return {
        "path": str(f),
        "file": safe_path_label(f),
        "status": "error",
        "error_reason": reason,
        "error_detail": detail,
    }


def _finish(
    batch: list[dict],
    pred: Predictor,
    gate: GateConfig,
    heatmaps,
    done_instances: set,
    version: str,
    key: bytes,
    summary: AnalyzeSummary,
    duplicates: list[dict] | None = None,
) -> list[dict]:
    """Inference for the batch's decoded images, then the rows to store. A file whose instance was
    already analysed (the same SOP Instance UID exported twice, or reached through a DICOMDIR and
    its folder) is not stored again: it is logged, counted as skipped and appended to
    `duplicates`."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    todo = [r for r in batch if r.get("status") == "pending"]
    infer_ms = 0.0
    if todo:
        t0 = time.perf_counter()
        probs = pred.probabilities(np.stack([r["x"] for r in todo]))
        infer_ms = (time.perf_counter() - t0) * 1e3 / len(todo)
        summary.infer_seconds += infer_ms * len(todo) / 1e3
        thr = pred.thresholds
        for r, p in zip(todo, probs):
            r["p_chest"] = float(p[-1])
            r["infer_ms"] = infer_ms
            if not np.isfinite(p).all():  # NaN >= threshold is False: it would read as "no finding"
                r.update(
                    status="error",
                    error_reason="model_output_not_finite",
                    error_detail=f"{r['file']}: the model returned NaN or inf",
                    p_chest=None,
                )
                continue
            if r["p_chest"] < gate.image_threshold:
                r.update(
                    status="rejected",
                    gate_stage="image",
                    gate_reason=f"image does not look like a frontal chest radiograph "
                    f"(p={r['p_chest']:.3f} < {gate.image_threshold:.3f})",
                )
                continue
            r["status"] = "accepted"
            for k, f in enumerate(FINDINGS):
                r[f"p_{f}"] = float(p[k])
                r[f"dx_{f}"] = int(p[k] >= thr[f])
            r["no_finding"] = int(not any(r[f"dx_{f}"] for f in FINDINGS))
            if heatmaps and any(r[f"dx_{f}"] for f in FINDINGS):
                try:  # the findings stand without their pictures: a failure here loses nothing else
                    r["heatmaps"] = json.dumps(_heatmaps(r, pred, heatmaps))
                except (DicomReadError, OSError, ValueError, MemoryError) as e:
                    log.warning("%s: heatmaps not written (%s)", r["file"], type(e).__name__)
    rows = []
    for r in batch:
        r.pop("x", None)
        r.pop("path")
        inst = r.get("instance_id") or ""
        r["instance_key"] = pseudonym(inst, "key", key) if inst else f"file:{r['file_key']}"
        if r["instance_key"] in done_instances:  # same instance reached through another path
            summary.skipped += 1
            log.warning("%s: duplicate of an instance already analysed (same SOP Instance UID)", r["file"])
            r["status"] = "duplicate"
            if duplicates is not None:
                duplicates.append(r)
            continue
        done_instances.add(r["instance_key"])
        r["model_version"] = version
        r["analysed_utc"] = now
        r["total_ms"] = float(r.get("decode_ms", 0.0)) + float(r.get("infer_ms", 0.0) or 0.0)
        summary.decode_seconds += float(r.get("decode_ms", 0.0)) / 1e3
        summary.analysed += 1
        st = r["status"]
        if st == "accepted":
            summary.accepted += 1
        elif st == "rejected":
            summary.rejected += 1
        else:
            summary.errors += 1
            summary.error_reasons[r["error_reason"]] = summary.error_reasons.get(r["error_reason"], 0) + 1
            log.warning("%s: %s", r["file"], r["error_reason"])
        rows.append(r)
    return rows


def _heatmaps(row: dict, pred: Predictor, out_dir) -> list[str]:
    from apps.dicom_dx.explain import gradcam, write_overlays

    img = read_dicom(row["path"])
    pos = [f for f in FINDINGS if row.get(f"dx_{f}")]
    cams = gradcam(pred, row["x"], pos, size=img.gray.shape)  # one resize, straight to the image's size
    stem = row.get("instance_id") or row["file_key"]
    return [str(p) for p in write_overlays(img, cams, out_dir, stem)]


def _write(con: sqlite3.Connection, rows: list[dict]) -> None:
    """Store a batch in one transaction, replacing the error row a previous run left for the same
    file (a retried transient failure, or a missing file that has appeared since)."""
    if not rows:
        return
    cols = list(SCHEMA_COLUMNS)
    sql = f"INSERT OR REPLACE INTO results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    with con:  # one transaction per batch
        con.executemany(
            "DELETE FROM results WHERE file=? AND model_version=? AND status='error'",
            [(r["file"], r["model_version"]) for r in rows],
        )
        con.executemany(sql, [tuple(r.get(c) for c in cols) for r in rows])


def _rows(con: sqlite3.Connection, version: str | None):
    cols = {r[1] for r in con.execute("PRAGMA table_info(results)")}
    where = " WHERE model_version=?" if version and "model_version" in cols else ""
    order = " ORDER BY file" if "file" in cols else " ORDER BY rowid"
    cur = con.execute("SELECT * FROM results" + where + order, (version,) if where else ())
    names = [d[0] for d in cur.description]
    return names, [dict(zip(names, r)) for r in cur]


def read_results(path: str | os.PathLike, model_version: str | None = None) -> list[dict]:
    """All rows of a results database (read-only; optionally one model version), ordered by file label."""
    con = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        return _rows(con, model_version)[1]
    finally:
        con.close()


def export_csv(con_or_path, path: str | os.PathLike, version: str | None = None) -> Path:
    con = open_db(con_or_path) if not isinstance(con_or_path, sqlite3.Connection) else con_or_path
    names, rows = _rows(con, version)
    names = [
        n for n in names if not (n in ("patient_id", "patient_name") and all(r[n] is None for r in rows))
    ]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=names, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return Path(path)


def export_json(con_or_path, path: str | os.PathLike, version: str | None = None) -> Path:
    con = open_db(con_or_path) if not isinstance(con_or_path, sqlite3.Connection) else con_or_path
    _, rows = _rows(con, version)
    Path(path).write_text(json.dumps(rows, indent=1))
    return Path(path)
