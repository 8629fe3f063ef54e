"""Shared fixtures: a tiny synthetic data set (small images, fast) and a tiny untrained predictor."""

import pytest

from apps.dicom_dx.synth import generate


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """6 chest radiographs (prevalence 0.5) + 9 negatives (one per kind), 96-128 px."""
    root = tmp_path_factory.mktemp("synth")
    generate(root, 6, seed=7, prevalence=0.5, negatives=9, size_range=(96, 128), render_max=96)
    return root


@pytest.fixture(scope="session")
def tiny_predictor():
    from apps.dicom_dx.inference import untrained_predictor

    return untrained_predictor(size=32, widths=(4, 8, 8, 8))


@pytest.fixture()
def overlong_rle() -> bytes:
    """A 16-bit 8x8 RLE Lossless file whose first segment decodes to 256 bytes (64 expected).
    pydicom's own RLE decoder drops the excess; pylibjpeg-rle's Rust decoder panics, raising a pyo3
    PanicException, which is a BaseException and not an Exception."""
    import io
    import struct

    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality, ds.Rows, ds.Columns = "DX", 8, 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    segments = [bytes([0x81, 7, 0x81, 7]), bytes([0x81, 7])]  # replicate runs of 128 bytes each
    header = struct.pack("<16I", 2, 64, 68, *([0] * 13))
    ds.PixelData = encapsulate([header + b"".join(segments)])
    ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()
