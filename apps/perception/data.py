"""Pre-processing (letterbox), cached training arrays, and CenterNet target encoding.

Cache layout (``.npy`` only, no pickle): ``images.npy`` uint8 (N, S, S, 3) RGB letterboxed to the
model size S, and ``boxes.npy`` float32 (M, 6) rows ``[image_index, class, x1, y1, x2, y2]`` in
letterboxed pixels; ``class = -1`` marks an ignore region.
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np

from .augment import augment
from .classes import NUM_CLASSES

PAD_VALUE = 114
STRIDE = 4


def _rgb8_channels(img: np.ndarray) -> np.ndarray:
    """Check a frame's dtype and channels: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (alpha dropped),
    uint8 or uint16 (full range 0..65535). Returns the frame without alpha."""
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"letterbox: frames are uint8 (0..255) or uint16 (0..65535), got {img.dtype}; "
            "scale and convert a float image first"
        )
    if img.ndim == 3 and img.shape[2] == 4:
        return img[..., :3]
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3)):
        return img
    raise ValueError(f"letterbox: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {img.shape}")


def _to_rgb8(img: np.ndarray) -> np.ndarray:
    """(h, w[, 1 or 3]) uint8 / uint16 -> (h, w, 3) uint8 (grey replicated, uint16 rounded x / 257)."""
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if img.ndim == 2:
        img = img[..., None]
    return np.broadcast_to(img, img.shape[:2] + (3,)) if img.shape[2] == 1 else img


def letterbox(
    img: np.ndarray, size: int | tuple[int, int] = 320
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Resize keeping the aspect ratio and pad to ``size`` (int = square, or (width, height)).

    ``img``: RGB (H, W, 3); also grayscale (H, W) or (H, W, 1) (replicated to RGB), RGBA (alpha
    dropped), uint8 or uint16 (full range, rounded x / 257); any strides.
    Returns (image uint8 (h, w, 3), (scale, pad_x, pad_y)); original = (letterboxed - pad) / scale,
    exactly on both axes: the picture is resampled at ``scale`` itself (its last row or column may be
    partly covered), not stretched to a rounded pixel count, which put the short side of a KITTI frame
    (1242 x 375 at 320) 1.5 px off.
    """
    tw, th = (size, size) if isinstance(size, int) else size
    h, w = img.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"letterbox: empty image of shape {img.shape}")
    img = _rgb8_channels(img)
    r = min(tw / w, th / h)
    out = np.full((th, tw, 3), PAD_VALUE, np.uint8)
    interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
    if r == 1:
        res = img
    elif round(w * r) >= 1 and round(h * r) >= 1:
        # given fx / fy, OpenCV maps x' = x * r exactly (centre-aligned) and sizes the output round(w * r)
        res = cv2.resize(img, None, fx=r, fy=r, interpolation=interp)
    else:  # a very elongated image keeps at least one pixel across (rounding would give 0)
        res = cv2.resize(img, (max(1, int(round(w * r))), max(1, int(round(h * r)))), interpolation=interp)
    nh, nw = res.shape[:2]
    px, py = (tw - nw) // 2, (th - nh) // 2
    out[py : py + nh, px : px + nw] = _to_rgb8(res)
    return out, (r, float(px), float(py))


def unletterbox_boxes(
    boxes: np.ndarray, meta: tuple[float, float, float], width: int, height: int
) -> np.ndarray:
    """Map xyxy boxes from letterboxed to original pixels, clipped to the original frame."""
    r, px, py = meta
    b = np.asarray(boxes, np.float32).copy()
    b[:, [0, 2]] = np.clip((b[:, [0, 2]] - px) / r, 0, width)
    b[:, [1, 3]] = np.clip((b[:, [1, 3]] - py) / r, 0, height)
    return b


def build_cache(
    out: str, n: int, seed: int, size: int = 320, width: int = 640, height: int = 480, progress=None
) -> dict:
    """Render ``n`` synthetic frames, letterbox them to ``size`` and save ``images.npy`` / ``boxes.npy``."""
    from .synth import random_scene

    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    imgs = np.empty((n, size, size, 3), np.uint8)
    rows = []
    for k in range(n):
        img, anns = random_scene(rng, width, height)
        imgs[k], (r, px, py) = letterbox(img, size)
        for a in anns:
            x1, y1, x2, y2 = a["bbox"]
            rows.append(
                [k, -1 if a["ignore"] else a["cls"], x1 * r + px, y1 * r + py, x2 * r + px, y2 * r + py]
            )
        if progress is not None:
            progress(k + 1, n)
    np.save(os.path.join(out, "images.npy"), imgs)
    np.save(os.path.join(out, "boxes.npy"), np.asarray(rows, np.float32).reshape(-1, 6))
    meta = dict(n=n, seed=seed, size=size, source_size=[width, height], generator="apps.perception.synth")
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f)
    return meta


