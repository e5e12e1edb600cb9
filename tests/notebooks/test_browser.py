"""Every report renders in a real headless Chromium: no JS errors, every figure drawn, no XSS.

Chromium comes from Debian's package (``.ci/install-browser``, run by ``make test``); Playwright
drives it with ``executable_path`` and never downloads a browser of its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(
            f"headless Chromium is not installed at {CHROMIUM}: run `bash .ci/install-browser` as root"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _render(browser: Any, html: Path) -> dict[str, Any]:
    page = browser.new_page()
    errors: list[str] = []
    console_errors: list[str] = []
    dialogs: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on(
        "request",
        lambda req: requests.append(req.url) if not req.url.startswith(("file:", "data:")) else None,
    )
    page.goto(html.as_uri(), wait_until="load")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.plotly-graph-div'))"
        ".every(d => d.querySelector('svg.main-svg'))",
        timeout=30_000,
    )
    figures = page.evaluate(
        """() => Array.from(document.querySelectorAll('.plotly-graph-div')).map(d => ({
            id: d.id,
            svgs: d.querySelectorAll('svg.main-svg').length,
            marks: d.querySelectorAll(
              'svg.main-svg .trace path, svg.main-svg .trace .point, ' +
              'svg.main-svg .bars path, svg.main-svg .scatterlayer path, ' +
              'svg.main-svg .shapelayer path, svg.main-svg .heatmaplayer image'
            ).length,
            width: d.getBoundingClientRect().width,
            height: d.getBoundingClientRect().height,
        }))"""
    )
    text = page.inner_text("body")
    injected = page.evaluate(
        """() => ({
            imgs: document.querySelectorAll('img[src="x"]').length,
            scripts: Array.from(document.scripts).filter(s => s.textContent.includes('alert(1)')).length,
        })"""
    )
    page.close()
    return {
        "errors": errors,
        "console_errors": console_errors,
        "dialogs": dialogs,
        "requests": requests,
        "figures": figures,
        "text": text,
        "injected": injected,
    }


@pytest.fixture(scope="module")
def rendered(browser: Any, executed: Any) -> dict[str, dict[str, Any]]:
    return {name: _render(browser, run.html) for name, run in executed.runs.items()}


@pytest.mark.parametrize(
    "notebook", ["triage", "error-clusters", "root-cause", "dlq-replay", "incident-report"]
)
def test_report_renders_cleanly(rendered: dict[str, dict[str, Any]], notebook: str) -> None:
    r = rendered[notebook]
    assert r["errors"] == [], f"JavaScript errors in {notebook}.html: {r['errors']}"
    assert r["console_errors"] == [], f"console errors in {notebook}.html: {r['console_errors']}"
    assert r["dialogs"] == [], f"a dialog opened in {notebook}.html: {r['dialogs']}"
    assert r["requests"] == [], f"{notebook}.html tried the network: {r['requests']}"
    assert r["injected"] == {"imgs": 0, "scripts": 0}


@pytest.mark.parametrize("notebook", ["triage", "error-clusters", "root-cause", "incident-report"])
def test_every_figure_drew(rendered: dict[str, dict[str, Any]], executed: Any, notebook: str) -> None:
    figures = rendered[notebook]["figures"]
    assert figures, f"{notebook}.html has no figure"
    assert len(figures) == executed.runs[notebook].n_figures or executed.runs[notebook].n_figures == 0
    for fig in figures:
        assert fig["svgs"] >= 1, fig
        assert fig["marks"] > 0, f"empty figure {fig} in {notebook}.html"
        assert fig["width"] > 100, fig
        assert fig["height"] > 100, fig


def test_hostile_log_line_is_text_and_never_runs(rendered: dict[str, dict[str, Any]], hostile: Any) -> None:
    shown_in = [
        name for name, r in rendered.items() if hostile.script in r["text"] and hostile.img in r["text"]
    ]
    assert "triage" in shown_in, "the hostile log line must be visible as text in the triage report"
    for name, r in rendered.items():
        assert r["dialogs"] == [], name
        assert r["injected"]["imgs"] == 0, name
