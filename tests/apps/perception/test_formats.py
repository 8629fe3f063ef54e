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
    _img(tmp_path / "image_2" / "000001.png", 1242, 375)
    (tmp_path / "label_2" / "000001.txt").write_text(
        "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"
        "Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01\n"
        "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n"
        "Misc 0.00 0 -1.0 1 2 3 4 1 1 1 1 1 1 1\n"
        "Van 0.00 0 -1.0 10 20 30 40 1 1 1 1 1 1 1\n"
    )
    (s,) = load_kitti(str(tmp_path / "label_2"))
    assert (s.width, s.height) == (1242, 375)
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


# --- audit: edge cases a user's data set brings -------------------------------------------------------


def test_yolo_split_layout_finds_labels_train(tmp_path):
    # Ultralytics layout: data/images/train/x.jpg -> data/labels/train/x.txt (not data/images/labels)
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    _img(tmp_path / "images" / "train" / "a.png", 64, 48)
    (tmp_path / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.25 0.5\n")
    (s,) = load_yolo(str(tmp_path / "images" / "train"))
    np.testing.assert_allclose(s.boxes, [[24, 12, 40, 36]])
    assert s.classes.tolist() == [1]


def test_yolo_missing_labels_folder_is_an_error(tmp_path):
    (tmp_path / "images").mkdir()
    _img(tmp_path / "images" / "a.png")
    with pytest.raises(FileNotFoundError, match="labels"):
        load_yolo(str(tmp_path / "images"))  # every image silently unlabelled otherwise


@pytest.mark.parametrize(
    "line",
    [
        "car 0.5 0.5 0.2 0.2",
        "0 0.5 O.5 0.2 0.2",
        "0 0.5 0.5 0.2 nan",
        "0 1.7 0.5 0.2 0.2",
        "0 0.5 0.5 -0.2 0.2",
        "0 0.5 0.5 0.2 0.2 0.9",  # six fields: neither a box nor a polygon
    ],
)
def test_yolo_malformed_values_name_file_and_line(tmp_path, line):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    _img(tmp_path / "images" / "a.png")
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n" + line + "\n")
    with pytest.raises(ValueError, match=r"a\.txt:2"):
        load_yolo(str(tmp_path / "images"))


def test_yolo_polygon_line_gives_its_enclosing_box(tmp_path):
    # YOLO segmentation labels: "class x1 y1 x2 y2 ... xn yn"; reading the first four as cx cy w h is garbage
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    _img(tmp_path / "images" / "a.png", 100, 50)
    (tmp_path / "labels" / "a.txt").write_text("2 0.1 0.2 0.5 0.2 0.5 0.8 0.1 0.8\n")
    (s,) = load_yolo(str(tmp_path / "images"))
    np.testing.assert_allclose(s.boxes, [[10, 10, 50, 40]], atol=1e-4)
    assert s.classes.tolist() == [2]


def test_yolo_upper_case_extension_and_non_ascii_path(tmp_path):
    root = tmp_path / "données_été"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    _img(root / "images" / "rue.PNG", 64, 48)
    (root / "labels" / "rue.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    (s,) = load_yolo(str(root / "images"))
    assert s.image.endswith("rue.PNG") and s.boxes.shape == (1, 4)


def test_image_size_follows_exif_orientation(tmp_path):
    # a phone JPEG stored 64x48 with orientation 6 is displayed (and read by cv2.imread) as 48x64;
    # normalised YOLO boxes must be scaled by the displayed size
    import cv2

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    p = tmp_path / "images" / "a.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(p, exif=exif)
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (s,) = load_yolo(str(tmp_path / "images"))
    h, w = cv2.imread(str(p)).shape[:2]
    assert (s.width, s.height) == (w, h) == (48, 64)
    np.testing.assert_allclose(s.boxes, [[12, 16, 36, 48]])


def test_boxes_are_clipped_to_the_image(tmp_path):
    # detections are clipped to the frame, so a ground-truth box hanging outside it could never reach IoU 1
    d = dict(
        images=[dict(id=1, file_name="x.jpg", width=100, height=80)],
        categories=[dict(id=3, name="car")],
        annotations=[dict(id=1, image_id=1, category_id=3, bbox=[90, -5, 20, 30], iscrowd=0)],
    )
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(d))
    (s,) = load_coco(str(p))
    np.testing.assert_allclose(s.boxes, [[90, 0, 100, 25]])


def test_box_entirely_outside_the_image_is_an_error(tmp_path):
    d = dict(
        images=[dict(id=1, file_name="x.jpg", width=100, height=80)],
        categories=[dict(id=3, name="car")],
        annotations=[dict(id=5, image_id=1, category_id=3, bbox=[120, 10, 20, 30], iscrowd=0)],
    )
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="annotation 5"):
        load_coco(str(p))


