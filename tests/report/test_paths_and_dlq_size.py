"""Path parameters are the caller's; a peek bundle's DLQ size says it is the head only."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import edgeinvestigate as ei
import edgeinvestigate.report.runner as nbmod
from edgeinvestigate.cli import main
from edgeinvestigate.errors import NotebookParameterError
from edgeinvestigate.report import kernel
from edgeinvestigate.report.params import path_parameters, resolve_path_parameters, validate_parameters


class _Stop(BaseException):  # not an Exception: _execute writes a report for those
    """Raised by the papermill spy once it has seen the parameters."""


@pytest.fixture
def papermill_params(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record the parameters papermill is given, then stop before a kernel starts."""
    import papermill

    seen: list[dict[str, Any]] = []

    def spy(*args: object, parameters: dict[str, Any] | None = None, **kwargs: object) -> None:
        seen.append(dict(parameters or {}))
        raise _Stop

    monkeypatch.setattr(papermill, "execute_notebook", spy)
    return seen


@pytest.fixture
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "ev"
    sample = ei.sample_bundle()
    ev = sample if isinstance(sample, ei.Evidence) else ei.Evidence.open(sample)
    ev.save(out)
    return out


def test_path_parameters_are_declared() -> None:
    assert path_parameters("incident-report") == {
        "bundle": "dir",
        "replay_plan": "file",
        "findings_file": "file",
    }
    assert path_parameters("dlq-replay") == {"bundle": "dir", "plan_out": "output"}
    assert path_parameters("triage") == {"bundle": "dir"}


def test_relative_paths_resolve_against_the_callers_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plan.json").write_text("{}")
    (tmp_path / "plans").mkdir()
    monkeypatch.chdir(tmp_path)
    params = resolve_path_parameters(validate_parameters("incident-report", {"replay_plan": "plan.json"}))
    assert params.replay_plan == str(tmp_path / "plan.json")  # type: ignore[attr-defined]
    params = resolve_path_parameters(validate_parameters("dlq-replay", {"plan_out": "plans/p.json"}))
    assert params.plan_out == str(tmp_path / "plans" / "p.json")  # type: ignore[attr-defined]
    # a default is not the caller's: plan_out stays next to the report
    params = resolve_path_parameters(validate_parameters("dlq-replay", {}))
    assert params.plan_out == "replay-plan.json"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("notebook", "params", "needle"),
    [
        ("incident-report", {"replay_plan": "nosuch/plan.json"}, "parameter replay_plan: {p} does not exist"),
        ("incident-report", {"replay_plan": "."}, "parameter replay_plan: {p} is not a file"),
        ("triage", {"bundle": "missing-bundle"}, "parameter bundle: {p} does not exist"),
        (
            "dlq-replay",
            {"plan_out": "nodir/plan.json"},
            "parameter plan_out: {p} cannot be written: its folder",
        ),
    ],
)
def test_missing_paths_are_refused_before_any_cell(
    notebook: str,
    params: dict[str, str],
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    papermill_params: list[dict[str, Any]],
) -> None:
    monkeypatch.chdir(tmp_path)
    given = next(iter(params.values()))
    with pytest.raises(NotebookParameterError) as info:
        nbmod.run_notebook(notebook, tmp_path / "out", params)
    assert needle.format(p=(tmp_path / given).resolve()) in info.value.message
    assert f"relative paths are read from {tmp_path}" in info.value.message
    assert papermill_params == []
    assert not (tmp_path / "out").exists()


