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


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny oracle networks: extra torch threads only spin on a shared machine (0.8 s a backward)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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


# --- training ----------------------------------------------------------------------------------------


def _cfg(tiny_synth, tmp_path, **kw):
    from apps.dicom_dx.train import TrainConfig

    base = dict(
        data=str(tiny_synth),
        val=str(tiny_synth),
        out=str(tmp_path / "m"),
        size=32,
        batch_size=4,
        widths=(4, 8, 8, 8),
        workers=1,
        cache=str(tmp_path / "cache"),
        epochs=2,
    )
    base.update(kw)
    return TrainConfig(**base)


def _weights(path):
    return {k: np.asarray(v.numpy()) for k, v in fw.load(str(path)).items()}


def test_resume_after_an_interruption_reproduces_the_uninterrupted_run(tiny_synth, tmp_path):
    """Before: --resume reseeded the augmentation/shuffling generator with seed + 1000 * epoch (the
    docstring said the checkpoint kept the RNG state; it did not), so an interrupted run resumed onto
    another trajectory than the run it continued."""
    from apps.dicom_dx.train import train

    full = train(_cfg(tiny_synth, tmp_path / "a"))

    def stop_after_first_epoch(epoch, _total, _rec):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_synth, tmp_path / "b"), progress=stop_after_first_epoch)
    resumed = train(_cfg(tiny_synth, tmp_path / "b", resume=True))
    wa, wb = (
        _weights(tmp_path / "a" / "m" / "model.safetensors"),
        _weights(tmp_path / "b" / "m" / "model.safetensors"),
    )
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in full["history"]]


def test_resume_with_other_trajectory_options_is_refused(tiny_synth, tmp_path):
    """Before: a resume with another learning rate or batch size silently went on with them (the
    schedule was even fast-forwarded with the new number of steps per epoch), and a resume with fewer
    epochs than done died inside the LR scheduler ("Tried to step 5 times")."""
    from apps.dicom_dx.train import train

    train(_cfg(tiny_synth, tmp_path, epochs=2))
    with pytest.raises(ValueError, match=r"lr 0\.003 -> 0\.001.*batch_size|batch_size.*lr"):
        train(_cfg(tiny_synth, tmp_path, epochs=3, lr=1e-3, batch_size=8, resume=True))
    with pytest.raises(ValueError, match="2 epochs done, more than --epochs 1"):
        train(_cfg(tiny_synth, tmp_path, epochs=1, resume=True))


def test_card_training_time_of_a_resumed_run_counts_the_interrupted_part(tiny_synth, tmp_path, monkeypatch):
    """Before: the card's training seconds were those of the last (resumed) process only. The first
    run's clock is made to advance 1000 s per reading, so its epoch lasts ~1000 s."""
    import time as real_time

    import apps.dicom_dx.train as T

    class SlowClock:
        now = real_time.time()

        def time(self):
            self.now += 1000.0
            return self.now

        def __getattr__(self, name):
            return getattr(real_time, name)

    def stop(epoch, _total, _rec):
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "time", SlowClock())
    with pytest.raises(KeyboardInterrupt):
        T.train(_cfg(tiny_synth, tmp_path), progress=stop)
    monkeypatch.setattr(T, "time", real_time)
    card = T.train(_cfg(tiny_synth, tmp_path, resume=True))
    assert card["history"][0]["seconds"] >= 1000
    assert card["training"]["seconds"] >= sum(h["seconds"] for h in card["history"])


def _strict(text: str):
    def bad(c):
        raise ValueError(f"non-standard JSON constant {c}")

    return json.loads(text, parse_constant=bad)


@pytest.fixture(scope="module")
def synth_no_pneumothorax(tmp_path_factory):
    """Chest radiographs without any pneumothorax and no gate negatives (as NIH or RSNA data)."""
    from apps.dicom_dx.synth import generate

    root = tmp_path_factory.mktemp("synth_nopx")
    prev = {"opacity": 0.5, "nodule": 0.5, "effusion": 0.5, "cardiomegaly": 0.5, "pneumothorax": 0.0}
    generate(root, 6, seed=5, prevalence=prev, size_range=(96, 110), render_max=96)
    return root