def test_coco_ignore_flag_is_an_ignore_region(tmp_path):
    # CityPersons-style COCO files mark ignore regions with "ignore": 1 instead of iscrowd
    d = dict(
        images=[dict(id=1, file_name="x.jpg", width=100, height=80)],
        categories=[dict(id=1, name="person")],
        annotations=[
            dict(id=1, image_id=1, category_id=1, bbox=[10, 10, 10, 30], iscrowd=0),
            dict(id=2, image_id=1, category_id=1, bbox=[50, 10, 10, 30], iscrowd=0, ignore=1),
        ],
    )
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(d))
    (s,) = load_coco(str(p))
    np.testing.assert_allclose(s.boxes, [[10, 10, 20, 40]])
    np.testing.assert_allclose(s.ignore, [[50, 10, 60, 40]])
    assert s.ignore_classes.tolist() == [2]


def test_coco_bad_bbox_names_the_annotation(tmp_path):
    d = dict(
        images=[dict(id=1, file_name="x.jpg", width=100, height=80)],
        categories=[dict(id=1, name="car")],
        annotations=[dict(id=9, image_id=1, category_id=1, bbox=[10, 10, 10], iscrowd=0)],
    )
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"ann\.json.*annotation 9"):
        load_coco(str(p))


def test_kitti_upper_case_image_extension(tmp_path):
    (tmp_path / "label_2").mkdir()
    (tmp_path / "image_2").mkdir()
    _img(tmp_path / "image_2" / "000007.PNG", 200, 60)
    (tmp_path / "label_2" / "000007.txt").write_text(
        "Tram 0.00 0 -1.0 10 20 30 40 1 1 1 1 1 1 1\nPerson_sitting 0.00 0 -1.0 50 5 60 45 1 1 1 1 1 1 1\n"
    )
    (s,) = load_kitti(str(tmp_path / "label_2"))
    assert s.image.endswith("000007.PNG") and (s.width, s.height) == (200, 60)
    assert s.classes.tolist() == [1, 2]  # Tram -> truck/bus, Person_sitting -> pedestrian


@pytest.mark.parametrize(
    "line",
    [
        "Car 0.00 0 -1.58 587.01 173.33 614.12 x 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59",
        "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12",  # 8 fields: not a KITTI line
        # a KITTI *tracking* line (frame, track id first): read as object labels it would be dropped
        "0 2 Car 0 0 -1.79 296.74 161.75 455.22 292.5 2 1.82 4.43 -4.55 1.65 13.41 -2.12",
    ],
)
def test_kitti_malformed_line_names_file_and_line(tmp_path, line):
    (tmp_path / "label_2").mkdir()
    (tmp_path / "label_2" / "000001.txt").write_text(
        "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n" + line + "\n"
    )
    with pytest.raises(ValueError, match=r"000001\.txt:2"):
        load_kitti(str(tmp_path / "label_2"))


def test_kitti_empty_label_file(tmp_path):
    (tmp_path / "label_2").mkdir()
    (tmp_path / "label_2" / "000003.txt").write_text("")
    (s,) = load_kitti(str(tmp_path / "label_2"))
    assert s.boxes.shape == (0, 4) and s.ignore.shape == (0, 4)


def test_voc_size_missing_is_read_from_the_image(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    _img(tmp_path / "JPEGImages" / "a.jpg", 70, 30)
    (tmp_path / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>0</width><height>0</height></size>"
        "<object><name>car</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>10</ymax></bndbox>"
        "</object></annotation>"
    )
    (s,) = load_voc(str(tmp_path / "Annotations"))
    assert (s.width, s.height) == (70, 30)


@pytest.mark.parametrize(
    "body",
    [
        "<annotation><object><name>car</name><bndbox><xmin>1</xmin></bndbox></object></annotation>",
        "<annotation><object><name>car</name>",  # truncated xml
        "<annotation><size><width>50</width><height>50</height></size><object><name>car</name>"
        "<difficult>yes</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
        "</object></annotation>",  # a difficult flag that is neither 0 nor 1
    ],
)
def test_voc_malformed_names_the_file(tmp_path, body):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "broken.xml").write_text(body)
    with pytest.raises(ValueError, match=r"broken\.xml"):
        load_voc(str(tmp_path / "Annotations"))


