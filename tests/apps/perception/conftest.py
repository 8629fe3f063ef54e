"""Shared fixtures: a tiny untrained detector saved as weights + model card, a short drive clip, a
camera reader that gets unplugged, and pycocotools' COCOeval as the metrics oracle."""

import json
import time

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A randomly initialised, narrow detector at input size 64 (fast; the pipeline is what is tested)."""
    import framework as fw
    from apps.perception.classes import CLASSES
    from apps.perception.model import CenterNet

    d = tmp_path_factory.mktemp("weights")
    fw.manual_seed(0)
    m = CenterNet(width=0.5)
    fw.save(m.state_dict(), str(d / "detector.safetensors"))
    (d / "model_card.json").write_text(
        json.dumps(dict(classes=list(CLASSES), input_size=64, default_conf=0.3, architecture=dict(width=0.5)))
    )
    return str(d / "detector.safetensors")


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    from apps.perception.synth import write_video

    p = tmp_path_factory.mktemp("clip") / "drive.mp4"
    write_video(str(p), 12, seed=1, width=160, height=120, fps=30.0, labels_json=str(p.with_suffix(".json")))
    return str(p)


@pytest.fixture
def flaky_camera():
    """shape -> a reader class for ``LatestFrameCapture(_reader_factory=...)``: a live camera that gives
    5 frames, is unplugged (its first reopen is refused), then gives 3 more. Each class counts its own
    ``opens``."""
    from apps.perception.stream import SourceError

    def make(shape):
        class FlakyCamera:
            opens = 0
            live = True

            def __init__(self, source):
                type(self).opens += 1
                if type(self).opens == 2:
                    raise SourceError("camera 0 unplugged")
                self.kind, self.fps, self.n = "camera", 100.0, 0
                self.limit = 5 if type(self).opens == 1 else 3

            def read(self):
                self.n += 1
                time.sleep(0.005)
                return np.zeros(shape, np.uint8) if self.n <= self.limit else None

            def close(self):
                pass

        return FlakyCamera

    return make


@pytest.fixture
def cocoeval():
    """(samples, detections) -> pycocotools COCOeval after evaluate/accumulate/summarize (skips the test
    when pycocotools is absent)."""
    import contextlib
    import io

    from apps.perception.formats import to_coco_gt
    from apps.perception.metrics import to_coco_detections

    COCO = pytest.importorskip("pycocotools.coco").COCO
    COCOeval = pytest.importorskip("pycocotools.cocoeval").COCOeval

    def run(samples, dets):
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = to_coco_gt(samples)
            gt.createIndex()
            E = COCOeval(gt, gt.loadRes(to_coco_detections(samples, dets)), "bbox")
            E.evaluate()
            E.accumulate()
            E.summarize()
        return E

    return run
