"""Grad-CAM through the framework's hooks: equals the class activation map for a GAP + linear head
(Selvaraju et al., 2017, Sec. 3.1), has the image's shape, and follows the finding (trained model)."""

import csv
import json

import numpy as np
import pytest

import framework as fw
from apps.dicom_dx.explain import explain, gradcam, overlay
from apps.dicom_dx.synth import FINDINGS


def test_gradcam_equals_cam_for_gap_linear_head(tiny_predictor):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 32, 32)).astype(np.float32)
    model = tiny_predictor.model
    model.eval()
    feats = {}
    h = model.features.register_forward_hook(lambda m, a, o: feats.setdefault("a", o))
    with fw.no_grad():
        model(fw.tensor(x[None]))
    h.remove()
    a = feats["a"].numpy()[0]  # (C, h, w)
    w = model.head.weight.numpy()  # (6, C)
    cams = gradcam(tiny_predictor, x)
    import cv2

    for k, f in enumerate(FINDINGS):
        cam = np.maximum(np.tensordot(w[k], a, axes=1), 0)
        cam = cv2.resize(cam.astype(np.float32), (32, 32), interpolation=cv2.INTER_LINEAR)
        ref = cam / cam.max() if cam.max() > 1e-12 else cam
        assert cams[f].shape == (32, 32)
        np.testing.assert_allclose(cams[f], ref, atol=1e-4)


def test_explain_shape_and_overlay(tiny_synth, tiny_predictor):
    maps = explain(tiny_synth / "chest" / "000000.dcm", tiny_predictor, ["nodule"])
    from apps.dicom_dx.io import read_dicom

    img = read_dicom(tiny_synth / "chest" / "000000.dcm")
    assert maps["nodule"].shape == img.gray.shape and 0 <= maps["nodule"].min() and maps["nodule"].max() <= 1
    ov = overlay(img.gray, maps["nodule"])
    assert ov.dtype == np.uint8 and ov.shape == (*img.gray.shape, 3)


def test_trained_model_heatmap_points_at_the_finding(tmp_path):
    """The committed model's Grad-CAM is brighter inside the synthetic finding's box than outside."""
    from apps.dicom_dx.inference import ASSETS, load_default_model
    from apps.dicom_dx.synth import generate

    if not (ASSETS / "model.safetensors").exists():
        pytest.skip("no committed model")
    pred = load_default_model()
    generate(tmp_path, 24, seed=123, prevalence={"nodule": 1.0, "opacity": 0.0}, size_range=(400, 450))
    ratios = []
    for row in csv.DictReader(open(tmp_path / "labels.csv")):
        box = json.loads(row["boxes"]).get("nodule")
        if not box:
            continue
        hm = explain(tmp_path / row["file"], pred, ["nodule"])["nodule"]
        inside = np.zeros(hm.shape, bool)
        inside[box[1] : box[3], box[0] : box[2]] = True
        ratios.append(hm[inside].mean() / (hm[~inside].mean() + 1e-6))
    assert len(ratios) >= 10 and np.median(ratios) > 1.5
