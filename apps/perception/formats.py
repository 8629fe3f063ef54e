"""Loaders (and a writer) for the label formats driving data comes in.

Every loader returns a list of :class:`Sample` with boxes as ``float32 (N, 4)`` pixel ``x1, y1, x2, y2``
(x2/y2 exclusive edges, as COCO ``[x, y, w, h]`` -> ``[x, y, x + w, y + h]``), class ids into
:data:`apps.perception.classes.CLASSES`, and ignore regions (KITTI ``DontCare``, COCO ``iscrowd``)
as ``float32 (M, 4)``; the evaluator neither rewards nor punishes detections inside those.
Boxes are clipped to the image (detections are too); a malformed line, a non-finite or inverted box, or
a box wholly outside its image is a ``ValueError`` naming the file and line (or annotation), never a
silent skip.

Formats:
- YOLO: one ``labels/<stem>.txt`` per image, lines ``class cx cy w h`` normalised to 0..1 (or a
  segmentation polygon ``class x1 y1 x2 y2 ...``, read as its enclosing box).
- COCO: one json with ``images``, ``annotations`` (``bbox`` = ``[x, y, w, h]`` pixels), ``categories``.
- KITTI object ``label_2``: 15 space-separated fields per line; fields 4-7 are the 2-D box
  ``left top right bottom`` in pixels (KITTI object development kit, readme.txt).
- Pascal VOC xml: ``<object><name/><difficult/><bndbox><xmin/>...`` with 1-based pixel indices.
"""

from __future__ import annotations

import glob
import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from .classes import CLASSES, COCO_MAP, KITTI_MAP, VOC_MAP, class_id

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # read by cv2.imread and Ultralytics


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
    # (N,) pixels² of each box's object as its file gives it (COCO's ``area``: the segment's area, which
    # COCOeval sizes small / medium / large by); None = the box areas
    areas: np.ndarray | None = None

    def __post_init__(self):
        if self.ignore_classes is None:
            self.ignore_classes = np.full((len(self.ignore),), -1, np.int64)
        if self.areas is not None and len(self.areas) != len(self.boxes):
            raise ValueError(f"{self.image}: {len(self.areas)} areas for {len(self.boxes)} boxes")


def _image_size(path: str) -> tuple[int, int]:
    """(width, height) as displayed: EXIF orientations 5-8 turn the stored image by 90 degrees, and both
    the labelling tools and ``cv2.imread`` (which the evaluator reads with) show it turned."""
    from PIL import Image  # reads the header only

    with Image.open(path) as im:
        w, h = im.size
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # 0x0112 = Orientation (EXIF 2.3, table 4)
            w, h = h, w
    return w, h


def _check_box(box: list[float], width: int, height: int, where: str) -> list[float]:
    """``box`` xyxy clipped to the image (when its size is known). Detections are clipped to the frame,
    so a ground-truth box left hanging outside it could never be matched at a high IoU. Non-finite or
    inverted boxes, and boxes wholly outside the image, are errors naming ``where``."""
    x1, y1, x2, y2 = box
    if not np.isfinite(box).all() or x2 < x1 or y2 < y1:
        raise ValueError(f"{where}: box {box} is not x1 <= x2, y1 <= y2 (pixels)")
    if width > 0 and height > 0:
        c = [
            min(max(x1, 0.0), width),
            min(max(y1, 0.0), height),
            min(max(x2, 0.0), width),
            min(max(y2, 0.0), height),
        ]
        if (x2 > x1 and c[2] <= c[0]) or (y2 > y1 and c[3] <= c[1]):
            raise ValueError(f"{where}: box {box} lies outside the {width}x{height} image")
        return c
    return [float(v) for v in box]


def _arr(boxes, n=4) -> np.ndarray:
    return np.asarray(boxes, np.float32).reshape(-1, n)


def _images_in(folder: str) -> list[str]:
    return sorted(p for p in glob.glob(os.path.join(folder, "*")) if p.lower().endswith(IMAGE_EXTS))


