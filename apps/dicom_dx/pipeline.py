"""The grayscale display pipeline of DICOM PS3.3 C.11 and PS3.4 N.2, on NumPy arrays.

Order (PS3.4 Figure N.2-1): stored values → Modality LUT (C.11.1: LUT sequence or Rescale
Slope/Intercept) → VOI (C.11.2: VOI LUT sequence, or Window Center/Width with the VOI LUT Function
LINEAR, LINEAR_EXACT or SIGMOID) → Presentation LUT shape: MONOCHROME1 is inverted *after* VOI
(C.7.6.3.1.2). Our VOI output is normalised to [0, 1] instead of the stored bit range, so that the
model and the display see the same scale whatever the bit depth.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

__all__ = [
    "Window",
    "apply_modality",
    "padding_mask",
    "choose_window",
    "apply_window",
    "apply_voi_lut_sequence",
    "display",
    "frame_dataset",
    "percentile_window",
]


@dataclass(frozen=True)
class Window:
    """A VOI window. `center`/`width` in modality units; `function` per PS3.3 C.11.2.1.3;
    `source` says where it came from ("file", "percentile", "preset", "user")."""

    center: float
    width: float
    function: str = "LINEAR"
    source: str = "file"


def _lut_values(item: Dataset, ds: Dataset, signed_input: bool) -> tuple[np.ndarray, int, int]:
    """Decode a LUT item (Modality or VOI LUT Sequence item) → (table, first mapped value, bits).

    LUT Descriptor (0028,3002) is [entries (0 means 65536), first input value mapped, bits per
    entry] (PS3.3 C.11.1.1.1, C.11.2.1.1). Only the second value is US or SS, following whether the
    LUT's input is signed (`signed_input`); parsers pick one VR for all three values (pydicom from
    Pixel Representation alone), so each value is reinterpreted here. LUT Data may be US (a list) or
    OW (raw bytes)."""
    desc = [int(v) for v in item.LUTDescriptor]
    n = (desc[0] & 0xFFFF) or 65536  # always US: 40000 entries must not read as SS -25536
    first = desc[1] & 0xFFFF
    if signed_input and first >= 2**15:
        first -= 2**16
    bits = desc[2] & 0xFFFF
    data = item["LUTData"].value
    if isinstance(data, (bytes, bytearray)):
        little = True
        if getattr(ds, "original_encoding", None) and ds.original_encoding[1] is not None:
            little = bool(ds.original_encoding[1])
        table = np.array(struct.unpack_from(f"{'<' if little else '>'}{n}H", data), dtype=np.float64)
    else:
        table = np.asarray([data] if isinstance(data, (int, float)) else list(data), dtype=np.float64)
    return table[:n], first, bits


def _stored_signed(ds: Dataset) -> bool:
    return ds.get("PixelRepresentation", 0) == 1


def _modality_output_signed(ds: Dataset) -> bool:
    """Whether the VOI LUT's input (the Modality LUT's output) may be negative, which makes its
    LUT Descriptor's first-mapped value SS (PS3.3 C.11.2.1.1): US after a Modality LUT Sequence,
    the Pixel Representation's sign without a rescale, SS when the rescaled range reaches below 0
    (always the case for CT, whose Rescale Intercept is typically -1024)."""
    if ds.get("ModalityLUTSequence"):
        return False
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if _stored_signed(ds) else (0, 2**bits - 1)
    try:
        slope, intercept = _number(ds, "RescaleSlope", 1.0), _number(ds, "RescaleIntercept", 0.0)
    except ValueError:
        return _stored_signed(ds)
    return min(lo * slope, hi * slope) + intercept < 0


def _lookup(arr: np.ndarray, table: np.ndarray, first: int) -> np.ndarray:
    """Map values through a LUT; values below/above the mapped range take the first/last entry."""
    idx = np.clip(np.rint(arr).astype(np.int64) - first, 0, len(table) - 1)
    return table[idx]


def _number(ds: Dataset, name: str, default: float) -> float:
    """A numeric (DS/IS) attribute's first value; `default` when absent or blank (an all-space value
    is empty, PS3.5 6.2). Raises ValueError when the value is not a finite number."""
    if name not in ds:
        return default
    try:
        v = ds[name].value
    except ValueError:
        raw = ds.get_item(name).value
        if isinstance(raw, (bytes, bytearray)) and not bytes(raw).strip(b" \0"):
            return default
        raise
    if v is None or v == "":
        return default
    if isinstance(v, (list, tuple)) or getattr(ds[name], "VM", 1) > 1:
        v = v[0]
    x = float(v)
    if not np.isfinite(x):  # "NaN" or "1e999" would turn every pixel into NaN
        raise ValueError(f"{name} {v!s} is not a finite number")
    return x


def apply_modality(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """Modality LUT (PS3.3 C.11.1): stored pixel values → modality values (e.g. HU), float64.

    A Modality LUT Sequence wins over Rescale Slope/Intercept (the standard forbids both).
    Without either, the stored values pass through unchanged."""
    seq = ds.get("ModalityLUTSequence")
    if seq:
        table, first, _ = _lut_values(seq[0], ds, _stored_signed(ds))
        return _lookup(stored, table, first)
    slope = _number(ds, "RescaleSlope", 1.0)
    intercept = _number(ds, "RescaleIntercept", 0.0)
    # Integer stored values of ≤ 16 bits and integral rescales are exact in float32, at half the
    # memory traffic of float64 on multi-megapixel radiographs.
    exact32 = (
        stored.dtype.kind in "ui"
        and stored.dtype.itemsize <= 2
        and slope.is_integer()
        and intercept.is_integer()
        and abs(slope) <= 256
    )
    out = stored.astype(np.float32 if exact32 else np.float64)
    if slope != 1.0:
        out *= out.dtype.type(slope)
    if intercept != 0.0:
        out += out.dtype.type(intercept)
    return out


def padding_mask(stored: np.ndarray, ds: Dataset) -> np.ndarray | None:
    """Pixels marked by Pixel Padding Value (0028,0120) [and Range Limit (0028,0121)], PS3.3
    C.7.5.1.1.2, or for Float / Double Float Pixel Data by (Double) Float Pixel Padding Value
    (0028,0122/0123) [and Range Limit (0028,0124/0125)]; checked on *stored* values before the
    Modality LUT. None when not present."""
    if stored.dtype.kind == "f":
        names = [
            ("FloatPixelPaddingValue", "FloatPixelPaddingRangeLimit"),
            ("DoubleFloatPixelPaddingValue", "DoubleFloatPixelPaddingRangeLimit"),
        ]
        cast = float
    else:
        names, cast = [("PixelPaddingValue", "PixelPaddingRangeLimit")], int
    for value_name, limit_name in names:
        pad = ds.get(value_name)
        if pad is None:
            continue
        pad = cast(pad)
        limit = ds.get(limit_name)
        if limit is None:
            return stored == pad
        lo, hi = sorted((pad, cast(limit)))
        return (stored >= lo) & (stored <= hi)
    return None


def percentile_window(
    values: np.ndarray, mask: np.ndarray | None = None, lo: float = 0.5, hi: float = 99.5
) -> Window:
    """A LINEAR window spanning the [lo, hi] percentiles of the non-padded modality values,
    for files that carry no VOI of their own."""
    v = values[~mask] if mask is not None and (~mask).any() else values
    # Subsample big images: percentiles of 1/16 of the pixels are as good and 16x cheaper.
    flat = v.ravel()
    if flat.size > 1 << 18:
        flat = flat[:: max(1, flat.size >> 18)]
    a, b = np.percentile(flat, [lo, hi]) if flat.size else (0.0, 1.0)
    width = max(float(b - a), 1.0)
    return Window(center=float(a + b) / 2.0 + 0.5, width=width + 1.0, function="LINEAR", source="percentile")


_VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


def _window_usable(center: float, width: float, function: str) -> bool:
    """PS3.3 C.11.2.1.2: Window Width >= 1 for LINEAR, > 0 for LINEAR_EXACT and SIGMOID."""
    if not (np.isfinite(center) and np.isfinite(width)):
        return False
    return width >= 1.0 if function == "LINEAR" else width > 0.0


def choose_window(ds: Dataset, index: int = 0) -> Window | None:
    """The `index`-th Window Center/Width pair of the file (they are multi-valued when the file
    offers several presets), with its VOI LUT Function; None when the file has no usable window.

    Files in the wild carry windows a viewer cannot apply (Window Width 0 meaning "not set",
    unparseable decimal strings, an unknown VOI LUT Function): an unusable pair is skipped for the
    next usable one, and an unknown function is read as LINEAR, the standard's default when the
    attribute is absent (C.11.2.1.3)."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None

    def floats(name: str) -> list[float]:
        try:
            v = ds[name].value
        except (ValueError, TypeError, OverflowError):  # a DS that does not parse
            return []
        out = []
        for x in v if isinstance(v, (list, tuple)) or getattr(ds[name], "VM", 1) > 1 else [v]:
            try:
                out.append(float(x))
            except (TypeError, ValueError):
                out.append(float("nan"))
        return out

    cs, ws = floats("WindowCenter"), floats("WindowWidth")
    n = min(len(cs), len(ws))
    if n == 0:
        return None
    try:
        func = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    except (ValueError, TypeError):
        func = "LINEAR"
    if func not in _VOI_FUNCTIONS:
        func = "LINEAR"
    first = min(max(index, 0), n - 1)
    for i in [first] + [j for j in range(n) if j != first]:
        if _window_usable(cs[i], ws[i], func):
            return Window(center=cs[i], width=ws[i], function=func, source="file")
    return None


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Window Center/Width (PS3.3 C.11.2.1.2 and C.11.2.1.3) → float64 in [0, 1].

    LINEAR:       y = ((x - (c - 0.5)) / (w - 1) + 0.5), clipped; needs w ≥ 1.
    LINEAR_EXACT: y = (x - c) / w + 0.5, clipped; needs w > 0.
    SIGMOID:      y = 1 / (1 + exp(-4 (x - c) / w)); needs w > 0."""
    c, w, func = window.center, window.width, window.function.upper()
    x = values if values.dtype in (np.float32, np.float64) else values.astype(np.float64)
    if func in ("LINEAR", "LINEAR_EXACT"):
        if func == "LINEAR":
            if w < 1:
                raise ValueError(f"Window Width {w} < 1 is not allowed for LINEAR (PS3.3 C.11.2.1.2)")
            c, w = c - 0.5, w - 1.0
        elif w <= 0:
            raise ValueError(f"Window Width {w} <= 0 is not allowed for LINEAR_EXACT")
        if w == 0:  # LINEAR with width 1: a pure threshold
            return (x > c).astype(x.dtype)
        # Clipping (x - c)/w + 0.5 to [0, 1] is exactly the standard's piecewise rule
        # (x <= c - w/2 → min, x > c + w/2 → max); done in place, this is the hot loop of a batch.
        y = x - x.dtype.type(c)
        y *= x.dtype.type(1.0 / w)
        y += x.dtype.type(0.5)
        return np.clip(y, 0.0, 1.0, out=y)
    if func == "SIGMOID":
        if w <= 0:
            raise ValueError(f"Window Width {w} <= 0 is not allowed for SIGMOID")
        y = x - x.dtype.type(c)
        y *= x.dtype.type(-4.0 / w)
        np.clip(y, -80, 80, out=y)
        np.exp(y, out=y)
        y += 1.0
        return np.reciprocal(y, out=y)
    raise ValueError(f"unsupported VOI LUT Function {window.function!r} (PS3.3 C.11.2.1.3)")


def apply_voi_lut_sequence(values: np.ndarray, ds: Dataset, index: int = 0) -> np.ndarray | None:
    """VOI LUT Sequence (0028,3010) item `index` → float64 in [0, 1] (table / (2**bits - 1)).
    None when the file has no VOI LUT Sequence.

    Some writers declare fewer bits per entry in the LUT Descriptor than the LUT Data uses (12 for
    16-bit entries); the entries' own range then decides, so that the output stays
    in [0, 1] instead of running far above 1."""
    seq = ds.get("VOILUTSequence")
    if not seq:
        return None
    item = seq[min(index, len(seq) - 1)]
    table, first, bits = _lut_values(item, ds, _modality_output_signed(ds))
    top = int(table.max()) if table.size else 0
    if top > 2**bits - 1:
        bits = max(bits, top.bit_length())
    return _lookup(values, table, first) / float(2**bits - 1)


# Functional group sequences whose item's attributes stand for the top-level ones of PS3.3 C.11.
_FRAME_PIXEL_GROUPS = ("PixelValueTransformationSequence", "FrameVOILUTSequence")


def frame_dataset(ds: Dataset, frame: int) -> Dataset:
    """The attributes that drive the pipeline for frame `frame` (0-based).

    Enhanced multi-frame objects (Enhanced CT/MR/XA, PS3.3 C.7.6.16) carry Rescale Slope/Intercept
    in the Pixel Value Transformation Sequence (C.7.6.16.2.9) and the windows in the Frame VOI LUT
    Sequence (C.7.6.16.2.10) of their functional groups, shared by all frames or given per frame,
    instead of at the top level. Returns `ds` itself when it has no functional groups, else a small
    data set of its group 0028 attributes overlaid by the shared then the frame's own groups."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not shared and not per_frame:
        return ds
    view = ds.group_dataset(0x0028)
    implicit, little = ds.original_encoding
    view.set_original_encoding(implicit, little)
    groups = [shared[0] if shared else None]
    groups.append(per_frame[frame] if per_frame and frame < len(per_frame) else None)
    for group in groups:
        for name in _FRAME_PIXEL_GROUPS:
            seq = group.get(name) if group is not None else None
            if seq:
                for elem in seq[0]:
                    view.add(elem)
    return view