@pytest.mark.parametrize("cls", ["inf", "nan", "1.5", "6", "-1"])
def test_yolo_bad_class_id(tmp_path, cls):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    _img(tmp_path / "images" / "a.png")
    (tmp_path / "labels" / "a.txt").write_text(f"{cls} 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ValueError, match=r"a\.txt:1: class"):
        load_yolo(str(tmp_path / "images"))


def test_load_any_yolo_split_layout(tmp_path):
    # data/images/{train,val} + data/labels/{train,val}: the split folder itself loads; the root says which
    # splits there are instead of silently returning no images
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        _img(tmp_path / "images" / split / "a.png", 64, 48)
        (tmp_path / "labels" / split / "a.txt").write_text("3 0.5 0.5 0.25 0.5\n")
    (s,) = load_any(str(tmp_path / "images" / "val"))
    assert s.classes.tolist() == [3]
    with pytest.raises(ValueError, match="train.*val"):
        load_any(str(tmp_path))


def test_load_any_accepts_the_label_folder_itself(tmp_path):
    (tmp_path / "label_2").mkdir()
    (tmp_path / "label_2" / "000001.txt").write_text("Car 0 0 0 1 2 30 40 1 1 1 1 1 1 1\n")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(
        "<annotation><size><width>50</width><height>50</height></size><object><name>bus</name>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>10</ymax></bndbox></object></annotation>"
    )
    assert load_any(str(tmp_path / "label_2"))[0].classes.tolist() == [0]
    assert load_any(str(tmp_path / "Annotations"))[0].classes.tolist() == [1]


def test_coco_official_layout_finds_the_images(tmp_path):
    # coco/annotations/instances_val2017.json with the images in coco/val2017/ (COCO's own layout)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    _img(tmp_path / "val2017" / "000000000139.jpg", 64, 48)
    d = dict(
        images=[dict(id=139, file_name="000000000139.jpg")],  # no width/height: read from the image
        categories=[dict(id=3, name="car")],
        annotations=[dict(id=1, image_id=139, category_id=3, bbox=[1, 2, 3, 4], iscrowd=0)],
    )
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(d))
    (s,) = load_any(str(tmp_path / "annotations" / "instances_val2017.json"))
    assert s.image == str(tmp_path / "val2017" / "000000000139.jpg")
    assert (s.width, s.height) == (64, 48)


@pytest.mark.parametrize("names_file", ["data.yaml", "classes.txt"])
def test_yolo_ids_follow_the_data_sets_own_class_names(tmp_path, names_file):
    # a YOLO set with its own class list (Ultralytics data.yaml, or classes.txt from LabelImg / Roboflow):
    # id 0 there is "person", not our "car"; before, ids were silently taken as ours
    names = ["person", "bicycle", "car", "motorcycle", "bus"]
    if names_file == "data.yaml":
        (tmp_path / "data.yaml").write_text(
            "path: .\ntrain: images\nnames:\n" + "".join(f"  - {n}\n" for n in names)
        )
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    if names_file == "classes.txt":
        (tmp_path / "labels" / "classes.txt").write_text("\n".join(names) + "\n")
    _img(tmp_path / "images" / "a.png", 100, 100)
    (tmp_path / "labels" / "a.txt").write_text(
        "2 0.5 0.5 0.2 0.2\n0 0.2 0.2 0.1 0.1\n4 0.8 0.8 0.1 0.1\n3 0.1 0.9 0.1 0.1\n"
    )
    (s,) = load_yolo(str(tmp_path / "images"))
    assert s.classes.tolist() == [0, 2, 1]  # car, person -> pedestrian, bus -> truck/bus; motorcycle dropped
    (tmp_path / "labels" / "a.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ValueError, match=r"a\.txt:1: class 7"):
        load_yolo(str(tmp_path / "images"))


def test_yolo_split_layout_reads_names_at_the_data_set_root(tmp_path):
    (tmp_path / "data.yaml").write_text("names: {0: bus, 1: car}\n")
    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "labels" / "val").mkdir(parents=True)
    _img(tmp_path / "images" / "val" / "a.png", 100, 100)
    (tmp_path / "labels" / "val" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.2 0.2 0.1 0.1\n")
    (s,) = load_yolo(str(tmp_path / "images" / "val"))
    assert s.classes.tolist() == [1, 0]


def test_yolo_broken_data_yaml_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "data.yaml").write_text("names: [car, bus\n")
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    _img(tmp_path / "images" / "a.png", 100, 100)
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ValueError, match=r"data\.yaml: not valid YAML"):
        load_yolo(str(tmp_path / "images"))


