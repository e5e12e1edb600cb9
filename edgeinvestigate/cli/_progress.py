"""Progress of a command's long steps on stderr: tqdm bars when stderr is a terminal, nothing otherwise.

>>> progress = Progress()                                   # doctest: +SKIP
>>> with progress.step("clustering 1,203,311 error rows"):  # doctest: +SKIP
...     clusters = cluster(ev)
>>> with progress.step("loading 10 files", total=136_000_000, unit="B") as bar:  # doctest: +SKIP
...     ev = load(paths, on_file=bar.update)

A step without a known total shows its title and the time it has run (refreshed twice a second by a
small thread); a step with one shows a bar. Piped or redirected stderr (CI, logs, tests) gets
nothing: the commands' own output stays the only output.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Progress"]


class _Quiet:
    """The bar of a step when progress is off: accepts what a tqdm bar accepts, shows nothing."""

    def update(self, n: float = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def set_description_str(self, text: str) -> None:
        pass


class Progress:
    """Steps of one command; ``enabled`` defaults to whether stderr is a terminal."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    @contextlib.contextmanager
    def step(self, title: str, *, total: float | None = None, unit: str = "it") -> Iterator[Any]:
        """A bar for one step (see the module docs); yields it (``update(n)``, ``set_postfix_str``)."""
        if not self.enabled:
            yield _Quiet()
            return
        from tqdm.auto import tqdm

        if total is None:
            bar = tqdm(desc=title, file=sys.stderr, bar_format="{desc} {elapsed}", leave=False)
        else:
            scale = unit == "B"
            bar = tqdm(
                desc=title,
                total=total,
                unit=unit,
                unit_scale=scale,
                unit_divisor=1024 if scale else 1000,
                file=sys.stderr,
                leave=False,
            )
        stop = threading.Event()

        def tick() -> None:  # keep the elapsed time moving while the step works
            while not stop.wait(0.5):
                bar.refresh()

        ticker = threading.Thread(target=tick, name="progress", daemon=True)
        ticker.start()
        try:
            yield bar
        finally:
            stop.set()
            ticker.join()
            bar.close()
