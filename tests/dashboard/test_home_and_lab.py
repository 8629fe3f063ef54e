"""Home and Framework lab pages through Streamlit's AppTest."""

import json


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
    # each app shows either its model card or a clear "not there yet" note
    body = texts(app.markdown) + texts(app.info)
    for app_name in ("dicom_dx", "perception"):
        assert f"apps.{app_name}" in texts(app.subheader)
    assert "model card" in body.lower() or "`apps/" in body


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

    (tmp_path / "conv2d.json").write_text(json.dumps({"device": "cpu", "results": [
        {"shape": "N8 C64 32x32", "ours_ms": 3.1, "torch_ms": 2.0, "ratio": 1.55},
        {"shape": "N8 C128 16x16", "ours_ms": 2.2, "torch_ms": 1.9, "ratio": 1.16}]}))
    (tmp_path / "broken.json").write_text("{")
    at = make_app()
    at.switch_page("apps/dashboard/framework_lab.py").run()
    assert not at.exception
    assert "No benchmark results yet" not in texts(at.info)
    assert "conv2d.json" in texts(at.subheader) and "broken.json" in texts(at.subheader)
    assert "could not read" in texts(at.warning)
    frames = [d.value for d in at.dataframe]
    assert any("ratio" in df.columns and list(df["ratio"]) == [1.55, 1.16] for df in frames)
    assert len(at.get("vega_lite_chart")) >= 1  # the bar chart of the ratios
