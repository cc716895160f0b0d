"""The explorer widget in a real JupyterLab, in a real (headless) Chromium driven by Playwright.

Starts JupyterLab on 127.0.0.1 with a random token in a temporary copy of
`tests/assets/widget_explorer.ipynb`, runs all cells, changes the explorer's method dropdown and
checks from the DOM that the widget rendered and its image changed. A screenshot goes to
`test-artifacts/`. Uses Debian's chromium (`apt-get install chromium`); never downloads a browser.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).parent / "assets"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def chromium() -> str:
    """Path of Debian's chromium; skips the test (saying how to enable it) when it is missing."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip(
            "Chromium is not installed, so the real-browser widget test is skipped. Enable it "
            "with `apt-get install chromium` (Debian; `.ci/run` does this) and rerun."
        )
    pytest.importorskip("playwright", reason="pip install playwright (the `test` extra)")
    return path


@pytest.fixture
def jupyter_lab(chromium, tmp_path, free_port, launch_server):
    """A JupyterLab server on 127.0.0.1 serving a copy of the explorer notebook: (base URL, token)."""
    work = tmp_path / "lab"
    work.mkdir()
    for name in ("widget_explorer.ipynb", "tiny_models.py"):
        shutil.copy(ASSETS / name, work / name)
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)  # no "get Jupyter news?" toast, no update check (offline)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    port, token = free_port, secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "DLNB_HEADLESS"}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    base = f"http://127.0.0.1:{port}"
    launch_server(
        [
            sys.executable, "-m", "jupyter", "lab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}", "--LabApp.news_url=",
            *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        ],
        f"{base}/api/status?token={token}",
        tmp_path / "jupyter.log",
        env=env,
    )  # fmt: skip
    return base, token


def _wait_for_connected_kernel(base: str, token: str, timeout: float = 60) -> None:
    """Until the page's kernel is started, idle and has the browser's websocket attached."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5) as r:
            kernels = [s["kernel"] for s in json.load(r)]
        if any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
            return
        time.sleep(0.5)
    pytest.fail(f"No kernel connected to the notebook within {timeout} s: {kernels}")


def _choose(page, label: str, option: str, old_src: str) -> str:
    """Pick `option` in the explorer's dropdown called `label`; wait for a new image; its src."""
    box = page.locator(".widget-dropdown").filter(
        has=page.locator("label", has_text=re.compile(f"^{label}$"))
    )
    box.locator("select").select_option(label=option)
    page.wait_for_function(
        "old => document.querySelector('.jp-OutputArea-output .widget-image').src !== old",
        arg=old_src,
        timeout=30_000,
    )
    return page.locator(".jp-OutputArea-output .widget-image").first.get_attribute("src")


def test_explorer_renders_and_updates_in_jupyterlab(chromium, jupyter_lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            base, token = jupyter_lab
            page.goto(f"{base}/lab/tree/widget_explorer.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            _wait_for_connected_kernel(base, token)
            page.locator(".lm-MenuBar-item", has_text="Run").click()  # Run > Run All Cells
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

            image = page.locator(".jp-OutputArea-output .widget-image").first
            image.wait_for(timeout=60_000)
            dropdowns = page.locator(".jp-OutputArea-output .widget-dropdown")
            assert dropdowns.count() == 4  # sample, method, target, baseline
            status = page.locator(
                ".jp-OutputArea-output .widget-html", has_text="convergence delta"
            )
            status.wait_for(timeout=30_000)
            before = image.get_attribute("src")
            assert before and before.startswith("blob:")

            after = _choose(page, "method", "gradcam", before)  # a click in the browser
            page.locator(".widget-html", has_text="gradcam in").wait_for(timeout=30_000)
            assert after != before
            _choose(page, "sample", "sample 1", after)  # sample 1 holds a patch
            top = page.locator(".widget-html", has_text="top predictions").locator("td").first
            assert top.inner_text() == "patch"
            size = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert size[0] > 100 and size[1] > 100  # the PNG decoded into a real picture
            page.screenshot(path=str(ARTIFACTS / "widget_explorer.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "widget_explorer_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
