"""The six detection classes and the name mappings from the public driving data sets.

Class ids are contiguous from 0 (YOLO convention); COCO json files written by this app use
``category_id = class_id + 1`` because COCO reserves 0.
"""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("car", "truck/bus", "pedestrian", "cyclist", "traffic light", "traffic sign")
NUM_CLASSES = len(CLASSES)

# Names used by the public data sets, lower-cased, mapped to our class ids. None = not a class of ours
# (dropped); "ignore" = an ignore region (KITTI DontCare), which the evaluator neither rewards nor punishes.
KITTI_MAP: dict[str, int | str | None] = {
    "car": 0,
    "van": 0,
    "truck": 1,
    "tram": 1,
    "pedestrian": 2,
    "person_sitting": 2,
    "cyclist": 3,
    "misc": None,
    "dontcare": "ignore",
}
BDD100K_MAP: dict[str, int | str | None] = {
    "car": 0,
    "truck": 1,
    "bus": 1,
    "train": 1,
    "pedestrian": 2,
    "person": 2,
    "rider": 3,
    "bike": None,
    "bicycle": None,
    "motor": None,
    "motorcycle": None,
    "traffic light": 4,
    "traffic sign": 5,
}
COCO_MAP: dict[str, int | str | None] = {
    "car": 0,
    "truck": 1,
    "bus": 1,
    "person": 2,
    "bicycle": 3,
    "traffic light": 4,
    "stop sign": 5,
}
VOC_MAP: dict[str, int | str | None] = {
    "car": 0,
    "bus": 1,
    "person": 2,
    "bicycle": 3,
}


def class_id(name: str, mapping: dict[str, int | str | None] | None = None) -> int | str | None:
    """Our class id for a data set's class ``name`` (case-insensitive); also accepts our own names."""
    key = name.strip().lower()
    for i, c in enumerate(CLASSES):
        if key == c or key == c.replace(" ", "_") or key == c.replace("/", "_"):
            return i
    if mapping is not None:
        return mapping.get(key)
    for m in (KITTI_MAP, BDD100K_MAP, COCO_MAP):
        if key in m:
            return m[key]
    return None
