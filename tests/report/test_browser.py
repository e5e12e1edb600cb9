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
from _helpers.browser import reap_playwright_driver

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
    reap_playwright_driver()


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


def _click_every_modebar_button(browser: Any, html: Path) -> dict[str, Any]:
    """Hover every figure and click every mode-bar button, with the network blocked."""
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    requests: list[str] = []
    popups: list[str] = []
    titles: list[str] = []

    def block(route: Any) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            requests.append(url)
            route.abort()

    context.route("**/*", block)
    context.on("page", lambda p: popups.append(p.url))
    page.goto(html.as_uri(), wait_until="load")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.plotly-graph-div'))"
        ".every(d => d.querySelector('svg.main-svg'))",
        timeout=30_000,
    )
    figures = page.query_selector_all(".plotly-graph-div")
    for fig in figures:
        fig.scroll_into_view_if_needed()
        fig.hover()
        for button in fig.query_selector_all(".modebar-btn"):
            titles.append(button.get_attribute("data-title") or "")
            button.click(force=True)
            page.wait_for_timeout(50)
    page.wait_for_timeout(300)
    context.close()
    return {"figures": len(figures), "titles": titles, "requests": requests, "popups": popups}


@pytest.mark.parametrize("notebook", ["triage", "error-clusters", "root-cause", "incident-report"])
def test_no_mode_bar_button_can_send_a_chart_off_the_machine(
    browser: Any, executed: Any, notebook: str
) -> None:
    r = _click_every_modebar_button(browser, executed.runs[notebook].html)
    assert r["figures"] > 0, f"{notebook}.html has no figure"
    assert any("download" in t.lower() for t in r["titles"]), f"no mode bar was clicked: {r['titles']}"
    leaky = [
        t for t in r["titles"] if any(w in t.lower() for w in ("share", "cloud", "chart studio", "edit in"))
    ]
    assert leaky == [], f"{notebook}.html offers to send a chart away: {leaky}"
    assert r["requests"] == [], f"{notebook}.html sent requests when its mode-bar buttons were clicked"
    assert r["popups"] == [], f"{notebook}.html opened a window: {r['popups']}"
