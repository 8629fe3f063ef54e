"""Audit of dicom_dx's model side: network and Grad-CAM against a PyTorch re-implementation with the
weights copied over, Grad-CAM's alignment to the original image, training (masked BCE, patient split,
cache, resume, model card), preprocessing at training vs inference, the synthetic generator, and the
prediction API's input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

import framework as fw
from apps.dicom_dx.synth import FINDINGS

torch = pytest.importorskip("torch")


# --- a PyTorch oracle of ChestNet ------------------------------------------------------------------


def _torch_chestnet(widths):
    """The same network written with torch.nn (parameter names match ChestNet's state dict)."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, ch):
            super().__init__()
            self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(ch)
            self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(ch)

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(x + self.bn2(self.conv2(y)))

    def down(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            w0, w1, w2, w3 = widths
            self.stem = nn.Sequential(down(1, w0), down(w0, w1))
            self.stage1 = Block(w1)
            self.stage2 = nn.Sequential(down(w1, w2), Block(w2))
            self.features = nn.Sequential(down(w2, w3), Block(w3))
            self.head = nn.Linear(w3, 6)

        def forward(self, x):
            x = self.features(self.stage2(self.stage1(self.stem(x))))
            return self.head(x.mean((2, 3)))

    return Net()


def _to_torch(model, widths):
    net = _torch_chestnet(widths).double()
    sd = {k: torch.from_numpy(np.asarray(v.numpy()).copy()) for k, v in model.state_dict().items()}
    net.load_state_dict(sd, strict=True)
    return net.double().eval()


def _randomise_bn(model, seed=0):
    """Non-trivial running statistics and affine parameters, so eval-mode BN is really tested."""
    rng = np.random.default_rng(seed)
    for name, buf in model.state_dict().items():
        a = buf.data
        if name.endswith("running_mean") or name.endswith(".bias"):
            a[...] = rng.normal(0, 0.3, a.shape)
        elif name.endswith("running_var"):
            a[...] = rng.uniform(0.5, 2.0, a.shape)
        elif name.endswith(".weight") and a.ndim == 1:
            a[...] = rng.uniform(0.5, 1.5, a.shape)
        elif name == "head.weight":
            a[...] = rng.normal(0, 0.5, a.shape)


@pytest.fixture(scope="module")
def small_predictor():
    from apps.dicom_dx.inference import untrained_predictor

    p = untrained_predictor(size=32, widths=(4, 8, 8, 8), seed=11)
    _randomise_bn(p.model, seed=11)
    return p


@pytest.fixture(scope="module")
def committed():
    from apps.dicom_dx.inference import ASSETS, load_default_model

    if not (ASSETS / "model.safetensors").exists():
        pytest.skip("no committed model")
    return load_default_model()


def _torch_gradcam(net, x, k):
    """Grad-CAM with torch hooks: (h, w) map before upsampling, float64."""
    acts = {}

    def hook(_m, _i, out):
        out.retain_grad()
        acts["a"] = out

    h = net.features.register_forward_hook(hook)
    try:
        xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(False)
        logits = net(xt)
        net.zero_grad()
        logits[0, k].backward()
    finally:
        h.remove()
    a, g = acts["a"][0].detach(), acts["a"].grad[0]
    return torch.relu((g.mean((1, 2))[:, None, None] * a).sum(0))


def _resize_torch(cam, hw):
    t = torch.nn.functional.interpolate(cam[None, None], size=hw, mode="bilinear", align_corners=False)
    return t[0, 0].numpy()


def test_chestnet_logits_match_torch_with_copied_weights(small_predictor, committed):
    rng = np.random.default_rng(1)
    for pred, widths, s in ((small_predictor, (4, 8, 8, 8), 32), (committed, (16, 24, 48, 96), 160)):
        net = _to_torch(pred.model, widths)
        x = rng.standard_normal((2, 1, s, s)).astype(np.float32)
        ours = pred.probabilities(x)
        with torch.no_grad():
            ref = torch.sigmoid(net(torch.from_numpy(x.astype(np.float64)))).numpy()
        np.testing.assert_allclose(ours, ref, atol=2e-5)


def test_gradcam_matches_torch_hooks(small_predictor, committed):
    from apps.dicom_dx.explain import gradcam

    rng = np.random.default_rng(2)
    n_nonzero = 0
    for pred, widths, s in ((small_predictor, (4, 8, 8, 8), 32), (committed, (16, 24, 48, 96), 160)):
        net = _to_torch(pred.model, widths)
        x = rng.standard_normal((1, s, s)).astype(np.float32)
        cams = gradcam(pred, x)
        for k, f in enumerate(FINDINGS):
            cam = _torch_gradcam(net, x[None], k)
            ref = _resize_torch(cam, (s, s))
            mx = ref.max()
            ref = ref / mx if mx > 1e-12 else np.zeros_like(ref)
            n_nonzero += mx > 1e-12
            assert cams[f].shape == (s, s) and cams[f].dtype == np.float32
            np.testing.assert_allclose(cams[f], ref, atol=2e-4, err_msg=f)
    assert n_nonzero >= 6  # the comparison is not between empty maps


@pytest.fixture(scope="module")
def one_chest(tmp_path_factory):
    from apps.dicom_dx.io import read_dicom
    from apps.dicom_dx.synth import generate

    root = tmp_path_factory.mktemp("one_chest")
    generate(root, 1, seed=3, size_range=(96, 100), render_max=96)
    return read_dicom(root / "chest" / "000000.dcm")


def test_explain_map_is_the_bilinear_upsampling_of_the_cam_at_the_image_size_and_aspect(one_chest):
    """Before: the feature-grid map was resized to S × S and then to (H, W) — interpolated twice, it
    was off the map's bilinear upsampling by up to 0.05 of its range. The oracle resizes torch's CAM
    once (F.interpolate, bilinear, align_corners=False: pixel centres, the convention of the area
    resize that made the input) to non-square sizes of both orientations."""
    import dataclasses

    from apps.dicom_dx.data import preprocess
    from apps.dicom_dx.explain import explain
    from apps.dicom_dx.inference import untrained_predictor

    pred = untrained_predictor(size=64, widths=(4, 8, 8, 8), seed=11)
    _randomise_bn(pred.model, seed=11)
    net = _to_torch(pred.model, (4, 8, 8, 8))
    rng = np.random.default_rng(0)
    checked = 0
    for h, w in ((90, 150), (150, 90), (257, 131)):
        gray = rng.random((h, w)).astype(np.float32)
        maps = explain(dataclasses.replace(one_chest, image=gray), pred)
        x = preprocess(gray, 64)
        for k, f in enumerate(FINDINGS):
            ref = _resize_torch(_torch_gradcam(net, x[None], k), (h, w))
            mx = ref.max()
            ref = ref / mx if mx > 1e-12 else np.zeros_like(ref)
            checked += mx > 1e-12
            assert maps[f].shape == (h, w)
            np.testing.assert_allclose(maps[f], ref, atol=1e-4, err_msg=f"{f} at {h}x{w}")
    assert checked >= 4
