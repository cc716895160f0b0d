"""The widgets in a real JupyterLab, in a real (headless) Chromium driven by Playwright.

JupyterLab runs on 127.0.0.1 with a random token in a temporary folder. The first test runs
`tests/assets/widget_explorer.ipynb` (a toy model) and checks that the explorer renders and
updates. The second does what a user does with the curriculum's own notebook 06: opens it with
the project's kernel (`dlnb`), runs all cells, uses the digit explorer and the text view, saves,
reloads the page and checks that no widget output is broken ("Error displaying widget: model not
found") and that the progress bar of its `fit` (as notebook 01 calls it) is still a widget bar.
Screenshots go to `test-artifacts/`. Uses Debian's chromium (`apt-get install chromium`); never
downloads a browser.
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
NOTEBOOK_06 = ROOT / "notebooks" / "06_interpretability.ipynb"
BROKEN = ("Error displaying widget", "model not found")
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


def _start_lab(tmp_path: Path, port: int, launch_server, files: list[Path]) -> tuple[str, str]:
    """A JupyterLab server on 127.0.0.1 serving copies of `files`: (base URL, token)."""
    work = tmp_path / "lab"
    work.mkdir()
    for path in files:
        shutil.copy(path, work / path.name)
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)  # no "get Jupyter news?" toast, no update check (offline)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    notebook_settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    notebook_settings.mkdir(parents=True)  # every cell in the DOM, so the page can be searched
    (notebook_settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    token = secrets.token_hex(16)
    # As a user's JupyterLab: live (not headless) and with the inline backend, not pytest's agg.
    env = {k: v for k, v in os.environ.items() if k not in ("DLNB_HEADLESS", "MPLBACKEND")}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    env.setdefault("DLNB_DATA", str(ROOT / "data" / "cache"))
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


@pytest.fixture
def jupyter_lab(chromium, tmp_path, free_port, launch_server):
    """JupyterLab serving a copy of the toy explorer notebook: (base URL, token)."""
    files = [ASSETS / "widget_explorer.ipynb", ASSETS / "tiny_models.py"]
    return _start_lab(tmp_path, free_port, launch_server, files)


@pytest.fixture
def curriculum_lab(chromium, tmp_path, free_port, launch_server):
    """JupyterLab serving a copy of the curriculum's notebook 06: (base URL, token)."""
    return _start_lab(tmp_path, free_port, launch_server, [NOTEBOOK_06])


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


def _api(base: str, token: str, path: str):
    """GET a JSON document from the Jupyter server's REST API."""
    with urllib.request.urlopen(f"{base}/api/{path}?token={token}", timeout=10) as r:
        return json.load(r)


def _run_all(page) -> None:
    """Run > Run All Cells, from the menu as a user would."""
    page.locator(".lm-MenuBar-item", has_text="Run").click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


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
            _run_all(page)

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


def _cell(page, source: str):
    """The code cell whose source contains `source`."""
    return page.locator(".jp-CodeCell").filter(has=page.locator(".jp-InputArea", has_text=source))


def _dropdown(cell, label: str):
    """The `select` of the dropdown called `label` in `cell`'s output."""
    box = cell.locator(".widget-dropdown").filter(
        has=cell.page.locator("label", has_text=re.compile(f"^{label}$"))
    )
    return box.locator("select")


def _epoch_bars(cell):
    """The tqdm widget bars (an HBox holding a progress widget) of `cell` that count epochs."""
    return cell.locator(".widget-hbox", has=cell.page.locator(".widget-hprogress")).filter(
        has_text="epoch"
    )


def _wait_until_all_ran(page, timeout_s: float) -> None:
    """Until every code cell has an execution count (none queued or running)."""
    page.wait_for_function(
        r"""() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return prompts.length > 0 && prompts.every(p => /\[\d+\]/.test(p.textContent));
        }""",
        timeout=timeout_s * 1000,
        polling=1000,
    )


def _page_text(page) -> str:
    """All text of the open notebook, including cells scrolled out of view."""
    return page.locator(".jp-Notebook").first.evaluate("n => n.textContent")


