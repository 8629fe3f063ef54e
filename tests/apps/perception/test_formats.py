"""Label loaders on tiny fixtures written here: YOLO txt, COCO json, KITTI label_2, Pascal VOC xml."""

import json

import numpy as np
import pytest
from PIL import Image

from apps.perception.formats import load_any, load_coco, load_kitti, load_voc, load_yolo, to_coco_gt


def _img(path, w=64, h=48):
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)


def test_yolo(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    _img(tmp_path / "images" / "a.png", 64, 48)
    _img(tmp_path / "images" / "b.png", 64, 48)  # no label file: an empty image
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.25 0.5\n2 0.125 0.25 0.25 0.5\n\n")
    s = load_yolo(str(tmp_path / "images"))
    assert [len(x.boxes) for x in s] == [2, 0]
    np.testing.assert_allclose(s[0].boxes, [[24, 12, 40, 36], [0, 0, 16, 24]])
    assert s[0].classes.tolist() == [0, 2]
    assert load_any(str(tmp_path))[0].boxes.shape == (2, 4)


def test_yolo_bad_line(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    _img(tmp_path / "images" / "a.png")
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(ValueError, match="a.txt:1"):
        load_yolo(str(tmp_path / "images"))


def test_coco_names_and_crowd(tmp_path):
    d = dict(
        images=[dict(id=7, file_name="x.jpg", width=100, height=80)],
        categories=[
            dict(id=3, name="car"),
            dict(id=8, name="truck"),
            dict(id=1, name="person"),
            dict(id=90, name="toothbrush"),
        ],
        annotations=[
            dict(id=1, image_id=7, category_id=3, bbox=[10, 20, 30, 10], iscrowd=0),
            dict(id=2, image_id=7, category_id=1, bbox=[0, 0, 5, 5], iscrowd=1),
            dict(id=3, image_id=7, category_id=90, bbox=[1, 1, 2, 2], iscrowd=0),
            dict(id=4, image_id=7, category_id=8, bbox=[50, 50, 10, 20], iscrowd=0),
        ],
    )
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(d))
    (s,) = load_coco(str(p))
    assert s.image_id == 7 and (s.width, s.height) == (100, 80)
    np.testing.assert_allclose(s.boxes, [[10, 20, 40, 30], [50, 50, 60, 70]])
    assert s.classes.tolist() == [0, 1]  # car -> car, truck -> truck/bus; toothbrush dropped
    np.testing.assert_allclose(s.ignore, [[0, 0, 5, 5]])
    assert s.ignore_classes.tolist() == [2]  # a crowd of persons ignores pedestrians only
    gt = to_coco_gt([s])
    assert {a["iscrowd"] for a in gt["annotations"]} == {0, 1}


def test_kitti_dontcare(tmp_path):
    (tmp_path / "label_2").mkdir()
    (tmp_path / "image_2").mkdir()
    _img(tmp_path / "image_2" / "000001.png", 120, 40)
    (tmp_path / "label_2" / "000001.txt").write_text(
        "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"
        "Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01\n"
        "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n"
        "Misc 0.00 0 -1.0 1 2 3 4 1 1 1 1 1 1 1\n"
        "Van 0.00 0 -1.0 10 20 30 40 1 1 1 1 1 1 1\n"
    )
    (s,) = load_kitti(str(tmp_path / "label_2"))
    assert (s.width, s.height) == (120, 40)
    assert s.classes.tolist() == [0, 2, 0]  # Car, Pedestrian, Van -> car; Misc dropped
    np.testing.assert_allclose(s.boxes[0], [587.01, 173.33, 614.12, 200.12], rtol=1e-6)
    np.testing.assert_allclose(s.ignore, [[503.89, 169.71, 590.61, 190.13]], rtol=1e-6)
    assert s.ignore_classes.tolist() == [-1]  # DontCare ignores every class


def test_voc(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "2007_000001.xml").write_text("""<annotation>
  <filename>2007_000001.jpg</filename><size><width>500</width><height>375</height><depth>3</depth></size>
  <object><name>car</name><difficult>0</difficult><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>50</xmax>
    <ymax>60</ymax></bndbox></object>
  <object><name>person</name><difficult>1</difficult><bndbox><xmin>101</xmin><ymin>101</ymin><xmax>120</xmax>
    <ymax>160</ymax></bndbox></object>
  <object><name>dog</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>
    <ymax>5</ymax></bndbox></object>
</annotation>""")
    (s,) = load_voc(str(tmp_path / "Annotations"))
    assert (s.width, s.height) == (500, 375)
    np.testing.assert_allclose(s.boxes, [[10, 20, 50, 60]])  # 1-based inclusive -> 0-based edges
    assert s.classes.tolist() == [0]
    np.testing.assert_allclose(s.ignore, [[100, 100, 120, 160]])  # difficult -> ignore region
    assert s.ignore_classes.tolist() == [2]


def test_load_any_rejects_unknown(tmp_path):
    with pytest.raises(ValueError, match="no COCO json"):
        load_any(str(tmp_path))
