"""Batch analysis edge cases found in an audit: how files are found, DICOMDIRs that point nowhere
or cannot be read, duplicates, crashing workers. Every input file must end up as a row or a count."""

import logging
import os
import sqlite3
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from apps.dicom_dx.analyze import analyze, iter_inputs

PATIENT_NAME, PATIENT_ID = "Roe^Richard", "MRN-77123"


def _instance(seed: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = PATIENT_NAME, PATIENT_ID, "DX"
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20260101", "120000", "1"
    ds.SeriesNumber = ds.InstanceNumber = 1
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.random.default_rng(seed).integers(0, 4096, (16, 16), dtype=np.uint16).tobytes()
    return ds


def _write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def _rows(db):
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    return [dict(r) for r in con.execute("SELECT * FROM results")]


def test_files_named_by_uid_or_scanner_convention_are_found(tmp_path):
    """A suffix that is not .dcm says nothing: PACS exports name files by SOP Instance UID."""
    uid_named = _write(_instance(0), tmp_path / "1.2.840.113619.2.55.3.604688119.868.12345.5")
    ima = _write(_instance(1), tmp_path / "sub" / "IM_0001.IMA")
    bare = _write(_instance(2), tmp_path / "I0000123")
    (tmp_path / "labels.csv").write_text("a,b\n1,2\n")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (tmp_path / "notes.1").write_text("not an instance, despite its suffix")
    assert sorted(iter_inputs([tmp_path])) == sorted([uid_named, ima, bare])


def _fileset(tmp_path: Path, n: int = 3) -> Path:
    fs = FileSet()
    for i in range(n):
        fs.add(_instance(10 + i))
    fs.write(tmp_path / "cd")
    return tmp_path / "cd" / "DICOMDIR"


def test_dicomdir_with_a_missing_instance_records_it_and_goes_on(tmp_path, tiny_predictor):
    dicomdir = _fileset(tmp_path)
    files = list(iter_inputs([dicomdir]))
    assert len(files) == 3
    files[1].unlink()  # a partial copy of a CD
    s = analyze([dicomdir], tmp_path / "r.sqlite", predictor=tiny_predictor, workers=0)
    rows = _rows(tmp_path / "r.sqlite")
    assert s.total == s.analysed == len(rows) == 3
    assert sorted(r["error_reason"] or "ok" for r in rows) == ["missing_file", "ok", "ok"]


def test_dicomdir_on_a_lower_case_iso9660_mount_resolves(tmp_path, tiny_predictor):
    """File IDs are upper case; Linux shows a plain ISO 9660 disc in lower case (map=normal)."""
    dicomdir = _fileset(tmp_path)
    root = dicomdir.parent
    for d in sorted((p for p in root.rglob("*") if p != dicomdir), key=lambda p: -len(p.parts)):
        d.rename(d.with_name(d.name.lower()))
    files = list(iter_inputs([dicomdir]))
    assert len(files) == 3 and all(f.is_file() for f in files)
    s = analyze([dicomdir], tmp_path / "r.sqlite", predictor=tiny_predictor, workers=0)
    assert s.analysed == 3 and s.errors == 0


def test_unreadable_dicomdir_is_an_error_row_not_a_crash(tmp_path, tiny_predictor):
    bad = tmp_path / "disc" / "DICOMDIR"
    bad.parent.mkdir()
    bad.write_bytes(b"this is not a DICOMDIR" * 20)
    good = _write(_instance(3), tmp_path / "other" / "a.dcm")
    s = analyze([bad, good], tmp_path / "r.sqlite", predictor=tiny_predictor, workers=0)
    rows = _rows(tmp_path / "r.sqlite")
    assert s.total == s.analysed == len(rows) == 2
    assert sorted(r["error_reason"] or "ok" for r in rows) == ["not_dicom", "ok"]


def test_duplicate_instances_are_counted_and_reported(tmp_path, tiny_predictor, caplog):
    ds = _instance(4)
    a = _write(ds, tmp_path / "a" / "x.dcm")
    _write(ds, tmp_path / "b" / "x.dcm")  # the same SOP Instance, exported twice
    _write(_instance(5), tmp_path / "c.dcm")
    seen = []
    with caplog.at_level(logging.INFO, logger="apps.dicom_dx.analyze"):
        s = analyze(
            [tmp_path],
            tmp_path / "r.sqlite",
            predictor=tiny_predictor,
            workers=0,
            progress=lambda d, t, r: seen.append((d, t)),
        )
    assert s.total == 3 and s.analysed == 2 and s.skipped == 1 and len(_rows(tmp_path / "r.sqlite")) == 2
    assert seen[-1] == (3, 3)  # the progress bar reaches the end
    assert "duplicate" in caplog.text
    assert PATIENT_NAME not in caplog.text and PATIENT_ID not in caplog.text and a.name not in caplog.text


@pytest.mark.skipif(os.name != "posix", reason="needs fork to patch the workers")
def test_a_crashing_decoder_loses_only_its_own_file(tmp_path, tiny_predictor, monkeypatch):
    """A decoder that kills its worker process (a segfault in a C codec) breaks the process pool:
    the other files in flight must still be analysed, the culprit recorded, the batch finished."""
    import apps.dicom_dx.analyze as an

    for i in range(6):
        _write(_instance(20 + i), tmp_path / "in" / f"{i}.dcm")
    real = an.read_dicom

    def crashing(path, *args, **kw):
        if Path(path).name == "2.dcm":
            os._exit(11)
        return real(path, *args, **kw)

    monkeypatch.setattr(an, "read_dicom", crashing)
    # Forked workers inherit the patch (a spawned one would import the real read_dicom); other
    # tests may leave idle executor threads behind, which would make process_pool choose spawn.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    fork = multiprocessing.get_context("fork")
    monkeypatch.setattr(an, "process_pool", lambda n: ProcessPoolExecutor(n, mp_context=fork))
    s = analyze([tmp_path / "in"], tmp_path / "r.sqlite", predictor=tiny_predictor, workers=2, batch_size=2)
    rows = _rows(tmp_path / "r.sqlite")
    assert s.total == s.analysed == len(rows) == 6
    bad = [r for r in rows if r["status"] == "error"]
    assert len(bad) == 1 and bad[0]["error_reason"] == "worker_crashed"
    # a re-run retries nothing that was analysed and keeps the crash recorded
    s2 = analyze([tmp_path / "in"], tmp_path / "r.sqlite", predictor=tiny_predictor, workers=0)
    assert s2.skipped == 6


def test_labels_keep_no_part_of_a_name_that_looks_like_an_extension(tmp_path, tiny_predictor, caplog):
    """Files named "Smith.John" (patient name exports) or by UID: Path.suffix is ".John" or the
    UID's last component, which the safe label must not carry."""
    _write(_instance(30), tmp_path / "in" / "Smith.John")
    (tmp_path / "in" / "Doe.Jane").write_bytes(b"DICM" * 10)  # .dcm-less and broken: an error row
    (tmp_path / "in" / "Doe.Jane.dcm").write_bytes(b"\x08\x00\x05\x00" + bytes(20))
    with caplog.at_level(logging.INFO):
        analyze([tmp_path / "in"], tmp_path / "r.sqlite", predictor=tiny_predictor, workers=0)
    rows = _rows(tmp_path / "r.sqlite")
    text = caplog.text + repr(rows)
    assert len(rows) == 2 and "John" not in text and "Jane" not in text and "Smith" not in text
    assert {r["file"].rsplit(".", 1)[-1] for r in rows if "." in r["file"]} == {"dcm"}


def test_transient_failures_are_retried_and_leave_no_stale_row(tmp_path, tiny_predictor, monkeypatch):
    """An I/O error (a network share dropping) is not a verdict on the file: re-running must try it
    again, and a file missing from a DICOMDIR that appears later must replace its error row."""
    import apps.dicom_dx.analyze as an

    for i in range(3):
        _write(_instance(40 + i), tmp_path / "in" / f"{i}.dcm")
    real = an.read_dicom

    def flaky(path, *args, **kw):
        if Path(path).name == "1.dcm":
            raise OSError("share went away")
        return real(path, *args, **kw)

    monkeypatch.setattr(an, "read_dicom", flaky)
    db = tmp_path / "r.sqlite"
    s = analyze([tmp_path / "in"], db, predictor=tiny_predictor, workers=0)
    assert s.errors == 1 and [r["error_reason"] for r in _rows(db) if r["error_reason"]] == ["unreadable"]
    monkeypatch.setattr(an, "read_dicom", real)
    s2 = analyze([tmp_path / "in"], db, predictor=tiny_predictor, workers=0)
    rows = _rows(db)
    assert s2.skipped == 2 and s2.analysed == 1 and s2.errors == 0
    assert len(rows) == 3 and not [r for r in rows if r["status"] == "error"]
    # a broken file stays recorded and skipped
    (tmp_path / "in" / "3.dcm").write_bytes(b"\x08\x00\x05\x00" + bytes(20))
    analyze([tmp_path / "in"], db, predictor=tiny_predictor, workers=0)
    s4 = analyze([tmp_path / "in"], db, predictor=tiny_predictor, workers=0)
    assert s4.skipped == 4 and len(_rows(db)) == 4
    # a DICOMDIR's missing file that shows up later replaces its error row
    dicomdir = _fileset(tmp_path / "disc", 2)
    first = list(iter_inputs([dicomdir]))[0]
    kept = first.read_bytes()
    first.unlink()
    analyze([dicomdir], db, predictor=tiny_predictor, workers=0)
    assert [r["error_reason"] for r in _rows(db)].count("missing_file") == 1
    first.write_bytes(kept)
    analyze([dicomdir], db, predictor=tiny_predictor, workers=0)
    rows = _rows(db)
    assert len(rows) == 6 and "missing_file" not in [r["error_reason"] for r in rows]


def test_non_finite_model_output_is_never_reported_as_no_finding(tmp_path, tiny_predictor, monkeypatch):
    """NaN >= threshold is False: NaN probabilities read as "accepted, no finding" without a check."""
    from apps.dicom_dx import inference

    _write(_instance(50), tmp_path / "in" / "a.dcm")
    monkeypatch.setattr(type(tiny_predictor), "probabilities", lambda self, x: np.full((len(x), 6), np.nan))
    analyze([tmp_path / "in"], tmp_path / "r.sqlite", predictor=tiny_predictor, workers=0)
    (row,) = _rows(tmp_path / "r.sqlite")
    assert row["status"] == "error" and row["error_reason"] == "model_output_not_finite"
    assert row["no_finding"] is None and row["p_opacity"] is None
    res = inference.predict(tmp_path / "in" / "a.dcm", tiny_predictor)
    assert not res.accepted and not res.findings and res.no_finding is None


def test_a_decoder_panic_does_not_stop_the_batch(tmp_path, tiny_predictor, overlong_rle):
    """A Rust decoder's panic is a BaseException: it escaped read_dicom and the batch's handlers."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "damaged_rle.dcm").write_bytes(overlong_rle)
    _write(_instance(60), tmp_path / "in" / "good.dcm")
    s = analyze([tmp_path / "in"], tmp_path / "r.sqlite", predictor=tiny_predictor, workers=0)
    assert s.analysed == 2 and s.errors == 0


def test_a_heatmap_failure_keeps_the_findings_and_the_batch(tmp_path, tiny_predictor, monkeypatch, caplog):
    """Heatmaps re-read the file in the main process: a file moved away by then (or a full disk)
    raised out of analyze and stopped the batch."""
    import dataclasses

    import apps.dicom_dx.analyze as an

    for i in range(3):
        _write(_instance(70 + i), tmp_path / "in" / f"{i}.dcm")
    card = dict(tiny_predictor.card, thresholds=dict.fromkeys(tiny_predictor.card["thresholds"], 0.0))
    everything_positive = dataclasses.replace(tiny_predictor, card=card)
    real, calls = an.read_dicom, {}

    def second_read_fails(path, *args, **kw):
        calls[str(path)] = calls.get(str(path), 0) + 1
        if Path(path).name == "1.dcm" and calls[str(path)] > 1:
            raise FileNotFoundError(path)
        return real(path, *args, **kw)

    monkeypatch.setattr(an, "read_dicom", second_read_fails)
    with caplog.at_level(logging.WARNING):
        s = analyze(
            [tmp_path / "in"],
            tmp_path / "r.sqlite",
            predictor=everything_positive,
            workers=0,
            heatmaps=tmp_path / "maps",
        )
    rows = _rows(tmp_path / "r.sqlite")
    assert s.analysed == 3 and all(r["status"] == "accepted" for r in rows)
    assert sorted(bool(r["heatmaps"]) for r in rows) == [False, True, True]
    assert "heatmaps not written" in caplog.text
