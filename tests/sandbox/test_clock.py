"""``sandbox/_clock.py``: the sandbox clock is wall time plus an offset that tests move."""

from __future__ import annotations

import time

from edgeinvestigate.sandbox._clock import Clock, iso


def test_advance_and_reset() -> None:
    clock = Clock()
    before = int(time.time() * 1000)
    clock.advance(60_000)
    clock.advance(-1_000)
    assert clock.offset_ms == 59_000
    assert before + 59_000 <= clock.now_ms() <= int(time.time() * 1000) + 59_000
    clock.reset()
    assert clock.offset_ms == 0
    assert clock.now_ms() <= int(time.time() * 1000)


def test_iso_is_rfc3339_with_microseconds() -> None:
    assert iso(1_795_000_000_123) == "2026-11-18T11:06:40.123000Z"
