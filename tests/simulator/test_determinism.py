"""Same scenario, size and seed: byte-identical files. Another seed: a different incident."""

from __future__ import annotations

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
