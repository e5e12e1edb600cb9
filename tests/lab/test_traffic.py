"""``lab/_traffic.py``: the jobs each phase sends, and what should become of them."""

from __future__ import annotations

import random

from edgeinvestigate.lab._traffic import baseline_jobs, incident_jobs


def test_traffic_is_seeded_and_expectations_are_consistent() -> None:
    a = baseline_jobs(60, random.Random(1))
    b = baseline_jobs(60, random.Random(1))
    assert [j.body["payload"] for j in a] == [j.body["payload"] for j in b]
    assert {j.expect for j in a} == {"succeed", "dlq-wrapped", "dlq-raw"}
    assert len({j.job_id for j in a}) == 60
    incident = incident_jobs(100, random.Random(2))
    assert all((j.expect == "dlq-wrapped") == (j.type == "EMAIL_DELIVERY") for j in incident)
    assert all(j.body["payload"]["jobId"] == j.job_id for j in incident)