def _yolo_labels_dir(images_dir: str) -> str:
    """Ultralytics' rule: the last ``images`` folder of the path becomes ``labels``
    (``data/images/train`` -> ``data/labels/train``); without one, the sibling ``labels`` folder."""
    parts = os.path.normpath(images_dir).split(os.sep)
    if "images" in parts:
        k = len(parts) - 1 - parts[::-1].index("images")
        return os.sep.join(parts[:k] + ["labels"] + parts[k + 1 :])
    return os.path.join(os.path.dirname(os.path.normpath(images_dir)), "labels")


def _yolo_names(labels_dir: str) -> list[str] | None:
    """The data set's own class names, if it ships them: ``classes.txt`` / ``obj.names`` (one per line,
    as LabelImg, Roboflow and darknet write) in the labels folder or above it, or Ultralytics'
    ``data.yaml`` / ``dataset.yaml`` (``names:`` a list, or a mapping id -> name) beside ``images`` /
    ``labels``. None when there is none (the ids are then ours)."""
    d = os.path.normpath(labels_dir)
    roots = [d, os.path.dirname(d)]
    if os.path.basename(roots[1]) == "labels":  # data/labels/train: the data set's root is data/
        roots.append(os.path.dirname(roots[1]))
    for r in roots:
        for fn in ("classes.txt", "obj.names"):
            p = os.path.join(r, fn)
            if os.path.isfile(p):
                with open(p, encoding="utf-8-sig") as f:
                    return [ln.strip() for ln in f if ln.strip()]
        for fn in ("data.yaml", "dataset.yaml"):
            p = os.path.join(r, fn)
            if os.path.isfile(p):
                import yaml

                with open(p, encoding="utf-8") as f:
                    try:
                        data = yaml.safe_load(f)
                    except yaml.YAMLError as e:
                        raise ValueError(f"{p}: not valid YAML ({e})") from None
                names = data.get("names") if isinstance(data, dict) else None
                if isinstance(names, dict):
                    try:
                        ids = {int(k): v for k, v in names.items()}
                    except (TypeError, ValueError):
                        raise ValueError(f"{p}: 'names' keys must be class ids, got {list(names)}") from None
                    if sorted(ids) != list(range(len(ids))):  # as Ultralytics: ids 0..n-1, no gaps
                        raise ValueError(f"{p}: 'names' must map ids 0..{len(ids) - 1}, got {sorted(ids)}")
                    names = [str(ids[k]) for k in range(len(ids))]
                if names:
                    return [str(n) for n in names]
    return None


def _yolo_line(line: str, where: str, n_classes: int = len(CLASSES)) -> tuple[int, list[float]]:
    """``class cx cy w h`` (a box) or ``class x1 y1 ... xn yn`` (a polygon, n >= 3, YOLO segmentation
    labels: its enclosing box), normalised to 0..1. Returns (class, [x1, y1, x2, y2] normalised)."""
    parts = line.split()
    try:
        vals = [float(v) for v in parts]
    except ValueError:
        raise ValueError(f"{where}: expected numbers 'class cx cy w h', got {line.strip()!r}") from None
    n = len(vals) - 1
    if n != 4 and (n < 6 or n % 2):
        raise ValueError(
            f"{where}: expected 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 ...', "
            f"got {len(vals)} fields"
        )
    c = vals[0]
    if not np.isfinite(c) or c != int(c) or not 0 <= c < n_classes:
        raise ValueError(f"{where}: class {parts[0]} is not an id in 0..{n_classes - 1}")
    v = np.asarray(vals[1:], np.float64)
    if not np.isfinite(v).all() or (v < -1e-6).any() or (v > 1 + 1e-6).any():  # rounding noise passes
        raise ValueError(f"{where}: coordinates must be normalised to 0..1, got {line.strip()!r}")
    if n == 4:
        cx, cy, bw, bh = v
        return int(c), [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]
    xs, ys = v[0::2], v[1::2]
    return int(c), [xs.min(), ys.min(), xs.max(), ys.max()]


