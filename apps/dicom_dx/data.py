"""Model input: preprocessing shared by training and inference, a decoded-once cache, augmentation.

Preprocessing (stored in the model card): displayed grayscale image in [0, 1] (after the DICOM
display pipeline) → area-resized to size × size → rounded to 8 bits (the cache's uint8; inference
rounds too, so that it sees exactly what training and validation saw) → standardised per image
(zero mean, unit variance). Per-image standardisation makes the input indifferent to the file's
window level and width, which vary a lot between sites and presets.

The cache holds the resized images as uint8 (N, S, S) .npy files (no pickle), so training epochs
never re-decode DICOM.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from apps.dicom_dx.io import DicomReadError, read_dicom
from apps.dicom_dx.loaders import Record

__all__ = [
    "resize",
    "standardize",
    "display_image",
    "to_u8",
    "from_u8",
    "preprocess",
    "load_gray",
    "build_cache",
    "cache_is_current",
    "records_fingerprint",
    "load_cache",
    "augment",
    "AUGMENTATION",
    "batches",
]


def resize(gray: np.ndarray, size: int) -> np.ndarray:
    """(H, W) float in [0, 1] → (size, size) float32, area interpolation (anti-aliased)."""
    return cv2.resize(np.asarray(gray, np.float32), (size, size), interpolation=cv2.INTER_AREA)


def standardize(x: np.ndarray) -> np.ndarray:
    """Per-image zero mean, unit variance over the last two axes; x: (..., S, S)."""
    m = x.mean(axis=(-2, -1), keepdims=True)
    s = x.std(axis=(-2, -1), keepdims=True)
    return ((x - m) / (s + 1e-3)).astype(np.float32)


def to_u8(resized: np.ndarray) -> np.ndarray:
    """A resized display image in [0, 1] → uint8, rounded (what the training cache stores)."""
    return np.clip(resized * 255 + 0.5, 0, 255).astype(np.uint8)


def from_u8(x_u8: np.ndarray) -> np.ndarray:
    """uint8 (..., S, S) images → standardised float32 model input (no augmentation)."""
    return standardize(x_u8.astype(np.float32) / 255.0)


def display_image(gray: np.ndarray) -> np.ndarray:
    """Check a display image: (H, W), finite, float in [0, 1]; unsigned 8/16-bit images are scaled by
    their full range (as `load_gray` reads 8/16-bit PNGs). Raises ValueError otherwise: NaN or inf
    pixels would run through the model as NaN, and another value range (raw detector values, HU)
    is not the display image the model was trained on (window it first, e.g. io.apply_window)."""
    g = np.asarray(gray)
    if g.ndim != 2:
        raise ValueError(f"a grayscale image is 2-D (H, W); got shape {g.shape}")
    if g.dtype.kind in "ui":
        if g.dtype.kind == "i" or g.dtype.itemsize > 2:  # signed or 32-bit: raw values, not display
            raise ValueError(f"integer images are unsigned 8 or 16 bit; got {g.dtype} (window it first)")
        return g.astype(np.float32) / np.float32(np.iinfo(g.dtype).max)
    if g.dtype.kind != "f":
        raise ValueError(f"a grayscale image holds numbers; got {g.dtype}")
    lo, hi = float(g.min()), float(g.max())  # NaN propagates: one pass when the image is clean
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = int(g.size - np.count_nonzero(np.isfinite(g)))
        raise ValueError(f"image has {bad} non-finite pixel{'s' if bad > 1 else ''} (NaN or inf)")
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(
            f"a display image is in [0, 1]; got values in [{lo:.4g}, {hi:.4g}] (window it first)"
        )
    return g


def preprocess(gray: np.ndarray, size: int) -> np.ndarray:
    """(H, W) display image (float in [0, 1], or 8/16-bit integers) → (1, size, size) float32 model
    input: area resize, rounding to 8 bits, per-image standardisation — bit for bit what training and
    validation see through the uint8 cache (`build_cache`, `from_u8`). Raises ValueError for NaN/inf
    pixels or values outside [0, 1] (`display_image`)."""
    return from_u8(to_u8(resize(display_image(gray), size)))[None]


def load_gray(rec_or_path) -> np.ndarray:
    """A record's (or path's) displayed grayscale image in [0, 1]: DICOM through read_dicom, other
    image files through OpenCV (8/16 bit)."""
    if isinstance(rec_or_path, Record):
        if rec_or_path.image is not None:
            return rec_or_path.image
        path = rec_or_path.path
    else:
        path = rec_or_path
    path = Path(path)
    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if im is None:
            raise DicomReadError(f"{path.name}: unreadable image file", reason="not_image")
        if im.ndim == 3:
            im = cv2.cvtColor(im[..., :3], cv2.COLOR_BGR2GRAY)
        return im.astype(np.float32) / (65535.0 if im.dtype == np.uint16 else 255.0)
    return read_dicom(path).gray


def _one(args):
    rec, size = args
    try:
        return to_u8(resize(display_image(load_gray(rec)), size)), ""
    except (DicomReadError, OSError, ValueError) as e:
        return None, getattr(e, "reason", type(e).__name__)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool that is safe to start from a multi-threaded host (a Streamlit server): fork
    only while this process has a single thread, else spawn (forking a threaded process can
    deadlock on locks held by other threads)."""
    import multiprocessing
    import threading

    ctx = multiprocessing.get_context(
        "fork" if threading.active_count() == 1 and os.name == "posix" else "spawn"
    )
    return ProcessPoolExecutor(workers, mp_context=ctx)


