"""Batch analysis: SQLite rows, resume, broken files, DICOMDIR, no PHI in logs or outputs."""

import logging
import shutil
import sqlite3

import pydicom
import pytest
from pydicom.data import get_testdata_file

from apps.dicom_dx.analyze import analyze, iter_inputs


@pytest.fixture()
def folder(tiny_synth, tmp_path):
    d = tmp_path / "in"
    shutil.copytree(tiny_synth, d)
    data = (d / "chest" / "000000.dcm").read_bytes()
    (d / "broken.dcm").write_bytes(data[: len(data) // 2])
    (d / "notes.txt").write_text("not an instance")
    return d


def _rows(db):
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    return [dict(r) for r in con.execute("SELECT * FROM results")]


def test_rows_resume_and_broken_file(folder, tmp_path, tiny_predictor, caplog):
    db = tmp_path / "r.sqlite"
    seen = []
    with caplog.at_level(logging.DEBUG):
        s = analyze(
            [folder],
            db,
            predictor=tiny_predictor,
            workers=0,
            batch_size=4,
            csv_path=tmp_path / "r.csv",
            json_path=tmp_path / "r.json",
            progress=lambda d, t, r: seen.append((d, t)),
        )
    rows = _rows(db)
    assert s.total == 16 and s.analysed == 16 and len(rows) == 16 and seen[-1] == (16, 16)
    broken = [r for r in rows if r["status"] == "error"]
    assert len(broken) == 1 and broken[0]["error_reason"] == "truncated"
    rejected = {r["gate_reason"] for r in rows if r["status"] == "rejected"}
    assert any("modality CT" in x for x in rejected) and any("KNEE" in x for x in rejected)
    accepted = [r for r in rows if r["status"] == "accepted"]
    assert accepted and all(r["p_opacity"] is not None and r["dx_opacity"] in (0, 1) for r in accepted)
    assert all(r["p_opacity"] is None for r in rows if r["status"] != "accepted")
    # No patient name, patient ID, real UID or file name anywhere in the outputs and logs.
    phi = []
    for f in folder.rglob("*.dcm"):
        if f.name == "broken.dcm":
            continue
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        phi += [str(ds.PatientName), str(ds.PatientID), str(ds.SOPInstanceUID), str(ds.StudyInstanceUID)]
    text = caplog.text + (tmp_path / "r.csv").read_text() + (tmp_path / "r.json").read_text() + repr(rows)
    assert phi and not [p for p in phi if p in text]
    assert "broken.dcm" not in text and "000000.dcm" not in text
    # Re-run: everything is skipped, nothing duplicated.
    s2 = analyze([folder], db, predictor=tiny_predictor, workers=0)
    assert s2.skipped == 16 and s2.analysed == 0 and len(_rows(db)) == 16


def test_interrupted_run_resumes_without_loss(folder, tmp_path, tiny_predictor):
    db = tmp_path / "r.sqlite"

    def stop(done, total, row):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        analyze([folder], db, predictor=tiny_predictor, workers=0, batch_size=4, progress=stop)
    first = len(_rows(db))
    assert 4 <= first < 16  # the batches committed before the interrupt are kept
    s = analyze([folder], db, predictor=tiny_predictor, workers=0, batch_size=4)
    assert s.skipped == first and len(_rows(db)) == 16


def test_parallel_workers_give_the_same_rows(folder, tmp_path, tiny_predictor):
    analyze([folder], tmp_path / "a.sqlite", predictor=tiny_predictor, workers=0)
    analyze([folder], tmp_path / "b.sqlite", predictor=tiny_predictor, workers=2)
    key = lambda r: r["instance_key"]  # noqa: E731
    a, b = sorted(_rows(tmp_path / "a.sqlite"), key=key), sorted(_rows(tmp_path / "b.sqlite"), key=key)
    assert [r["status"] for r in a] == [r["status"] for r in b]
    # batches are composed differently (completion order): float32 sums differ in the last bits
    assert [r["p_chest"] for r in a] == pytest.approx([r["p_chest"] for r in b], abs=1e-5)


def test_include_phi_opt_in(folder, tmp_path, tiny_predictor):
    analyze([folder / "chest"], tmp_path / "p.sqlite", predictor=tiny_predictor, workers=0, include_phi=True)
    rows = _rows(tmp_path / "p.sqlite")
    ds = pydicom.dcmread(folder / "chest" / "000000.dcm", stop_before_pixels=True)
    assert str(ds.PatientName) in {r["patient_name"] for r in rows}


def test_dicomdir_input_expands_to_its_instances(tmp_path, tiny_predictor):
    dicomdir = get_testdata_file("DICOMDIR", download=False)
    files = list(iter_inputs([dicomdir]))
    assert len(files) > 10 and all(f.exists() for f in files)
    s = analyze([dicomdir], tmp_path / "d.sqlite", predictor=tiny_predictor, workers=0)
    rows = _rows(tmp_path / "d.sqlite")
    assert s.analysed == len(rows) == len(files)
    assert all(r["status"] == "rejected" for r in rows)  # CT, MR, and 16x16 CR images


def test_missing_input_is_a_usage_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(iter_inputs([tmp_path / "nope"]))


def test_read_results_and_package_api(folder, tmp_path, tiny_predictor):
    import apps.dicom_dx as dx

    analyze([folder / "chest"], tmp_path / "q.sqlite", predictor=tiny_predictor, workers=0)
    rows = dx.read_results(tmp_path / "q.sqlite")
    assert len(rows) == 6 and {"status", "p_opacity", "gate_reason"} <= set(rows[0])
    for name in (
        "read_dicom",
        "predict",
        "overlay",
        "read_results",
        "load_default_model",
        "sample_files",
        "model_card",
    ):
        assert name in dir(dx) and callable(getattr(dx, name))
    assert len(dx.sample_files()) >= 5 and dx.model_card()["findings"] == list(dx.FINDINGS)


def test_heatmaps_for_positive_findings(folder, tmp_path, tiny_predictor):
    import dataclasses

    card = dict(tiny_predictor.card, thresholds=dict.fromkeys(tiny_predictor.card["thresholds"], 0.0))
    everything_positive = dataclasses.replace(tiny_predictor, card=card)
    analyze(
        [folder / "chest"],
        tmp_path / "h.sqlite",
        predictor=everything_positive,
        workers=0,
        heatmaps=tmp_path / "maps",
    )
    rows = _rows(tmp_path / "h.sqlite")
    pngs = sorted((tmp_path / "maps").glob("*.png"))
    assert len(pngs) == 6 * 5 and all(r["heatmaps"] for r in rows)
    assert not [p for p in pngs if "000000" in p.name]  # named by pseudonymous instance id


def test_workers_spawned_from_a_threaded_host(folder, tmp_path, tiny_predictor):
    """Inside a multi-threaded server (Streamlit) the pool must spawn, not fork."""
    import threading

    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        s = analyze([folder / "chest"], tmp_path / "t.sqlite", predictor=tiny_predictor, workers=2)
    finally:
        stop.set()
    assert s.analysed == 6 and s.errors == 0