def test_coco_annotation_of_an_unknown_image_is_an_error(tmp_path):
    import json

    d = dict(images=[dict(id=1, file_name="a.jpg", width=100, height=100)],
             annotations=[dict(id=9, image_id=2, category_id=3, bbox=[10, 10, 20, 20])],
             categories=[dict(id=3, name="car")])
    (tmp_path / "a.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="annotation 9: image_id 2 is not in 'images'"):
        load_coco(str(tmp_path / "a.json"))


def test_kitti_difficulty_levels_ignore_what_the_level_does_not_count(tmp_path):
    """KITTI's benchmark levels (devkit): easy = height >= 40 px, fully visible, truncation <= 0.15;
    moderate = >= 25 px, occlusion <= 1, truncation <= 0.3; hard = >= 25 px, occlusion <= 2,
    truncation <= 0.5. Objects outside a level are ignored for their own class."""
    (tmp_path / "label_2").mkdir()
    (tmp_path / "image_2").mkdir()
    _img(tmp_path / "image_2" / "000001.png", 1242, 375)
    rows = [  # (type, truncated, occluded, top, bottom): height = bottom - top
        ("Car", 0.00, 0, 100, 150),         # 50 px, visible: every level
        ("Car", 0.00, 0, 100, 130),         # 30 px: moderate and hard, not easy
        ("Pedestrian", 0.20, 1, 100, 160),  # truncation 0.2, partly occluded: moderate and hard
        ("Cyclist", 0.40, 2, 100, 160),     # hard only
        ("Car", 0.00, 3, 100, 160),         # occlusion unknown: no level
        ("Car", 0.60, 0, 100, 160),         # truncated over half: no level
        ("Pedestrian", 0.00, 0, 100, 120),  # 20 px: no level
    ]
    (tmp_path / "label_2" / "000001.txt").write_text("".join(
        f"{t} {tr:.2f} {oc} 0.0 {100 + 50 * i} {top} {140 + 50 * i} {bot} 1 1 1 1 1 1 1\n"
        for i, (t, tr, oc, top, bot) in enumerate(rows)
    ) + "DontCare -1 -1 -10 900 100 950 150 -1 -1 -1 -1000 -1000 -1000 -10\n")
    (every,) = load_kitti(str(tmp_path / "label_2"))
    assert len(every.boxes) == 7 and every.ignore_classes.tolist() == [-1]
    counted = {}
    for level in ("easy", "moderate", "hard"):
        (s,) = load_any(str(tmp_path), kitti_difficulty=level)
        counted[level] = sorted(int(b[0]) for b in s.boxes)
        assert len(s.boxes) + len(s.ignore) == 8  # nothing lost: counted, ignored or DontCare
        assert sorted(s.ignore_classes.tolist()).count(-1) == 1
    assert counted["easy"] == [100]
    assert counted["moderate"] == [100, 150, 200]
    assert counted["hard"] == [100, 150, 200, 250]
    (s,) = load_kitti(str(tmp_path / "label_2"), difficulty="hard")
    ign = {int(b[0]): int(c) for b, c in zip(s.ignore, s.ignore_classes)}
    assert ign == {300: 0, 350: 0, 400: 2, 900: -1}  # each ignored for its own class; DontCare for all
    with pytest.raises(ValueError, match="difficulty must be one of"):
        load_kitti(str(tmp_path / "label_2"), difficulty="medium")
    (tmp_path / "yolo" / "images").mkdir(parents=True)
    with pytest.raises(ValueError, match="not a KITTI"):
        load_any(str(tmp_path / "yolo"), kitti_difficulty="easy")


@pytest.mark.parametrize(
    "written, on_disk",
    [
        ("b.jpg", "B.JPG"),  # an exporter's case differs from the files
        ("b", "b.png"),  # no extension written
        ("b.jpg", "b.png"),  # the extension changed after export (images converted)
        (None, "b.jpeg"),  # no <filename>: the xml's stem
    ],
)
def test_voc_finds_the_image_despite_the_written_name(tmp_path, written, on_disk):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    _img(tmp_path / "JPEGImages" / on_disk, 40, 20)
    _img(tmp_path / "JPEGImages" / "other.jpg", 40, 20)
    name = "" if written is None else f"<filename>{written}</filename>"
    (tmp_path / "Annotations" / "b.xml").write_text(
        f"<annotation>{name}<object><name>car</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax>"
        "<ymax>10</ymax></bndbox></object></annotation>"
    )
    (s,) = load_voc(str(tmp_path / "Annotations"))
    assert s.image == str(tmp_path / "JPEGImages" / on_disk)
    assert (s.width, s.height) == (40, 20)  # (no <size>: read from the image that was found)


def test_voc_missing_image_keeps_the_written_path(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "c.xml").write_text(
        "<annotation><filename>c.jpg</filename><size><width>50</width><height>50</height></size>"
        "</annotation>"
    )
    (s,) = load_voc(str(tmp_path / "Annotations"))
    assert s.image == str(tmp_path / "JPEGImages" / "c.jpg")