def records_fingerprint(records: list[Record]) -> str:
    """SHA-256 over each record's labels, chest flag and image identity, in order: what a cache was
    built from. A file is identified by its path, size and modification time (a data set regenerated
    in place keeps its paths, and often its labels), an in-memory image (MedMNIST) by its pixels."""
    h = hashlib.sha256()
    for r in records:
        if r.image is not None:
            key = f"<memory:{r.group}>".encode() + hashlib.sha256(np.ascontiguousarray(r.image)).digest()
        else:
            try:
                st = os.stat(r.path)
                key = f"{r.path}|{st.st_size}|{st.st_mtime_ns}".encode()
            except OSError:
                key = f"{r.path}|missing".encode()
        h.update(key + b"\0" + np.asarray(r.labels, np.float32).tobytes() + bytes([r.frontal_chest]))
    return h.hexdigest()


def cache_is_current(path: str | Path, size: int, records: list[Record]) -> bool:
    """Whether `path` holds a cache at this size built from exactly these records (a cache from
    other data, another split or other labels must be rebuilt, not reused)."""
    p = Path(path)
    if not (p / f"images_{size}.npy").exists() or not (p / "index.json").exists():
        return False
    try:
        index = json.loads((p / "index.json").read_text())
    except (OSError, ValueError):
        return False
    return index.get("size") == size and index.get("records_sha256") == records_fingerprint(records)


def build_cache(
    records: list[Record], out: str | Path, size: int, workers: int | None = None, progress=None
) -> Path:
    """Decode every record once and store images_{size}.npy (uint8 (N, S, S)), labels.npy
    (float32 (N, 5), NaN unknown), chest.npy (int8 (N,)) and index.json (paths, skipped files, the
    records' fingerprint)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or min(2, os.cpu_count() or 1)
    images, labels, chest, paths, skipped = [], [], [], [], []
    jobs = [(r, size) for r in records]
    it = map(_one, jobs) if workers <= 1 else process_pool(workers).map(_one, jobs, chunksize=16)
    for i, (rec, (img, err)) in enumerate(zip(records, it)):
        if img is None:
            skipped.append({"path": str(rec.path), "reason": err})
        else:
            images.append(img)
            labels.append(rec.labels)
            chest.append(rec.frontal_chest)
            paths.append(str(rec.path) if rec.path else f"<memory:{rec.group}>")
        if progress is not None:
            progress(i + 1, len(records))
    np.save(out / f"images_{size}.npy", np.stack(images) if images else np.zeros((0, size, size), np.uint8))
    np.save(
        out / "labels.npy", np.stack(labels).astype(np.float32) if labels else np.zeros((0, 5), np.float32)
    )
    np.save(out / "chest.npy", np.asarray(chest, np.int8))
    index = {"size": size, "records_sha256": records_fingerprint(records), "paths": paths, "skipped": skipped}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return out


def load_cache(path: str | Path, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = Path(path)
    return (
        np.load(p / f"images_{size}.npy", allow_pickle=False),
        np.load(p / "labels.npy", allow_pickle=False),
        np.load(p / "chest.npy", allow_pickle=False),
    )


# What `augment` does, as the model card states it. The rotation/scale centre is jittered by ±4 %
# of the side, which moves the image by under 1 % (no separate translation): not a "shift ±4 %".
AUGMENTATION = (
    "rotation ±7° and scale ±8% about a centre jittered by ±4% of the side (the image moves by < 1%), "
    "gamma 0.75–1.35, Gaussian blur (30%), Gaussian noise (30%); no flip"
)


def augment(batch_u8: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Acquisition-like augmentation on (B, S, S) uint8 → float32 in [0, 1]: small rotation and
    scale about a jittered centre (patient positioning; see AUGMENTATION for the ranges), gamma
    (processing), blur or noise (detector). No horizontal flip: the heart's side is anatomy, not
    nuisance."""
    b, s, _ = batch_u8.shape
    out = np.empty((b, s, s), np.float32)
    for i in range(b):
        x = batch_u8[i].astype(np.float32) / 255.0
        m = cv2.getRotationMatrix2D(
            (s / 2 + rng.uniform(-0.04, 0.04) * s, s / 2 + rng.uniform(-0.04, 0.04) * s),
            rng.uniform(-7, 7),
            rng.uniform(0.92, 1.08),
        )
        x = cv2.warpAffine(x, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        x = np.clip(x, 0, 1) ** rng.uniform(0.75, 1.35)
        if rng.random() < 0.3:
            x = cv2.GaussianBlur(x, (3, 3), rng.uniform(0.3, 0.9))
        if rng.random() < 0.3:
            x = x + rng.normal(0, rng.uniform(0.005, 0.02), x.shape).astype(np.float32)
        out[i] = x
    return out


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None):
    """Index batches over range(n), shuffled when rng is given; the last partial batch is kept."""
    idx = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, batch_size):
        yield idx[i : i + batch_size]