def test_model_card_is_strict_json_when_a_metric_is_undefined(synth_no_pneumothorax, tmp_path):
    """Before: a finding without validation positives (AUROC undefined) or a validation set without
    gate negatives (gate AUROC undefined) wrote bare NaN into model_card.json — which strict JSON
    parsers (JavaScript, Go, jq, PostgreSQL) refuse — and into the checkpoint's history."""
    from apps.dicom_dx.model import load_model
    from apps.dicom_dx.train import train

    with pytest.warns(UserWarning) as caught:
        card = train(_cfg(synth_no_pneumothorax, tmp_path, epochs=1))
    messages = " | ".join(str(w.message) for w in caught)
    assert "no positive validation case for" in messages and "pneumothorax" in messages
    # no negatives in the training data: the gate's image check could not learn (before: silent)
    assert "no gate negatives" in messages
    text = (tmp_path / "m" / "model_card.json").read_text()
    on_disk = _strict(text)
    assert on_disk["validation"]["findings"]["pneumothorax"]["auroc"] is None
    assert on_disk["history"][0]["val_gate_auroc"] is None
    assert on_disk["gate"]["validation"]["negatives_rejected"] is None
    assert "pneumothorax" in card["thresholds_defaulted"]
    from apps.dicom_dx.data import AUGMENTATION

    assert on_disk["training"]["augmentation"] == AUGMENTATION  # checked against augment below
    _strict(fw.load(str(tmp_path / "m" / "checkpoint.safetensors"))["meta"])
    _, loaded = load_model(tmp_path / "m" / "model.safetensors")
    assert loaded["thresholds"]["pneumothorax"] == 0.5


@pytest.fixture(scope="module")
def other_synth(tmp_path_factory):
    from apps.dicom_dx.synth import generate

    root = tmp_path_factory.mktemp("synth_other")
    generate(root, 6, seed=8, prevalence=0.5, negatives=3, size_range=(96, 110), render_max=96)
    return root


@pytest.mark.parametrize("with_val", [True, False])
def test_cache_of_other_data_is_not_reused(tiny_synth, other_synth, tmp_path, with_val):
    """Before: a --cache folder holding images_S.npy was reused whatever data it was built from, so
    training on another data set (or with another split seed) with the same --cache silently
    trained and validated on the old images and labels."""
    from apps.dicom_dx.data import load_cache
    from apps.dicom_dx.loaders import load_any
    from apps.dicom_dx.train import train

    val = (lambda d: str(d)) if with_val else (lambda d: None)
    train(_cfg(tiny_synth, tmp_path / "a", val=val(tiny_synth), epochs=1, cache=str(tmp_path / "c")))
    train(_cfg(other_synth, tmp_path / "b", val=val(other_synth), epochs=1, cache=str(tmp_path / "c")))
    idx = [json.loads((tmp_path / "c" / s / "index.json").read_text()) for s in ("train", "val")]
    paths = {p for i in idx for p in i["paths"]}
    assert paths <= {str(r.path) for r in load_any(other_synth)}
    n = sum(len(load_cache(tmp_path / "c" / s, 32)[0]) for s in ("train", "val"))
    assert n == (18 if with_val else 9)  # other_synth's 9 files, twice with --val


def test_patient_split_and_overlap_warning(tiny_synth, tmp_path):
    """Without --val the split is by patient (a patient's images all go to one side); with --val, a
    patient present in both sets is reported (before: silently accepted, which inflates the
    validation metrics and biases the thresholds chosen on them)."""
    from apps.dicom_dx.loaders import Record, split_records
    from apps.dicom_dx.train import _split_cache

    recs = [Record(path=None, labels=np.zeros(5, np.float32), group=f"p{i % 37}") for i in range(400)]
    tr, va = split_records(recs, (0.85, 0.15), seed=3)
    assert tr and va and len(tr) + len(va) == 400
    assert not {r.group for r in tr} & {r.group for r in va}
    with pytest.warns(UserWarning, match="15 patient.*both the training and the validation"):
        _split_cache(_cfg(tiny_synth, tmp_path))


