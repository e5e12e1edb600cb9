"""Parameters are checked against the bundle before a kernel starts; a failed run never overwrites one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from edgeinvestigate.cli import main
from edgeinvestigate.errors import NotebookParameterError
from edgeinvestigate.report._preflight import check_against_bundle
from edgeinvestigate.report.params import validate_parameters


@pytest.fixture
def no_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(papermill, "execute_notebook", refuse)


def _good_report(executed: Any, tmp_path: Path, notebook: str) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path / "report"
    shutil.copytree(executed.runs[notebook].out_dir, out)
    return out, {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def test_unknown_cluster_id_is_refused_before_the_kernel_and_the_report_stays(
    executed: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str], no_kernel: None
) -> None:
    out, before = _good_report(executed, tmp_path, "error-clusters")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(executed.bundle), "-n", "error-clusters", "--out", str(out),
              "-p", "cluster_id=cWRONG"])  # fmt: skip
    assert exit_info.value.code == 2
    err = capfd.readouterr().err
    assert "cWRONG" in err
    assert "not in the bundle" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_close_cluster_ids_and_job_types_are_suggested(executed: Any) -> None:
    from edgeinvestigate.analysis.clustering import cluster
    from edgeinvestigate.evidence.bundle import Evidence

    ev = Evidence.open(executed.bundle)
    real = cluster(ev).ids[0]
    params = validate_parameters(
        "dlq-replay",
        {"bundle": str(executed.bundle), "clusters": real[:-1] + "z", "job_types": "EMAIL_DELIVERYY"},
    )
    with pytest.raises(NotebookParameterError) as info:
        check_against_bundle("dlq-replay", params, ev)
    assert real in info.value.message  # did you mean <the real id>
    assert "EMAIL_DELIVERY" in info.value.message
    ok = validate_parameters("dlq-replay", {"bundle": str(executed.bundle), "clusters": real})
    check_against_bundle("dlq-replay", ok, ev)  # a real id passes


def test_a_failed_run_is_written_beside_a_good_report(
    executed: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out, before = _good_report(executed, tmp_path, "triage")
    broken = tmp_path / "broken-bundle"
    broken.mkdir()
    (broken / "manifest.json").write_text('{"format": "not a bundle"}')
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(broken), "--out", str(out), "--notebook", "triage", "--no-progress"])
    assert exit_info.value.code != 0
    capfd.readouterr()
    assert (out / "triage.html").read_bytes() == before["triage.html"]
    assert (out / "triage.ipynb").read_bytes() == before["triage.ipynb"]
    assert "INCOMPLETE" in (out / "triage.failed.html").read_text()
    assert (out / "triage.failed.ipynb").is_file()