def display(
    stored: np.ndarray,
    ds: Dataset,
    *,
    voi_index: int = 0,
    window: Window | None = None,
    prefer_lut: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Window | None]:
    """The whole grayscale pipeline for one frame.

    Args:
        stored: (H, W) stored pixel values of a MONOCHROME1/2 frame.
        ds: the dataset (its group 0028 attributes drive the pipeline).
        voi_index: which of several windows / VOI LUTs of the file to use.
        window: a caller's window (e.g. a preset) overriding the file's VOI.
        prefer_lut: a VOI LUT Sequence wins over Window Center/Width when both are present
            (pydicom's default, and what most viewers do).

    Returns:
        (image, values, mask, window): image float32 (H, W) in [0, 1], 1 = bright, after
        MONOCHROME1 inversion; values float32 modality values; mask of padding pixels or None;
        the window used (None when a VOI LUT Sequence was used).
    """
    mask = padding_mask(stored, ds)
    values = apply_modality(stored, ds)
    if values.dtype.kind == "f" and stored.dtype.kind == "f":
        # Float Pixel Data may hold NaN or inf (no value measured there): shown black like padding,
        # and kept out of the percentile window, instead of turning the whole image into NaN.
        missing = ~np.isfinite(values)
        if missing.any():
            mask = missing if mask is None else (mask | missing)
    used: Window | None = window
    out = None
    if used is None and prefer_lut:
        out = apply_voi_lut_sequence(values, ds, voi_index)
    if out is None:
        if used is None:
            used = choose_window(ds, voi_index)
        if used is None and not prefer_lut:
            out = apply_voi_lut_sequence(values, ds, voi_index)
        if out is None:
            if used is None:
                used = percentile_window(values, mask)
            out = apply_window(values, used)
    out = out.astype(np.float32, copy=False)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        np.subtract(np.float32(1.0), out, out=out)
    if mask is not None:
        out[mask] = 0.0  # padding renders black, whatever the polarity
    return out, values.astype(np.float32, copy=False), mask, used
