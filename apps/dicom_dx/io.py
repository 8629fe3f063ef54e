"""Reading one DICOM instance: a path or bytes in, a display-ready image and its metadata out, or a
typed error that names the reason.

Decoding goes through pydicom 3 and its pixel-decoder plugins. We pick, per transfer syntax, the
permissively licensed decoder first (GDCM, BSD; pylibjpeg-openjpeg, MIT; pyjpegls, MIT;
pylibjpeg-rle, MIT; Pillow, HPND) and only fall back to others (e.g. pylibjpeg-libjpeg, GPL-3) if
those are absent or fail. Only the requested frame of a multi-frame file is decoded.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.pixels import pixel_array as _pixel_array
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from apps.dicom_dx.codestream import frame_codestream, jpeg_marker_problem
from apps.dicom_dx.pipeline import Window, apply_window, display, frame_dataset

__all__ = [
    "DicomReadError",
    "NotDicomError",
    "NonImageObjectError",
    "NoPixelDataError",
    "TruncatedFileError",
    "InvalidAttributeError",
    "UnsupportedTransferSyntaxError",
    "DecodeError",
    "DicomMeta",
    "DicomImage",
    "read_dicom",
    "read_header",
    "decoder_report",
]

Source = str | os.PathLike | bytes | bytearray | BinaryIO


class DicomReadError(Exception):
    """Any failure to turn a file into an image. `reason` is a short machine-readable code
    (stored in the analysis database); str(error) is a sentence for people. Messages never
    carry patient attributes."""

    reason = "unreadable"

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class NotDicomError(DicomReadError):
    reason = "not_dicom"


class NonImageObjectError(DicomReadError):
    """A valid DICOM object that is not an image: SR, RT plan, ECG waveform, DICOMDIR, ..."""

    reason = "non_image"


class NoPixelDataError(DicomReadError):
    reason = "no_pixel_data"


class TruncatedFileError(DicomReadError):
    reason = "truncated"


class InvalidAttributeError(DicomReadError):
    """An element whose value does not fit its VR, or missing/contradictory group 0028 attributes."""

    reason = "invalid_attribute"


class UnsupportedTransferSyntaxError(DicomReadError):
    reason = "unsupported_transfer_syntax"


class DecodeError(DicomReadError):
    reason = "decode_failed"


# Storage SOP classes (PS3.4 B.5) that never carry a displayable image, by name fragment.
_NON_IMAGE_MODALITIES = {
    "SR": "structured report",
    "RTPLAN": "RT plan",
    "RTSTRUCT": "RT structure set",
    "ECG": "ECG waveform",
    "HD": "hemodynamic waveform",
    "KO": "key object selection",
    "PR": "presentation state",
    "RTRECORD": "RT treatment record",
    "AU": "audio",
    "DOC": "encapsulated document",
}
_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

# Decoder preference per transfer syntax (permissive licences first; see module docstring).
_JPEG = ("gdcm", "pillow", "pylibjpeg")
_PLUGIN_ORDER: dict[str, tuple[str, ...]] = {
    "1.2.840.10008.1.2.4.50": ("pillow", "gdcm", "pylibjpeg"),  # baseline 8-bit
    "1.2.840.10008.1.2.4.51": _JPEG,  # extended 12-bit
    "1.2.840.10008.1.2.4.57": ("gdcm", "pylibjpeg"),  # lossless
    "1.2.840.10008.1.2.4.70": ("gdcm", "pylibjpeg"),  # lossless SV1
    "1.2.840.10008.1.2.4.80": ("pyjpegls", "gdcm", "pylibjpeg"),
    "1.2.840.10008.1.2.4.81": ("pyjpegls", "gdcm", "pylibjpeg"),
    "1.2.840.10008.1.2.4.90": ("gdcm", "pylibjpeg", "pillow"),  # GDCM's OpenJPEG is ~2x faster here
    "1.2.840.10008.1.2.4.91": ("gdcm", "pylibjpeg", "pillow"),
    "1.2.840.10008.1.2.4.201": ("pylibjpeg",),  # HTJ2K (openjpeg)
    "1.2.840.10008.1.2.4.202": ("pylibjpeg",),
    "1.2.840.10008.1.2.4.203": ("pylibjpeg",),
    "1.2.840.10008.1.2.5": ("pylibjpeg", "pydicom"),  # pylibjpeg → pylibjpeg-rle here
}


@dataclass
class DicomMeta:
    """The attributes the app keeps. Spacing in mm (row spacing, column spacing); `spacing_source`
    says which attribute gave it (PixelSpacing is at the patient, ImagerPixelSpacing at the
    detector: PS3.3 10.7.1.3). Patient attributes live in `phi`, kept out of repr and logs."""

    modality: str = ""
    body_part: str = ""
    view_position: str = ""
    photometric: str = ""
    pixel_spacing: tuple[float, float] | None = None
    spacing_source: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    sop_class_uid: str = ""
    transfer_syntax: str = ""
    rows: int = 0
    columns: int = 0
    n_frames: int = 1
    bits_allocated: int = 0
    bits_stored: int = 0
    signed: bool = False
    samples_per_pixel: int = 1
    series_description: str = ""
    phi: dict[str, str] = field(default_factory=dict, repr=False)

    def public(self) -> dict:
        """The metadata as a dict without patient attributes (safe to log or store)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "phi"}
        d["pixel_spacing"] = list(self.pixel_spacing) if self.pixel_spacing else None
        return d


