"""Audit of the tracker and the label loaders: inputs a dash-camera pipeline and users' data sets bring."""

import numpy as np
import pytest

from apps.perception.track import Sort


def _upd(s, boxes, classes=None):
    boxes = np.array(boxes, float).reshape(-1, 4)
    classes = np.zeros(len(boxes), int) if classes is None else np.array(classes)
    return s.update(boxes, np.ones(len(boxes)), classes)


# --- tracker -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [[np.nan, 0, 10, 10], [0, 0, np.inf, 10], [10, 10, 10, 20], [10, 10, 50, 10]])
def test_sort_skips_non_finite_and_zero_area_detections(bad):
    # a NaN/inf box (a diverged model) or a zero-width/height one (a detection clipped at the frame's edge)
    # has IoU 0 with everything: it became a track with a NaN box, or a fresh ghost id every frame
    s = Sort(max_age=5, min_hits=1)
    for _ in range(4):
        out = _upd(s, [[100, 100, 140, 130], bad])
    assert [t.track_id for t in out] == [1]
    assert all(np.isfinite(t.box).all() for t in out)


def test_sort_rejects_boxes_of_the_wrong_shape():
    # SORT's original API takes (N, 5) [x1, y1, x2, y2, score] rows: they were silently reshaped to (-1, 4)
    s = Sort(min_hits=1)
    with pytest.raises(ValueError, match=r"boxes.*\(N, 4\)"):
        s.update(np.array([[0, 0, 10, 10, 0.9]] * 4), np.ones(4), np.zeros(4, int))
    with pytest.raises(ValueError, match="3 scores.*2 boxes"):
        s.update(np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float), np.ones(3), np.zeros(2, int))
    with pytest.raises(ValueError, match="1 classes.*2 boxes"):
        s.update(np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float), np.ones(2), np.zeros(1, int))


def test_sort_classes_do_not_mix_at_iou_threshold_zero():
    # iou_threshold=0 matched a track to a detection of another class far away (IoU 0 >= 0)
    s = Sort(min_hits=1, iou_threshold=0.0, coast=1)  # coast: the unmatched class-0 track stays visible
    _upd(s, [[0, 0, 10, 10]], [0])
    out = _upd(s, [[100, 100, 110, 110]], [3])
    by_cls = {t.cls: t for t in out}
    assert by_cls[0].missed == 1 and by_cls[3].missed == 0 and by_cls[0].track_id != by_cls[3].track_id


# --- label loaders -------------------------------------------------------------------------------------


def _coco(tmp_path, **kw):
    d = dict(
        images=[dict(id=1, file_name="a.jpg", width=100, height=80)],
        categories=[dict(id=3, name="car")],
        annotations=[dict(id=1, image_id=1, category_id=3, bbox=[10, 20, 30, 10], iscrowd=0)],
    )
    d.update(kw)
    return d


def test_coco_json_with_a_byte_order_mark(tmp_path):
    # Windows tools (PowerShell's Out-File, Notepad) write UTF-8 json with a BOM: json.load refused it
    import json

    from apps.perception.formats import load_coco

    p = tmp_path / "ann.json"
    p.write_text(json.dumps(_coco(tmp_path)), encoding="utf-8-sig")
    (s,) = load_coco(str(p))
    np.testing.assert_allclose(s.boxes, [[10, 20, 40, 30]])


@pytest.mark.parametrize("text", ['{"images": [', "[1, 2]", '{"annotations": []}'])
def test_coco_malformed_json_names_the_file(tmp_path, text):
    # a truncated download gave json's "Expecting value: line 1 column 13" without saying which file
    from apps.perception.formats import load_coco

    p = tmp_path / "broken.json"
    p.write_text(text)
    with pytest.raises(ValueError, match=r"broken\.json"):
        load_coco(str(p))


