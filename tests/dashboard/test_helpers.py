"""The dashboard's plain-Python helpers: live-training loop, benchmark reader, upload checks, viewer
windowing (against pydicom's own VOI implementation), overlays and PHI masking."""

import io
import json
import zipfile

import numpy as np
import pytest

from apps.dashboard import lab, present, results, uploads


@pytest.mark.parametrize("name", lab.DATASETS)
def test_datasets_shapes_and_balance(name):
    x, y = lab.make_dataset(name, n=200, seed=3)
    assert x.shape == (200, 2) and x.dtype == np.float32
    assert y.shape == (200,) and set(np.unique(y)) == {0, 1}
    assert 0.3 < y.mean() < 0.7


def test_live_training_learns_moons_with_core_api():
    cfg = lab.TrainConfig(dataset="moons", steps=150, n=256, use_nn=False)
    hist = list(lab.train(cfg, every=50))
    assert [h["step"] for h in hist] == [50, 100, 150]
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert hist[-1]["val_acc"] > 0.95
    p = hist[-1]["predict"](np.zeros((5, 2), np.float32))
    assert p.shape == (5,) and np.all((p >= 0) & (p <= 1))


def test_live_training_with_framework_nn_when_available():
    if not lab._has_nn():
        pytest.skip("framework.nn (Linear, ReLU, Sequential, cross_entropy) or optim.Adam not available yet")
    hist = list(lab.train(lab.TrainConfig(dataset="circles", steps=150, n=256, use_nn=True), every=150))
    assert hist[-1]["api"].startswith("framework.nn")
    assert hist[-1]["val_acc"] > 0.95


def test_core_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    import framework as fw

    rng = np.random.default_rng(0)
    logits, target = rng.normal(size=(7, 3)).astype(np.float32), rng.integers(0, 3, 7)
    logp = fw.log_softmax(fw.tensor(logits), 1)
    ours = -fw.gather(logp, 1, fw.tensor(target).unsqueeze(1)).mean()
    ref = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(target))
    assert abs(ours.item() - ref.item()) < 1e-5


def test_decision_image():
    x, y = lab.make_dataset("xor", n=64)
    img = lab.decision_image(lambda pts: (pts[:, 0] > 0).astype(np.float32), x, y, size=50)
    assert img.shape == (50, 50, 3) and img.dtype == np.uint8
    # left half favours class 0 (blue dominant), right half class 1 (red dominant), away from points
    assert img[:, :5, 2].mean() > img[:, :5, 0].mean()
    assert img[:, -5:, 0].mean() > img[:, -5:, 2].mean()


def test_benchmark_reader(tmp_path):
    (tmp_path / "conv.json").write_text(json.dumps(
        {"device": "cpu", "results": [{"op": "conv", "ours_ms": 2.0, "torch_ms": 1.0, "ratio": 2.0},
                                      {"op": "pool", "ours_ms": 1.0, "torch_ms": 1.0, "ratio": 1.0}]}))
    (tmp_path / "bad.json").write_text("{not json")
    files = results.load_benchmarks(tmp_path)
    assert [f[0] for f in files] == ["bad.json", "conv.json"]
    assert files[0][1] is None and "could not read" in files[0][2]
    recs = results.records(files[1][1])
    assert recs[0] == {"op": "conv", "ours_ms": 2.0, "torch_ms": 1.0, "ratio": 2.0}
    flat = results.flatten_numbers({"a": {"b": 1, "c": [2, {"d": 3.5}]}, "ok": True, "nan": float("nan")})
    assert flat == {"a.b": 1.0, "a.c[0]": 2.0, "a.c[1].d": 3.5}
    assert results.load_benchmarks(tmp_path / "absent") == []


def _dicom_bytes():
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    return open(get_testdata_file("CT_small.dcm", download=False), "rb").read(), pydicom


def test_check_dicom_accepts_dicom_and_refuses_others():
    data, _ = _dicom_bytes()
    assert uploads.check_dicom("ct.dcm", data) is None
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    assert "PNG image, not a DICOM" in uploads.check_dicom("x.dcm", png)
    assert "text file" in uploads.check_dicom("notes.dcm", b"hello world\n" * 50)
    assert "empty" in uploads.check_dicom("e.dcm", b"")
    assert "larger than" in uploads.check_dicom("big.dcm", data, limit=1000)
    # a preamble-less data set (legal in old archives) is not refused here: the app's reader decides
    assert uploads.check_dicom("raw.dcm", data[132:]) is None


