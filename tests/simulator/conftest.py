"""Fixtures for the simulator tests: small simulations, built once per session."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _sim_helpers import Run

from edgeinvestigate.simulator import simulate

SMALL = 700  # invocations: enough for every root cause to show, fast to write


@pytest.fixture(scope="session")
def sim_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Run]:
    cache: dict[tuple[str, int, int], Run] = {}

    def make(scenario: str = "default", seed: int = 1, invocations: int = SMALL) -> Run:
        key = (scenario, seed, invocations)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"sim-{scenario}-{seed}")
            cache[key] = Run(simulate(scenario, out, seed=seed, invocations=invocations))
        return cache[key]

    return make


@pytest.fixture(scope="session")
def default_run(sim_factory: Callable[..., Run]) -> Run:
    return sim_factory("default", 1, 2000)