def test_masked_bce_and_its_gradient_match_torch():
    """The training loss: BCE with logits over known labels only (NaN labels and the findings of gate
    negatives masked), averaged over the known entries; value and gradient against PyTorch."""
    from apps.dicom_dx.train import _targets, masked_bce

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, (7, 5)).astype(np.float32)
    labels[1, 2] = labels[4, 0] = np.nan
    chest = np.array([1, 1, 0, 1, 1, 0, 1])
    t, w = _targets(labels, chest)
    z = rng.normal(0, 3, (7, 6)).astype(np.float64)
    z[0, 0] = 40.0  # saturated logits stay finite
    zt = fw.tensor(z, requires_grad=True)
    loss = masked_bce(zt, fw.tensor(t.astype(np.float64)), fw.tensor(w.astype(np.float64)))
    loss.backward()
    ref_z = torch.tensor(z, requires_grad=True)
    tt, wt = torch.tensor(t, dtype=torch.float64), torch.tensor(w, dtype=torch.float64)
    known = wt > 0
    ref = torch.nn.functional.binary_cross_entropy_with_logits(ref_z[known], tt[known])  # mean over known
    ref.backward()
    np.testing.assert_allclose(float(loss.item()), float(ref), rtol=1e-12)
    g = zt.grad.numpy()
    np.testing.assert_allclose(g, ref_z.grad.numpy(), rtol=1e-10, atol=1e-15)
    assert np.all(g[~known.numpy()] == 0) and np.all(g[[2, 5], :5] == 0) and g[1, 2] == 0 and g[4, 0] == 0
    assert int(known.sum()) == 7 + 5 * 5 - 2  # every gate target, the chest images' known findings


# --- preprocessing: inference is training -------------------------------------------------------------


def test_inference_input_is_exactly_the_training_input(tiny_synth, tmp_path, small_predictor):
    """Before: training and validation saw the 8-bit cache (resize → round to 1/255 → standardise)
    while inference standardised the unrounded resize; the committed model's probabilities moved by
    up to 0.02 between the two paths, and its thresholds were chosen on the other one."""
    from apps.dicom_dx.data import build_cache, load_cache, preprocess, standardize
    from apps.dicom_dx.io import read_dicom
    from apps.dicom_dx.loaders import load_synthetic
    from apps.dicom_dx.train import predict_arrays

    recs = [r for r in load_synthetic(tiny_synth) if r.frontal_chest]
    build_cache(recs, tmp_path / "c", 32, workers=1)
    u8, _, _ = load_cache(tmp_path / "c", 32)
    x_inf = np.stack([preprocess(read_dicom(r.path).gray, 32) for r in recs])
    x_train = standardize(u8.astype(np.float32) / 255.0)[:, None]
    np.testing.assert_array_equal(x_inf, x_train)
    np.testing.assert_array_equal(
        small_predictor.probabilities(x_inf), predict_arrays(small_predictor.model, u8)
    )


