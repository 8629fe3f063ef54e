"""The DICOM reader against pydicom's own pipeline, on pydicom's bundled test files (no download)."""

import io

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array

from apps.dicom_dx import io as dio
from apps.dicom_dx.pipeline import Window, apply_window

# Grayscale files covering every bundled transfer syntax: implicit/explicit VR, little/big endian,
# deflate, RLE, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000; signed pixels, MONOCHROME1.
GRAY = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_padded.dcm",
    "JPGExtended.dcm",
    "JPEG2000.dcm",
    "693_J2KI.dcm",
    "J2K_pixelrep_mismatch.dcm",
    "JPEGLSNearLossless_08.dcm",
    "JPEGLSNearLossless_16.dcm",
    "image_dfl.dcm",
    "liver_1frame.dcm",
    "rtdose.dcm",
    "rtdose_rle.dcm",
    "rtdose_expb.dcm",
    "examples_overlay.dcm",
]
COLOR = [
    "SC_rgb_jpeg_gdcm.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_small_odd_big_endian.dcm",
    "SC_rgb_dcmtk_+eb+cy+np.dcm",
    "examples_jpeg2k.dcm",
    "SC_rgb_jls_lossy_line.dcm",
    "examples_ybr_color.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
]


def _file(name):
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    return path


def _pydicom_range(ds):
    """The output range pydicom's apply_windowing maps a window onto (its own rule)."""
    if ds.get("ModalityLUTSequence"):
        lo, hi = 0, 2 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1
    elif ds.PixelRepresentation == 0:
        lo, hi = 0, 2**ds.BitsStored - 1
    else:
        lo, hi = -(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1
    if ds.get("RescaleSlope") is not None and ds.get("RescaleIntercept") is not None:
        lo, hi = (
            lo * float(ds.RescaleSlope) + float(ds.RescaleIntercept),
            hi * float(ds.RescaleSlope) + float(ds.RescaleIntercept),
        )
    return lo, hi


@pytest.mark.parametrize("name", GRAY)
def test_grayscale_matches_pydicom(name):
    if name == "JPGExtended.dcm":
        pytest.importorskip("libjpeg", reason="12-bit JPEG Extended needs the optional GPL decoder")
    path = _file(name)
    img = dio.read_dicom(path)
    ds = pydicom.dcmread(path)
    ref_stored = pixel_array(ds, index=0)
    ref_values = apply_modality_lut(ref_stored, ds)
    assert img.image.shape == ref_stored.shape and img.image.dtype == np.float32
    np.testing.assert_allclose(img.values, ref_values, rtol=1e-6, atol=1e-4)
    assert 0.0 <= img.image.min() and img.image.max() <= 1.0
    if img.window is not None and img.window.source == "file":
        lo, hi = _pydicom_range(ds)
        ref = (apply_voi_lut(ref_values, ds) - lo) / (hi - lo)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            ref = 1 - ref
        if img.mask is not None:
            ref = np.where(img.mask, 0, ref)
        np.testing.assert_allclose(img.image, ref, atol=1e-5)


@pytest.mark.parametrize("name", COLOR)
def test_color_matches_pydicom(name):
    path = _file(name)
    img = dio.read_dicom(path)
    ds = pydicom.dcmread(path)
    ref = pixel_array(ds, index=0).astype(np.float64) / (2**ds.BitsStored - 1)
    assert img.is_color and img.image.shape == ref.shape
    np.testing.assert_allclose(img.image, ref, atol=1e-6)
    assert img.gray.shape == ref.shape[:2]


def test_palette_colour_matches_pydicom():
    from pydicom.pixels import apply_color_lut

    path = _file("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    ref = apply_color_lut(pixel_array(ds), ds) / 65535.0
    np.testing.assert_allclose(dio.read_dicom(path).image, ref, atol=1e-6)


def test_multiframe_decodes_only_requested_frame():
    path = _file("SC_rgb_rle_2frame.dcm")
    ds = pydicom.dcmread(path)
    both = pixel_array(ds)
    for f in (0, 1):
        img = dio.read_dicom(path, frame=f)
        np.testing.assert_allclose(img.image, both[f] / 255.0, atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        dio.read_dicom(path, frame=2)


def test_bytes_and_stream_sources_and_metadata():
    path = _file("CT_small.dcm")
    data = open(path, "rb").read()
    a, b = dio.read_dicom(data), dio.read_dicom(io.BytesIO(data))
    np.testing.assert_array_equal(a.image, b.image)
    m = a.meta
    assert (
        m.modality == "CT" and m.pixel_spacing == (0.661468, 0.661468) and m.spacing_source == "PixelSpacing"
    )
    assert m.sop_uid and m.study_uid and m.series_uid and m.rows == 128
    assert "PatientName" in m.phi and "phi" not in m.public() and "phi" not in repr(m)


def test_file_without_meta_or_preamble_reads_like_the_original():
    ref = dio.read_dicom(_file("CT_small.dcm"))
    img = dio.read_dicom(_file("no_meta.dcm"))
    np.testing.assert_array_equal(img.values, ref.values)


@pytest.mark.parametrize(
    "name, error, reason",
    [
        ("MR_truncated.dcm", dio.TruncatedFileError, "truncated"),
        ("badVR.dcm", dio.InvalidAttributeError, "invalid_attribute:bad_vr"),
        ("rtplan.dcm", dio.NonImageObjectError, "non_image:RTPLAN"),
        ("rtstruct.dcm", dio.NonImageObjectError, "non_image:RTSTRUCT"),
        ("reportsi.dcm", dio.NonImageObjectError, "non_image:SR"),
        ("test-SR.dcm", dio.NonImageObjectError, "non_image:SR"),
        ("waveform_ecg.dcm", dio.NonImageObjectError, "non_image:ECG"),
        ("UN_sequence.dcm", dio.NoPixelDataError, "no_pixel_data"),
        ("meta_missing_tsyntax.dcm", dio.InvalidAttributeError, "invalid_attribute:missing"),
        ("README.txt", dio.NotDicomError, "not_dicom"),
        ("zipMR.gz", dio.NotDicomError, "not_dicom"),
        ("crayons.icc", dio.NotDicomError, "not_dicom"),
        # Two bundled files no decoder can read (pydicom's own tests mark them so).
        ("JPEG2000-embedded-sequence-delimiter.dcm", dio.DecodeError, "decode_failed"),
    ],
)
def test_broken_and_non_image_files_raise_typed_errors(name, error, reason):
    with pytest.raises(error) as exc:
        dio.read_dicom(_file(name))
    assert exc.value.reason == reason
    assert isinstance(exc.value, dio.DicomReadError) and name in str(exc.value)


def test_dicomdir_is_rejected_as_non_image():
    path = get_testdata_file("DICOMDIR", download=False)
    with pytest.raises(dio.NonImageObjectError) as exc:
        dio.read_dicom(path)
    assert exc.value.reason == "non_image:DICOMDIR"


def test_truncated_bytes_of_a_good_file():
    data = open(_file("MR_small.dcm"), "rb").read()
    with pytest.raises(dio.DicomReadError) as exc:
        dio.read_dicom(data[: len(data) - 700])
    assert exc.value.reason == "truncated"


def _tiny(**kw):
    """A 4x4 MONOCHROME2 data set with the given extra attributes (for pipeline edge cases)."""
    ds = Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 4, 4, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize("func", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_window_functions_match_pydicom(func):
    x = np.linspace(-50, 4200, 64).reshape(8, 8)
    ds = _tiny(WindowCenter=[1000.0, 2000.0], WindowWidth=[400.0, 1500.0], VOILUTFunction=func)
    for index in (0, 1):
        ref = apply_voi_lut(x.copy(), ds, index=index) / 4095.0
        c, w = ds.WindowCenter[index], ds.WindowWidth[index]
        np.testing.assert_allclose(apply_window(x, Window(c, w, func)), ref, atol=1e-9)


def test_modality_lut_sequence_and_voi_lut_sequence_match_pydicom():
    from pydicom.sequence import Sequence

    stored = np.arange(16, dtype=np.uint16).reshape(4, 4) * 200
    mod = Dataset()
    mod.LUTDescriptor = [8, 400, 16]
    mod.LUTData = [10 * i * i for i in range(8)]
    voi = Dataset()
    voi.LUTDescriptor = [256, 0, 16]
    voi.LUTData = [min(65535, 300 * i) for i in range(256)]
    ds = _tiny(ModalityLUTSequence=Sequence([mod]), VOILUTSequence=Sequence([voi]))
    from apps.dicom_dx.pipeline import display

    image, values, _, used = display(stored, ds)
    ref_values = apply_modality_lut(stored, ds)
    np.testing.assert_allclose(values, ref_values)
    np.testing.assert_allclose(image, apply_voi_lut(ref_values.astype(np.uint16), ds) / 65535.0, atol=1e-6)
    assert used is None


def test_monochrome1_inverted_after_voi_and_padding_masked():
    stored = np.array([[0, 100, 200, 300]] * 4, dtype=np.uint16)
    ds = _tiny(WindowCenter=150.0, WindowWidth=201.0, PixelPaddingValue=0)
    from apps.dicom_dx.pipeline import display

    m2, _, mask, _ = display(stored, ds)
    ds.PhotometricInterpretation = "MONOCHROME1"
    m1, _, _, _ = display(stored, ds)
    assert mask[:, 0].all() and not mask[:, 1:].any()
    np.testing.assert_allclose(m1[:, 1:], 1 - m2[:, 1:], atol=1e-6)
    assert (m1[:, 0] == 0).all() and (m2[:, 0] == 0).all()


def test_percentile_window_when_file_has_none():
    img = dio.read_dicom(_file("CT_small.dcm"))
    assert img.window.source == "percentile"
    lo, hi = np.percentile(img.values, [0.5, 99.5])
    assert (img.image[img.values <= lo] <= 0.01).all() and (img.image[img.values >= hi] >= 0.99).all()


@pytest.mark.parametrize("name", ["rtdose.dcm", "rtdose_rle.dcm", "rtdose_expb.dcm"])
def test_multiframe_grayscale_frame_by_frame(name):
    """Frames are read from the file one at a time (native and RLE, both byte orders)."""
    path = _file(name)
    ds = pydicom.dcmread(path)
    ref = apply_modality_lut(pixel_array(ds), ds)
    for f in (0, 7, ds.NumberOfFrames - 1):
        np.testing.assert_allclose(dio.read_dicom(path, frame=f).values, ref[f], rtol=1e-6)


def test_missing_transfer_syntax_uid_is_inferred(tmp_path):
    src = _file("MR_small.dcm")  # explicit VR little endian
    ds = pydicom.dcmread(src)
    del ds.file_meta.TransferSyntaxUID
    pydicom.dcmwrite(tmp_path / "nots.dcm", ds, implicit_vr=False, little_endian=True)
    assert "TransferSyntaxUID" not in pydicom.dcmread(tmp_path / "nots.dcm").file_meta
    img = dio.read_dicom(tmp_path / "nots.dcm")
    np.testing.assert_array_equal(img.values, dio.read_dicom(src).values)
    assert img.meta.transfer_syntax == "1.2.840.10008.1.2.1"
