"""Synthetic scenes (labels, formats, perspective) and training augmentation (boxes follow pixels)."""

import json

import numpy as np

from apps.perception.augment import affine, hflip, mosaic
from apps.perception.formats import load_coco, load_yolo
from apps.perception.synth import Camera, Conditions, make_object, random_scene, render_scene, write_dataset


def test_dataset_round_trips_through_the_loaders(tmp_path):
    info = write_dataset(str(tmp_path), 4, seed=5, width=160, height=120)
    coco = load_coco(str(tmp_path / "annotations.json"))
    yolo = load_yolo(str(tmp_path / "images"))
    assert len(coco) == len(yolo) == 4 and sum(len(s.boxes) for s in yolo) == info["boxes"]
    for a, b in zip(coco, yolo):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.01)  # YOLO txt keeps 6 decimals
        assert (a.boxes[:, :2] >= 0).all() and (a.boxes[:, 2] <= 160).all() and (a.boxes[:, 3] <= 120).all()
    cats = json.load(open(tmp_path / "annotations.json"))["categories"]
    assert [c["name"] for c in cats][:3] == ["car", "truck/bus", "pedestrian"]


def test_perspective_far_objects_are_small_and_high():
    rng = np.random.default_rng(0)
    cam = Camera(320, 240)
    cond = Conditions(noise=0.0)
    near, far = make_object(rng, 0, 8.0), make_object(rng, 0, 40.0)
    near.x = far.x = 1.75
    far.w, far.h, far.style = near.w, near.h, near.style
    _, (a,) = render_scene([near], cam, cond, rng)
    _, (b,) = render_scene([far], cam, cond, rng)
    ha, hb = a["bbox"][3] - a["bbox"][1], b["bbox"][3] - b["bbox"][1]
    assert abs(ha / hb - 5.0) < 0.5  # size ~ 1 / depth (to the pixel)
    assert b["bbox"][3] < a["bbox"][3]  # the far car stands closer to the horizon


def test_occlusion_marks_hidden_objects_ignore():
    rng = np.random.default_rng(1)
    cam = Camera(320, 240)
    front, behind = make_object(rng, 1, 10.0), make_object(rng, 0, 14.0)  # a truck hides a car
    front.x = behind.x = 1.75
    _, anns = render_scene([front, behind], cam, Conditions(noise=0.0), rng)
    by_cls = {a["cls"]: a for a in anns}
    assert by_cls[0]["visible"] < 0.3 and by_cls[0]["ignore"] and not by_cls[1]["ignore"]


def test_random_scene_conditions_vary():
    rng = np.random.default_rng(2)
    means = [random_scene(rng, 160, 120)[0].mean() for _ in range(8)]
    assert max(means) - min(means) > 20  # day vs dusk/night/fog differ in brightness


class _Cache:
    def __init__(self, rng):
        self.items = []
        for _ in range(4):
            img = np.zeros((64, 64, 3), np.uint8)
            xy = rng.integers(0, 40, 2)
            img[xy[1] : xy[1] + 20, xy[0] : xy[0] + 16] = 255
            self.items.append(
                (
                    img,
                    np.array([[xy[0], xy[1], xy[0] + 16, xy[1] + 20]], np.float32),
                    np.array([1]),
                    np.zeros((0, 4), np.float32),
                )
            )

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _box_of_white(img):
    ys, xs = np.nonzero(img[..., 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def test_flip_and_affine_move_boxes_with_pixels(rng):
    c = _Cache(rng)
    img, b, cl, ig = c[0]
    fi, fb, _ = hflip(img, b, ig)
    np.testing.assert_allclose(fb[0], _box_of_white(fi))
    ai, ab, ac, _ = affine(img, b, cl, ig, np.random.default_rng(4), 64, scale=(1.2, 1.2), translate=0.0)
    if len(ab):
        np.testing.assert_allclose(ab[0], _box_of_white(ai), atol=1.5)


def test_mosaic_boxes_inside_and_on_objects(rng):
    c = _Cache(rng)
    img, b, cl, ig = mosaic(c, [0, 1, 2, 3], np.random.default_rng(0), 64)
    assert img.shape == (64, 64, 3) and len(b) + len(ig) >= 1
    assert (b >= 0).all() and (b <= 64).all()
    for x1, y1, x2, y2 in b.astype(int):
        assert img[y1:y2, x1:x2, 0].mean() > 100  # a kept box covers its (white) object


def test_letterbox_maps_boxes_back_and_handles_extreme_shapes():
    import pytest

    from apps.perception.data import letterbox, unletterbox_boxes

    img = np.zeros((60, 100, 3), np.uint8)
    img[20:40, 30:50] = 255
    out, meta = letterbox(img, 320)
    r, px, py = meta
    assert out.shape == (320, 320, 3) and r == pytest.approx(3.2) and (px, py) == (0.0, 64.0)
    ys, xs = np.nonzero(out[..., 0] > 127)  # the edges are interpolated: half-way is the edge
    box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    np.testing.assert_allclose(unletterbox_boxes(box, meta, 100, 60), [[30, 20, 50, 40]], atol=0.5)
    # a 2 x 5000 strip (a scan line, a panorama slice): its short side rounded to 0 px and OpenCV raised
    out, (r, px, py) = letterbox(np.full((2, 5000, 3), 7, np.uint8), 320)
    assert out.shape == (320, 320, 3) and (out == 7).any()
    with pytest.raises(ValueError, match="empty image"):
        letterbox(np.zeros((0, 10, 3), np.uint8), 320)


def test_write_dataset_never_writes_over_another_data_set(tmp_path):
    import os

    import pytest

    from apps.perception.synth import write_dataset

    mine = tmp_path / "mine"
    write_dataset(str(mine), 4, seed=5, width=96, height=64)
    with pytest.raises(ValueError, match="not empty"):
        write_dataset(str(mine), 2, seed=6, width=96, height=64)
    write_dataset(str(mine), 2, seed=6, width=96, height=64, overwrite=True)  # synth's own: replaced whole
    assert sorted(os.listdir(mine / "images")) == ["000000.jpg", "000001.jpg"]
    assert sorted(os.listdir(mine / "labels")) == ["000000.txt", "000001.txt"]
    theirs = tmp_path / "theirs"
    (theirs / "images").mkdir(parents=True)
    photo = theirs / "images" / "street_0001.png"
    photo.write_bytes(b"a user's photo")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="not empty|not written by synth"):
            write_dataset(str(theirs), 2, seed=6, width=96, height=64, overwrite=overwrite)
    assert photo.read_bytes() == b"a user's photo" and os.listdir(theirs / "images") == ["street_0001.png"]
