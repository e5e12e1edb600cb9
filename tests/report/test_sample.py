"""``sample_bundle()``: the bundled sample incident as an evidence bundle."""

from __future__ import annotations

from pathlib import Path

import edgeinvestigate as ei
from edgeinvestigate.report.sample import sample_dir


def test_sample_bundle_builds_once_and_reopens(tmp_path: Path) -> None:
    ev = ei.sample_bundle(tmp_path / "sample")
    assert isinstance(ev, ei.Evidence)
    assert 2000 <= len(ev.invocations) <= 4000
    assert len(ev.logs) > len(ev.invocations)
    assert len(ev.dlq) > 100
    assert set(ev.dlq["envelope"].astype(str)) == {"wrapped", "raw"}
    truth = ev.manifest["ground_truth"]
    assert {rc["id"] for rc in truth["root_causes"]} == {"bad-deploy-email-render", "image-service-outage"}
    assert "errors" not in truth  # the per-message lists stay in ground_truth.json
    gt_path = Path(ev.manifest["simulation"]["ground_truth_path"])
    assert gt_path.is_file()
    assert len(ev.invocations) == truth["counts"]["invocations"]["total"]
    assert len(ev.dlq) == truth["counts"]["dlq"]["total"]
    bundle = tmp_path / "sample" / "bundle" / "manifest.json"
    stamp = bundle.stat().st_mtime_ns
    again = ei.sample_bundle(tmp_path / "sample")
    assert bundle.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert again.equals(ei.Evidence.open(tmp_path / "sample" / "bundle"))
    assert again.invocations.equals(ev.invocations)


def test_default_cache_location_is_keyed(monkeypatch: object, tmp_path: Path) -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("EDGEINVESTIGATE_CACHE", str(tmp_path / "cache"))
        d = sample_dir()
        assert d.parent == tmp_path / "cache"
        assert d.name.startswith(f"sample-{ei.__version__}-default-")
    finally:
        mp.undo()