def load_yolo(images_dir: str, labels_dir: str | None = None) -> list[Sample]:
    """YOLO txt labels. ``labels_dir`` defaults to Ultralytics' rule: the last ``images`` folder of the
    path replaced by ``labels`` (``data/images/train`` -> ``data/labels/train``). An image without a
    label file has no objects (a background image); a missing labels folder, or an images folder without
    images, is an error. Boxes are clipped to the image; polygon (segmentation) lines give their
    enclosing box.

    Class ids are ours unless the data set ships its own names (see :func:`_yolo_names`): then each
    id's name is mapped like COCO's (:func:`apps.perception.classes.class_id`); unmapped names are
    dropped and a name mapped to ``"ignore"`` gives an ignore region."""
    if not os.path.isdir(images_dir):
        raise FileNotFoundError(f"no YOLO images folder {images_dir!r}")
    if labels_dir is None:
        labels_dir = _yolo_labels_dir(images_dir)
    if not os.path.isdir(labels_dir):
        raise FileNotFoundError(f"no YOLO labels folder {labels_dir!r} for the images in {images_dir!r}")
    images = _images_in(images_dir)
    if not images:
        raise ValueError(f"YOLO images folder {images_dir!r} holds no images ({', '.join(IMAGE_EXTS)})")
    names = _yolo_names(labels_dir)
    ours = [class_id(n) for n in names] if names is not None else list(range(len(CLASSES)))
    out = []
    for k, img in enumerate(images):
        w, h = _image_size(img)
        stem = os.path.splitext(os.path.basename(img))[0]
        boxes, classes, ign = [], [], []
        lp = os.path.join(labels_dir, stem + ".txt")
        if os.path.exists(lp):
            with open(lp, encoding="utf-8-sig") as f:  # -sig: a byte-order mark some editors write
                for ln, line in enumerate(f, 1):
                    if not line.split():
                        continue
                    where = f"{lp}:{ln}"
                    c, (x1, y1, x2, y2) = _yolo_line(line, where, len(ours))
                    box = _check_box([x1 * w, y1 * h, x2 * w, y2 * h], w, h, where)
                    if ours[c] == "ignore":
                        ign.append(box)
                    elif ours[c] is not None:
                        boxes.append(box)
                        classes.append(ours[c])
        out.append(Sample(img, w, h, _arr(boxes), np.asarray(classes, np.int64), _arr(ign), image_id=k + 1))
    return out


