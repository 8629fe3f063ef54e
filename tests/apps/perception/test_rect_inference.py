"""Rectangular inference: frames letterboxed into the smallest multiple-of-32 rectangle at the model's
scale give the detections of the full square, mapped back to the same frame pixels."""

import numpy as np
import pytest

from apps.perception import load_default_model
from apps.perception.detector import Detector
from apps.perception.metrics import box_iou
from apps.perception.synth import random_scene


@pytest.mark.parametrize("frame_hw, size, expected", [
    ((480, 640), 640, (480, 640)),      # the demo's camera at its native scale: no padding at all
    ((480, 640), 320, (256, 320)),      # 240 rows at scale 0.5, rounded up to the stride
    ((375, 1242), 640, (224, 640)),     # a KITTI frame: 193 rows
    ((1080, 1920), 480, (288, 480)),
    ((640, 480), 640, (640, 480)),      # portrait
    ((3, 2000), 320, (32, 320)),        # never below one stride
])
def test_input_shape(frame_hw, size, expected):
    det = Detector.__new__(Detector)
    det.size, det.rect = size, True
    assert det.input_shape(frame_hw) == expected
    det.rect = False
    assert det.input_shape(frame_hw) == (size, size)


def _match(a, b):
    """For each box of a: the best IoU with a box of b of the same class."""
    out = []
    for box, cls in zip(a.boxes, a.classes):
        same = b.boxes[b.classes == cls]
        out.append(float(box_iou(box[None], same).max()) if len(same) else 0.0)
    return np.array(out)


def test_rect_and_square_inference_find_the_same_objects():
    det = load_default_model()
    rng = np.random.default_rng(31337)
    for _ in range(3):
        frame, _labels = random_scene(rng, 640, 480)
        det.rect = True
        rect = det(frame)
        x, _ = det.preprocess(frame)
        assert x.shape[2:] == det.input_shape((480, 640)) and x.shape[2] < det.size
        det.rect = False
        square = det(frame)
        sure = rect.scores > 0.5
        assert sure.sum() >= 2
        # the confident detections are the same boxes in frame pixels (the network sees the same
        # pixels at the same scale; only the letterbox border around them differs)
        ious = _match(type(rect)(rect.boxes[sure], rect.scores[sure], rect.classes[sure]), square)
        assert np.median(ious) > 0.95 and ious.min() > 0.5, ious
        assert abs(len(rect.boxes) - len(square.boxes)) <= max(2, len(square.boxes) // 5)
    det.rect = True


def test_flip_test_is_mirror_symmetric_and_changes_the_boxes():
    """With the flip test, a mirrored frame gives the mirrored detections (both views are averaged, so
    which one is the original cannot matter), and the boxes move from the single view's."""
    det = load_default_model()
    frame, _labels = random_scene(np.random.default_rng(4711), 640, 480)  # no side letterbox at 640
    plain = det(frame)
    det.flip_test = True
    try:
        d = det(frame)
        m = det(np.ascontiguousarray(frame[:, ::-1]))
    finally:
        det.flip_test = False
    back = m.boxes.copy()
    back[:, [0, 2]] = 640 - m.boxes[:, [2, 0]]
    sure = d.scores > 0.5
    assert sure.sum() >= 2 and len(m.boxes) == len(d.boxes)
    ious = box_iou(d.boxes[sure], back)
    j = ious.argmax(1)
    assert ious.max(1).min() > 0.999 and (m.classes[j] == d.classes[sure]).all()
    np.testing.assert_allclose(m.scores[j], d.scores[sure], rtol=1e-4)
    moved = _match(type(d)(d.boxes[sure], d.scores[sure], d.classes[sure]), plain)
    assert np.median(moved) > 0.9 and moved.min() < 0.999  # the same objects, located anew


def test_flip_test_on_parallel_threads_gives_the_batched_result(monkeypatch):
    """The two views as two calls at once (framework.utils.parallel) give what one batch of two gives."""
    import framework.utils.parallel as P
    from framework.kernels.cpu import conv as C

    det = load_default_model()
    frame, _labels = random_scene(np.random.default_rng(99), 640, 480)
    det.flip_test = True
    try:
        monkeypatch.setattr(P, "worthwhile", lambda: False)
        batched = det(frame)
        monkeypatch.setattr(P, "worthwhile", lambda: True)
        monkeypatch.setattr(C, "_THREADS", 2)
        calls = []
        real = P.parallel_map
        monkeypatch.setattr(P, "parallel_map", lambda fn, items: calls.append(len(items)) or real(fn, items))
        parallel = det(frame)
    finally:
        det.flip_test = False
    assert calls == [2]
    assert len(parallel.boxes) == len(batched.boxes) >= 2
    np.testing.assert_allclose(parallel.boxes, batched.boxes, atol=1e-3)
    np.testing.assert_allclose(parallel.scores, batched.scores, atol=1e-5)
    np.testing.assert_array_equal(parallel.classes, batched.classes)


def test_batches_of_mixed_shapes_fall_back_to_the_square():
    det = load_default_model()
    rng = np.random.default_rng(5)
    a, _ = random_scene(rng, 640, 480)
    b, _ = random_scene(rng, 480, 480)
    batch = det.detect_batch([a, b])
    one = [det(a), det(b)]
    for d in batch:
        assert len(d.boxes) == 0 or (d.boxes[:, 2] <= 640).all()
    # the first frame's confident detections match the single-frame (rectangular) run
    sure = batch[0].scores > 0.5
    ious = _match(type(batch[0])(batch[0].boxes[sure], batch[0].scores[sure], batch[0].classes[sure]), one[0])
    assert len(ious) >= 1 and np.median(ious) > 0.95


def test_a_cuda_graph_that_cannot_be_captured_falls_back_to_eager_with_one_warning(monkeypatch):
    # (the capture itself needs a GPU: tests/framework/test_cuda_gpu.py; here the fallback's logic)
    from apps.perception.model import CenterNet

    model = CenterNet(width=0.5)
    det = Detector(model, size=64)
    assert det.cuda_graph is False  # never on the CPU
    want = det.forward(np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32))
    det.cuda_graph = True
    calls = []

    def refuse(shape):
        calls.append(shape)
        raise RuntimeError("calling cuBLAS API during stream capture is currently unsupported")

    monkeypatch.setattr(det, "_capture", refuse)
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    with pytest.warns(UserWarning, match="no CUDA graph.*cuBLAS"):
        got = det.forward(x)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert "cuBLAS" in det.graph_error
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, not per frame
        det.forward(x)
    assert calls == [(1, 3, 64, 64)]
