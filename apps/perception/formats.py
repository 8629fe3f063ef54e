"""Loaders (and a writer) for the label formats driving data comes in.

Every loader returns a list of :class:`Sample` with boxes as ``float32 (N, 4)`` pixel ``x1, y1, x2, y2``
(x2/y2 exclusive edges, as COCO ``[x, y, w, h]`` -> ``[x, y, x + w, y + h]``), class ids into
:data:`apps.perception.classes.CLASSES`, and ignore regions (KITTI ``DontCare``, COCO ``iscrowd``)
as ``float32 (M, 4)``; the evaluator neither rewards nor punishes detections inside those.

Formats:
- YOLO: one ``labels/<stem>.txt`` per image, lines ``class cx cy w h`` normalised to 0..1.
- COCO: one json with ``images``, ``annotations`` (``bbox`` = ``[x, y, w, h]`` pixels), ``categories``.
- KITTI object ``label_2``: 15 space-separated fields per line; fields 4-7 are the 2-D box
  ``left top right bottom`` in pixels (KITTI object development kit, readme.txt).
- Pascal VOC xml: ``<object><name/><difficult/><bndbox><xmin/>...`` with 1-based pixel indices.
"""

from __future__ import annotations

import glob
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from .classes import CLASSES, COCO_MAP, KITTI_MAP, VOC_MAP, class_id

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class Sample:
    """One labelled image."""

    image: str
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    classes: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    image_id: int = 0
    ignore_classes: np.ndarray | None = None  # (M,) class of each ignore region, -1 = any class

    def __post_init__(self):
        if self.ignore_classes is None:
            self.ignore_classes = np.full((len(self.ignore),), -1, np.int64)


def _image_size(path: str) -> tuple[int, int]:
    from PIL import Image  # reads the header only

    with Image.open(path) as im:
        return im.size


def _arr(boxes, n=4) -> np.ndarray:
    return np.asarray(boxes, np.float32).reshape(-1, n)


def _images_in(folder: str) -> list[str]:
    return sorted(p for p in glob.glob(os.path.join(folder, "*")) if p.lower().endswith(IMAGE_EXTS))


def load_yolo(images_dir: str, labels_dir: str | None = None) -> list[Sample]:
    """YOLO txt labels. ``labels_dir`` defaults to the sibling ``labels`` folder of ``images_dir``."""
    if labels_dir is None:
        labels_dir = os.path.join(os.path.dirname(os.path.normpath(images_dir)), "labels")
    out = []
    for k, img in enumerate(_images_in(images_dir)):
        w, h = _image_size(img)
        stem = os.path.splitext(os.path.basename(img))[0]
        boxes, classes = [], []
        lp = os.path.join(labels_dir, stem + ".txt")
        if os.path.exists(lp):
            with open(lp) as f:
                for ln, line in enumerate(f, 1):
                    parts = line.split()
                    if not parts:
                        continue
                    if len(parts) < 5:
                        raise ValueError(f"{lp}:{ln}: expected 'class cx cy w h', got {line.strip()!r}")
                    c, cx, cy, bw, bh = int(parts[0]), *map(float, parts[1:5])
                    if not 0 <= c < len(CLASSES):
                        raise ValueError(f"{lp}:{ln}: class {c} outside 0..{len(CLASSES) - 1}")
                    boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
                    classes.append(c)
        out.append(Sample(img, w, h, _arr(boxes), np.asarray(classes, np.int64), image_id=k + 1))
    return out


def load_coco(
    json_path: str, images_dir: str | None = None, mapping: dict[str, int | str | None] | None = None
) -> list[Sample]:
    """COCO json. Categories are mapped by name (ours, or ``mapping``, default COCO's); unmapped
    categories are dropped; ``iscrowd=1`` annotations become ignore regions."""
    with open(json_path) as f:
        d = json.load(f)
    images_dir = images_dir or os.path.join(os.path.dirname(json_path), "images")
    cat = {c["id"]: class_id(c["name"], mapping or COCO_MAP) for c in d.get("categories", [])}
    per = {im["id"]: ([], [], [], []) for im in d["images"]}
    for a in d.get("annotations", []):
        c = cat.get(a["category_id"])
        if c is None or a["image_id"] not in per:
            continue
        x, y, w, h = a["bbox"]
        box = [x, y, x + w, y + h]
        if a.get("iscrowd", 0) or c == "ignore":
            per[a["image_id"]][2].append(box)
            per[a["image_id"]][3].append(-1 if c == "ignore" else c)
        else:
            per[a["image_id"]][0].append(box)
            per[a["image_id"]][1].append(c)
    out = []
    for im in d["images"]:
        b, c, ig, igc = per[im["id"]]
        out.append(
            Sample(
                os.path.join(images_dir, im["file_name"]),
                int(im["width"]),
                int(im["height"]),
                _arr(b),
                np.asarray(c, np.int64),
                _arr(ig),
                image_id=int(im["id"]),
                ignore_classes=np.asarray(igc, np.int64),
            )
        )
    return out


