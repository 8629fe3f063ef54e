"""Batch analysis edge cases found in an audit: how files are found, DICOMDIRs that point nowhere
or cannot be read, duplicates, crashing workers. Every input file must end up as a row or a count."""

import sqlite3
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from apps.dicom_dx.analyze import iter_inputs

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
