"""The web page in a real browser: headless Debian Chromium driven by Playwright (no browser download).

Skipped when /usr/bin/chromium is missing, except in CI (the CI variable set), where it must run.
The screenshot goes to artifacts/browser/predict_page.png (git-ignored)."""
import json
import math
import os
import shutil
from pathlib import Path

import pytest

from .serve_helpers import ServerProcess

CHROMIUM = os.environ.get("AFFECTKIT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def sync_playwright():
    """Playwright's entry point, once Chromium is known to be there (checked before training anything)."""
    return _need_browser()


def _need_browser():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; CI must run the browser test (.ci/run installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium to run the browser test)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright (python) is not installed; it is in the test extra")
        pytest.skip("playwright is not installed")
    return sync_playwright


def test_page_uploads_a_video_and_draws_the_result(sync_playwright, trained, tiny_synth, tmp_path):
    db = json.loads(Path(tiny_synth).read_text())["database"]
    video = Path(tiny_synth).parent / next(v["video"] for v in db.values() if v["subset"] == "testing")
    classes = json.loads((Path(trained.best_dir) / "config.json").read_text())["classes"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "predict_page.png"
    if shot.exists():
        shot.unlink()
    profile = tmp_path / "chromium-profile"  # a fresh user-data-dir for every run

    with ServerProcess(trained.best_dir, tmp_path / "tmp", tmp_path / "server.log") as srv, sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                   viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            console_errors = []
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            outside = []  # every request must go to our server (no CDN, nothing external)
            page.on("request", lambda r: outside.append(r.url) if not (r.url.startswith(srv.url) or r.url.startswith(("data:", "blob:"))) else None)

            page.goto(srv.url + "/", wait_until="load")
            page.wait_for_function("() => document.getElementById('model').textContent.includes('vaanet')", timeout=15000)
            page.set_input_files("#file", str(video))
            page.wait_for_function("() => document.getElementById('label').textContent.trim().length > 0", timeout=60000)
            page.wait_for_selector("#curve path.curve", state="attached", timeout=10000)

            label = page.inner_text("#label").strip()
            assert label in classes
            assert page.is_visible("#result") and page.is_hidden("#error")
            rows = page.eval_on_selector_all("#probabilities .bar-row", "rs => rs.map(r => r.dataset.class)")
            assert sorted(rows) == sorted(classes)
            curves = page.eval_on_selector_all("#curve path.curve", "ps => ps.map(p => p.getAttribute('d'))")
            assert curves and all(d.count("L") >= 1 for d in curves)  # each curve has points (M x y L x y ...)
            points = curves[0].replace("M", " ").replace("L", " ").split()
            assert len(points) >= 4 and all(math.isfinite(float(v)) for v in points)  # numbers, no NaN or inf
            page.wait_for_timeout(600)  # let the bars finish their transition before the screenshot
            page.screenshot(path=str(shot), full_page=True)

            # an error from the server is shown in the page
            bad = tmp_path / "notes.mp4"
            bad.write_text("this is not a video\n" * 20)
            page.set_input_files("#file", str(bad))
            page.wait_for_selector("#error:not([hidden])", timeout=20000)
            assert "415" in page.inner_text("#error") and "notes.mp4" in page.inner_text("#error")
            page.screenshot(path=str(ARTIFACTS / "predict_page_error.png"), full_page=False)
            # the browser logs the refused upload itself; nothing else may go wrong
            assert [e for e in console_errors if "status of 415" not in e] == [], console_errors
            assert not outside, outside
        finally:
            ctx.close()
    assert shot.is_file() and shot.stat().st_size > 10_000
    shutil.rmtree(profile, ignore_errors=True)
