"""`make lab-notebook` opens the jupytext notebooks as notebooks: a real JupyterLab, a real Chromium.

The settings override that makes "Jupytext Notebook" the default viewer of ``.py`` files ships in the
wheel (``share/jupyter/lab/settings/overrides.json``); this test starts JupyterLab from the project's
environment on 127.0.0.1, double-clicks ``triage.py`` in the file browser and expects notebook cells.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _helpers.browser import reap_playwright_driver

from edgeinvestigate.report.runner import notebooks_dir

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
TOKEN = "ei-test-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_override_ships_with_the_environment() -> None:
    override = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert override.is_file(), f"{override} is missing: reinstall the package (make venv)"
    viewers = json.loads(override.read_text())["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["python"] == "Jupytext Notebook"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.skip(
            f"headless Chromium is not installed at {CHROMIUM}: run `bash .ci/install-browser` as root"
        )
    root = tmp_path_factory.mktemp("lab")
    work = root / "notebooks"
    shutil.copytree(notebooks_dir(), work, ignore=shutil.ignore_patterns("__pycache__"))
    home = root / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}  # fmt: skip
    port = _free_port()
    log = (root / "lab.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={work}",
         "--LabApp.news_url=", "--ServerApp.port_retries=0", "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited: {(root / 'lab.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/api/status", params={"token": TOKEN}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"jupyter lab did not start: {(root / 'lab.log').read_text()[-2000:]}")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(lab: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()
    reap_playwright_driver()


def test_double_click_opens_triage_py_as_a_notebook(lab: str, browser: Any) -> None:
    page = browser.new_page()
    page.goto(f"{lab}/lab?token={TOKEN}", wait_until="domcontentloaded")
    item = page.locator(".jp-DirListing-item", has_text="triage.py").first
    item.wait_for(timeout=90_000)
    item.dblclick()
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=90_000)
    # the cells render one after another: wait until the notebook shows more than one
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell').length > 5",
        timeout=60_000,
    )
    cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").count()
    assert cells > 5, f"triage.py opened with {cells} cells"
    # the parameters cell of the notebook is there, as a code cell
    assert page.locator(".jp-NotebookPanel .jp-CodeCell").count() > 0
    assert page.locator(".jp-FileEditor").count() == 0, "triage.py opened in the text editor"
    page.close()
