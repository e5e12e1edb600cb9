"""`edgeinvestigate investigate`: collect -> clusters -> findings -> report -> draft plan in one command;
`collect` storing the clusters, the commands reading them, and progress only on a terminal."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from _helpers.cli import run

import edgeinvestigate as ei
from edgeinvestigate.cli._progress import Progress
from edgeinvestigate.replay import ReplayPlan, default_selection
from edgeinvestigate.simulator import simulate


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("incident")
    simulate("default", out, seed=3, formats=("traceitems", "dlq"))
    return out


def _inputs(incident: Path) -> list[str]:
    return [
        str(incident / "traceitems" / "traceitems.jsonl"),
        "--dlq-file",
        str(incident / "dlq" / "messages.json"),
    ]


@pytest.mark.e2e
@pytest.mark.slow
def test_investigate_writes_bundle_findings_report_and_a_draft_plan(
    incident: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "INC-1"
    code, stdout, err = run(
        capsys, "investigate", *_inputs(incident), "--to", "jobs", "--incident-id", "INC-1", "--out", str(out)
    )
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["bundle", "findings.json", "plan.json", "report"]
    assert (out / "report" / "incident-report.html").is_file()
    assert (out / "report" / "summary.md").is_file()
    findings = json.loads((out / "findings.json").read_text())
    assert findings == json.loads((out / "report" / "findings.json").read_text())
    assert findings["hypotheses"][0]["kind"] == "bad_deploy"
    # the top findings and the paths
    assert "Hypotheses (most likely first):" in stdout
    assert "  1. [bad_deploy" in stdout
    for line in (
        f"bundle:   {out / 'bundle'}",
        f"findings: {out / 'findings.json'}",
        f"report:   {out / 'report' / 'incident-report.html'}",
        f"plan:     {out / 'plan.json'}",
    ):
        assert line in stdout
    # the bundle holds its clusters; the draft plan replays what default_selection picks
    ev = ei.Evidence.open(out / "bundle")
    assert ev.derived("clusters") is not None
    plan = ReplayPlan.load(out / "plan.json")
    picked = {c.cluster_id for c in default_selection(ev)}
    assert set(plan.by_cluster) == picked
    assert plan.messages
    assert plan.source_queue == "jobs-dlq"
    assert plan.target_queue == "jobs"
    assert not (out / "plan.ledger.sqlite").exists()  # written, never run
    assert "DRAFT, not run" in stdout
    for cid in picked:
        assert f"safe to replay: cluster {cid}:" in stdout
    # a second run does not replace the investigation
    code, _, err = run(capsys, "investigate", *_inputs(incident), "--no-report", "--out", str(out))
    assert code == 2
    assert "already holds an investigation" in err
    assert "--overwrite" in err


def test_investigate_without_report_or_dlq_target(
    incident: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "INC-2"
    code, stdout, err = run(capsys, "investigate", *_inputs(incident), "--no-report", "--out", str(out))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["bundle", "findings.json"]
    assert "report:" not in stdout
    assert "plan:" not in stdout
    # --to without DLQ messages: no plan, and a note that says why
    out3 = tmp_path / "INC-3"
    code, stdout, err = run(
        capsys,
        "investigate",
        str(incident / "traceitems" / "traceitems.jsonl"),
        "--no-report",
        "--to",
        "jobs",
        "--out",
        str(out3),
    )
    assert code == 0, err
    assert "note: no DLQ messages were collected: no replay plan to 'jobs' was written" in err
    assert not (out3 / "plan.json").exists()
    # --overwrite replaces it
    code, _, err = run(
        capsys, "investigate", *_inputs(incident), "--no-report", "--overwrite", "--out", str(out)
    )
    assert code == 0, err


def test_investigate_takes_the_options_and_exit_statuses_of_collect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "investigate", "--out", str(tmp_path / "x"))
    assert code == 2
    assert "nothing to collect" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json at all\n")
    code, _, err = run(
        capsys, "investigate", str(bad), "--strict", "--no-report", "--out", str(tmp_path / "y")
    )
    assert code != 0
    assert "error:" in err
    from edgeinvestigate.cli._collect import collect
    from edgeinvestigate.cli._investigate import investigate

    shared = {p.name for p in collect.params} - {"listen"}
    assert shared <= {p.name for p in investigate.params}
    assert {"rules", "strict", "dlq", "dlq_mode", "since", "until", "workers_logs"} <= shared


def test_collect_stores_the_clusters_and_the_commands_read_them(
    incident: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "ev"
    code, stdout, err = run(capsys, "collect", *_inputs(incident), "--out", str(bundle))
    assert code == 0, err
    assert "error clusters" in stdout
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["derived"]["clusters"]["frames"]) == {
        "clusters",
        "cluster_rows",
        "cluster_dlq",
        "cluster_keys",
    }
    before = {p: p.stat().st_mtime_ns for p in bundle.rglob("*")}
    code, stdout, err = run(capsys, "clusters", str(bundle), "--format", "json")
    assert code == 0
    assert "note:" not in err
    assert json.loads(stdout)["clusters"]
    code, _, err = run(capsys, "analyze", str(bundle), "--format", "json")
    assert code == 0
    assert "note:" not in err
    assert {p: p.stat().st_mtime_ns for p in bundle.rglob("*")} == before  # a bundle is evidence

    # other rules: computed in memory, and said so
    rules = tmp_path / "rules.toml"
    rules.write_text('[[merge]]\nname = "all"\ntemplates = ["*"]\n')
    code, _, err = run(capsys, "clusters", str(bundle), "--rules", str(rules))
    assert code == 0
    assert "note: clusters computed in memory: the bundle's stored clusters were made with other rules" in err

    # a bundle of an older release (no derived frames): computed in memory, and said so
    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    shutil.rmtree(old / "derived")
    manifest.pop("derived")
    (old / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run(capsys, "clusters", str(old))
    assert code == 0
    assert "note: clusters computed in memory: this bundle holds no stored clusters" in err


def test_progress_only_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Progress().enabled is False  # stderr is captured here, not a terminal
    with Progress().step("quiet step", total=10) as bar:
        bar.update(5)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert Progress().enabled is True
    with Progress().step("loading 2 files", total=2048, unit="B") as bar:
        bar.update(1024)
    assert "loading 2 files" in capsys.readouterr().err
