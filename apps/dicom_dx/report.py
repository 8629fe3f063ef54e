"""Results back to PACS as DICOM: a Basic Text SR (PS3.3 A.35.1) with the gate decision and findings,
and a Secondary Capture image (PS3.3 A.8) of a Grad-CAM overlay, both in the source's study.

These objects must carry the source's Patient and Study modules to file into the right study, so they
contain patient identity by construction: writing them is an explicit call, never a default output.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from apps.dicom_dx.inference import Prediction
from apps.dicom_dx.io import _no_warnings  # pydicom's validation warnings quote patient values
from apps.dicom_dx.synth import FINDINGS

__all__ = ["write_text_sr", "write_secondary_capture"]

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_COPY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def _code(value: str, meaning: str, scheme: str = "99DCMDX") -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def _base(src: Dataset, sop_class: str, modality: str, series_description: str) -> Dataset:
    ds = Dataset()
    for k in _COPY:
        if k in src:
            setattr(ds, k, src.data_element(k).value)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, 990, 1
    ds.SeriesDescription = series_description
    now = _dt.datetime.now(_dt.timezone.utc)
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.Manufacturer = "dlsuite dicom_dx"
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = fm
    return ds


def _text(name: str, text: str, rel: str = "CONTAINS") -> Dataset:
    it = Dataset()
    it.RelationshipType, it.ValueType = rel, "TEXT"
    it.ConceptNameCodeSequence = Sequence([_code(name.upper()[:16], name)])
    it.TextValue = text
    return it


@_no_warnings
def write_text_sr(source: str | Path, prediction: Prediction, out: str | Path) -> Path:
    """A Basic Text SR referencing the source instance: gate decision, then one TEXT item per finding
    (probability, threshold, decision). Not for diagnostic use: the text says so."""
    src = pydicom.dcmread(str(source), stop_before_pixels=True)
    ds = _base(src, BASIC_TEXT_SR, "SR", "AI findings (dicom_dx)")
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([_code("DXREPORT", "Chest radiograph AI findings")])
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = src.SOPClassUID, src.SOPInstanceUID
    img = Dataset()
    img.RelationshipType, img.ValueType = "CONTAINS", "IMAGE"
    img.ConceptNameCodeSequence = Sequence([_code("SOURCE", "Source image")])
    img.ReferencedSOPSequence = Sequence([ref])
    items = [
        img,
        _text("Model", f"dicom_dx model {prediction.model_version}; research use only, not a diagnosis"),
    ]
    if not prediction.accepted:
        items.append(_text("Gate", f"input rejected: {prediction.gate.reason}"))
    else:
        for f in FINDINGS:
            p, t = prediction.probabilities[f], prediction.thresholds[f]
            items.append(
                _text(
                    f,
                    f"{'POSITIVE' if prediction.findings[f] else 'negative'} (p={p:.3f}, threshold {t:.3f})",
                )
            )
        items.append(_text("No finding", "yes" if prediction.no_finding else "no"))
    ds.ContentSequence = Sequence(items)
    ev = Dataset()
    ev.StudyInstanceUID = src.StudyInstanceUID
    ser = Dataset()
    ser.SeriesInstanceUID = src.SeriesInstanceUID
    ser.ReferencedSOPSequence = Sequence([ref])
    ev.ReferencedSeriesSequence = Sequence([ser])
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([ev])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out


@_no_warnings
def write_secondary_capture(
    source: str | Path, rgb: np.ndarray, out: str | Path, description: str = "AI heatmap (dicom_dx)"
) -> Path:
    """An RGB Secondary Capture (e.g. a Grad-CAM overlay, (H, W, 3) uint8) in the source's study."""
    src = pydicom.dcmread(str(source), stop_before_pixels=True)
    ds = _base(src, SECONDARY_CAPTURE, "OT", description)
    ds.ConversionType = "WSD"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    rgb = np.ascontiguousarray(rgb, np.uint8)
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = rgb.tobytes()
    ds.BurnedInAnnotation = "NO"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out