def test_check_zip_refuses_traversal_and_garbage(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("study/a.dcm", b"x" * 10)
    assert uploads.check_zip("ok.zip", buf.getvalue()) is None
    assert uploads.safe_extract(buf.getvalue(), tmp_path) == 1 and (tmp_path / "study/a.dcm").exists()
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil.dcm", b"x")
    assert "outside the archive" in uploads.check_zip("bad.zip", bad.getvalue())
    assert "not a readable zip" in uploads.check_zip("x.zip", b"PK\x03\x04garbage")


def test_check_video():
    assert uploads.check_video("clip.mp4", b"\x00" * 10) is None
    assert "expected a video" in uploads.check_video("clip.txt", b"\x00" * 10)
    assert "larger than" in uploads.check_video("clip.mp4", b"\x00" * 10, limit=5)


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_window_image_matches_pydicom_voi(photometric):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_voi_lut

    ds = Dataset()
    ds.PhotometricInterpretation = photometric
    ds.BitsStored, ds.PixelRepresentation = 12, 0
    ds.WindowCenter, ds.WindowWidth = 1000.0, 400.0
    values = np.linspace(0, 4095, 64 * 64).reshape(64, 64)
    ref = apply_voi_lut(values.copy(), ds)  # PS3.3 C.11.2.1.2 LINEAR, output over [0, 4095]
    ref = ref / 4095.0
    if photometric == "MONOCHROME1":
        ref = 1.0 - ref
    ours = present.window_image(values, 1000.0, 400.0, photometric)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert pydicom  # imported for the oracle


def test_overlay_and_metadata_masking():
    gray = np.full((40, 60), 0.5, np.float32)
    heat = np.zeros((10, 15), np.float32)
    heat[5:, 7:] = 1.0
    out = present.overlay(gray, heat, 0.8)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert np.all(out[0, 0] == 128)  # no heat: the image shows through untouched
    assert out[-1, -1, 0] > 200 and out[-1, -1, 2] < 60  # full heat: red

    class Meta:
        phi = {"PatientName": "Doe^Jane", "PatientID": "123"}

        def public(self):
            return {"modality": "CR"}

    rows = present.masked_metadata(Meta(), show_identity=False)
    text = json.dumps(rows, ensure_ascii=False)
    assert "Doe" not in text and "123" not in text and present.PHI_MASK in text
    assert "Doe^Jane" in json.dumps(present.masked_metadata(Meta(), show_identity=True))


def test_findings_rows_and_gate_from_various_shapes():
    pred = {"gate": {"accepted": True, "reason": ""},
            "findings": [{"name": "opacity", "probability": 0.8, "threshold": 0.5},
                         {"name": "nodule", "probability": 0.1, "threshold": 0.3}]}
    rows = present.findings_rows(pred)
    assert [(r["finding"], r["positive"]) for r in rows] == [("opacity", True), ("nodule", False)]
    assert present.gate_verdict(pred) == (True, "")
    pred2 = {"accepted": False, "reason": "not a chest radiograph (knee)", "findings": {"a": 0.9},
             "thresholds": {"a": 0.95}}
    assert present.gate_verdict(pred2) == (False, "not a chest radiograph (knee)")
    assert present.findings_rows(pred2) == [{"finding": "a", "probability": 0.9, "threshold": 0.95,
                                             "positive": False}]


def test_shapes_dataset_and_gallery():
    x, y = lab.make_shapes(40, seed=1)
    assert x.shape == (40, 1, 16, 16) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [10, 10, 10, 10]
    # square and disc fill more of their box than triangle and cross
    clean, cy = lab.make_shapes(400, noise=0.0, seed=2)
    area = [(clean[cy == c] > 0).sum((1, 2, 3)).mean() for c in range(4)]
    assert min(area[0], area[1]) > 1.2 * max(area[2], area[3])
    onehot = np.eye(4)[y]
    g = lab.shapes_gallery(lambda imgs: onehot[: len(imgs)], x, y, count=16)
    assert g.dtype == np.uint8 and g.shape[2] == 3
    assert (g[..., 1] > 150).any() and not ((g[..., 0] > 200) & (g[..., 1] < 60)).any()  # all right: no red


def test_cnn_task_learns_when_conv_available():
    if not lab._has_conv():
        pytest.skip("framework.nn Conv2d/MaxPool2d/Flatten not available yet")
    cfg = lab.TrainConfig(steps=50, n=192, hidden=16, lr=0.01, batch_size=64)
    hist = list(lab.train_cnn(cfg, every=50))
    assert hist[-1]["val_acc"] > 0.45  # 4 classes: chance is 0.25


def test_encode_webm_round_trip(tmp_path):
    cv2 = pytest.importorskip("cv2")
    frames = []
    for i in range(6):
        rgb = np.zeros((48, 64, 3), np.uint8)
        rgb[:, : 10 * (i + 1), 0] = 255  # a red bar growing to the right
        frames.append(present.jpeg(rgb))
    path = present.encode_webm(frames, 10.0, str(tmp_path / "clip.webm"))
    cap = cv2.VideoCapture(path)
    read = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        read.append(bgr)
    cap.release()
    assert len(read) == 6 and read[0].shape == (48, 64, 3)
    # the bar is red (BGR: high R channel) and grows
    assert read[-1][:, 55, 2].mean() > 150 and read[0][:, 55, 2].mean() < 60
    with pytest.raises(ValueError):
        present.encode_webm([], 10.0, str(tmp_path / "none.webm"))


def test_card_summary():
    card = {"name": "net", "classes": ["a", "b"], "history": [{"epoch": 1}],
            "validation": {"macro_auroc": 0.97, "n": 300,
                           "findings": {"a": {"auroc": 0.99, "threshold": 0.4, "confusion": {"tp": 3}},
                                        "b": {"auroc": 0.95, "threshold": 0.6}}},
            "test": {"set1": {"macro_auroc": 0.96, "seed": 3, "findings": {"a": {"auroc": 0.9}}}},
            "per_class": {"a": {"AP50": 0.8}, "b": {"AP50": 0.7}}}
    s = results.card_summary(card)
    assert s["facts"] == {"name": "net", "classes": "a, b"}  # no history dump
    assert s["headline"] == {"validation · macro_auroc": 0.97, "test · set1 · macro_auroc": 0.96}
    assert s["tables"]["validation · findings"] == [{"name": "a", "auroc": 0.99, "threshold": 0.4},
                                                    {"name": "b", "auroc": 0.95, "threshold": 0.6}]
    assert [r["AP50"] for r in s["tables"]["per_class"]] == [0.8, 0.7]
    assert len(s["tables"]) == 2


def test_benchmark_key_figures_and_ratio_selection():
    doc = {"benchmark": "perception", "e2e_realtime": {"fps": 30.1, "latency_ms_p95": 22.0, "frames": 300},
           "analyze_images_per_s": 8.5, "targets": {"e2e_fps": 30}, "target_ratio": 3.0,
           "model_ratio_ours_over_torch": 0.9, "cpu_time_ratio": 0.7}
    assert results.key_figures(doc) == {"e2e_realtime · fps": 30.1, "e2e_realtime · latency_ms_p95": 22.0,
                                        "analyze_images_per_s": 8.5}
    assert results.ratios(doc) == {"model_ratio_ours_over_torch": 0.9}  # no target, no CPU-time view


def test_cpu_benchmark_runs_keep_their_strategies_apart():
    # benchmarks/cpu.py with --threads 1 2: one run per thread count, two at 2 threads (whose threads)
    runs = [{"threads": 1, "strategy": "serial", "figures": {"cnn_train_step": {"ratio": 0.78}}},
            {"threads": 2, "strategy": "framework", "figures": {"cnn_train_step": {"ratio": 0.59}}},
            {"threads": 2, "strategy": "blas", "figures": {"cnn_train_step": {"ratio": 0.45}}}]
    doc = {"benchmark": "cpu", "figures": runs[0]["figures"], "runs": runs}
    assert results.ratios(doc) == {"1 thread · cnn_train_step · ratio": 0.78,
                                   "2 threads, framework · cnn_train_step · ratio": 0.59,
                                   "2 threads, blas · cnn_train_step · ratio": 0.45}
