"""Training augmentation on letterboxed frames: horizontal flip, HSV jitter, scale/translate, mosaic.

Boxes are xyxy pixels. A box cut by a crop to less than ``KEEP_FRACTION`` of its area, or to under
2 px, becomes an ignore region rather than a label (a sliver of a car is not a car to learn from, and
not background either).
"""

from __future__ import annotations

import cv2
import numpy as np

PAD_VALUE = 114
KEEP_FRACTION = 0.35


def hsv_jitter(img: np.ndarray, rng: np.random.Generator, h: float = 0.015, s: float = 0.6, v: float = 0.4):
    """Random gains on hue, saturation and value (YOLO-style), via 256-entry lookup tables."""
    gains = rng.uniform(-1, 1, 3) * (h, s, v) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def hflip(img, boxes, ignore):
    w = img.shape[1]
    b, ig = boxes.copy(), ignore.copy()
    b[:, [0, 2]] = w - boxes[:, [2, 0]]
    ig[:, [0, 2]] = w - ignore[:, [2, 0]]
    return np.ascontiguousarray(img[:, ::-1]), b, ig


def _clip(boxes, classes, ignore, x0, y0, x1, y1):
    """Clip to a window; boxes losing too much area move to ``ignore``."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    c = boxes.copy()
    c[:, [0, 2]] = np.clip(c[:, [0, 2]], x0, x1)
    c[:, [1, 3]] = np.clip(c[:, [1, 3]], y0, y1)
    w, h = c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]
    keep = (w * h >= KEEP_FRACTION * np.maximum(area, 1e-6)) & (w >= 2) & (h >= 2)
    gone = ~keep & (w > 0) & (h > 0)
    ig = ignore.copy()
    ig[:, [0, 2]] = np.clip(ig[:, [0, 2]], x0, x1)
    ig[:, [1, 3]] = np.clip(ig[:, [1, 3]], y0, y1)
    ig = ig[(ig[:, 2] > ig[:, 0]) & (ig[:, 3] > ig[:, 1])]
    return c[keep], classes[keep], np.concatenate([ig, c[gone]]).reshape(-1, 4)


def affine(img, boxes, classes, ignore, rng, size, scale=(0.7, 1.4), translate=0.12):
    """Random zoom about the centre and shift; output ``size`` x ``size``."""
    s = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
    tx, ty = rng.uniform(-translate, translate, 2) * size
    h, w = img.shape[:2]
    ox, oy = size / 2 - s * w / 2 + tx, size / 2 - s * h / 2 + ty  # box coordinates: u' = s u + o
    # warpAffine maps pixel indices (pixel i's centre is u = i + 0.5), so its shift is o + (s - 1) / 2;
    # with o alone the picture sat (1 - s) / 2 px off its boxes
    c = (s - 1) / 2
    M = np.array([[s, 0, ox + c], [0, s, oy + c]], np.float64)
    out = cv2.warpAffine(img, M, (size, size), flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3)

    def tf(b):
        b = b.astype(np.float64)
        b[:, [0, 2]] = b[:, [0, 2]] * s + ox
        b[:, [1, 3]] = b[:, [1, 3]] * s + oy
        return b.astype(np.float32)

    b, c, ig = _clip(tf(boxes), classes, tf(ignore), 0, 0, size, size)
    return out, b, c, ig


def crop(img, boxes, classes, ignore, rng, size):
    """A random ``size`` x ``size`` window, biased to the image rows holding objects (when any)."""
    H, W = img.shape[:2]
    x0 = int(rng.integers(0, W - size + 1))
    if len(boxes) and rng.random() < 0.8:
        cy = float(np.mean((boxes[:, 1] + boxes[:, 3]) / 2))
        y0 = int(np.clip(cy - size / 2 + rng.uniform(-0.25, 0.25) * size, 0, H - size))
    else:
        y0 = int(rng.integers(0, H - size + 1))
    b, c, ig = _clip(boxes, classes, ignore, x0, y0, x0 + size, y0 + size)
    off = np.array([x0, y0, x0, y0], np.float32)
    return np.ascontiguousarray(img[y0 : y0 + size, x0 : x0 + size]), b - off, c, ig - off


def mosaic(cache, indices, rng, size):
    """Four frames tiled around a random centre, each zoomed by 0.6-1.0 and cropped to its quadrant."""
    xc, yc = (rng.uniform(0.3, 0.7, 2) * size).astype(int)
    out = np.full((size, size, 3), PAD_VALUE, np.uint8)
    allb, allc, alli = [], [], []
    quads = [(0, 0, xc, yc), (xc, 0, size, yc), (0, yc, xc, size), (xc, yc, size, size)]
    for idx, (x0, y0, x1, y1) in zip(indices, quads):
        img, b, c, ig = cache[int(idx)]
        s = rng.uniform(0.6, 1.0)
        im = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        h, w = im.shape[:2]
        # pick the source window that lands in the quadrant, anchored at the quadrant's inner corner
        qw, qh = x1 - x0, y1 - y0
        ox = x1 - w if x0 == 0 else x0  # image placement (may be negative = cropped)
        oy = y1 - h if y0 == 0 else y0
        sx0, sy0 = max(x0 - ox, 0), max(y0 - oy, 0)
        sx1, sy1 = min(w, sx0 + qw), min(h, sy0 + qh)
        dx0, dy0 = ox + sx0, oy + sy0
        out[dy0 : dy0 + sy1 - sy0, dx0 : dx0 + sx1 - sx0] = im[sy0:sy1, sx0:sx1]
        b, ig = b * s, ig * s
        b[:, [0, 2]] += ox
        b[:, [1, 3]] += oy
        ig[:, [0, 2]] += ox
        ig[:, [1, 3]] += oy
        b, c, ig = _clip(b, c, ig, dx0, dy0, dx0 + sx1 - sx0, dy0 + sy1 - sy0)
        allb.append(b)
        allc.append(c)
        alli.append(ig)
    return out, np.concatenate(allb), np.concatenate(allc), np.concatenate(alli)


def augment(cache, i: int, rng: np.random.Generator, size: int, mosaic_p: float = 0.5):
    """One augmented training sample from ``cache[i]``: (image uint8 (S, S, 3), boxes, classes, ignore)."""
    if rng.random() < mosaic_p:
        others = rng.integers(0, len(cache), 3)
        img, b, c, ig = mosaic(cache, [i, *others], rng, size)
    else:
        img, b, c, ig = cache[i]
        img, b, c, ig = affine(img, b, c, ig, rng, size)
    if rng.random() < 0.5:
        img, b, ig = hflip(img, b, ig)
    img = hsv_jitter(img, rng)
    return img, b.astype(np.float32), c.astype(np.int64), ig.astype(np.float32)