def load_coco(
    json_path: str, images_dir: str | None = None, mapping: dict[str, int | str | None] | None = None
) -> list[Sample]:
    """COCO json. Categories are mapped by name (ours, or ``mapping``, default COCO's); unmapped
    categories are dropped; ``iscrowd=1`` (or ``ignore=1``, as CityPersons-style files mark them)
    annotations become ignore regions. Boxes are clipped to the image.

    ``images_dir`` defaults to the first of ``<json dir>/images``, ``<json dir>`` and COCO's own layout
    (``coco/annotations/instances_val2017.json`` -> ``coco/val2017``) that holds the first image. An
    image entry without ``width`` / ``height`` takes them from the image file."""
    with open(json_path, encoding="utf-8-sig") as f:  # json is UTF-8 (RFC 8259); -sig: a Windows BOM
        try:
            d = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{json_path}: not valid json ({e})") from None
    if not isinstance(d, dict) or not isinstance(d.get("images"), list):
        raise ValueError(f"{json_path}: a COCO json is an object with an 'images' list")
    if images_dir is None:
        jd = os.path.dirname(os.path.abspath(json_path))
        split = os.path.splitext(os.path.basename(json_path))[0].split("_")[-1]  # instances_val2017
        cands = [os.path.join(jd, "images"), jd, os.path.join(os.path.dirname(jd), split)]
        first = d["images"][0]["file_name"] if d.get("images") else ""
        images_dir = next((c for c in cands if os.path.isfile(os.path.join(c, first))), cands[0])
        if not os.path.isabs(json_path):  # keep the caller's relative paths relative
            images_dir = os.path.relpath(images_dir)
    cat = {c["id"]: class_id(c["name"], mapping or COCO_MAP) for c in d.get("categories", [])}
    per = {im["id"]: ([], [], [], [], []) for im in d["images"]}
    size = {}
    for im in d["images"]:
        w, h = int(im.get("width") or 0), int(im.get("height") or 0)
        p = os.path.join(images_dir, im["file_name"])
        if (w <= 0 or h <= 0) and os.path.isfile(p):
            w, h = _image_size(p)
        size[im["id"]] = (w, h)
    for a in d.get("annotations", []):
        c = cat.get(a.get("category_id"))
        where = f"{json_path}: annotation {a.get('id')}"
        if a.get("image_id") not in per:
            raise ValueError(f"{where}: image_id {a.get('image_id')!r} is not in 'images'")
        crowd = a.get("iscrowd", 0) or a.get("ignore", 0)
        if a.get("category_id") not in cat:
            if not (crowd and a.get("category_id") == 0):
                raise ValueError(f"{where}: category_id {a.get('category_id')!r} is not in 'categories'")
            c = "ignore"  # to_coco_gt's class-agnostic ignore region (KITTI DontCare)
        if c is None:
            continue
        try:
            x, y, w, h = (float(v) for v in a["bbox"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: bbox must be [x, y, w, h], got {a.get('bbox')!r}") from None
        box = _check_box([x, y, x + w, y + h], *size[a["image_id"]], where)
        if crowd or c == "ignore":
            per[a["image_id"]][2].append(box)
            per[a["image_id"]][3].append(-1 if c == "ignore" else c)
        else:
            per[a["image_id"]][0].append(box)
            per[a["image_id"]][1].append(c)
            area = a.get("area")
            try:
                area = float(area) if area is not None else (box[2] - box[0]) * (box[3] - box[1])
            except (TypeError, ValueError):
                raise ValueError(f"{where}: area must be a number, got {area!r}") from None
            if not (math.isfinite(area) and area >= 0):
                raise ValueError(f"{where}: area must be finite and >= 0, got {area!r}")
            per[a["image_id"]][4].append(area)
    out = []
    for im in d["images"]:
        b, c, ig, igc, ar = per[im["id"]]
        out.append(
            Sample(
                os.path.join(images_dir, im["file_name"]),
                *size[im["id"]],
                _arr(b),
                np.asarray(c, np.int64),
                _arr(ig),
                image_id=int(im["id"]),
                ignore_classes=np.asarray(igc, np.int64),
                areas=np.asarray(ar, np.float64),
            )
        )
    return out


def _by_stem(folder: str) -> dict[str, str]:
    """{stem: path} of the images in ``folder``, extensions matched case-insensitively (``.PNG``)."""
    return {os.path.splitext(os.path.basename(p))[0]: p for p in reversed(_images_in(folder))}


# KITTI's object benchmark difficulties (devkit, evaluate_object.cpp): the smallest box height in pixels,
# the largest occlusion level (0 visible, 1 partly, 2 largely occluded, 3 unknown) and truncation.
KITTI_DIFFICULTY = {
    "easy": (40.0, 0, 0.15),
    "moderate": (25.0, 1, 0.30),
    "hard": (25.0, 2, 0.50),
}


def load_kitti(label_dir: str, image_dir: str | None = None, difficulty: str | None = None) -> list[Sample]:
    """KITTI ``label_2`` txt files; ``DontCare`` lines become ignore regions, ``Misc`` is dropped.
    ``image_dir`` defaults to the sibling ``image_2``; its images give the image sizes (without them
    KITTI's usual 1242x375 is assumed and boxes are not clipped). A line must have KITTI's 15 fields
    (16 with a score); anything else (a tracking ``label_02`` line, a truncated line) is an error.
    ``difficulty`` ("easy", "moderate", "hard"; default: every object counts) evaluates as KITTI's
    benchmark does at that level: objects too small, too occluded or too truncated for it
    (``KITTI_DIFFICULTY``) become ignore regions, neither rewarded when found nor punished when missed."""
    if difficulty is not None and difficulty not in KITTI_DIFFICULTY:
        raise ValueError(f"KITTI difficulty must be one of {', '.join(KITTI_DIFFICULTY)}, got {difficulty!r}")
    limits = KITTI_DIFFICULTY.get(difficulty)
    if not os.path.isdir(label_dir):
        raise FileNotFoundError(f"no KITTI label folder {label_dir!r}")
    image_dir = image_dir or os.path.join(os.path.dirname(os.path.normpath(label_dir)), "image_2")
    images = _by_stem(image_dir) if os.path.isdir(image_dir) else {}
    label_files = sorted(p for p in glob.glob(os.path.join(label_dir, "*")) if p.lower().endswith(".txt"))
    out = []
    for k, lp in enumerate(label_files):
        stem = os.path.splitext(os.path.basename(lp))[0]
        img = images.get(stem)
        w, h = _image_size(img) if img else (1242, 375)  # KITTI's usual size when images are absent
        boxes, classes, ign, ign_cls = [], [], [], []
        with open(lp, encoding="utf-8-sig") as f:
            for ln, line in enumerate(f, 1):
                p = line.split()
                if not p:
                    continue
                where = f"{lp}:{ln}"
                if len(p) not in (15, 16):
                    raise ValueError(
                        f"{where}: a KITTI label line has 15 fields (16 with a score), got {len(p)}"
                    )
                try:  # a non-number anywhere (a type name with a space) shifts the box fields
                    values = [float(v) for v in p[1:]]
                    box = values[3:7]
                except ValueError:
                    raise ValueError(
                        f"{where}: every field after the type must be a number "
                        f"(fields 5-8: the box left top right bottom), got {line.strip()!r}"
                    ) from None
                c = class_id(p[0], KITTI_MAP)
                if c is None:
                    continue
                height = box[3] - box[1]  # before clipping, as the devkit measures it
                box = _check_box(box, w, h, where) if img else _check_box(box, 0, 0, where)
                if c == "ignore":
                    ign.append(box)
                    ign_cls.append(-1)
                elif limits is not None and not _kitti_counts(values, height, limits):
                    ign.append(box)  # ignored for its own class only, as the devkit does
                    ign_cls.append(c)
                else:
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
                ignore_classes=np.asarray(ign_cls, np.int64),
            )
        )
    return out


