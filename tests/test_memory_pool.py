"""The memory pool Arrow uses while a Logpush file is parsed or clustering runs (``_memory.system_pool``)."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from edgeinvestigate._memory import system_pool


def test_system_pool_inside_and_the_pool_before_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    before = pa.default_memory_pool().backend_name
    with system_pool():
        assert pa.default_memory_pool().backend_name == "system"
        made_inside = pa.array(["a", "b"])
        with system_pool():  # nested: still the system pool, and the outer exit restores
            assert pa.default_memory_pool().backend_name == "system"
        assert pa.default_memory_pool().backend_name == "system"
    assert pa.default_memory_pool().backend_name == before
    assert made_inside.to_pylist() == ["a", "b"]  # arrays keep the pool they came from


def test_concurrent_loads_share_one_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    before = pa.default_memory_pool().backend_name
    inside, go_on = threading.Event(), threading.Event()

    def load() -> None:
        with system_pool():
            inside.set()
            go_on.wait(5)

    t = threading.Thread(target=load)
    t.start()
    inside.wait(5)
    with system_pool():
        go_on.set()
        t.join()  # the other load ended first: this one still has the system pool
        assert pa.default_memory_pool().backend_name == "system"
    assert pa.default_memory_pool().backend_name == before


def test_a_pool_the_user_chose_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    before = pa.default_memory_pool().backend_name
    with system_pool():
        assert pa.default_memory_pool().backend_name == before
