"""The demo in a real browser: ``python app.py`` on 127.0.0.1, driven by headless Debian Chromium (Playwright with
``executable_path``): generate, upload a real photo (``skimage.data``'s astronaut), wait for the 3D viewer's canvas,
check the screenshots are not blank. ``make app-test`` runs it (and writes the screenshots to ``docs/``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = os.environ.get("ALBEDOGAN_CHROMIUM", "/usr/bin/chromium")
#: Chromium flags for headless WebGL without a GPU (SwiftShader) in a container
CHROMIUM_ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
STARTUP_S = 600.0
STEP_MS = 300_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1.0)
    raise AssertionError(f"app did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _not_blank(png: Path, min_std: float = 8.0, min_colours: int = 64) -> np.ndarray:
    img = np.asarray(Image.open(png).convert("RGB")).astype(np.float32)
    assert img.std() > min_std, f"{png}: looks blank (std {img.std():.2f})"
    colours = len(np.unique(img.reshape(-1, 3).astype(np.uint8), axis=0))
    assert colours >= min_colours, f"{png}: only {colours} colours"
    return img


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM}: install Debian's package (`make app-test` does: "
                    "sudo apt-get install -y chromium) or set ALBEDOGAN_CHROMIUM=/path/to/chromium")
    pytest.importorskip("playwright.sync_api", reason="the python package playwright is not installed")
    return CHROMIUM


@pytest.fixture(scope="module")
def app_url(project_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("app")
    port = _free_port()
    log = out / "app.log"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "GRADIO_ANALYTICS_ENABLED": "0"}
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "app.py", f"mode.port={port}", "device=cpu",
                                 "mode.turntable_frames=12", f"output_dir={out}/run"], cwd=project_root,
                                stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_http(url, proc, log, STARTUP_S)
        yield url, out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _face_drawn(png: Path) -> bool:
    """The viewer (white background) shows a face: more than 1 % of its pixels are clearly not white."""
    img = np.asarray(Image.open(png).convert("RGB"))
    return bool((img.min(axis=2) < 200).mean() > 0.01)


def _differs(a: Path, b: Path | None) -> bool:
    if b is None:
        return True
    x, y = (np.asarray(Image.open(p).convert("RGB"), np.float32) for p in (a, b))
    return x.shape != y.shape or float(np.abs(x - y).mean()) > 2.0


def _wait_for_face(page, png: Path, previous: Path | None = None, timeout_s: float = 120.0) -> None:
    """Wait for the viewer's canvas, then until a GLB (other than the ``previous`` one) is drawn into it
    (screenshots of the canvas, polled)."""
    page.wait_for_selector("#viewer canvas", state="visible", timeout=STEP_MS)
    end = time.monotonic() + timeout_s
    while True:
        page.wait_for_timeout(1000)
        page.locator("#viewer canvas").screenshot(path=str(png))
        if _face_drawn(png) and _differs(png, previous) or time.monotonic() > end:
            return


def test_demo_in_chromium(chromium, app_url, tmp_path):
    from playwright.sync_api import sync_playwright

    url, out = app_url
    photo = Path(__import__("skimage.data", fromlist=["data"]).__file__).with_name("astronaut.png")
    shots = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        # generate: seed 3 with a latent edit and an expression
        page.locator("#seed input").fill("3")
        page.locator("#generate-btn").click()
        page.wait_for_function("document.querySelector('#message') && "
                               "document.querySelector('#message').innerText.includes('seed 3')", timeout=STEP_MS)
        _wait_for_face(page, tmp_path / "viewer_generate.png")
        shots["generate"] = tmp_path / "app_generate.png"
        page.screenshot(path=str(shots["generate"]), full_page=True)
        assert page.locator("#files a, #files .file-name, #files td").count() > 0
        # reconstruct: upload a real photo
        page.get_by_role("tab", name="Reconstruct a photo").click()
        page.locator("#photo input[type=file]").set_input_files(str(photo))
        page.wait_for_timeout(1500)
        page.locator("#reconstruct-btn").click()
        page.wait_for_function("document.querySelector('#message') && "
                               "document.querySelector('#message').innerText.includes('face(s)')", timeout=STEP_MS)
        _wait_for_face(page, tmp_path / "viewer_reconstruct.png", previous=tmp_path / "viewer_generate.png")
        shots["reconstruct"] = tmp_path / "app_reconstruct.png"
        page.screenshot(path=str(shots["reconstruct"]), full_page=True)
        browser.close()
    for name in ("generate", "reconstruct"):
        _not_blank(shots[name])
        _not_blank(tmp_path / f"viewer_{name}.png", min_std=4.0, min_colours=32)
        assert _face_drawn(tmp_path / f"viewer_{name}.png"), f"the 3D viewer shows no face ({name})"
        # the page screenshot was taken after the face was drawn: its viewer area is not white either
        page_img = np.asarray(Image.open(shots[name]).convert("RGB"))
        assert (page_img.min(axis=2) < 200).mean() > 0.05
    assert _differs(tmp_path / "viewer_reconstruct.png", tmp_path / "viewer_generate.png")  # the photo's face
    # each request wrote into its own session folder
    assert len(list((out / "run" / "sessions").glob("*/*_generate"))) == 1
    assert len(list((out / "run" / "sessions").glob("*/*_reconstruct"))) == 1
    keep = os.environ.get("ALBEDOGAN_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for path in shots.values():
            shutil.copy(path, Path(keep) / path.name)