@dataclass
class DicomImage:
    """One decoded frame.

    image: float32 (H, W) in [0, 1] after the display pipeline (1 = bright), or (H, W, 3) RGB in
        [0, 1] for colour files.
    values: float32 (H, W) modality values (e.g. HU) for grayscale files, None for colour.
    mask: bool (H, W) padding pixels, or None.
    window: the VOI window used (None for colour or a VOI LUT Sequence).
    """

    image: np.ndarray
    meta: DicomMeta
    values: np.ndarray | None = None
    mask: np.ndarray | None = None
    window: Window | None = None
    frame: int = 0

    @property
    def gray(self) -> np.ndarray:
        """(H, W) float32 luminance in [0, 1] (ITU-R BT.601 weights for colour images)."""
        if self.image.ndim == 2:
            return self.image
        return (self.image[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)

    @property
    def is_color(self) -> bool:
        return self.image.ndim == 3


class _WithholdValues(logging.Filter):
    """pydicom's validation warnings quote the offending value ("Invalid value for VR UI: '1.2.03'"),
    which may be a patient's UID, birth date or age. The value is withheld from the log record:
    logs never carry patient attributes. (Installed on the "pydicom" logger at import.)"""

    _quoted = re.compile(r"(Invalid value for VR \w+: |Value )(?:'[^']*'|\"[^\"]*\")")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "Invalid value for VR" in msg or "is not valid for elements with a VR" in msg:
            record.msg, record.args = self._quoted.sub(r"\1<value withheld>", msg), ()
        return True


if not any(isinstance(f, _WithholdValues) for f in logging.getLogger("pydicom").filters):
    logging.getLogger("pydicom").addFilter(_WithholdValues())


def _no_warnings(fn):
    """Run a reader with Python warnings silenced: pydicom also issues each validation message
    (value included) through warnings.warn, which would print it on stderr."""

    @functools.wraps(fn)
    def quiet(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return quiet


def _str(ds: Dataset, name: str) -> str:
    v = ds.get(name)
    return "" if v is None else str(v).strip()


def _meta(ds: Dataset) -> DicomMeta:
    spacing, src = None, ""
    # Enhanced multi-frame objects keep Pixel Spacing in the Pixel Measures functional group.
    measures = [ds]
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        try:
            measures += list(ds.get(groups)[0].get("PixelMeasuresSequence") or [])[:1]
        except (TypeError, IndexError, AttributeError):
            pass
    for holder, name in [(d, n) for d in measures for n in ("PixelSpacing", "ImagerPixelSpacing")]:
        try:
            v = holder.get(name)
            if v is not None and len(v) >= 2 and float(v[0]) > 0 and float(v[1]) > 0:
                spacing, src = (float(v[0]), float(v[1])), name
                break
        except (TypeError, ValueError):
            continue
    fm = getattr(ds, "file_meta", None)
    ts = str(fm.get("TransferSyntaxUID", "")) if fm is not None else ""
    sop_class = _str(ds, "SOPClassUID") or (str(fm.get("MediaStorageSOPClassUID", "")) if fm else "")

    def _int(name: str, default: int = 0) -> int:
        try:
            return int(ds.get(name, default) or default)
        except (TypeError, ValueError):
            return default

    phi = {
        k: _str(ds, k)
        for k in (
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "PatientSex",
            "AccessionNumber",
            "InstitutionName",
            "ReferringPhysicianName",
        )
        if _str(ds, k)
    }
    return DicomMeta(
        modality=_str(ds, "Modality").upper(),
        body_part=_str(ds, "BodyPartExamined").upper(),
        view_position=_str(ds, "ViewPosition").upper(),
        photometric=_str(ds, "PhotometricInterpretation"),
        pixel_spacing=spacing,
        spacing_source=src,
        study_uid=_str(ds, "StudyInstanceUID"),
        series_uid=_str(ds, "SeriesInstanceUID"),
        sop_uid=_str(ds, "SOPInstanceUID"),
        sop_class_uid=sop_class,
        transfer_syntax=ts,
        rows=_int("Rows"),
        columns=_int("Columns"),
        n_frames=max(1, _int("NumberOfFrames", 1)),
        bits_allocated=_int("BitsAllocated"),
        bits_stored=_int("BitsStored"),
        signed=_int("PixelRepresentation") == 1,
        samples_per_pixel=_int("SamplesPerPixel", 1),
        series_description=_str(ds, "SeriesDescription"),
        phi=phi,
    )


def _open(source: Source) -> tuple[BinaryIO | str, str]:
    """(something dcmread accepts, a label for messages that never contains PHI)."""
    if isinstance(source, (bytes, bytearray)):
        return io.BytesIO(bytes(source)), "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.is_file():
            raise FileNotFoundError(f"no such file: {p}")
        return str(p), p.name
    return source, "<stream>"


def _plausible(ds: Dataset) -> bool:
    """force=True happily "parses" text files; a real data set has a sane first tag and at least
    one of the identifying attributes."""
    tags = [int(t) for t in ds.keys()] if len(ds) else []
    return (
        bool(tags)
        and 0x00020000 <= tags[0] <= 0x7FE00010
        and any(k in ds for k in ("SOPClassUID", "Modality", "Rows", "StudyInstanceUID", "SOPInstanceUID"))
    )


def _rescue(src) -> Dataset | None:
    """Headerless files with a few junk bytes before the first element (seen in old archives and
    in pydicom's own no_meta.dcm): look for a group-0008 tag near the start and parse from there."""
    try:
        if hasattr(src, "seek"):
            src.seek(0)
            head = src.read(1024)
        else:
            with open(src, "rb") as f:
                head = f.read(1024)
        data = None
        for m in re.finditer(rb"\x08\x00[\x00-\x20]\x00", head[:512]):
            if data is None:
                if hasattr(src, "seek"):
                    src.seek(0)
                    data = src.read()
                else:
                    data = Path(src).read_bytes()
            try:
                ds = pydicom.dcmread(io.BytesIO(data[m.start() :]), force=True)
            except Exception:  # noqa: BLE001
                continue
            if _plausible(ds):
                return ds
    except OSError:
        return None
    return None


def _parse(src, label: str, stop_before_pixels: bool) -> Dataset:
    """dcmread with a fallback for files without preamble/file meta (PS3.10 7.1 makes them
    non-conformant, but old archives are full of them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # With a path, large values (Pixel Data) are read lazily: a multi-frame file then has only
            # the requested frame read from disk (see _decode).
            ds = pydicom.dcmread(
                src,
                stop_before_pixels=stop_before_pixels,
                defer_size="1 MB" if isinstance(src, str) else None,
            )
        except InvalidDicomError:
            if hasattr(src, "seek"):
                src.seek(0)
            try:
                ds = pydicom.dcmread(src, force=True, stop_before_pixels=stop_before_pixels)
            except Exception as e:  # noqa: BLE001 - anything here means "not DICOM"
                raise NotDicomError(f"{label}: not a DICOM file ({type(e).__name__})") from None
            if not _plausible(ds):
                ds = _rescue(src)
                if ds is None:
                    raise NotDicomError(
                        f"{label}: not a DICOM file (no DICM prefix and no valid data set)"
                    ) from None
        except (EOFError, struct.error):  # struct.error: a length or tag cut short at the end
            raise TruncatedFileError(f"{label}: file ends inside the header") from None
        except BytesLengthException:  # its message quotes the raw bytes
            raise InvalidAttributeError(
                f"{label}: header cannot be parsed (a value's length is not a multiple of its VR's size)",
                reason="invalid_attribute:bad_vr",
            ) from None
        except (ValueError, TypeError, KeyError, OSError, NotImplementedError) as e:
            raise InvalidAttributeError(f"{label}: header cannot be parsed ({e})") from None
    # Missing Transfer Syntax UID: take the encoding the parser detected.
    fm = getattr(ds, "file_meta", None)
    if fm is None:
        ds.file_meta = fm = FileMetaDataset()
    if "TransferSyntaxUID" not in fm:
        implicit, little = getattr(ds, "original_encoding", (None, None))
        if little is False:
            fm.TransferSyntaxUID = ExplicitVRBigEndian
        elif implicit is False:
            fm.TransferSyntaxUID = ExplicitVRLittleEndian
        else:
            fm.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


def _check_image_object(ds: Dataset, label: str) -> None:
    fm = ds.file_meta
    if (
        "DirectoryRecordSequence" in ds
        or str(fm.get("MediaStorageSOPClassUID", "")) == _MEDIA_STORAGE_DIRECTORY
    ):
        raise NonImageObjectError(
            f"{label}: DICOMDIR (a media directory, not an image)", reason="non_image:DICOMDIR"
        )
    has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    modality = _str(ds, "Modality").upper()
    if not has_pixels:
        if modality in _NON_IMAGE_MODALITIES:
            raise NonImageObjectError(
                f"{label}: {_NON_IMAGE_MODALITIES[modality]} ({modality}), not an image",
                reason=f"non_image:{modality}",
            )
        if "WaveformSequence" in ds:
            raise NonImageObjectError(f"{label}: waveform object, not an image", reason="non_image:waveform")
        if "ContentSequence" in ds:
            raise NonImageObjectError(f"{label}: structured report, not an image", reason="non_image:SR")
        raise NoPixelDataError(f"{label}: no Pixel Data element")
    for name in ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "PhotometricInterpretation"):
        if name not in ds:
            raise InvalidAttributeError(
                f"{label}: required Image Pixel attribute {name} is missing",
                reason="invalid_attribute:missing",
            )
    try:
        rows, cols, bs, ba = (
            int(ds.Rows),
            int(ds.Columns),
            int(ds.get("BitsStored", ds.BitsAllocated)),
            int(ds.BitsAllocated),
        )
    except (TypeError, ValueError) as e:
        raise InvalidAttributeError(
            f"{label}: invalid Image Pixel attribute value ({e})", reason="invalid_attribute:bad_value"
        ) from None
    if rows <= 0 or cols <= 0 or not (1 <= bs <= ba):
        raise InvalidAttributeError(
            f"{label}: inconsistent Rows/Columns/Bits Stored/Bits Allocated",
            reason="invalid_attribute:inconsistent",
        )


# What pydicom raises when an element is converted on first access (it parses values lazily): an
# unknown VR, a value length that is not a multiple of its VR's size, a number that does not parse.
_ELEMENT_ERRORS = (
    NotImplementedError,
    BytesLengthException,
    struct.error,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
)


@contextlib.contextmanager
def _element_errors(label: str):
    """Turn a damaged element met while reading attributes into a typed error naming the reason."""
    try:
        yield
    except _ELEMENT_ERRORS as e:
        msg = (str(e).strip().splitlines() or [""])[-1][:160]
        if isinstance(e, BytesLengthException):  # its message quotes the raw bytes
            msg = "a value's length is not a multiple of its VR's size"
        raise InvalidAttributeError(
            f"{label}: an element cannot be read ({type(e).__name__}: {msg})",
            reason="invalid_attribute:bad_vr",
        ) from None


@_no_warnings
def read_header(source: Source) -> DicomMeta:
    """Metadata only (no pixel data read); raises like read_dicom for non-DICOM input."""
    src, label = _open(source)
    ds = _parse(src, label, stop_before_pixels=True)
    with _element_errors(label):
        return _meta(ds)


def _last_line(msg: str) -> str:
    """pydicom wraps each plugin's error as '  plugin: reason' on its own line; keep the reason."""
    line = msg.strip().splitlines()[-1].strip() if msg.strip() else ""
    return (line.split(": ", 1)[-1] if ": " in line else line)[:160]


# JPEG family transfer syntaxes, where GDCM aborts the process on a broken marker structure.
_JPEG_LS = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
_GDCM_ABORTS_ON = {
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
} | _JPEG_LS


def _codestream_problem(ds: Dataset, frame: int, path: str | None, jpeg_ls: bool) -> str | None:
    try:
        n_frames = max(1, int(ds.get("NumberOfFrames", 1) or 1))
        data = frame_codestream(ds, frame, n_frames, path)
    except Exception:  # noqa: BLE001 - no frame to check: the decoders report what is wrong
        return None
    return jpeg_marker_problem(data, jpeg_ls=jpeg_ls)


def _decode(ds: Dataset, frame: int, label: str, path: str | None = None) -> np.ndarray:
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    order = _PLUGIN_ORDER.get(str(ts), ("",))
    errors: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for plugin in order:
            if plugin == "gdcm" and str(ts) in _GDCM_ABORTS_ON:
                problem = _codestream_problem(ds, frame, path, jpeg_ls=str(ts) in _JPEG_LS)
                if problem:  # GDCM would abort the process on it (see codestream.py)
                    errors.append(f"gdcm: not tried ({problem})")
                    continue
            try:
                if path is not None:
                    try:
                        # pydicom reads just this frame's bytes (native) or fragments (encapsulated).
                        return _pixel_array(path, index=frame, decoding_plugin=plugin)
                    except (ValueError, AttributeError, KeyError, TypeError, OSError):
                        pass  # anything odd: the in-memory path below gives the typed error
                return _pixel_array(ds, index=frame, decoding_plugin=plugin)
            except NotImplementedError as e:
                raise UnsupportedTransferSyntaxError(f"{label}: no decoder for {ts.name} ({e})") from None
            except ValueError as e:
                msg = str(e)
                if "less than expected" in msg or "truncat" in msg.lower():
                    raise TruncatedFileError(
                        f"{label}: pixel data is shorter than Rows x Columns x "
                        f"frames implies ({msg.split(' - ')[0]})"
                    ) from None
                if "invalid literal" in msg or "could not convert" in msg:
                    raise InvalidAttributeError(
                        f"{label}: an element's value does not match its VR ({msg})",
                        reason="invalid_attribute:bad_vr",
                    ) from None
                if "No plugin named" in msg or "is not available" in msg or "plugin" in msg.lower():
                    errors.append(f"{plugin}: unavailable")
                    continue
                errors.append(f"{plugin or 'default'}: {_last_line(msg)}")
            except (AttributeError, KeyError, TypeError) as e:
                raise InvalidAttributeError(f"{label}: {e}", reason="invalid_attribute:missing") from None
            except RuntimeError as e:
                errors.append(f"{plugin or 'default'}: {_last_line(str(e))}")
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except BaseException as e:  # noqa: BLE001 - a third-party decoder may raise anything,
                # even outside Exception: a Rust decoder's panic on damaged data (pylibjpeg-rle) is a
                # pyo3 PanicException, a BaseException. The next plugin may well decode the frame.
                errors.append(f"{plugin or 'default'}: {type(e).__name__}: {_last_line(str(e))}")
    if all(e.endswith("unavailable") for e in errors):
        raise UnsupportedTransferSyntaxError(f"{label}: no installed decoder for {ts.name}")
    raise DecodeError(f"{label}: {ts.name} pixel data could not be decoded ({'; '.join(errors)})")


def _display(arr: np.ndarray, ds: Dataset, label: str, frame: int, voi_index: int, window: Window | None):
    """pipeline.display with the file's own malformed group 0028 values (a Rescale Slope that is not
    a number, a LUT shorter than its descriptor) turned into a typed error naming the reason."""
    try:
        with np.errstate(all="ignore"):
            return display(arr, frame_dataset(ds, frame), voi_index=voi_index, window=window)
    except _ELEMENT_ERRORS as e:
        raise InvalidAttributeError(
            f"{label}: Modality or VOI LUT attributes cannot be applied "
            f"({type(e).__name__}: {(str(e).strip().splitlines() or [''])[-1][:160]})",
            reason="invalid_attribute:bad_value",
        ) from None


@_no_warnings
def read_dicom(
    source: Source, *, frame: int = 0, voi_index: int = 0, window: Window | None = None
) -> DicomImage:
    """Read one DICOM image instance.

    Args:
        source: a path, the file's bytes, or a binary stream.
        frame: which frame of a multi-frame object (0-based); only this frame is decoded.
        voi_index: which of the file's windows / VOI LUTs (PS3.3 C.11.2) to apply.
        window: override the file's VOI with this window (modality units).

    Returns:
        DicomImage with the displayed image (float32 in [0, 1]) and the metadata.

    Raises:
        FileNotFoundError for a missing path, ValueError for a frame out of range, and a
        DicomReadError subclass (with `.reason`) for anything wrong with the file itself.
    """
    if window is not None:
        apply_window(np.zeros(1), window)  # a caller's unusable window is a usage error (ValueError)
    src, label = _open(source)
    ds = _parse(src, label, stop_before_pixels=False)
    with _element_errors(label):
        _check_image_object(ds, label)
        meta = _meta(ds)
    if not 0 <= frame < meta.n_frames:
        raise ValueError(f"frame {frame} out of range: the file has {meta.n_frames} frame(s)")
    multi = (
        isinstance(src, str)
        and meta.n_frames > 1
        and str(ds.file_meta.get("TransferSyntaxUID", "")) != "1.2.840.10008.1.2.1.99"
        and getattr(ds, "preamble", None) is not None
    )
    arr = _decode(ds, frame, label, path=src if multi else None)
    if arr.ndim == 3 and meta.samples_per_pixel == 1 and meta.n_frames > 1:
        arr = arr[0]  # defensive: some plugins return (1, H, W)
    photometric = meta.photometric.upper()
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float64)
    if photometric in ("MONOCHROME1", "MONOCHROME2") and arr.ndim == 2:
        image, values, mask, used = _display(arr, ds, label, frame, voi_index, window)
        return DicomImage(image=image, meta=meta, values=values, mask=mask, window=used, frame=frame)
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(arr, ds).astype(np.float64)
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        image = rgb / float(2**bits - 1)
    elif arr.ndim == 3 and arr.shape[-1] == 3:
        # pydicom has already converted YBR_FULL/YBR_FULL_422 to RGB (as_rgb=True); YBR_ICT/RCT
        # are converted by the JPEG 2000 decoder itself.
        image = arr.astype(np.float64) / float(2 ** max(meta.bits_stored, 1) - 1)
    elif arr.ndim == 2:
        # Unknown grayscale-like photometric: treat as MONOCHROME2 with a percentile window.
        image, values, mask, used = _display(arr, ds, label, frame, voi_index, window)
        return DicomImage(image=image, meta=meta, values=values, mask=mask, window=used, frame=frame)
    else:
        raise DecodeError(
            f"{label}: unexpected decoded shape {arr.shape} for {photometric}", reason="decode_failed:shape"
        )
    return DicomImage(image=np.clip(image, 0, 1).astype(np.float32), meta=meta, frame=frame)


def decoder_report() -> dict[str, list[str]]:
    """Transfer syntax name → decoder plugins available here (for the README and the dashboard)."""
    from pydicom.pixels import get_decoder

    out = {}
    for uid in _PLUGIN_ORDER:
        try:
            dec = get_decoder(UID(uid))
        except Exception:  # noqa: BLE001
            continue
        out[UID(uid).name] = [p for p in _PLUGIN_ORDER[uid] if p in dec.available_plugins]
    return out
