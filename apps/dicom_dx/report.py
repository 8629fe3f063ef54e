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
    if not src.get("StudyInstanceUID"):
        raise ValueError("the source has no Study Instance UID: a result cannot be filed into its study")
    ds = Dataset()
    # Values are decoded Python strings whatever the source's character set, so they are written
    # back in UTF-8 (PS3.3 C.12.1.1.2, ISO_IR 192), which holds any of them losslessly.
    ds.SpecificCharacterSet = "ISO_IR 192"
    # Patient and General Study attributes are type 2 (PS3.3 C.7.1.1, C.7.2.1): present, empty when
    # the source lacks them.
    for k in _COPY:
        v = src.get(k)
        if v is None:
            v = ""
        elif k in ("PatientName", "ReferringPhysicianName"):
            v = str(v)  # re-encoded in UTF-8, not written as the source's raw ISO 2022 bytes
        setattr(ds, k, v)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, 990, 1
    ds.SeriesDescription = series_description
    now = _dt.datetime.now(_dt.timezone.utc)
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = ds.ContentDate, ds.ContentTime
    ds.TimezoneOffsetFromUTC = "+0000"  # the times above are UTC (PS3.3 C.12.1.1.8)
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
    # Type 2 in the SR Document Series and SR Document General modules (PS3.3 C.17.1, C.17.2).
    ds.ReferencedPerformedProcedureStepSequence = Sequence([])
    ds.PerformedProcedureCodeSequence = Sequence([])
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
    """A Secondary Capture (e.g. a Grad-CAM overlay) in the source's study: rgb is (H, W, 3) uint8
    (written as RGB) or (H, W) uint8 (MONOCHROME2). Anything else raises ValueError, rather than
    writing pixel data that disagrees with Rows/Columns/Samples per Pixel, or truncating floats."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise ValueError(f"secondary capture pixels must be uint8, got {rgb.dtype}")
    if not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3)) or 0 in rgb.shape:
        raise ValueError(f"secondary capture pixels must be (H, W, 3) or (H, W), got {rgb.shape}")
    src = pydicom.dcmread(str(source), stop_before_pixels=True)
    ds = _base(src, SECONDARY_CAPTURE, "OT", description)
    ds.ConversionType = "WSD"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientOrientation = ""  # type 2C: no Image Orientation (Patient) here (PS3.3 C.7.6.1)
    rgb = np.ascontiguousarray(rgb)
    ds.Rows, ds.Columns = rgb.shape[:2]
    if rgb.ndim == 3:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = rgb.tobytes()
    ds.BurnedInAnnotation = "NO"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out
