"""The command line: exit codes, synth, analyze and explain end to end with a tiny saved model."""

import json
import sqlite3

import numpy as np
import pytest

from apps.dicom_dx.__main__ import main
from apps.dicom_dx.model import load_model, save_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_predictor):
    d = tmp_path_factory.mktemp("model")
    save_model(tiny_predictor.model, tiny_predictor.card, d / "model.safetensors")
    return d / "model.safetensors"


def test_save_load_round_trip(tiny_model, tiny_predictor):
    import framework as fw

    model, card = load_model(tiny_model)
    x = fw.tensor(np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32))
    tiny_predictor.model.eval()
    with fw.no_grad():
        np.testing.assert_allclose(model(x).numpy(), tiny_predictor.model(x).numpy(), atol=1e-6)
    assert card["version"] == tiny_predictor.card["version"]


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main([]) == 2
    assert main(["bogus"]) == 2
    assert main(["analyze", str(tmp_path / "missing"), "--out", str(tmp_path / "r.sqlite")]) == 2
    assert main(["explain", str(tmp_path / "missing.dcm"), "--out", str(tmp_path)]) == 2
    assert main(["evaluate", "--data", str(tmp_path / "missing")]) == 2
    assert main(["--help"]) == 0


def test_synth_analyze_explain(tmp_path, tiny_model, capsys):
    assert (
        main(
            [
                "-q",
                "synth",
                "--out",
                str(tmp_path / "s"),
                "--n",
                "2",
                "--negatives",
                "1",
                "--seed",
                "3",
                "--min-size",
                "64",
                "--max-size",
                "80",
            ]
        )
        == 0
    )
    assert (tmp_path / "s" / "labels.csv").exists() and len(list((tmp_path / "s").rglob("*.dcm"))) == 3
    (tmp_path / "s" / "bad.dcm").write_bytes(b"garbage")
    capsys.readouterr()
    rc = main(
        [
            "-q",
            "analyze",
            str(tmp_path / "s"),
            "--out",
            str(tmp_path / "r.sqlite"),
            "--model",
            str(tiny_model),
            "--workers",
            "0",
            "--csv",
            str(tmp_path / "r.csv"),
        ]
    )
    assert rc == 0  # a broken file is recorded, not a failure
    out = json.loads(capsys.readouterr().out)
    assert out["analysed"] == 4 and out["errors"] == 1 and out["error_reasons"] == {"not_dicom": 1}
    assert len(sqlite3.connect(tmp_path / "r.sqlite").execute("SELECT * FROM results").fetchall()) == 4
    rc = main(
        [
            "-q",
            "explain",
            str(tmp_path / "s" / "chest" / "000000.dcm"),
            "--out",
            str(tmp_path / "h"),
            "--model",
            str(tiny_model),
            "--findings",
            "opacity",
        ]
    )
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["accepted"] and len(res["heatmaps"]) == 1 and "000000" not in res["file"]
    assert (
        main(
            [
                "-q",
                "explain",
                str(tmp_path / "s" / "bad.dcm"),
                "--out",
                str(tmp_path / "h"),
                "--model",
                str(tiny_model),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["error"] == "not_dicom"


def test_results_back_as_dicom(tmp_path, tiny_synth, tiny_predictor):
    import pydicom

    from apps.dicom_dx.explain import explain, overlay
    from apps.dicom_dx.inference import predict
    from apps.dicom_dx.io import read_dicom
    from apps.dicom_dx.report import write_secondary_capture, write_text_sr

    src = tiny_synth / "chest" / "000001.dcm"
    res = predict(src, tiny_predictor)
    sr = pydicom.dcmread(write_text_sr(src, res, tmp_path / "sr.dcm"))
    s = pydicom.dcmread(src, stop_before_pixels=True)
    assert sr.StudyInstanceUID == s.StudyInstanceUID and sr.Modality == "SR"
    texts = [it.TextValue for it in sr.ContentSequence if it.ValueType == "TEXT"]
    assert any("opacity" in t.lower() or "p=" in t for t in texts) and len(texts) == 7
    img = read_dicom(src)
    ov = overlay(img.gray, explain(img, tiny_predictor, ["opacity"])["opacity"])
    sc = read_dicom(write_secondary_capture(src, ov, tmp_path / "sc.dcm"))
    np.testing.assert_allclose(sc.image * 255, ov, atol=0.5)


def test_evaluate_prints_strict_json_when_a_metric_is_undefined(tmp_path, monkeypatch, capsys):
    # a finding without positives in the data has no AUROC: the summary says null, not the bare NaN
    # that strict JSON readers (jq, browsers) refuse
    import apps.dicom_dx.__main__ as cli
    import apps.dicom_dx.evaluate as ev

    rep = {"macro_auroc": float("nan"), "findings": {"effusion": {"auroc": float("nan")}},
           "gate": {"chest_rejected": 0, "negatives_rejected": 1}}
    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: rep)
    monkeypatch.setattr(cli, "_predictor", lambda a: None)
    assert main(["-q", "evaluate", "--data", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"printed {c}"))
    assert out["macro_auroc"] is None and out["auroc"] == {"effusion": None}


def test_outputs_never_overwrite_a_study(tmp_path, tiny_model, capsys):
    assert main(["-q", "synth", "--out", str(tmp_path / "s"), "--n", "1", "--negatives", "0", "--seed", "4",
                 "--min-size", "64", "--max-size", "80"]) == 0
    study = next((tmp_path / "s").rglob("*.dcm"))
    before = study.read_bytes()
    other = tmp_path / "copy.dcm"
    other.write_bytes(before)
    out = str(tmp_path / "r.sqlite")
    analyze = ["-q", "analyze", str(tmp_path / "s"), "--out", out, "--model", str(tiny_model)]
    for flag, path in [("--csv", study), ("--json", study), ("--csv", other)]:
        capsys.readouterr()
        code = main(analyze + [flag, str(path)])
        assert code == 2 and "would be overwritten" in capsys.readouterr().err
    code = main(["-q", "evaluate", "--data", str(tmp_path / "s"), "--model", str(tiny_model), "--out",
                 str(other)])
    assert code == 2 and "DICOM file" in capsys.readouterr().err
    assert study.read_bytes() == before and other.read_bytes() == before


def test_synth_never_mixes_synthetic_studies_into_real_ones(tmp_path, capsys):
    real = tmp_path / "pacs_export"
    (real / "chest").mkdir(parents=True)
    study = real / "chest" / "IM0001.dcm"
    study.write_bytes(b"\0" * 128 + b"DICM" + b"a real study")
    args = ["-q", "synth", "--n", "1", "--negatives", "0", "--seed", "4", "--min-size", "64", "--max-size",
            "80"]
    assert main(args + ["--out", str(real)]) == 2
    assert "IM0001.dcm was not written by synth" in capsys.readouterr().err
    assert sorted(p.name for p in real.rglob("*")) == ["IM0001.dcm", "chest"]
    made = tmp_path / "made"
    assert main(args + ["--out", str(made)]) == 0
    assert main(args + ["--out", str(made)]) == 0  # synth's own folder: re-made (deterministic per seed)