def _kitti_counts(values: list[float], height: float, limits: tuple[float, int, float]) -> bool:
    """Whether an object (its fields after the type) is hard enough to count at a KITTI difficulty."""
    min_height, max_occlusion, max_truncation = limits
    truncated, occluded = values[0], values[1]
    return height >= min_height and occluded <= max_occlusion and truncated <= max_truncation


def _listing_by_lower_name(folder: str) -> dict:
    """{lower-case file name: file name} of a folder (empty if it does not exist)."""
    try:
        return {n.lower(): n for n in os.listdir(folder)}
    except OSError:
        return {}


def _voc_image(images_dir: str, fname: str, xml_path: str, by_lower: dict) -> str:
    """The image an annotation names. Exporters differ from the files on disk in case (``0001.JPG``
    for ``0001.jpg``), leave the extension out, or write no ``<filename>``: the exact name wins, then
    the name in any case, then its stem (or, without a name, the xml file's) with any image extension.
    An image found nowhere keeps the written path, and reading it later is the error that names it."""
    if fname and os.path.exists(os.path.join(images_dir, fname)):
        return os.path.join(images_dir, fname)
    candidates = [fname] if fname else []
    for stem in dict.fromkeys([os.path.splitext(fname)[0] if fname else "",
                               fname, os.path.splitext(os.path.basename(xml_path))[0]]):
        candidates += [stem + e for e in IMAGE_EXTS] if stem else []
    for name in candidates:
        found = by_lower.get(name.lower())
        if found is not None:
            return os.path.join(images_dir, found)
    return os.path.join(images_dir, fname or os.path.splitext(os.path.basename(xml_path))[0] + ".jpg")