def merge_caches(out: str, roots: list[str]) -> dict:
    """Concatenate caches made by :func:`build_cache` at the same size into ``out`` (frames in order,
    box rows renumbered); the frames are copied through a memory map, one cache at a time."""
    metas = []
    for r in roots:
        with open(os.path.join(r, "meta.json")) as f:
            metas.append(json.load(f))
    keys = {(m["size"], tuple(m["source_size"])) for m in metas}
    if len(keys) != 1:
        raise ValueError(f"merge_caches: the caches differ in size or source size: {sorted(keys)}")
    ims = [np.load(os.path.join(r, "images.npy"), mmap_mode="r", allow_pickle=False) for r in roots]
    n = sum(len(a) for a in ims)
    os.makedirs(out, exist_ok=True)
    dst = np.lib.format.open_memmap(
        os.path.join(out, "images.npy"), mode="w+", dtype=np.uint8, shape=(n,) + ims[0].shape[1:]
    )
    rows, off = [], 0
    for r, a in zip(roots, ims):
        dst[off : off + len(a)] = a
        b = np.load(os.path.join(r, "boxes.npy"), allow_pickle=False).copy()
        b[:, 0] += off
        rows.append(b)
        off += len(a)
    dst.flush()
    del dst
    np.save(os.path.join(out, "boxes.npy"), np.concatenate(rows).reshape(-1, 6))
    size, source = keys.pop()
    meta = dict(n=n, seed=[m["seed"] for m in metas], size=size, source_size=list(source),
                generator="apps.perception.synth")
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f)
    return meta


class CachedDataset:
    """Cached frames as (image uint8 (S, S, 3), boxes float32 (K, 4), classes int64 (K,), ignore (M, 4))."""

    def __init__(self, root: str, mmap: bool = True):
        self.images = np.load(
            os.path.join(root, "images.npy"), mmap_mode="r" if mmap else None, allow_pickle=False
        )
        rows = np.load(os.path.join(root, "boxes.npy"), allow_pickle=False)
        idx = rows[:, 0].astype(np.int64)
        order = np.argsort(idx, kind="stable")
        rows, idx = rows[order], idx[order]
        starts = np.searchsorted(idx, np.arange(len(self.images) + 1))
        self._rows = rows
        self._starts = starts

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        n = len(self.images)
        if not -n <= i < n:
            raise IndexError(f"CachedDataset: index {i} out of range for {n} frames")
        i = int(i) % n  # a negative index: its own frame's rows (starts[-1]:starts[0] is empty)
        r = self._rows[self._starts[i] : self._starts[i + 1]]
        lab = r[:, 1] >= 0
        return (
            np.asarray(self.images[i]),
            r[lab, 2:6].copy(),
            r[lab, 1].astype(np.int64),
            r[~lab, 2:6].copy(),
        )


def gaussian_radius(h: np.ndarray, w: np.ndarray, min_overlap: float = 0.7) -> np.ndarray:
    """CenterNet's radius (in output cells) within which a shifted box keeps IoU >= ``min_overlap``
    with the original (the smallest of the three corner cases of CornerNet, Law & Deng 2018)."""
    a1, b1 = 1.0, h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + np.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return np.minimum(np.minimum(r1, r2), r3)


