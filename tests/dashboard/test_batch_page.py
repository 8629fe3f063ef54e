"""Batch analysis page through AppTest: browsing a results file (filters, summary, CSV), and a real
``analyze`` run on synthetic studies, resumed on the second run, once the app provides it."""

import csv
import sqlite3

import pytest

PAGE = "apps/dashboard/batch.py"


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def _results_db(path):
    """A results file in the usual one-row-per-instance shape (probability + decision per finding)."""
    rows = [("a1", "accepted", None, 0.91, 1, 0.10, 0),
            ("a2", "accepted", None, 0.05, 0, 0.80, 1),
            ("a3", "rejected", None, None, None, None, None),
            ("a4", "error", "truncated: pixel data is short", None, None, None, None)]
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE results (instance TEXT, gate TEXT, error TEXT, p_opacity REAL, "
                    "pos_opacity INTEGER, p_effusion REAL, pos_effusion INTEGER)")
        con.executemany("INSERT INTO results VALUES (?,?,?,?,?,?,?)", rows)
    return path


def _open_page(app, db, folder):
    app.switch_page(PAGE).run()
    app.text_input(key="batch_folder").input(str(folder)).run()
    app.text_input(key="batch_db").input(str(db)).run()
    return app


def test_results_table_filters_and_csv(app, tmp_path):
    db = _results_db(tmp_path / "r.sqlite")
    _open_page(app, db, tmp_path)
    assert not app.exception, app.exception
    assert "4 instances" in texts(app.subheader)
    table = app.dataframe[0].value
    assert list(table["instance"]) == ["a1", "a2", "a3", "a4"]
    app.multiselect(key="batch_filter_findings").select("opacity").run()
    assert list(app.dataframe[0].value["instance"]) == ["a1"]
    app.multiselect(key="batch_filter_findings").unselect("opacity").run()
    app.multiselect(key="batch_filter_gate").select("rejected").run()
    assert list(app.dataframe[0].value["instance"]) == ["a3"]
    app.multiselect(key="batch_filter_gate").unselect("rejected").run()
    app.checkbox(key="batch_filter_errors").check().run()
    assert list(app.dataframe[0].value["instance"]) == ["a4"]
    assert len(app.get("download_button")) == 1
    assert len(app.get("vega_lite_chart")) >= 2  # gate decisions, positives per finding (and errors)


def test_missing_folder_and_no_results(app, tmp_path):
    _open_page(app, tmp_path / "none.sqlite", tmp_path / "does-not-exist")
    assert not app.exception
    assert "No such folder" in texts(app.error)
    assert "No results yet" in texts(app.info)


def test_zip_upload_is_validated(app, tmp_path):
    app.switch_page(PAGE).run()
    app.radio(key="batch_how").set_value("Upload a zip").run()
    app.file_uploader(key="batch_zip").set_value(("studies.zip", b"PK\x03\x04broken", "application/zip"))
    app.run()
    assert not app.exception
    assert "not a readable zip" in texts(app.error)


def test_analyze_runs_and_resumes(app, tmp_path, monkeypatch):
    from apps.dashboard import common

    if common.resolve("dicom_dx", "analyze", "analyze", "batch") is None:
        pytest.skip("apps.dicom_dx.analyze not available yet")
    analyze_mod = pytest.importorskip("apps.dicom_dx.analyze")
    inference = pytest.importorskip("apps.dicom_dx.inference")
    if not (inference.ASSETS / "model.safetensors").exists():
        # the pipeline is what is tested here, not the weights: a tiny untrained model of the app's own
        tiny = inference.untrained_predictor(size=64)
        monkeypatch.setattr(analyze_mod, "load_default_model", lambda *a, **k: tiny)
    synth = pytest.importorskip("apps.dicom_dx.synth")
    folder = tmp_path / "studies"
    synth.generate(folder, n=2, seed=2, negatives=1, size_range=(300, 360), render_max=256)
    (folder / "broken.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00")  # a broken file
    n_files = len(list(csv.DictReader(open(folder / "labels.csv")))) + 1
    db = tmp_path / "out.sqlite"
    _open_page(app, db, folder)
    app.button(key="batch_run").click().run(timeout=300)
    assert not app.exception, app.exception
    assert not [e for e in app.error if "failed" in str(e.value)], texts(app.error)
    assert f"{n_files} instances" in texts(app.subheader)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["total"] == str(n_files) and metrics["errors"] == "1" and metrics["skipped"] == "0"
    first = app.dataframe[0].value
    assert set(first["status"]) <= {"accepted", "rejected", "error"}
    assert "patient_name" not in first.columns
    app.button(key="batch_run").click().run(timeout=300)  # resumes: nothing new, nothing lost
    assert not app.exception
    assert f"{n_files} instances" in texts(app.subheader)
    assert len(app.dataframe[0].value) == len(first)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["skipped"] == str(n_files) and metrics["analysed"] == "0"
