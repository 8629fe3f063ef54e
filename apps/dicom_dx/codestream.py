"""A structural check of JPEG codestreams, run before handing a frame to GDCM.

GDCM's JPEG codecs throw a C++ exception from inside libjpeg's error handler when the marker
structure is broken (a damaged DHT marker, say), which the Python binding does not catch: the
process aborts (SIGABRT), taking a Streamlit server or a whole batch with it. Walking the marker
segments first (ITU-T T.81 Annex B; T.87 for JPEG-LS) finds that kind of damage in a few
milliseconds, and the frame then goes to the other decoders, which fail with an exception.
Damage inside entropy-coded data is left to the decoders (libjpeg treats it as a warning).
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.encaps import get_frame

__all__ = ["jpeg_marker_problem", "frame_codestream"]

# Start-of-frame markers: T.81 Table B.1 (not C4 = DHT, C8 = JPG, CC = DAC), and T.87 SOF55.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
_HUFFMAN_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7}
_SOI, _EOI, _SOS, _DHT = 0xD8, 0xD9, 0xDA, 0xC4


def _scan_end(data: bytes, i: int, jpeg_ls: bool) -> int:
    """Index of the marker that ends the entropy-coded segment starting at `i` (len(data) if none).
    Inside it, T.81 stuffs FF with 00 and allows RSTn (FFD0-FFD7); T.87 follows FF with a byte
    whose high bit is 0 (T.87 A.1)."""
    n = len(data)
    while True:
        i = data.find(b"\xff", i)
        if i < 0 or i + 1 >= n:
            return n
        nxt = data[i + 1]
        data_byte = nxt < 0x80 if jpeg_ls else (nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF)
        if not data_byte:
            return i
        i += 1


def jpeg_marker_problem(data: bytes, jpeg_ls: bool = False) -> str | None:
    """What is structurally wrong with a JPEG (T.81) or JPEG-LS (T.87) codestream, or None.

    Checked: SOI first; every marker segment's length within the data; a frame header (SOF)
    before the first scan; for Huffman-coded frames a DHT segment before the first scan. A stream
    that ends without EOI is accepted (decoders pad it, with a warning)."""
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != _SOI:
        return "no SOI marker at the start"
    i, sof, dht = 2, None, False
    while i < n:
        if data[i] != 0xFF:
            return f"a marker is expected at byte {i}"
        while i < n and data[i] == 0xFF:  # fill bytes (T.81 B.1.1.2)
            i += 1
        if i >= n:
            return None
        marker = data[i]
        i += 1
        if marker == _EOI:
            return None
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length
            continue
        if marker == 0x00 or marker == _SOI:
            return f"marker FF{marker:02X} out of place at byte {i - 2}"
        if i + 2 > n:
            return None  # cut short after a marker: a truncated stream, left to the decoders
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2:
            return f"segment FF{marker:02X} at byte {i - 2} has length {length}"
        if marker in _SOF:
            sof = marker
        elif marker == _DHT:
            dht = True
        elif marker == _SOS:
            if sof is None:
                return "a scan (SOS) before any frame header (SOF)"
            if sof in _HUFFMAN_SOF and not dht:
                return "a Huffman-coded scan without a DHT segment"
            i = _scan_end(data, i + length, jpeg_ls)
            continue
        i += length
    return None


def frame_codestream(ds: Dataset, frame: int, n_frames: int, path: str | None = None) -> bytes:
    """The encapsulated codestream of frame `frame` (0-based). With `path`, Pixel Data that was not
    read into memory (deferred) is read from the file, this frame only."""
    elem = ds.get_item("PixelData")
    value = getattr(elem, "value", None)
    if value is None and path is not None and getattr(elem, "value_tell", None) is not None:
        with open(path, "rb") as fh:
            fh.seek(elem.value_tell)
            return get_frame(fh, frame, number_of_frames=n_frames)
    return get_frame(ds.PixelData, frame, number_of_frames=n_frames)
