"""Gate rules: each metadata or geometry reason, and the image-check threshold."""

import numpy as np
import pytest

from apps.dicom_dx.gate import GateConfig, decide
from apps.dicom_dx.io import DicomImage, DicomMeta


def _img(shape=(512, 480), **meta):
    m = dict(modality="DX", body_part="CHEST", view_position="PA", photometric="MONOCHROME2")
    m.update(meta)
    return DicomImage(image=np.zeros(shape, np.float32), meta=DicomMeta(**m))


@pytest.mark.parametrize(
    "meta, reason",
    [
        (dict(modality="CT"), "modality CT"),
        (dict(modality="US"), "modality US"),
        (dict(body_part="KNEE"), "body part KNEE"),
        (dict(view_position="LL"), "view position LL"),
        (dict(n_frames=40), "multi-frame"),
        (dict(photometric="RGB", samples_per_pixel=3), "colour"),
    ],
)
def test_metadata_rejections(meta, reason):
    d = decide(_img(**meta), p_chest=0.99)
    assert not d.accepted and d.stage == "metadata" and reason in d.reason


def test_geometry_and_image_check():
    cfg = GateConfig(image_threshold=0.3)
    assert "too small" in decide(_img((100, 100)), 0.99, cfg).reason
    assert "aspect" in decide(_img((1000, 300)), 0.99, cfg).reason
    d = decide(_img(), 0.2, cfg)
    assert not d.accepted and d.stage == "image" and d.p_chest == 0.2
    assert decide(_img(), 0.31, cfg).accepted
    # Unknown modality / missing body part leave the decision to the image check.
    assert decide(_img(modality="OT", body_part=""), 0.31, cfg).accepted
    assert not decide(_img(modality="OT", body_part=""), 0.29, cfg).accepted
    assert decide(_img(body_part="PORTABLE CHEST", view_position="AP"), 0.9, cfg).accepted
