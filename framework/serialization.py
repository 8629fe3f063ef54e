"""Checkpoints: ``save(obj, path)`` / ``load(path)`` in the safetensors format, never pickle.

File layout (https://github.com/huggingface/safetensors, "Format")::

    8 bytes   N, the header length, unsigned little-endian
    N bytes   a JSON object: {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]},
              ..., "__metadata__": {"<str>": "<str>"}} (padded with spaces to a multiple of 8)
    rest      the tensors' bytes, little-endian, C order; offsets are relative to this part, and
              the tensors tile it exactly (no gaps, no overlaps)

Only tensors can live in the data part, so the rest of ``obj`` (nested dicts, lists, tuples,
numbers, strings, bools, None) is described by a JSON document stored under
``__metadata__["framework.structure"]`` in which each tensor is a reference to its entry. Dict
keys keep their type (the integer parameter ids of an optimizer state come back as ints). A plain
``{str: Tensor}`` state dict stores each tensor under its own key, so other safetensors readers
see the usual names; a file written by another safetensors writer loads as ``{name: Tensor}``.

Loading validates the whole header before reading any data: a damaged or hostile file raises
:class:`CheckpointError` naming the file and the problem; no code is ever run, and memory is only
allocated for byte ranges that exist in the file.
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Any

import numpy as np

from .backend import device as _device
from .backend import get_array_module, to_device
from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError"]

_STRUCTURE_KEY = "framework.structure"
_FORMAT_KEY = "format"
# safetensors' own reader refuses headers over 100 MB; so do we (a 2**63 "length" must not be read).
MAX_HEADER_BYTES = 100 * 1024 * 1024

_DTYPES = {
    "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
    "I8": np.dtype("i1"), "I16": np.dtype("<i2"), "I32": np.dtype("<i4"), "I64": np.dtype("<i8"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_MAX_NDIM = 64  # NumPy 2's limit
_MAX_BYTES = int(np.iinfo(np.intp).max)
_CODES = {v.newbyteorder("="): k for k, v in _DTYPES.items()}
_KNOWN_UNSUPPORTED = {"BF16", "F8_E4M3", "F8_E5M2", "U16", "U32", "U64", "C64"}


class CheckpointError(ValueError, RuntimeError):
    """A checkpoint file is damaged, hostile or not a safetensors file (a ValueError and a
    RuntimeError, so either ``except`` catches it)."""

    def __init__(self, path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"cannot load checkpoint {self.path!r}: {problem}")


# ----------------------------------------------------------------------------------- saving


def save(obj: Any, f) -> None:
    """Write ``obj`` (a state dict, an optimizer state dict, or any nesting of dicts, lists,
    tuples, Tensors, NumPy arrays, numbers, strings, bools and None) to ``f``, a path or a
    binary file object.

    Tensors are saved from the CPU, contiguous, with their dtype. Two references to the same
    tensor are stored twice (and load as two tensors).
    """
    arrays: list[tuple[str, np.ndarray]] = []
    used: set[str] = set()

    def add(name: str, a: np.ndarray) -> str:
        base, n = name or "tensor", 1
        while name in used or name == "__metadata__" or not name:
            name = f"{base}#{n}"
            n += 1
        used.add(name)
        arrays.append((name, a))
        return name

    def encode(x, path: str):
        if isinstance(x, Tensor):
            return {"__tensor__": add(path, _cpu_array(x.data))}
        if isinstance(x, np.ndarray) or get_array_module(x) is not np:  # NumPy, or a CuPy array
            return {"__ndarray__": add(path, _cpu_array(x))}
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, np.bool_):
            return bool(x)
        if isinstance(x, (int, np.integer)):
            return int(x)
        if isinstance(x, (float, np.floating)):
            x = float(x)
            return x if math.isfinite(x) else {"__float__": repr(x)}
        if isinstance(x, tuple):
            return {"__tuple__": [encode(v, _join(path, i)) for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [encode(v, _join(path, i)) for i, v in enumerate(x)]
        if isinstance(x, dict):
            if all(isinstance(k, str) for k in x) and not any(k.startswith("__") for k in x):
                return {k: encode(v, _join(path, k)) for k, v in x.items()}
            items = []
            for k, v in x.items():
                if not (k is None or isinstance(k, (str, int, float, bool))):
                    raise TypeError(f"save: dict keys must be str, int, float, bool or None, got "
                                    f"{type(k).__name__} at {path or '<root>'}")
                items.append([encode(k, path), encode(v, _join(path, k))])
            return {"__dict__": items}
        if hasattr(x, "state_dict") and callable(x.state_dict):
            raise TypeError(f"save: got a {type(x).__name__}; save its state_dict() instead")
        raise TypeError(f"save: cannot store an object of type {type(x).__name__} at "
                        f"{path or '<root>'} (only tensors, arrays, numbers, strings, bools, None, "
                        "and dicts, lists, tuples of them)")

    structure = encode(obj, "")
    header: dict[str, Any] = {}
    offset = 0
    for name, a in arrays:
        header[name] = {"dtype": _CODES[a.dtype.newbyteorder("=")], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    header["__metadata__"] = {_FORMAT_KEY: "pt", _STRUCTURE_KEY: json.dumps(structure)}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)

    def write(fh):
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for _, a in arrays:
            # (reshape(-1): a flat view, so 0-d arrays work too; no copy on little-endian machines)
            fh.write(a.astype(a.dtype.newbyteorder("<"), copy=False).reshape(-1).data)

    if hasattr(f, "write"):  # an open binary file or io.BytesIO
        write(f)
        return
    path = os.fspath(f)
    tmp = path + ".tmp"
    # Write then rename, so an interrupted save never leaves a half-written checkpoint behind.
    with open(tmp, "wb") as fh:
        write(fh)
    os.replace(tmp, path)


def _join(path: str, key) -> str:
    return str(key) if not path else f"{path}.{key}"


def _cpu_array(a) -> np.ndarray:
    a = to_device(a, _device("cpu"))
    if not a.flags.c_contiguous:  # (np.ascontiguousarray would turn 0-d arrays into 1-d ones)
        a = a.copy(order="C")
    if a.dtype.newbyteorder("=") not in _CODES:
        hint = " (save fw.view_as_real(t), its real and imaginary parts, instead)"
        hint = hint if a.dtype.kind == "c" else ""
        raise TypeError(f"save: unsupported dtype {a.dtype}{hint}")
    return a


# ----------------------------------------------------------------------------------- loading


def load(f, map_location=None, weights_only: bool = True) -> Any:
    """Read a file written by :func:`save` (or any safetensors file; ``f`` a path or a binary
    file object) and rebuild the object.

    ``map_location``: ``None`` or ``"cpu"`` keeps tensors on the CPU; a device (``"cuda"``,
    ``"cuda:1"``, ``fw.device(...)``) moves them there. ``weights_only`` is accepted for
    PyTorch compatibility: loading never runs code whatever its value.
    """
    if hasattr(f, "read"):  # an open binary file or io.BytesIO: read from its current position
        import io

        path = getattr(f, "name", "<stream>")
        fh = io.BytesIO(f.read())
        size = len(fh.getbuffer())
    else:
        path = os.fspath(f)
        try:
            size = os.path.getsize(path)
            fh = open(path, "rb")
        except OSError as e:
            raise FileNotFoundError(f"cannot open checkpoint {path!r}: {e.strerror}") from e
    with fh:
        if size < 8:
            raise CheckpointError(path, f"file is {size} bytes long, too short for a safetensors "
                                        "header (truncated or not a checkpoint)")
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > MAX_HEADER_BYTES:
            raise CheckpointError(path, f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit "
                                        "(not a safetensors file, or damaged)")
        if n > size - 8:
            raise CheckpointError(path, f"header length {n} is larger than the rest of the file "
                                        f"({size - 8} bytes): truncated or damaged")
        raw = fh.read(n)
        entries, metadata = _parse_header(path, raw)
        data_len = size - 8 - n
        _check_layout(path, entries, data_len)
        tensors = {}
        for name, (dt, shape, (b, e)) in entries.items():
            fh.seek(8 + n + b)
            # Read straight into the array (one copy of the data, not two); sizes were checked
            # against the file above, so this allocation is bounded by the file's size.
            a = np.empty(shape, dtype=dt)
            if e > b and fh.readinto(memoryview(a.reshape(-1)).cast("B")) != e - b:
                raise CheckpointError(path, f"tensor {name!r}: file ended while reading its data")
            if dt.kind == "b" and a.size and a.view(np.uint8).max() > 1:
                # (NumPy would keep such bytes as bools that are neither True nor False)
                raise CheckpointError(path, f"tensor {name!r}: BOOL data holds bytes other than 0 "
                                            "and 1 (damaged file)")
            tensors[name] = a if dt.isnative else a.astype(dt.newbyteorder("="))
    dev = None if map_location is None else _device(map_location)
    structure = metadata.get(_STRUCTURE_KEY) if metadata else None
    if structure is None:
        return {k: _to_tensor(a, dev) for k, a in tensors.items()}
    try:
        doc = json.loads(structure, parse_constant=_reject_constant)
        return _decode(path, doc, tensors, dev, set())
    except ValueError as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(path, f"object structure in the metadata is not valid JSON ({e})") from None
    except RecursionError:
        raise CheckpointError(path, "object structure in the metadata is nested too deeply") from None


def _parse_header(path, raw: bytes):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(path, "header is not UTF-8 text (not a safetensors file)") from None
    try:
        header = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except ValueError as e:
        raise CheckpointError(path, f"header is not valid JSON ({e})") from None
    except RecursionError:
        raise CheckpointError(path, "header JSON is nested too deeply") from None
    if not isinstance(header, dict):
        raise CheckpointError(path, f"header must be a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and (not isinstance(metadata, dict)
                                 or not all(isinstance(v, str) for v in metadata.values())):
        raise CheckpointError(path, "__metadata__ must be an object of strings")
    entries = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) - {"dtype", "shape", "data_offsets"} or len(info) != 3:
            raise CheckpointError(path, f"tensor {name!r}: entry must have exactly dtype, shape and "
                                        "data_offsets")
        code = info["dtype"]
        if not isinstance(code, str) or code not in _DTYPES:
            what = "unsupported" if isinstance(code, str) and code in _KNOWN_UNSUPPORTED else "unknown"
            raise CheckpointError(path, f"tensor {name!r}: {what} dtype {code!r}")
        shape = info["shape"]
        if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
            raise CheckpointError(path, f"tensor {name!r}: shape must be a list of non-negative "
                                        f"integers, got {shape!r}")
        offs = info["data_offsets"]
        if not (isinstance(offs, list) and len(offs) == 2 and all(_is_int(o) and o >= 0 for o in offs)
                and offs[0] <= offs[1]):
            raise CheckpointError(path, f"tensor {name!r}: data_offsets must be [begin, end] with "
                                        f"0 <= begin <= end, got {offs!r}")
        dt = _DTYPES[code]
        nbytes = math.prod(shape) * dt.itemsize
        if nbytes != offs[1] - offs[0]:
            raise CheckpointError(path, f"tensor {name!r}: shape {shape} of {code} needs {nbytes} "
                                        f"bytes but data_offsets span {offs[1] - offs[0]}")
        # An empty tensor's other dimensions are not bounded by the file's size: NumPy's own
        # limits (64 dimensions, a byte size that fits an index) are checked here instead.
        if len(shape) > _MAX_NDIM or math.prod(s for s in shape if s) * dt.itemsize > _MAX_BYTES:
            raise CheckpointError(path, f"tensor {name!r}: shape {shape} is beyond what an array can "
                                        "have (damaged file)")
        entries[name] = (dt, tuple(shape), tuple(offs))
    return entries, metadata


def _unique_keys(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key {dup!r}")
    return d


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_layout(path, entries, data_len: int) -> None:
    spans = sorted((b, e, name) for name, (_, _, (b, e)) in entries.items())
    pos = 0
    for b, e, name in spans:
        if b < pos:
            raise CheckpointError(path, f"tensor {name!r}: data_offsets [{b}, {e}] overlap another "
                                        "tensor's data")
        if b > pos:
            raise CheckpointError(path, f"tensor {name!r}: data_offsets leave a gap of {b - pos} "
                                        "bytes before its data")
        pos = e
    if pos > data_len:
        raise CheckpointError(path, f"data_offsets reach byte {pos} but the data section is only "
                                    f"{data_len} bytes long: truncated or damaged")
    if pos < data_len:
        raise CheckpointError(path, f"{data_len - pos} bytes of data after the last tensor "
                                    "(damaged file)")


def _to_tensor(a: np.ndarray, dev) -> Tensor:
    if dev is not None and dev.type != "cpu":
        a = to_device(a, dev)
    return Tensor(a)


def _decode(path, x, tensors, dev, used):
    if isinstance(x, list):
        return [_decode(path, v, tensors, dev, used) for v in x]
    if not isinstance(x, dict):
        return x
    if len(x) == 1:
        (tag, v), = x.items()
        if tag in ("__tensor__", "__ndarray__"):
            if not isinstance(v, str) or v not in tensors:
                raise CheckpointError(path, f"object structure refers to a missing tensor {v!r}")
            if v in used:
                raise CheckpointError(path, f"object structure refers to tensor {v!r} twice")
            used.add(v)
            return _to_tensor(tensors[v], dev) if tag == "__tensor__" else tensors[v]
        if tag == "__tuple__" and isinstance(v, list):
            return tuple(_decode(path, e, tensors, dev, used) for e in v)
        if tag == "__float__" and v in ("inf", "-inf", "nan"):
            return float(v)
        if tag == "__dict__" and isinstance(v, list):
            out = {}
            for item in v:
                if not (isinstance(item, list) and len(item) == 2):
                    raise CheckpointError(path, "object structure: malformed dict item")
                k = _decode(path, item[0], tensors, dev, used)
                try:
                    hash(k)
                except TypeError:
                    raise CheckpointError(path, "object structure: unhashable dict key") from None
                out[k] = _decode(path, item[1], tensors, dev, used)
            return out
    return {k: _decode(path, v, tensors, dev, used) for k, v in x.items()}
