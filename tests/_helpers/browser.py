"""Helpers of the tests that drive a headless browser."""

from __future__ import annotations


def reap_playwright_driver() -> None:
    """Playwright's driver process exits just after ``sync_playwright()`` closes; its ``Popen`` object can
    be collected while it is still exiting, and that ResourceWarning would land in whichever test runs
    next. Wait for the driver and collect it here, where it belongs."""
    import gc
    import time
    import warnings

    time.sleep(0.5)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="subprocess .* is still running", category=ResourceWarning)
        gc.collect()