def test_preprocess_input_checks_and_integer_images():
    """NaN/inf pixels are a clear ValueError (before: they ran through the model and came out as
    'the model returned NaN', or as an all-zero Grad-CAM); a float image outside [0, 1] is refused
    (it is not a display image); 8- and 16-bit integer images are scaled by their full range, as
    the training loaders read 8/16-bit PNGs."""
    from apps.dicom_dx.data import preprocess

    rng = np.random.default_rng(5)
    g = rng.random((70, 90)).astype(np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        b = g.copy()
        b[3, 4] = bad
        with pytest.raises(ValueError, match="1 non-finite pixel"):
            preprocess(b, 32)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        preprocess(g * 4000, 32)
    with pytest.raises(ValueError, match="2-D"):
        preprocess(np.stack([g, g, g], -1), 32)
    u16 = np.round(g * 65535).astype(np.uint16)
    np.testing.assert_array_equal(preprocess(u16, 32), preprocess(u16 / np.float32(65535), 32))
    u8 = np.round(g * 255).astype(np.uint8)
    np.testing.assert_array_equal(preprocess(u8, 32), preprocess(u8 / np.float32(255), 32))
    for raw in (u16.astype(np.int16), u16.astype(np.int32), u16.astype(np.uint32)):
        with pytest.raises(ValueError, match="unsigned 8 or 16 bit"):
            preprocess(raw, 32)


def test_predict_and_explain_refuse_non_finite_pixels(one_chest, small_predictor):
    import dataclasses

    from apps.dicom_dx.explain import explain
    from apps.dicom_dx.inference import predict

    bad = one_chest.image.copy()
    bad[10:12, 10:12] = np.nan
    img = dataclasses.replace(one_chest, image=bad)
    pred = dataclasses.replace(small_predictor, card={**small_predictor.card, "gate": {"min_size": 16}})
    with pytest.raises(ValueError, match="4 non-finite pixels"):
        predict(img, pred)
    with pytest.raises(ValueError, match="4 non-finite pixels"):
        explain(img, pred)


def test_batch_of_images_of_different_sizes_scores_as_one_by_one(small_predictor):
    """Images of any size and aspect are each resized to S × S; scored together in one batch they
    get the probabilities they get alone (eval-mode batch norm, no cross-talk)."""
    from apps.dicom_dx.data import preprocess

    rng = np.random.default_rng(6)
    imgs = [rng.random(s).astype(np.float32) for s in ((40, 40), (97, 61), (33, 120), (300, 256))]
    xs = np.stack([preprocess(g, 32) for g in imgs])
    assert xs.shape == (4, 1, 32, 32) and xs.dtype == np.float32
    together = small_predictor.probabilities(xs)
    alone = np.concatenate([small_predictor.probabilities(x[None]) for x in xs])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_augmentation_description_matches_what_augment_does():
    """Before: the card said "shift ±4%", but augment only moved the rotation/scaling centre by ±4%,
    which translates the image by under 1% of its side. Measured here: the centroid of a blob at
    the image centre through 400 augmentations."""
    import re

    from apps.dicom_dx import data as D

    s = 64
    yy, xx = np.mgrid[0:s, 0:s]
    blob = (np.exp(-((xx - 31.5) ** 2 + (yy - 31.5) ** 2) / 18.0) * 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    out = D.augment(np.repeat(blob[None], 400, 0), rng)
    shifts = []
    for o in out:
        w = np.where(o > 0.4, o, 0)
        shifts.append(np.hypot((w * xx).sum() / w.sum() - 31.5, (w * yy).sum() / w.sum() - 31.5) / s)
    claimed = re.search(r"shift ±(\d+(?:\.\d+)?) ?%", D.AUGMENTATION)
    if claimed:
        assert np.percentile(shifts, 95) >= float(claimed.group(1)) / 100 / 2, (D.AUGMENTATION, max(shifts))
    assert "rotation ±7°" in D.AUGMENTATION and "scale ±8%" in D.AUGMENTATION


# --- synthetic data -----------------------------------------------------------------------------------


def _finding_masks(monkeypatch):
    """Spy on render_chest: the finding masks of each study drawn."""
    import apps.dicom_dx.synth as S

    seen = []
    orig = S.render_chest

    def spy(rng, shape, findings, severity=1.0):
        att, masks = orig(rng, shape, findings, severity)
        seen.append(masks)
        return att, masks

    monkeypatch.setattr(S, "render_chest", spy)
    return seen


def test_every_labelled_finding_is_drawn(monkeypatch):
    """Before: an opacity whose centre fell outside the lung field (behind the heart, past the lung's
    edge) was labelled present but drawn with a mask peaking at 0.05 — invisible, a wrong label.
    Study (99, 117) at ~200 px was one; a sweep checks every finding of 40 more (and that the masks
    and labels agree: no mask without a label, no_finding exactly when nothing is present)."""
    from apps.dicom_dx.synth import make_study

    seen = _finding_masks(monkeypatch)
    studies = [
        make_study(np.random.default_rng([99, 117]), prevalence=0.5, size_range=(200, 220), render_max=200)
    ]
    studies += [
        make_study(np.random.default_rng([98, i]), prevalence=0.6, size_range=(120, 130), render_max=120)
        for i in range(40)
    ]
    assert studies[0].labels["opacity"] == 1
    for k, (st, masks) in enumerate(zip(studies, seen)):
        for f in FINDINGS:
            assert (f in masks) == bool(st.labels[f]), (k, f)
            if st.labels[f]:
                # a nodule over the heart or mediastinum is drawn at 30 % (by design: retrocardiac)
                floor = 0.29 if f == "nodule" else 0.5
                assert masks[f].max() >= floor and f in st.boxes, (k, f, float(masks[f].max()))
        assert st.labels["no_finding"] == int(not any(st.labels[f] for f in FINDINGS))


# --- Grad-CAM API --------------------------------------------------------------------------------------


def test_gradcam_findings_argument(small_predictor):
    """None explains every finding; an empty list explains none (before: [] meant all five, so a
    caller passing "the positive findings" of a normal study got five maps); an unknown name is a
    ValueError that names it. Parameters get no .grad (the model may be shared with training)."""
    from apps.dicom_dx.explain import gradcam

    x = np.random.default_rng(7).standard_normal((1, 32, 32)).astype(np.float32)
    assert gradcam(small_predictor, x, []) == {}
    assert list(gradcam(small_predictor, x)) == list(FINDINGS)
    assert list(gradcam(small_predictor, x, ["effusion"])) == ["effusion"]
    with pytest.raises(ValueError, match="'edema'.*opacity"):
        gradcam(small_predictor, x, ["edema"])
    assert all(p.grad is None for p in small_predictor.model.parameters())


def test_gradcam_ignores_forwards_of_other_threads(small_predictor, monkeypatch):
    """The hook sits on the shared model: a prediction run by another thread (another dashboard
    session) during the Grad-CAM forward used to overwrite the captured activations, giving another
    image's map or an autograd error. Simulated deterministically: the head starts another thread's
    forward after the hook has fired for ours."""
    import threading

    from apps.dicom_dx.explain import gradcam

    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 32, 32)).astype(np.float32)
    other = rng.standard_normal((1, 1, 32, 32)).astype(np.float32)
    ref = gradcam(small_predictor, x)
    head = small_predictor.model.head
    orig_forward = head.forward

    main = threading.get_ident()

    def forward_with_interference(inp):
        if threading.get_ident() == main:  # once, from the Grad-CAM's own forward
            t = threading.Thread(target=small_predictor.probabilities, args=(other,))
            t.start()
            t.join()
        return orig_forward(inp)

    monkeypatch.setattr(head, "forward", forward_with_interference)
    got = gradcam(small_predictor, x)
    for f in FINDINGS:
        np.testing.assert_array_equal(got[f], ref[f], err_msg=f)


