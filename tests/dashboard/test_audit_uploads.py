"""Uploads a user can get wrong, through AppTest: a zip whose member data is damaged (the central
directory reads fine, so only extraction finds it) gets a clear message, never a traceback, and is not
left half-unpacked to be skipped as 'already unpacked' on the next upload."""

import io
import tempfile
import zipfile

PAGE = "apps/dashboard/batch.py"


def _damaged_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("study/series/ok.dcm", b"\0" * 200)
        zf.writestr("study/series/bad.dcm", b"A" * 200)
    data = bytearray(buf.getvalue())
    i = data.index(b"A" * 200)
    data[i : i + 4] = b"BBBB"  # the stored bytes no longer match the member's CRC-32
    return bytes(data)


def test_zip_with_damaged_member_is_a_message_and_not_kept(app, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the page unpacks under the temp folder
    app.switch_page(PAGE).run()
    app.radio(key="batch_how").set_value("Upload a zip").run()
    app.file_uploader(key="batch_zip").set_value(("studies.zip", _damaged_zip(), "application/zip"))
    app.run()
    assert not app.exception, app.exception
    assert "studies.zip" in "\n".join(str(e.value) for e in app.error)
    uploads = tmp_path / "dlsuite-dashboard" / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())  # nothing half-unpacked left behind
    assert app.button(key="batch_run").disabled


def test_results_file_in_a_folder_that_cannot_exist_is_a_message(app, tmp_path):
    from apps.dashboard import common

    if common.resolve("dicom_dx", "analyze", "analyze", "batch") is None:
        return
    afile = tmp_path / "afile"
    afile.write_text("x")
    app.switch_page(PAGE).run()
    app.text_input(key="batch_folder").input(str(tmp_path)).run()
    app.text_input(key="batch_db").input(str(afile / "results.sqlite")).run()
    app.button(key="batch_run").click().run()
    assert not app.exception, app.exception
    assert "Batch analysis failed" in "\n".join(str(e.value) for e in app.error)
    assert afile.read_text() == "x"