def load_kitti(label_dir: str, image_dir: str | None = None) -> list[Sample]:
    """KITTI ``label_2`` txt files; ``DontCare`` lines become ignore regions, ``Misc`` is dropped.
    ``image_dir`` defaults to the sibling ``image_2``; its PNGs give the image sizes."""
    image_dir = image_dir or os.path.join(os.path.dirname(os.path.normpath(label_dir)), "image_2")
    out = []
    for k, lp in enumerate(sorted(glob.glob(os.path.join(label_dir, "*.txt")))):
        stem = os.path.splitext(os.path.basename(lp))[0]
        img = next(
            (p for p in (os.path.join(image_dir, stem + e) for e in IMAGE_EXTS) if os.path.exists(p)), None
        )
        w, h = _image_size(img) if img else (1242, 375)  # KITTI's usual size when images are absent
        boxes, classes, ign = [], [], []
        with open(lp) as f:
            for ln, line in enumerate(f, 1):
                p = line.split()
                if not p:
                    continue
                if len(p) < 8:
                    raise ValueError(f"{lp}:{ln}: a KITTI label line has 15 fields, got {len(p)}")
                c = class_id(p[0], KITTI_MAP)
                box = [float(v) for v in p[4:8]]
                if c == "ignore":
                    ign.append(box)
                elif c is not None:
                    boxes.append(box)
                    classes.append(c)
        out.append(
            Sample(
                img or os.path.join(image_dir, stem + ".png"),
                w,
                h,
                _arr(boxes),
                np.asarray(classes, np.int64),
                _arr(ign),
                image_id=k + 1,
            )
        )
    return out


def load_voc(annotations_dir: str, images_dir: str | None = None) -> list[Sample]:
    """Pascal VOC xml files. VOC pixel indices are 1-based and inclusive, so ``xmin - 1`` and ``xmax``
    give our 0-based exclusive-edge box; ``difficult=1`` objects become ignore regions (as in VOC eval)."""
    images_dir = images_dir or os.path.join(os.path.dirname(os.path.normpath(annotations_dir)), "JPEGImages")
    out = []
    for k, xp in enumerate(sorted(glob.glob(os.path.join(annotations_dir, "*.xml")))):
        root = ET.parse(xp).getroot()
        fname = root.findtext("filename") or os.path.splitext(os.path.basename(xp))[0] + ".jpg"
        size = root.find("size")
        w = int(float(size.findtext("width"))) if size is not None else 0
        h = int(float(size.findtext("height"))) if size is not None else 0
        boxes, classes, ign, ignc = [], [], [], []
        for ob in root.iter("object"):
            c = class_id(ob.findtext("name", ""), VOC_MAP)
            bb = ob.find("bndbox")
            if c is None or bb is None or isinstance(c, str):
                continue
            box = [
                float(bb.findtext("xmin")) - 1,
                float(bb.findtext("ymin")) - 1,
                float(bb.findtext("xmax")),
                float(bb.findtext("ymax")),
            ]
            if int(float(ob.findtext("difficult", "0") or 0)):
                ign.append(box)
                ignc.append(c)
            else:
                boxes.append(box)
                classes.append(c)
        out.append(
            Sample(
                os.path.join(images_dir, fname),
                w,
                h,
                _arr(boxes),
                np.asarray(classes, np.int64),
                _arr(ign),
                image_id=k + 1,
                ignore_classes=np.asarray(ignc, np.int64),
            )
        )
    return out


def load_any(path: str) -> list[Sample]:
    """Guess the format: a ``.json`` file is COCO; a folder holding ``label_2`` / ``*.xml`` /
    ``labels`` + ``images`` is KITTI / VOC / YOLO (a COCO ``annotations.json`` there wins)."""
    if path.endswith(".json"):
        return load_coco(path)
    if os.path.exists(os.path.join(path, "annotations.json")):
        return load_coco(os.path.join(path, "annotations.json"))
    if os.path.isdir(os.path.join(path, "label_2")):
        return load_kitti(os.path.join(path, "label_2"))
    if os.path.isdir(os.path.join(path, "Annotations")):
        return load_voc(os.path.join(path, "Annotations"))
    if os.path.isdir(os.path.join(path, "images")):
        return load_yolo(os.path.join(path, "images"))
    raise ValueError(f"{path!r}: no COCO json, KITTI label_2, VOC Annotations or YOLO images/labels found")


def to_coco_gt(samples: list[Sample]) -> dict:
    """COCO ground-truth dict (``category_id = class + 1``, ignore regions as ``iscrowd=1``; a class-agnostic
    ignore region gets ``category_id = 0``, which pycocotools will not apply to any class)."""
    images, anns = [], []
    for s in samples:
        images.append(
            dict(id=s.image_id, file_name=os.path.basename(s.image), width=s.width, height=s.height)
        )
        for boxes, crowd, classes in ((s.boxes, 0, s.classes), (s.ignore, 1, s.ignore_classes)):
            for j, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
                c = int(classes[j])
                anns.append(
                    dict(
                        id=len(anns) + 1,
                        image_id=s.image_id,
                        category_id=c + 1,
                        iscrowd=crowd,
                        bbox=[x1, y1, x2 - x1, y2 - y1],
                        area=(x2 - x1) * (y2 - y1),
                    )
                )
    return dict(
        images=images, annotations=anns, categories=[dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)]
    )