def test_generation_is_reproducible_per_seed_bytes_and_labels(tmp_path):
    """Same seed: byte-identical files (chest and every negative kind, UIDs included) and labels.csv;
    another seed: other images and UIDs. Before: pydicom's compress() gave every RLE / JPEG-LS /
    JPEG 2000 file (a third of the set) a new random SOP Instance UID under pydicom's root, so a
    seed did not reproduce its files."""
    from apps.dicom_dx.synth import generate

    kw = dict(prevalence=0.5, negatives=9, size_range=(64, 70), render_max=64)
    a, b, c = (generate(tmp_path / n, 2, seed=s, **kw) for n, s in (("a", 5), ("b", 5), ("c", 6)))
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()
    files = sorted(p.relative_to(a.parent) for p in a.parent.rglob("*.dcm"))
    assert len(files) == 11
    import pydicom

    from apps.dicom_dx.synth import UID_ROOT

    for f in files:
        assert (a.parent / f).read_bytes() == (b.parent / f).read_bytes(), f
        assert (a.parent / f).read_bytes() != (c.parent / f).read_bytes(), f
        ds = pydicom.dcmread(a.parent / f, stop_before_pixels=True)
        assert ds.SOPInstanceUID.startswith(UID_ROOT)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_diverged_training_stops_with_a_clear_error_and_keeps_the_checkpoint(
    tiny_synth, tmp_path, monkeypatch
):
    """Before: a NaN loss went on through the epoch (NaN weights) and died in validation with the
    metrics' "scores are NaN", which does not say that training diverged."""
    import apps.dicom_dx.train as T

    T.train(_cfg(tiny_synth, tmp_path, epochs=1))
    ckpt = str(tmp_path / "m" / "checkpoint.safetensors")
    before = {k: v.numpy().copy() for k, v in fw.load(ckpt)["model"].items()}
    orig = T.masked_bce
    monkeypatch.setattr(T, "masked_bce", lambda z, t, w: orig(z, t, w) * float("nan"))
    with pytest.raises(FloatingPointError, match="diverged: non-finite loss at epoch 2, step 1"):
        T.train(_cfg(tiny_synth, tmp_path, epochs=2, resume=True))
    after = fw.load(ckpt)
    assert json.loads(after["meta"])["epoch"] == 1
    for k in before:
        np.testing.assert_array_equal(before[k], after["model"][k].numpy())