def load_voc(annotations_dir: str, images_dir: str | None = None) -> list[Sample]:
    """Pascal VOC xml files. VOC pixel indices are 1-based and inclusive, so ``xmin - 1`` and ``xmax``
    give our 0-based exclusive-edge box; ``difficult=1`` objects become ignore regions (as in VOC eval).
    The image is found by ``<filename>`` in any case, or by its stem with any image extension
    (:func:`_voc_image`).
    A missing or zero ``<size>`` is read from the image; boxes are clipped to the image; a file that is
    not well-formed xml or an object whose ``bndbox`` lacks a coordinate is an error naming the file."""
    if not os.path.isdir(annotations_dir):
        raise FileNotFoundError(f"no VOC Annotations folder {annotations_dir!r}")
    images_dir = images_dir or os.path.join(os.path.dirname(os.path.normpath(annotations_dir)), "JPEGImages")
    xml_files = sorted(p for p in glob.glob(os.path.join(annotations_dir, "*")) if p.lower().endswith(".xml"))
    by_lower = _listing_by_lower_name(images_dir)
    out = []
    for k, xp in enumerate(xml_files):
        try:
            root = ET.parse(xp).getroot()
        except ET.ParseError as e:
            raise ValueError(f"{xp}: not well-formed xml ({e})") from None
        img = _voc_image(images_dir, (root.findtext("filename") or "").strip(), xp, by_lower)
        size = root.find("size")
        try:
            w = int(float(size.findtext("width") or 0)) if size is not None else 0
            h = int(float(size.findtext("height") or 0)) if size is not None else 0
        except ValueError:
            raise ValueError(f"{xp}: <size> must hold numbers") from None
        if (w <= 0 or h <= 0) and os.path.exists(img):
            w, h = _image_size(img)  # some exporters write no size, or 0 x 0
        boxes, classes, ign, ignc = [], [], [], []
        for j, ob in enumerate(root.iter("object")):
            c = class_id(ob.findtext("name", ""), VOC_MAP)
            bb = ob.find("bndbox")
            if c is None or isinstance(c, str):
                continue
            where = f"{xp}: object {j + 1} ({ob.findtext('name', '').strip()})"
            if bb is None:
                raise ValueError(f"{where}: no bndbox")
            try:
                x1, y1, x2, y2 = (float(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
            except (TypeError, ValueError):
                raise ValueError(f"{where}: bndbox needs numeric xmin, ymin, xmax, ymax") from None
            box = _check_box([x1 - 1, y1 - 1, x2, y2], w, h, where)
            flag = (ob.findtext("difficult", "0") or "0").strip()
            if flag not in ("0", "1"):
                raise ValueError(f"{where}: difficult must be 0 or 1, got {flag!r}")
            if flag == "1":
                ign.append(box)
                ignc.append(c)
            else:
                boxes.append(box)
                classes.append(c)
        out.append(
            Sample(
                img,
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


def load_any(path: str, kitti_difficulty: str | None = None) -> list[Sample]:
    """Guess the format: a ``.json`` file is COCO; a folder holding ``label_2`` / ``*.xml`` /
    ``labels`` + ``images`` is KITTI / VOC / YOLO (a COCO ``annotations.json`` there wins); the
    ``label_2`` or ``Annotations`` folder itself, or a YOLO images folder whose labels folder exists
    (``data/images/val``), loads too. A YOLO ``images`` folder split into subfolders is an error that
    names the splits. ``kitti_difficulty``: see :func:`load_kitti` (refused for other formats)."""
    path = os.path.normpath(path)
    coco = kitti = None  # the files a COCO / KITTI data set loads from, where it is one
    if path.lower().endswith(".json"):
        coco = path
    elif os.path.exists(os.path.join(path, "annotations.json")):
        coco = os.path.join(path, "annotations.json")
    elif os.path.isdir(os.path.join(path, "label_2")):
        kitti = os.path.join(path, "label_2")
    elif os.path.basename(path) == "label_2" and os.path.isdir(path):
        kitti = path
    if kitti_difficulty is not None and (coco is not None or kitti is None):
        raise ValueError(f"a KITTI difficulty was given but {path!r} is not a KITTI label_2 folder")
    if coco is not None:
        return load_coco(coco)
    if kitti is not None:
        return load_kitti(kitti, difficulty=kitti_difficulty)
    if os.path.isdir(os.path.join(path, "Annotations")):
        return load_voc(os.path.join(path, "Annotations"))
    if os.path.basename(path) == "Annotations" and os.path.isdir(path):
        return load_voc(path)
    if os.path.isdir(path) and _images_in(path) and os.path.isdir(_yolo_labels_dir(path)):
        return load_yolo(path)
    images = os.path.join(path, "images")
    if os.path.isdir(images):
        splits = sorted(d for d in os.listdir(images) if os.path.isdir(os.path.join(images, d)))
        if splits and not _images_in(images):
            raise ValueError(
                f"{path!r}: the YOLO images are split into {', '.join(splits)}; "
                f"pass one split, e.g. {os.path.join(images, splits[0])!r}"
            )
        return load_yolo(images)
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
                        area=(x2 - x1) * (y2 - y1) if crowd or s.areas is None else float(s.areas[j]),
                    )
                )
    return dict(
        images=images, annotations=anns, categories=[dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)]
    )
