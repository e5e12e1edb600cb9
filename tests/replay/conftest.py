from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from replay_messages import dlq_messages


@pytest.fixture(autouse=True)
def _operator(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the operator of these tests allows: pushing to `jobs` (the run-time allow-list comes from
    the environment here, as `EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES=jobs` would on a laptop), and a
    directory of plan locks of each test's own, so tests running in parallel never meet. Tests of the
    allow-list itself unset it."""
    monkeypatch.setenv("EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES", "jobs")
    monkeypatch.setenv("EDGEINVESTIGATE_REPLAY_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))


@pytest.fixture
def dlq_frame() -> pd.DataFrame:
    from edgeinvestigate.sources.api.dlq_frame import dlq_frame as make

    return make(dlq_messages(300), "jobs-dlq")
