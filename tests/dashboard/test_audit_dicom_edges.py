"""DICOM page edge cases a user meets with real files, through AppTest: a file's own window far wider
than its pixel range (a CR stored with W 4096 whose pixels span a few hundred values) or centred outside
it, and a DICOM without pixel data (a structured report). Each shows the image or a clear message,
never a Streamlit exception."""

import io

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

PAGE = "apps/dashboard/dicom.py"


def _dicom(pixels: np.ndarray | None, **attrs) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    dx, sr = "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.88.11"  # DX image, basic text SR
    meta.MediaStorageSOPClassUID = dx if pixels is not None else sr
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX" if pixels is not None else "SR"
    ds.PatientName, ds.PatientID = "Doe^Jane", "PID-12345"
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    for k, v in attrs.items():
        setattr(ds, k, v)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _upload(app, name, data):
    app.switch_page(PAGE).run()
    app.radio(key="dx_source").set_value("Upload").run()
    app.file_uploader(key="dx_upload").set_value((name, data, "application/dicom"))
    return app.run()


def _texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


@pytest.mark.parametrize("window", [dict(WindowCenter=2048, WindowWidth=4096),  # wider than 2x the span
                                    dict(WindowCenter=3000, WindowWidth=200),  # centre above the pixels
                                    dict(WindowCenter=-500, WindowWidth=100)])  # centre below them
def test_file_window_outside_the_slider_range_still_shows_the_image(app, window):
    rng = np.random.default_rng(0)
    px = rng.integers(100, 400, (64, 64))
    _upload(app, "wide.dcm", _dicom(px, **window))
    assert not app.exception, app.exception
    assert app.radio[1].value.startswith("File VOI")
    assert len(app.get("image")) >= 1
    # the sliders show the file's window as it is (their range widened to hold it)
    assert app.slider[0].value == pytest.approx(window["WindowCenter"])
    assert app.slider[1].value == pytest.approx(window["WindowWidth"])
    app.radio[1].set_value("Full range").run()
    assert not app.exception, app.exception
    app.radio[1].set_value(app.radio[1].options[0]).run()
    assert not app.exception, app.exception


def test_dicom_without_pixel_data_is_a_message(app):
    _upload(app, "report.dcm", _dicom(None))
    assert not app.exception, app.exception
    assert "upload 1.dcm" in _texts(app.error)  # uploads are labelled by position, not name
    page = _texts(app.error) + _texts(app.markdown) + _texts(app.caption)
    assert "Doe" not in page and "PID-12345" not in page