WATCH_STATUS = """cell => {
    window.__seen = [];
    new MutationObserver(() => {
        for (const h of cell.querySelectorAll('.widget-html')) window.__seen.push(h.textContent);
        const selects = [...cell.querySelectorAll('.widget-dropdown select')];
        if (selects.length && selects.every(s => s.disabled)) window.__seen.push('<disabled>');
    }).observe(cell, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


@pytest.mark.timeout(900)
def test_notebook_06_in_jupyterlab_survives_a_reload(chromium, curriculum_lab):
    """Issue 16: run notebook 06 as a user would, use its widgets, save, reload: nothing broken."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    base, token = curriculum_lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK_06.name}?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            _wait_for_connected_kernel(base, token)
            kernels = {s["kernel"]["name"] for s in _api(base, token, "sessions")}
            assert kernels == {"dlnb"}, f"notebook 06 should start the project's kernel: {kernels}"
            _run_all(page)
            _wait_until_all_ran(page, timeout_s=600)
            text = _page_text(page)
            assert "Traceback (most recent call last)" not in text

            # The fit (as notebook 01 calls it): one widget bar for the whole fit, finished.
            fit_cell = _cell(page, "fit(cnn, loaders, TrainConfig(")
            assert fit_cell.locator(".jp-RenderedImage img").count() >= 1  # plt.show() works
            bars = _epoch_bars(fit_cell)
            assert bars.count() == 1, "one progress bar per fit, not one per epoch"
            assert "epoch 2/2: 100%" in bars.first.inner_text().replace("\u2007", " ")  # tqdm pads

            # The digit explorer: black baseline first, plain digit targets, a busy state.
            explorer = _cell(page, "explorer = interpret.ImageAttributionExplorer(")
            image = explorer.locator(".widget-image").first
            image.wait_for(timeout=30_000)
            baseline = _dropdown(explorer, "baseline")
            assert baseline.evaluate("s => s.options[s.selectedIndex].text") == "black"
            targets = _dropdown(explorer, "target").evaluate("s => [...s.options].map(o => o.text)")
            assert "7" in targets and "7: 7" not in targets
            before = image.get_attribute("src")
            explorer.evaluate(WATCH_STATUS)
            # it opens on a method that passed its sanity check (Grad-CAM), labelled as such
            assert "gradcam in" in explorer.locator(".widget-html").last.inner_text()
            labels = _dropdown(explorer, "method").evaluate("s => [...s.options].map(o => o.text)")
            smoothgrad = next(label for label in labels if label.startswith("smoothgrad"))
            _dropdown(explorer, "method").select_option(label=smoothgrad)
            explorer.locator(".widget-html", has_text="smoothgrad in").wait_for(timeout=60_000)
            after = image.get_attribute("src")
            assert after != before, "the picture follows the method"
            seen = page.evaluate("window.__seen")
            assert any("computing" in t for t in seen), "no busy state was shown"
            assert "<disabled>" in seen, "the controls were not disabled while computing"
            assert not _dropdown(explorer, "method").is_disabled()
            _dropdown(explorer, "target").select_option(label="3")
            page.wait_for_function(
                "([img, old]) => img.src !== old",
                arg=[image.element_handle(), after],
                timeout=60_000,
            )
            explorer.screenshot(path=str(ARTIFACTS / "nb06_digit_explorer.png"))

            # The text view: typing your own tweet explains it and clears the example picker.
            view = _cell(page, "interpret.TextAttributionView(")
            box = view.locator(".widget-textarea textarea")
            box.fill("what a wonderful, happy day with friends")
            box.press("Tab")  # continuous_update=False: the text is sent when the box loses focus
            view.locator(".widget-html", has_text="wonderful").first.wait_for(timeout=60_000)
            assert _dropdown(view, "example").evaluate("s => s.selectedIndex") == -1
            assert "predicted" in view.locator(".widget-html").last.inner_text()
            view.screenshot(path=str(ARTIFACTS / "nb06_text_view.png"))

            # Save (as autosave would), reload the page, and look for broken widget outputs.
            page.keyboard.press("Control+s")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                saved = _api(base, token, f"contents/{NOTEBOOK_06.name}")["content"]
                if any(c.get("outputs") for c in saved["cells"]):
                    break
                time.sleep(0.5)
            else:
                pytest.fail("the notebook was not saved with its outputs")
            page.reload()
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            _wait_for_connected_kernel(base, token)
            _cell(page, "explorer = interpret.ImageAttributionExplorer(").locator(
                ".widget-image"
            ).first.wait_for(timeout=60_000)
            time.sleep(3)  # let every restored widget view render
            text = _page_text(page)
            for broken in BROKEN:
                assert broken not in text, f"after a reload the page shows {broken!r}"
            fit_cell = _cell(page, "fit(cnn, loaders, TrainConfig(")
            assert _epoch_bars(fit_cell).count() == 1, "the fit's bar is gone after the reload"
            fit_cell.screenshot(path=str(ARTIFACTS / "nb06_fit_progress_after_reload.png"))
            page.screenshot(path=str(ARTIFACTS / "nb06_after_reload.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "nb06_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
