from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from replay_messages import dlq_messages


@pytest.fixture
def dlq_frame() -> pd.DataFrame:
    from edgeinvestigate.sources.api.dlq_frame import dlq_frame as make

    return make(dlq_messages(300), "jobs-dlq")