def test_missing_folders_are_errors_not_empty_data_sets(tmp_path):
    # a mistyped path gave an empty list (evaluate on zero images) instead of saying what is missing
    from apps.perception.formats import load_kitti, load_voc, load_yolo

    with pytest.raises(FileNotFoundError, match="label_2"):
        load_kitti(str(tmp_path / "training" / "label_2"))
    with pytest.raises(FileNotFoundError, match="Annotations"):
        load_voc(str(tmp_path / "VOC2007" / "Annotations"))
    (tmp_path / "labels").mkdir()
    with pytest.raises(FileNotFoundError, match="images"):
        load_yolo(str(tmp_path / "images"))


def test_coco_category_id_not_in_categories_is_an_error(tmp_path):
    # an exporter that writes no (or other) categories: every annotation was dropped as "not our class"
    import json

    from apps.perception.formats import load_coco

    p = tmp_path / "ann.json"
    p.write_text(json.dumps(_coco(tmp_path, categories=[dict(id=1, name="person")])))
    with pytest.raises(ValueError, match=r"ann\.json: annotation 1: category_id 3 is not in 'categories'"):
        load_coco(str(p))


def test_coco_round_trip_keeps_class_agnostic_ignore_regions(tmp_path):
    # to_coco_gt writes a KITTI DontCare as iscrowd with category_id 0; reading it back dropped it
    import json

    from apps.perception.formats import Sample, load_coco, to_coco_gt

    s = Sample("a.png", 100, 80, np.array([[10, 10, 30, 40]], np.float32), np.array([2]),
               np.array([[50, 5, 90, 30]], np.float32), image_id=1)
    p = tmp_path / "gt.json"
    p.write_text(json.dumps(to_coco_gt([s])))
    (back,) = load_coco(str(p))
    np.testing.assert_allclose(back.ignore, s.ignore)
    assert back.ignore_classes.tolist() == [-1] and back.classes.tolist() == [2]


def test_yolo_data_yaml_names_with_a_gap_in_the_ids_is_an_error(tmp_path):
    # names {0: bus, 2: car} were read as [bus, car]: label id 1 silently became a car (Ultralytics refuses
    # such a mapping: an n-class set needs the ids 0..n-1)
    from PIL import Image

    from apps.perception.formats import load_yolo

    (tmp_path / "data.yaml").write_text("names: {0: bus, 2: car}\n")
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (100, 100)).save(tmp_path / "images" / "a.png")
    (tmp_path / "labels" / "a.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ValueError, match=r"data\.yaml: .*0\.\.1"):
        load_yolo(str(tmp_path / "images"))


@pytest.mark.parametrize(
    "line",
    [
        # a type name with a space shifts every field: 16 fields, read as a line with a score
        "Person sitting 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01",
        "Car 0.00 x -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59",  # occluded
        "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 0.5 high",  # score
    ],
)
def test_kitti_every_field_after_the_type_is_a_number(tmp_path, line):
    from apps.perception.formats import load_kitti

    (tmp_path / "label_2").mkdir()
    (tmp_path / "label_2" / "000001.txt").write_text(line + "\n")
    with pytest.raises(ValueError, match=r"000001\.txt:1: .*number"):
        load_kitti(str(tmp_path / "label_2"))


def test_voc_object_of_our_classes_without_a_bndbox_is_an_error(tmp_path):
    from apps.perception.formats import load_voc

    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(
        "<annotation><size><width>50</width><height>50</height></size><object><name>car</name>"
        "<polygon><x1>1</x1><y1>1</y1></polygon></object></annotation>"
    )
    with pytest.raises(ValueError, match=r"a\.xml: object 1 \(car\).*bndbox"):
        load_voc(str(tmp_path / "Annotations"))


def test_yolo_images_folder_without_images_is_an_error_and_tiff_is_an_image(tmp_path):
    from PIL import Image

    from apps.perception.formats import load_yolo

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_yolo(str(tmp_path / "images"))  # was an empty data set: evaluate on nothing
    Image.new("RGB", (64, 48)).save(tmp_path / "images" / "a.tif")  # Ultralytics reads .tif / .tiff
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    (s,) = load_yolo(str(tmp_path / "images"))
    np.testing.assert_allclose(s.boxes, [[24, 12, 40, 36]])
