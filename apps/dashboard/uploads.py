"""Upload validation, before any byte reaches an app: size limits and cheap format sniffing.

Plain Python (no Streamlit) so it is unit-tested directly. Every check returns a message written for
the person who uploaded the file, or ``None`` when the file may go on to the app, whose own reader then
gives the precise reason if the content is still wrong.
"""

from __future__ import annotations

import io
import zipfile

MiB = 1024 * 1024
MAX_DICOM_BYTES = 256 * MiB  # a large multi-frame study still fits; anything bigger is not one image
MAX_VIDEO_BYTES = 200 * MiB
MAX_ZIP_BYTES = 1024 * MiB
MAX_ZIP_MEMBERS = 20_000

VIDEO_EXTENSIONS = ("mp4", "avi", "mov", "mkv", "webm", "m4v")


_LABEL_EXTENSIONS = (".dcm", ".dicom", ".dic", ".ima")


def upload_label(index: int, name: str) -> str:
    """How the page names the ``index``-th uploaded DICOM file (0-based): "upload 2.dcm", in the order
    of the uploader's list. Not the file's name: PACS exports name files after patients and MRNs, and
    the page never shows patient identity unless asked (only a known DICOM extension is kept)."""
    ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return f"upload {index + 1}{ext if ext in _LABEL_EXTENSIONS else ''}"


def _size_message(name: str, size: int, limit: int, what: str) -> str | None:
    if size == 0:
        return f"{name}: the file is empty."
    if size > limit:
        return (f"{name}: {size / MiB:.1f} MiB is larger than the {limit / MiB:.0f} MiB allowed for "
                f"{what}. Analyse big collections from a folder on the Batch analysis page instead.")
    return None


def check_dicom(name: str, data: bytes, limit: int = MAX_DICOM_BYTES) -> str | None:
    """Size and obvious-format check for one uploaded DICOM file (PS3.10 file or raw data set).

    Files without the 128-byte preamble and ``DICM`` prefix are legal (PS3.10 7.1 is often ignored by
    older modalities), so only formats that are certainly not DICOM are refused here: images, videos,
    archives, PDFs and text.
    """
    msg = _size_message(name, len(data), limit, "one DICOM file")
    if msg:
        return msg
    if len(data) >= 132 and data[128:132] == b"DICM":
        return None
    head = data[:16]
    known = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
             b"PK\x03\x04": "a zip archive (upload it on the Batch analysis page)", b"%PDF": "a PDF document",
             b"\x1aE\xdf\xa3": "a Matroska/WebM video", b"RIFF": "a RIFF (AVI/WAV) file",
             b"BM": "a BMP image", b"II*\x00": "a TIFF image", b"MM\x00*": "a TIFF image"}
    for magic, what in known.items():
        if head.startswith(magic):
            return f"{name}: this is {what}, not a DICOM file."
    if head[4:8] == b"ftyp":
        return f"{name}: this is an MP4/MOV video, not a DICOM file."
    sample = data[:512]
    if sample and all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return f"{name}: this is a text file, not a DICOM file."
    return None


def check_video(name: str, data: bytes, limit: int = MAX_VIDEO_BYTES) -> str | None:
    """Size and extension check for an uploaded video; decoding errors come from the app's reader."""
    msg = _size_message(name, len(data), limit, "a video")
    if msg:
        return msg
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in VIDEO_EXTENSIONS:
        return f"{name}: expected a video file ({', '.join(VIDEO_EXTENSIONS)})."
    return None


def check_zip(name: str, data: bytes, limit: int = MAX_ZIP_BYTES) -> str | None:
    """A zip of studies: size, readable archive, no absolute or parent-relative member paths, no bomb."""
    msg = _size_message(name, len(data), limit, "a zip of studies")
    if msg:
        return msg
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except zipfile.BadZipFile:
        return f"{name}: not a readable zip archive."
    if len(infos) > MAX_ZIP_MEMBERS:
        return f"{name}: {len(infos)} files is more than the {MAX_ZIP_MEMBERS} allowed in one upload."
    total = sum(i.file_size for i in infos)
    if total > 8 * limit:
        return f"{name}: unpacks to {total / MiB:.0f} MiB, too large to analyse from an upload."
    for info in infos:
        parts = info.filename.replace("\\", "/").split("/")
        if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            return f"{name}: member {info.filename!r} points outside the archive; refused."
    return None


def safe_extract(data: bytes, dest) -> int:
    """Extract a zip already accepted by :func:`check_zip` into ``dest``; returns the number of files.

    All or nothing: the members go to a sibling folder renamed to ``dest`` at the end, so a member that
    cannot be unpacked (damaged data failing its CRC-32, an encrypted or unsupported compression method,
    a full disk) leaves no half-unpacked ``dest`` that a later upload of the same zip would take as done.
    Such a failure raises ValueError with a message for the person who uploaded the file.
    """
    import shutil
    import zlib
    from pathlib import Path

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    n = 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                try:
                    zf.extract(info, part)
                except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError,
                        OSError) as e:
                    damaged = isinstance(e, (zipfile.BadZipFile, zlib.error, EOFError))
                    reason = "its data is damaged" if damaged else type(e).__name__
                    # member paths are often patient names (one folder per patient): number, not name
                    raise ValueError(f"file {n + 1} of the archive cannot be unpacked ({reason}).") from e
                n += 1
        part.replace(dest)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
    return n
