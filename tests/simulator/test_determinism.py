"""Same scenario, size and seed: byte-identical files. Another seed: a different incident."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from _sim_helpers import all_files

from edgeinvestigate.simulator import simulate


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = simulate("default", tmp_path / "a", seed=42, invocations=400)
    b = simulate("default", tmp_path / "b", seed=42, invocations=400)
    fa, fb = all_files(a.out), all_files(b.out)
    assert sorted(fa) == sorted(fb)
    assert len(fa) > 5
    for name in fa:
        assert fa[name] == fb[name], name


def test_other_seed_other_incident(tmp_path: Path) -> None:
    a = simulate("default", tmp_path / "a", seed=1, invocations=400, formats=["dlq"])
    b = simulate("default", tmp_path / "b", seed=2, invocations=400, formats=["dlq"])
    assert (a.out / "dlq" / "messages.json").read_bytes() != (b.out / "dlq" / "messages.json").read_bytes()


def test_rerun_into_the_same_folder_replaces_it(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    simulate("default", out, seed=1, invocations=300)
    first = all_files(out)
    simulate("default", out, seed=1, invocations=300, formats=["logpush"])
    second = all_files(out)
    # only ground truth and logpush are left, identical to the first run's (no stale files)
    assert set(second) == {k for k in first if k.startswith("logpush/") or k == "ground_truth.json"}
    assert all(second[k] == first[k] for k in second)


def _freeze(monkeypatch, now: str) -> None:
    """Make ``now`` (and so every relative time) ``now``, for edgeinvestigate._time."""
    import edgeinvestigate._time as time_mod

    frozen = datetime.fromisoformat(now.replace("Z", "+00:00"))

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return frozen.astimezone(tz)

    monkeypatch.setattr(time_mod, "datetime", Frozen)


def test_relative_start_gives_the_same_counts_whenever_it_runs(tmp_path: Path, monkeypatch) -> None:
    runs = []
    for i, now in enumerate(["2026-12-06T18:00:10Z", "2026-12-06T18:03:59.9Z", "2026-12-06T18:11:37.5Z"]):
        _freeze(monkeypatch, now)
        summary = simulate(
            "default", tmp_path / str(i), seed=7, invocations=600, start="-2h", formats=["dlq"]
        )
        window = json.loads(summary.ground_truth.read_text())["window"]
        runs.append((window["start"], summary.counts))
    # snapped back to the 5-minute grid of the scenario's cron and batch windows
    assert [start for start, _ in runs] == [
        "2026-12-06T16:00:00.000Z",
        "2026-12-06T16:00:00.000Z",
        "2026-12-06T16:10:00.000Z",
    ]
    # the same seed, the same counts: within one period, and a whole number of periods later
    assert runs[0][1] == runs[1][1] == runs[2][1]
    assert runs[0][1]["invocations"]["total"] > 0


def test_absolute_start_is_taken_as_given(tmp_path: Path) -> None:
    summary = simulate("default", tmp_path / "a", seed=7, invocations=300, start="2026-12-06T16:00:17Z")
    assert json.loads(summary.ground_truth.read_text())["window"]["start"] == "2026-12-06T16:00:17.000Z"