def encode_targets(
    boxes: np.ndarray,
    classes: np.ndarray,
    ignore: np.ndarray,
    size: int,
    num_classes: int = NUM_CLASSES,
    stride: int = STRIDE,
) -> dict[str, np.ndarray]:
    """CenterNet targets on the stride-``stride`` grid (G = size // stride).

    Returns ``heatmap`` (C, G, G) Gaussian peaks of 1 at object centres; ``hm_weight`` (1, G, G), 0 inside
    ignore regions; ``reg`` (4, G, G) = [dx, dy, log(w / stride), log(h / stride)] where (dx, dy) is the
    centre minus the cell; ``reg_weight`` (1, G, G). Regression is supervised on the 3x3 cells around each
    centre, weighted by the Gaussian (as TTFNet does, it trains faster than the centre cell alone);
    smaller objects are written last so they win shared cells, but every centre cell holds its own
    object (where two objects share one, the smaller).
    """
    G = size // stride
    hm = np.zeros((num_classes, G, G), np.float32)
    hw = np.ones((1, G, G), np.float32)
    reg = np.zeros((4, G, G), np.float32)
    rw = np.zeros((1, G, G), np.float32)
    for x1, y1, x2, y2 in np.asarray(ignore).reshape(-1, 4) / stride:
        hw[0, max(int(y1), 0) : max(int(np.ceil(y2)), 0), max(int(x1), 0) : max(int(np.ceil(x2)), 0)] = 0.0
    b = np.asarray(boxes, np.float32).reshape(-1, 4) / stride
    if len(b) == 0:
        return dict(heatmap=hm, hm_weight=hw, reg=reg, reg_weight=rw)
    w, h = np.maximum(b[:, 2] - b[:, 0], 1e-3), np.maximum(b[:, 3] - b[:, 1], 1e-3)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    rad = np.maximum(0, gaussian_radius(h, w).astype(int))
    yy, xx = np.arange(G)[:, None], np.arange(G)[None, :]
    for k in np.argsort(-(w * h)):
        px, py = int(np.clip(cx[k], 0, G - 1)), int(np.clip(cy[k], 0, G - 1))
        sigma = (2 * rad[k] + 1) / 6.0
        r = rad[k]
        y0, y1_, x0, x1_ = max(py - r, 0), min(py + r + 1, G), max(px - r, 0), min(px + r + 1, G)
        g = np.exp(-((yy[y0:y1_] - py) ** 2 + (xx[:, x0:x1_] - px) ** 2) / (2 * sigma**2))
        c = int(classes[k])
        hm[c, y0:y1_, x0:x1_] = np.maximum(hm[c, y0:y1_, x0:x1_], g)
        hw[0, y0:y1_, x0:x1_] = 1.0
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                qx, qy = px + dx, py + dy
                if not (0 <= qx < G and 0 <= qy < G):
                    continue
                wgt = float(np.exp(-(dx * dx + dy * dy) / (2 * max(sigma, 0.5) ** 2)))
                reg[:, qy, qx] = (cx[k] - qx, cy[k] - qy, np.log(w[k]), np.log(h[k]))
                rw[0, qy, qx] = wgt
    # each centre cell regresses its own object: the decoder reads the box at the peak, and a smaller
    # neighbour's 3x3 cells (written later) overwrote the centre of an adjacent larger object
    for k in np.argsort(-(w * h)):  # a centre cell shared by two objects: the smaller one, as above
        px, py = int(np.clip(cx[k], 0, G - 1)), int(np.clip(cy[k], 0, G - 1))
        reg[:, py, px] = (cx[k] - px, cy[k] - py, np.log(w[k]), np.log(h[k]))
        rw[0, py, px] = 1.0
    return dict(heatmap=hm, hm_weight=hw, reg=reg, reg_weight=rw)


class TrainDataset:
    """Augmented training samples: (image float32 (3, S, S) in 0..1, targets dict)."""

    def __init__(
        self,
        cache: CachedDataset,
        size: int,
        seed: int = 0,
        augment_p: float = 1.0,
        mosaic_p: float = 0.5,
        epoch: int = 0,
        crop: int | None = None,
    ):
        self.cache, self.size, self.seed = cache, size, seed
        self.augment_p, self.mosaic_p, self.epoch = augment_p, mosaic_p, epoch
        # the network is fully convolutional: training on crops (objects keep their scale) costs
        # (crop / size)^2 of the full frame per sample
        self.crop = crop if crop and crop < size else None

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, i: int):
        return self.sample(i, self.epoch)

    def sample(self, i: int, epoch: int):
        """Sample ``i`` as augmented in ``epoch``: its randomness is a function of (seed, epoch, i) only."""
        rng = np.random.default_rng((self.seed, epoch, i))
        if rng.random() < self.augment_p:
            img, boxes, classes, ignore = augment(self.cache, i, rng, self.size, self.mosaic_p)
        else:
            img, boxes, classes, ignore = self.cache[i]
        size = self.size
        if self.crop:
            from .augment import crop as _crop

            img, boxes, classes, ignore = _crop(img, boxes, classes, ignore, rng, self.crop)
            size = self.crop
        t = encode_targets(boxes, classes, ignore, size)
        return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) / 255.0, t


def collate(batch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    imgs = np.stack([b[0] for b in batch])
    t = {k: np.stack([b[1][k] for b in batch]) for k in batch[0][1]}
    return imgs, t
