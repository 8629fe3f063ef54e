"""Edge cases of the pixel pipeline found in an audit, each on a file built here with pydicom and
checked against pydicom's own Modality/VOI functions where pydicom defines the answer."""

import io

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from apps.dicom_dx import io as dio
from apps.dicom_dx.pipeline import Window

PLACEHOLDER = "9.876543"  # an 8-character DS value, swapped for malformed bytes after writing


def _ds(stored: np.ndarray, *, bits_stored: int = 12, signed: int = 0, **attrs) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = "DX", "Doe^Jane", "MRN-0042"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = signed
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PixelData = stored.tobytes()
    return ds


def _bytes(ds: Dataset, placeholder_bytes: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    data = buf.getvalue()
    if placeholder_bytes is not None:
        assert data.count(PLACEHOLDER.encode()) == 1
        data = data.replace(PLACEHOLDER.encode(), placeholder_bytes.ljust(len(PLACEHOLDER)))
    return data


STORED = np.array([[0, 10, 200, 400], [800, 1600, 3000, 4095]], np.uint16)


@pytest.mark.parametrize("width", ["0", "0.5", "-10"])
def test_window_width_the_standard_forbids_falls_back_to_a_percentile_window(width):
    """Window Width 0 ("not set") is common in the wild; LINEAR needs >= 1 (PS3.3 C.11.2.1.2).
    pydicom raises on it; a reader must still show the image (with its own window)."""
    data = _bytes(_ds(STORED, WindowCenter="100", WindowWidth=width))
    img = dio.read_dicom(data)
    assert img.window.source == "percentile"
    np.testing.assert_array_equal(img.values, STORED)
    assert img.image.min() == 0.0 and img.image.max() == 1.0


def test_first_usable_window_of_several_is_used():
    ds = _ds(STORED, WindowCenter=[0.0, 1000.0], WindowWidth=[0.0, 1500.0])
    img = dio.read_dicom(_bytes(ds))
    assert img.window == Window(1000.0, 1500.0, "LINEAR", "file")
    ref = apply_voi_lut(pixel_array(ds).astype(np.float64), ds, index=1) / 4095.0
    np.testing.assert_allclose(img.image, ref, atol=1e-6)


def test_unknown_voi_lut_function_reads_as_linear():
    ds = _ds(STORED, WindowCenter="1000", WindowWidth="1500", VOILUTFunction="LINEAR_EXACTLY")
    img = dio.read_dicom(_bytes(ds))
    assert img.window == Window(1000.0, 1500.0, "LINEAR", "file")
    ds.VOILUTFunction = "LINEAR"
    ref = apply_voi_lut(pixel_array(ds).astype(np.float64), ds) / 4095.0
    np.testing.assert_allclose(img.image, ref, atol=1e-6)


def test_unparseable_window_center_falls_back():
    data = _bytes(_ds(STORED, WindowCenter=PLACEHOLDER, WindowWidth="400"), b"x1")
    img = dio.read_dicom(data)
    assert img.window.source == "percentile"


def test_unparseable_rescale_slope_is_a_typed_error():
    data = _bytes(_ds(STORED, RescaleSlope=PLACEHOLDER, RescaleIntercept="0"), b"abc")
    with pytest.raises(dio.InvalidAttributeError) as e:
        dio.read_dicom(data)
    assert e.value.reason == "invalid_attribute:bad_value" and "abc" in str(e.value)
    assert "Doe" not in str(e.value) and "MRN" not in str(e.value)


def test_blank_rescale_intercept_is_absent():
    ds = _ds(STORED, RescaleSlope="2", RescaleIntercept=PLACEHOLDER)
    img = dio.read_dicom(_bytes(ds, b""))
    ds.RescaleIntercept = "0"
    np.testing.assert_allclose(img.values, apply_modality_lut(pixel_array(ds), ds))


def test_a_callers_unusable_window_is_still_a_usage_error():
    with pytest.raises(ValueError, match="Window Width"):
        dio.read_dicom(_bytes(_ds(STORED)), window=Window(100.0, 0.0))


def _voi_lut_item(entries: int, first: int, bits: int, table: np.ndarray) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [entries, first, bits]
    item.add_new("LUTData", "OW", table.astype("<u2").tobytes())
    return item


def test_voi_lut_first_mapped_value_is_signed_after_a_negative_rescale():
    """CT: stored 0..4095, Rescale Intercept -1024, a VOI LUT starting at -1024 HU. Its descriptor's
    second value is SS (PS3.3 C.11.2.1.1), but an implicit VR reader (pydicom) types the whole
    descriptor by Pixel Representation = 0 and reads 64512."""
    from pydicom.sequence import Sequence
    from pydicom.uid import ImplicitVRLittleEndian

    stored = np.array([[0, 500, 1024, 1500], [2000, 2047, 3000, 4095]], np.uint16)
    table = np.minimum(np.arange(2048) * 32, 65535)
    ds = _ds(stored, RescaleSlope="1", RescaleIntercept="-1024", Modality="CT")
    ds.VOILUTSequence = Sequence([_voi_lut_item(2048, -1024 & 0xFFFF, 16, table)])
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    data = _bytes(ds)
    assert pydicom.dcmread(io.BytesIO(data)).VOILUTSequence[0].LUTDescriptor[1] == 64512
    img = dio.read_dicom(data)
    ref_ds = _ds(stored, RescaleSlope="1", RescaleIntercept="-1024")
    ref_ds.VOILUTSequence = Sequence([_voi_lut_item(2048, 0, 16, table)])
    ref_ds.VOILUTSequence[0].LUTDescriptor = [2048, -1024, 16]  # as an explicit VR SS would read
    hu = apply_modality_lut(stored, ref_ds)
    np.testing.assert_allclose(img.image, apply_voi_lut(hu, ref_ds) / 65535.0, atol=1e-6)
    assert img.image.max() > 0.9  # not all mapped to the first entry


def test_lut_descriptor_entry_count_above_32767_with_signed_pixels():
    """The number of entries is always US, even where a reader typed the descriptor SS (pydicom does
    so for Pixel Representation 1) and 40000 entries read as -25536."""
    from pydicom.sequence import Sequence

    from apps.dicom_dx.pipeline import display

    stored = np.array([[-100, 0, 100, 30000]], np.int16)
    ds = _ds(stored, signed=1, bits_stored=16)
    ds.VOILUTSequence = Sequence([_voi_lut_item(40000, 0, 16, np.arange(40000))])
    ds.VOILUTSequence[0].LUTDescriptor = [40000 - 65536, -100, 16]
    image, _, _, _ = display(stored, ds)
    np.testing.assert_allclose(image, (stored.astype(np.float64) + 100) / 65535.0, atol=1e-6)


def test_enhanced_multiframe_rescale_and_windows_from_functional_groups(tmp_path):
    """Enhanced CT keeps Rescale in the shared Pixel Value Transformation Sequence and a window per
    frame in Frame VOI LUT Sequences (PS3.3 C.7.6.16.2.9/10); pydicom's apply_* ignore them, so the
    oracle is highdicom's frame transform."""
    hd = pytest.importorskip("highdicom")
    from pydicom.sequence import Sequence

    frames = np.random.default_rng(0).integers(0, 4096, (3, 6, 5)).astype(np.uint16)
    ds = _ds(frames[0], Modality="CT", NumberOfFrames=3)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PixelData = frames.tobytes()
    pvt, measures = Dataset(), Dataset()
    pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = "1", "-1024", "HU"
    measures.PixelSpacing, measures.SliceThickness = [0.7, 0.8], "1"
    shared = Dataset()
    shared.PixelValueTransformationSequence = Sequence([pvt])
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for c, w in [(40.0, 400.0), (-600.0, 1500.0), (300.0, 2000.0)]:
        voi, item = Dataset(), Dataset()
        voi.WindowCenter, voi.WindowWidth = c, w
        item.FrameVOILUTSequence = Sequence([voi])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    path = tmp_path / "enhanced_ct.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    ref = hd.Image.from_dataset(pydicom.dcmread(path), copy=False)
    for f in range(3):
        img = dio.read_dicom(path, frame=f)
        np.testing.assert_allclose(img.values, ref.get_frame(f + 1), atol=1e-4)
        np.testing.assert_allclose(img.image, ref.get_frame(f + 1, apply_voi_transform=True), atol=1e-5)
        assert img.window.source == "file" and img.window.center == [40.0, -600.0, 300.0][f]
    assert img.meta.pixel_spacing == (0.7, 0.8)


def test_float_pixel_data_with_nan_and_float_padding():
    """One NaN in Float Pixel Data (0x7FE0,0008) turned the percentile window, and so the whole
    image, into NaN. Non-finite pixels and Float Pixel Padding Value (0028,0122) now render black."""
    values = np.linspace(-5.0, 5.0, 30, dtype=np.float32).reshape(5, 6)
    values[0, 0], values[1, 1], values[4, 5] = np.nan, np.inf, -1000.0
    ds = _ds(np.zeros((5, 6), np.uint16), FloatPixelPaddingValue=-1000.0)
    del ds.PixelData, ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    ds.BitsAllocated = 32
    ds.FloatPixelData = values.tobytes()
    data = _bytes(ds)
    img = dio.read_dicom(data)
    ref = pixel_array(pydicom.dcmread(io.BytesIO(data)))
    np.testing.assert_array_equal(img.values, ref)  # NaN == NaN here
    assert np.isfinite(img.image).all() and np.isfinite([img.window.center, img.window.width]).all()
    bad = np.zeros(values.shape, bool)
    bad[0, 0] = bad[1, 1] = bad[4, 5] = True
    np.testing.assert_array_equal(img.mask, bad)
    assert (img.image[bad] == 0).all()
    finite = values[~bad].astype(np.float64)
    lo, hi = np.percentile(finite, [0.5, 99.5])
    np.testing.assert_allclose(img.image[~bad], np.clip((finite - lo) / (hi - lo), 0, 1), atol=1e-6)


def test_pydicom_validation_messages_do_not_leak_patient_values(tmp_path, caplog, capfd):
    """pydicom warns "Invalid value for VR UI: '<the value>'" through its logger and warnings.warn;
    for a non-conformant Study Instance UID or birth date that is patient data in the logs."""
    import logging
    import warnings

    from apps.dicom_dx.report import write_secondary_capture

    ds = _ds(STORED, StudyInstanceUID="1.2.99", SeriesInstanceUID="1.2.98", PatientBirthDate="19800101")
    data = _bytes(ds).replace(b"1.2.99", b"1.2.0x").replace(b"19800101", b"01.01.80")
    path = tmp_path / "a.dcm"
    path.write_bytes(data)
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = dio.read_dicom(path)
        dio.read_header(data)
        write_secondary_capture(path, np.zeros((4, 4, 3), np.uint8), tmp_path / "sc.dcm")
    assert img.meta.study_uid == "1.2.0x"  # read, not altered
    out = capfd.readouterr()
    text = caplog.text + " ".join(str(w.message) for w in caught) + out.out + out.err
    assert "Invalid value for VR UI" in caplog.text  # still reported, without the value
    assert "1.2.0x" not in text and "01.01.80" not in text


@pytest.mark.parametrize(
    "message, value",
    [
        ("Invalid value for VR DA: '01.01.80'.", "01.01.80"),
        ('Invalid value for VR PN: "O\'Brien^Pat"', "Brien"),
        ('Value "72.5kg" is not valid for elements with a VR of DS', "72.5kg"),
    ],
)
def test_pydicom_log_records_withhold_quoted_values(message, value):
    import logging

    record = logging.LogRecord("pydicom", logging.WARNING, __file__, 0, message, (), None)
    for f in logging.getLogger("pydicom").filters:
        f.filter(record)
    assert value not in record.getMessage() and "withheld" in record.getMessage()


@pytest.mark.parametrize("slope", [b"NaN", b"1e999", b"inf"])
def test_non_finite_rescale_is_a_typed_error_not_a_nan_image(slope):
    """A NaN image would pass the gate (NaN < threshold is False) with NaN findings read as negative."""
    data = _bytes(_ds(STORED, RescaleSlope=PLACEHOLDER, RescaleIntercept="0"), slope)
    with pytest.raises(dio.InvalidAttributeError) as e:
        dio.read_dicom(data)
    assert e.value.reason == "invalid_attribute:bad_value"


def test_a_decoder_panic_falls_back_to_the_next_plugin(overlong_rle):
    data = overlong_rle
    img = dio.read_dicom(data)
    ref = pixel_array(pydicom.dcmread(io.BytesIO(data)), decoding_plugin="pydicom")
    np.testing.assert_array_equal(img.values, ref)


def test_damaged_headers_raise_typed_errors_only():
    """Byte-level damage found by fuzzing that escaped read_dicom as raw exceptions: a file cut
    inside the file meta group (struct.error, BytesLengthException), an unknown VR met when an
    attribute is first read (NotImplementedError: pydicom parses values lazily), a file meta
    element whose length does not fit its VR (BytesLengthException, quoting raw bytes)."""
    data = _bytes(_ds(STORED))
    for cut in range(129, 200):
        with pytest.raises(dio.DicomReadError):
            dio.read_dicom(data[:cut])
    rows = b"\x28\x00\x10\x00US\x02\x00"
    assert data.count(rows) == 1
    with pytest.raises(dio.InvalidAttributeError) as e:
        dio.read_dicom(data.replace(rows, b"\x28\x00\x10\x00Q!\x02\x00"))
    assert e.value.reason == "invalid_attribute:bad_vr"
    with pytest.raises(dio.InvalidAttributeError):
        dio.read_header(data.replace(rows, b"\x28\x00\x10\x00Q!\x02\x00"))
    group_length = data[132:144]
    assert group_length[:8] == b"\x02\x00\x00\x00UL\x04\x00"
    damaged = data[:132] + b"\x02\x00\x00\x00UL\x02\x00" + group_length[8:10] + data[144:]
    with pytest.raises(dio.DicomReadError) as e:
        dio.read_dicom(damaged)
    assert "\\x" not in str(e.value)


def test_gdcm_never_sees_a_jpeg_whose_markers_are_broken(tmp_path):
    """GDCM aborts the whole process (an uncaught C++ exception, SIGABRT) on a JPEG Lossless frame
    whose DHT marker is damaged; the reader must report a typed error instead. Run in a child
    process, so that a regression fails this test instead of killing the test session."""
    import subprocess
    import sys

    from pydicom.data import get_testdata_file

    pytest.importorskip("gdcm")
    src = get_testdata_file("SC_rgb_jpeg_gdcm.dcm", download=False)  # JPEG Lossless SV1, RGB
    if src is None:
        pytest.skip("SC_rgb_jpeg_gdcm.dcm is not bundled with this pydicom")
    data = open(src, "rb").read()
    soi = data.index(b"\xff\xd8\xff")
    dht = data.index(b"\xff\xc4", soi)
    damaged = tmp_path / "damaged_dht.dcm"
    damaged.write_bytes(data[:dht] + b"\x77" + data[dht + 1 :])
    code = (
        "import sys; from apps.dicom_dx import io as dio\n"
        "try:\n    dio.read_dicom(sys.argv[1])\nexcept dio.DicomReadError as e:\n    print(e.reason)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(damaged)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-500:]
    assert run.stdout.strip() in ("decode_failed", "unsupported_transfer_syntax")


@pytest.mark.parametrize(
    "stream, jpeg_ls, problem",
    [
        ("FFD8 FFDB0004AAAA FFC40004BBBB FFC00004CCCC FFDA0004DDDD 0102FF0003 FFD0 04 FFD9", False, None),
        ("FFD8 FFC00004CCCC FFDA0004DDDD 0102 FFD9", False, "DHT"),
        ("FFD8 FFDA0004DDDD 0102 FFD9", False, "frame header"),
        ("FFD8 FFC40004BBBB 77C00004CCCC FFDA0004DDDD FFD9", False, "marker is expected"),
        ("0000 FFD9", False, "SOI"),
        ("FFD8 FFF70004CCCC FFDA0004DDDD 01FF7F02 FFD9", True, None),  # JPEG-LS: FF then < 0x80 is data
        ("FFD8 FFC40004BBBB FFC00004CCCC FFDA0004DDDD 0102", False, None),  # no EOI: decoders pad it
    ],
)
def test_jpeg_marker_walk(stream, jpeg_ls, problem):
    from apps.dicom_dx.codestream import jpeg_marker_problem

    found = jpeg_marker_problem(bytes.fromhex(stream.replace(" ", "")), jpeg_ls=jpeg_ls)
    assert (found is None) if problem is None else (problem in found)


def test_voi_lut_with_entries_wider_than_its_descriptor_stays_in_range():
    """LUT Descriptor says 12 bits per entry, LUT Data holds 16-bit values (a known writer quirk):
    the displayed image ran up to 16x above 1."""
    from pydicom.sequence import Sequence

    table = (np.arange(4096) * 16).astype(np.uint16)  # 0 .. 65520
    ds = _ds(STORED)
    ds.VOILUTSequence = Sequence([_voi_lut_item(4096, 0, 12, table)])
    img = dio.read_dicom(_bytes(ds))
    assert 0.0 <= img.image.min() and img.image.max() <= 1.0
    ref = apply_voi_lut(pixel_array(ds), ds)  # pydicom: the raw table values
    np.testing.assert_allclose(img.image, ref / 65535.0, atol=1e-6)


@pytest.mark.parametrize("syntax", [None, "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80"])
def test_signed_12_bit_in_16_is_sign_extended_and_rescaled(syntax):
    """Pixel Representation 1, Bits Stored 12 < Bits Allocated 16, the high bits left as zeros (not
    sign-extended by the writer): -5 is stored as 0x0FFB. Float, negative rescale on top."""
    values = np.tile(np.array([[-2048, -5, 0, 5], [2047, -1, 100, -100]], np.int16), (8, 4))
    raw = (values.astype(np.int32) & 0x0FFF).astype(np.uint16)
    ds = _ds(raw, signed=1, RescaleSlope="-0.5", RescaleIntercept="-1024.25")
    if syntax is not None:
        ds.compress(syntax, arr=values)
    data = _bytes(ds)
    img = dio.read_dicom(data)
    expected = values * -0.5 - 1024.25
    np.testing.assert_allclose(img.values, expected, rtol=0, atol=1e-4)
    ref_ds = pydicom.dcmread(io.BytesIO(data))
    np.testing.assert_allclose(img.values, apply_modality_lut(pixel_array(ref_ds), ref_ds), atol=1e-4)