def test_explain_zero_gradient_finding_is_an_all_zero_map_at_the_image_size(one_chest, small_predictor):
    """∂logit/∂A = 0 (the finding's head row zeroed): a (H, W) float32 map of zeros, not NaN, at a
    non-square image size; the other findings are unaffected."""
    import dataclasses

    from apps.dicom_dx.explain import explain

    gray = np.random.default_rng(9).random((75, 110)).astype(np.float32)
    img = dataclasses.replace(one_chest, image=gray)
    ref = explain(img, small_predictor)
    w = small_predictor.model.head.weight.data
    saved = w.copy()
    try:
        w[FINDINGS.index("pneumothorax")] = 0
        maps = explain(img, small_predictor)
    finally:
        w[...] = saved
    z = maps["pneumothorax"]
    assert z.shape == (75, 110) and z.dtype == np.float32 and not z.any()
    assert ref["pneumothorax"].max() == 1.0  # it was a real map before
    for f in FINDINGS[:4]:
        np.testing.assert_array_equal(maps[f], ref[f])


def test_cache_of_a_data_set_regenerated_in_place_is_rebuilt(tmp_path):
    """Same folder, same seed, other image sizes: the paths and labels are the same, the images are
    not; the cache must follow the files. In-memory images (MedMNIST) are identified by their
    pixels, not by their index alone."""
    from apps.dicom_dx.data import build_cache, cache_is_current
    from apps.dicom_dx.loaders import Record, load_any
    from apps.dicom_dx.synth import generate

    kw = dict(seed=4, prevalence=0.5)
    generate(tmp_path / "s", 2, size_range=(64, 70), render_max=64, **kw)
    recs = load_any(tmp_path / "s")
    build_cache(recs, tmp_path / "c", 32, workers=1)
    assert cache_is_current(tmp_path / "c", 32, load_any(tmp_path / "s"))
    generate(tmp_path / "s", 2, size_range=(90, 96), render_max=90, **kw)
    again = load_any(tmp_path / "s")
    assert [r.labels.tolist() for r in again] == [r.labels.tolist() for r in recs]
    assert not cache_is_current(tmp_path / "c", 32, again)
    lab = np.zeros(5, np.float32)
    mem = [Record(path=None, labels=lab, group="train:0", image=np.zeros((28, 28), np.float32))]
    build_cache(mem, tmp_path / "m", 32, workers=1)
    assert cache_is_current(tmp_path / "m", 32, mem)
    other = [Record(path=None, labels=lab, group="train:0", image=np.ones((28, 28), np.float32))]
    assert not cache_is_current(tmp_path / "m", 32, other)


def test_cli_refused_resume_is_a_one_line_error(tiny_synth, tmp_path, capsys, monkeypatch):
    """Before: `train --resume` with other options printed the ValueError as a traceback."""
    import logging

    from apps.dicom_dx.__main__ import main

    # main() configures logging for the process (pydicom's logger to ERROR): undone after this test
    root, pyd = logging.getLogger(), logging.getLogger("pydicom")
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(pyd, "level", pyd.level)

    args = ["train", "--data", str(tiny_synth), "--val", str(tiny_synth), "--out", str(tmp_path / "m"),
            "--size", "32", "--epochs", "1", "--batch-size", "8", "--workers", "0",
            "--cache", str(tmp_path / "cache")]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--lr", "1e-3", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "error: --resume with other training options" in err and "Traceback" not in err
