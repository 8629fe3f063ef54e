"""Home and Framework lab pages through Streamlit's AppTest."""

import json
from pathlib import Path


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_home_shows_device_versions_and_cards(app):
    assert not app.exception
    assert "dlsuite" in app.title[0].value
    labels = [m.label for m in app.metric]
    assert "Compute device" in labels and "Device name" in labels
    assert app.metric[0].value in ("CPU", "GPU")
    tables = "\n".join(str(t.value) for t in app.table)
    assert "numpy" in tables and "streamlit" in tables  # versions table
    # each app shows its committed model card (name and metrics), or a clear "not there yet" note
    body = texts(app.markdown) + texts(app.info)
    root = Path(__file__).resolve().parents[2]
    for app_name in ("dicom_dx", "perception"):
        assert f"apps.{app_name}" in texts(app.subheader)
        cards = sorted((root / "apps" / app_name / "assets").rglob("*card*.json"))
        if not cards:
            assert "No model card found yet" in texts(app.info)
            continue
        card = json.loads(cards[0].read_text())
        if card.get("name"):
            assert card["name"] in body


def test_framework_lab_trains_live(app):
    app.switch_page("apps/dashboard/framework_lab.py").run()
    assert not app.exception
    app.selectbox(key="lab_dataset").set_value("moons")
    app.slider(key="lab_steps").set_value(60)
    app.button[0].click().run()  # the form's submit button
    assert not app.exception
    assert not app.error, texts(app.error)
    done = texts(app.success)
    assert "Trained on **moons**" in done and "validation accuracy" in done
    acc = float(done.split("validation accuracy ")[1].rstrip("%.")) / 100
    assert acc > 0.8
    charts = app.get("vega_lite_chart")
    assert len(charts) >= 2  # loss and accuracy curves
    assert len(app.get("image")) >= 1  # the decision map


def test_framework_lab_benchmarks_absent_and_present(tmp_path, monkeypatch, make_app):
    monkeypatch.setenv("DLSUITE_BENCHMARK_RESULTS", str(tmp_path))
    at = make_app()
    at.switch_page("apps/dashboard/framework_lab.py").run()
    assert "No benchmark results yet" in texts(at.info)

    # the shapes written by benchmarks/cpu.py and benchmarks/perception.py
    (tmp_path / "cpu.json").write_text(json.dumps({
        "benchmark": "cpu", "unit": "ratio torch_time / framework_time (>1: framework faster)",
        "figures": {"conv2d": {"geomean": 1.21, "shapes": [
            {"ratio": 1.55, "ours_ms": 2.0, "torch_ms": 3.1, "shape": {"N": 8, "C": 64, "HW": 32}},
            {"ratio": 0.95, "ours_ms": 2.2, "torch_ms": 2.09, "shape": {"N": 8, "C": 128, "HW": 16}}]},
            "mlp_train_step": {"ratio": 0.61, "ours_ms": 0.9, "torch_ms": 0.55}}}))
    (tmp_path / "perception.json").write_text(json.dumps({
        "benchmark": "perception", "e2e_realtime": {"fps": 31.2, "latency_ms_p95": 40.1},
        "model_ratio_ours_over_torch": 0.93, "meets": {"e2e_fps": True, "latency_p95": False}}))
    (tmp_path / "broken.json").write_text("{")
    at = make_app()
    at.switch_page("apps/dashboard/framework_lab.py").run()
    assert not at.exception
    assert "No benchmark results yet" not in texts(at.info)
    heads = texts(at.subheader)
    assert "cpu.json" in heads and "perception.json" in heads and "broken.json" in heads
    assert "could not read" in texts(at.warning)
    frames = [d.value for d in at.dataframe]
    shapes = next(df for df in frames if "shape.C" in df.columns)
    assert list(shapes["ratio"]) == [1.55, 0.95] and list(shapes["shape.C"]) == [64, 128]
    met = next(df for df in frames if "met" in df.columns)
    assert dict(zip(met["target"], met["met"])) == {"e2e_fps": "yes", "latency_p95": "NO"}
    assert len(at.get("vega_lite_chart")) >= 2  # one ratio chart per file with ratios
    assert "framework faster" in texts(at.caption)
