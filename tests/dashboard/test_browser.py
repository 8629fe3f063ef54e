"""Real-browser test: ``streamlit run`` headless on a loopback port, driven by Debian's Chromium through
Playwright. Uploads a sample DICOM and waits for the findings; uploads a video and waits for the
annotated playback. Screenshots go to a temporary folder (and, with ``DLSUITE_SCREENSHOTS=<dir>``, are
copied there too, which is how docs/screenshots/ is refreshed).

Skips with a reason when Chromium or the playwright package is absent (``.ci/run`` installs both)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DLSUITE_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
             "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not become healthy:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    # tall viewport: Streamlit scrolls inside its own container, so a full-page shot shows only the viewport
    ctx = browser.new_context(viewport={"width": 1440, "height": 2100})
    pg = ctx.new_page()
    pg.set_default_timeout(120_000)
    yield pg
    ctx.close()


def _shot(page, tmp_path, name: str) -> Path:
    # charts are drawn asynchronously after the script finishes: wait until each has its canvas
    try:
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=stVegaLiteChart]')]"
            ".every(c => c.querySelector('canvas, svg'))", timeout=20_000)
        page.wait_for_function("() => !document.querySelector('[data-testid=stSkeleton]')", timeout=20_000)
    except Exception:
        pass  # a screenshot without a chart is still worth keeping; the assertions are elsewhere
    page.wait_for_timeout(500)
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("DLSUITE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    assert path.stat().st_size > 10_000  # a real rendering, not a blank page
    return path


def _wait_idle(page):
    """Streamlit shows a 'running' status widget while the script runs; wait until it is gone."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=180_000)


def test_home_page_loads(server, page, tmp_path):
    page.goto(server)
    page.get_by_text("dlsuite — deep learning").first.wait_for()
    _wait_idle(page)
    # (under load the status widget can be gone before the script has drawn the metrics: wait for them)
    page.get_by_text("Compute device").first.wait_for(timeout=60_000)
    assert page.get_by_text("Compute device").count() >= 1
    _shot(page, tmp_path, "home")


def _resolve(app: str, name: str, *modules: str):
    import importlib

    for mod in (f"apps.{app}", *(f"apps.{app}.{m}" for m in modules)):
        try:
            fn = getattr(importlib.import_module(mod), name, None)
        except Exception:
            continue
        if callable(fn):
            return fn
    return None


@pytest.fixture(scope="module")
def chest_dicom(tmp_path_factory) -> Path:
    synth = pytest.importorskip("apps.dicom_dx.synth")
    out = tmp_path_factory.mktemp("dicom")
    synth.generate(out, n=1, seed=4, size_range=(600, 700), render_max=320)
    return next(out.rglob("*.dcm"))


def test_dicom_upload_shows_findings(server, page, tmp_path, chest_dicom):
    inference = pytest.importorskip("apps.dicom_dx.inference")
    if not (inference.ASSETS / "model.safetensors").exists() and not os.environ.get("DICOM_DX_MODEL"):
        pytest.skip("the default diagnosis model is not committed yet (apps/dicom_dx/assets/)")
    page.goto(f"{server}/dicom")
    page.get_by_text("Upload", exact=True).click()
    uploader = page.locator("[data-testid=stFileUploader]").filter(has_text="DICOM files")
    uploader.wait_for()
    uploader.locator("input[type=file]").set_input_files(str(chest_dicom))
    page.get_by_text("Findings", exact=True).wait_for()
    _wait_idle(page)
    table = page.locator("[data-testid=stDataFrame]").filter(has_text="probability").first
    content = table.text_content().lower()
    for finding in ("opacity", "effusion", "cardiomegaly", "pneumothorax"):
        assert finding in content, content[:400]
    assert "threshold" in content
    # the patient's name never reaches the page unless asked for
    import pydicom

    name = str(pydicom.dcmread(chest_dicom).PatientName)
    assert name not in page.content()
    assert page.get_by_text("Grad-CAM", exact=True).count() >= 1
    # the overlay is the finding the select box shows (a bundled sample with another default finding
    # was on screen before the upload)
    shown = page.get_by_role("combobox", name="Explain finding").input_value().strip()
    caption = page.get_by_text("Grad-CAM: ", exact=False).last.inner_text()
    assert caption.startswith(f"Grad-CAM: {shown} ("), (shown, caption)
    _shot(page, tmp_path, "dicom_findings")


def _small_clip(path: Path, frames: int = 12) -> Path:
    import cv2
    import numpy as np

    synth = pytest.importorskip("apps.perception.synth")
    img, _ = synth.random_scene(np.random.default_rng(5), 480, 360)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (480, 360))
    for i in range(frames):
        w.write(np.ascontiguousarray(np.roll(img, 5 * i, axis=1)[..., ::-1]))
    w.release()
    return path


def test_perception_video_upload_plays_annotated(server, page, tmp_path):
    det = pytest.importorskip("apps.perception.detector")
    if not Path(det.DEFAULT_WEIGHTS).exists():
        pytest.skip("the default perception model is not committed yet")
    clip = _small_clip(tmp_path / "drive.mp4")
    page.goto(f"{server}/perception")
    page.get_by_text("Upload", exact=True).first.click()
    uploader = page.locator("[data-testid=stFileUploader]").filter(has_text="Video file")
    uploader.wait_for()  # rendered by the rerun that the radio click started
    uploader.locator("input[type=file]").set_input_files(str(clip))
    # the upload must have reached the server (file chip shown, script idle) before the click
    page.get_by_text("drive.mp4").first.wait_for()
    _wait_idle(page)
    page.get_by_role("button", name="Run detection and tracking").click()
    video = page.locator("video[data-testid=stVideo]")  # (the camera widget has a hidden <video> too)
    video.wait_for()
    _wait_idle(page)
    assert page.get_by_text("FPS (end to end)").count() == 1
    frames = page.locator("[data-testid=stMetric]").filter(has_text="Frames").first.text_content()
    assert "12" in frames
    src = video.get_attribute("src")
    assert src  # the annotated WebM is served by Streamlit's media endpoint
    # the browser can decode the annotated WebM: wait until it knows the duration
    page.wait_for_function(
        "() => { const v = document.querySelector('video[data-testid=stVideo]');"
        " return v && v.duration > 0; }",
        timeout=30_000)
    _shot(page, tmp_path, "perception_video")