def test_report_cli_refuses_a_missing_plan(
    bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    papermill_params: list[dict[str, Any]],
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["report", str(bundle), "--out", "rep", "-p", "replay_plan=plan.json", "--no-progress"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"parameter replay_plan: {tmp_path / 'plan.json'} does not exist" in err
    assert papermill_params == []
    assert not (tmp_path / "rep").exists()


def test_report_cli_hands_papermill_the_callers_path(
    bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    papermill_params: list[dict[str, Any]],
) -> None:
    (tmp_path / "plan.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(_Stop):
        nbmod.write_report(bundle, "rep", parameters={"replay_plan": "plan.json"})
    (seen,) = papermill_params
    assert seen["replay_plan"] == str(tmp_path / "plan.json")  # not rep/plan.json
    assert seen["bundle"] == str(bundle.resolve())


# --- L: the DLQ size of a peek bundle ------------------------------------------------------------


def _with_collections(ev: ei.Evidence, collections: list[dict[str, Any]]) -> ei.Evidence:
    return dataclasses.replace(ev, manifest={**ev.manifest, "dlq_collections": collections})


def test_dlq_size_of_a_peek_says_head_only() -> None:
    sample = ei.sample_bundle()
    ev = sample if isinstance(sample, ei.Evidence) else ei.Evidence.open(sample)
    held = len(ev.dlq)
    assert held > 0
    plain = _with_collections(ev, [])
    assert kernel.dlq_size(plain) == f"{held:,}"
    peek = {
        "queue": "jobs-dlq",
        "mode": "peek",
        "messages": held,
        "backlog_count": held + 466,
        "complete": False,
    }
    assert kernel.dlq_size(_with_collections(ev, [peek])) == (
        f"{held:,} of {held + 466:,} (peek sees the head only)"
    )
    whole = {**peek, "mode": "snapshot", "backlog_count": held, "complete": True}
    assert kernel.dlq_size(_with_collections(ev, [whole])) == f"{held:,}"
    unknown = {**peek, "backlog_count": None}
    assert kernel.dlq_size(_with_collections(ev, [unknown])) == f"{held:,} of more (peek sees the head only)"


def test_triage_report_of_a_peek_bundle_shows_the_backlog(tmp_path: Path) -> None:
    """A real kernel run: the report must not call the 100 peeked messages the size of the DLQ."""
    sample = ei.sample_bundle()
    ev = sample if isinstance(sample, ei.Evidence) else ei.Evidence.open(sample)
    held = len(ev.dlq)
    peek = {"queue": "jobs-dlq", "mode": "peek", "messages": held, "backlog_count": 566, "complete": False}
    _with_collections(ev, [peek]).save(tmp_path / "ev")
    run = nbmod.write_report(tmp_path / "ev", tmp_path / "rep", notebook="triage", progress=False)
    run.raise_for_error()
    page = run.html.read_text()
    assert f"<b>{held:,} of 566 (peek sees the head only)</b> messages in the dead-letter queue" in page


def _findings_json(bundle: Path, where: Path, **edit: int) -> Path:
    ev = ei.Evidence.open(bundle)
    findings = ei.analyze(ev, clusters=ei.cluster(ev))
    findings.totals.update(edit)
    where.write_text(findings.model_dump_json())
    return where


def test_the_bundles_own_findings_are_handed_to_the_kernel(
    bundle: Path, tmp_path: Path, papermill_params: list[dict[str, Any]]
) -> None:
    path = _findings_json(bundle, tmp_path / "findings.json")
    with pytest.raises(_Stop):
        nbmod.write_report(bundle, tmp_path / "rep", parameters={"findings_file": str(path)})
    (seen,) = papermill_params
    assert seen["findings_file"] == str(path)
    ev = ei.Evidence.open(bundle)
    assert kernel.findings_of(ev, None, str(path)).totals == ei.analyze(ev).totals


@pytest.mark.parametrize(
    ("edit", "params", "message"),
    [
        ({"invocations": 1}, {}, "was not made from this bundle (invocations 1 != "),
        ({}, {"since": "2026-11-27T14:00Z"}, "cannot be used with since/until"),
    ],
)
def test_findings_of_another_bundle_or_window_are_refused_before_a_kernel_starts(
    bundle: Path,
    tmp_path: Path,
    papermill_params: list[dict[str, Any]],
    edit: dict[str, int],
    params: dict[str, str],
    message: str,
) -> None:
    path = _findings_json(bundle, tmp_path / "findings.json", **edit)
    with pytest.raises(NotebookParameterError, match="findings_file") as info:
        nbmod.write_report(bundle, tmp_path / "rep", parameters={"findings_file": str(path), **params})
    assert message in info.value.message
    assert info.value.hint
    assert papermill_params == []
    assert not (tmp_path / "rep").exists()


def test_a_findings_file_that_is_not_findings_is_refused(
    bundle: Path, tmp_path: Path, papermill_params: list[dict[str, Any]]
) -> None:
    (tmp_path / "findings.json").write_text('{"hypotheses": "no"}')
    with pytest.raises(NotebookParameterError, match=r"is not a findings\.json"):
        nbmod.write_report(
            bundle, tmp_path / "rep", parameters={"findings_file": str(tmp_path / "findings.json")}
        )
    assert papermill_params == []
