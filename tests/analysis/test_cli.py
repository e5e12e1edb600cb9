"""`edgeinvestigate clusters` and `edgeinvestigate analyze` on a saved evidence bundle."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeinvestigate.cli import cli, main
from edgeinvestigate.evidence.bundle import Evidence


@pytest.fixture
def bundle(small_evidence: Evidence, tmp_path: Path) -> Path:
    return small_evidence.save(tmp_path / "bundle")


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_clusters_table_json_csv(bundle: Path) -> None:
    code, out, _ = run("clusters", str(bundle))
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["cluster_id", "count", "share"]
    assert "TypeError: Cannot read properties of undefined (reading <quoted>)" in out
    code, out, _ = run("clusters", str(bundle), "--format", "json")
    data = json.loads(out)["clusters"]
    assert [c["count"] for c in data] == [15, 5]
    assert {"cluster_id", "template", "count", "share", "first_seen", "last_seen", "job_types", "scripts",
            "script_versions", "outcomes", "n_dlq_messages", "examples", "kind", "kind_rule"} <= set(data[0])  # fmt: skip  # noqa: E501
    code, out, _ = run("clusters", str(bundle), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2
    assert rows[0]["kind"] == "permanent"


def test_clusters_explain_and_rules(bundle: Path, tmp_path: Path) -> None:
    code, out, _ = run("clusters", str(bundle), "--explain", "dlq-1")
    assert code == 0
    assert "envelope_error" in out
    assert "<uuid>" in out
    code, out, _ = run("clusters", str(bundle), "--explain", "dlq-2", "--format", "json")
    assert json.loads(out)["join"] == "job_id"
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"merge": [{"name": "all", "templates": ["*"]}]}))
    code, out, _err = run("clusters", str(bundle), "--rules", str(rules), "--format", "json")
    assert code == 0
    assert len(json.loads(out)["clusters"]) == 1


def test_bad_rules_file_is_a_one_line_error(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[[split]]\nname = 'x'\n")
    with pytest.raises(SystemExit) as exc:
        main(["clusters", str(bundle), "--rules", str(rules)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"{rules}: rule split[0]" in err
    assert "hint:" in err


def test_analyze_text_json_out(bundle: Path, tmp_path: Path) -> None:
    code, out, _ = run("analyze", str(bundle))
    assert code == 0
    assert "1. [bad_deploy" in out
    assert "Timeline (UTC)" in out
    target = tmp_path / "out" / "findings.json"
    code, out, _err = run("analyze", str(bundle), "--format", "json", "--out", str(target))
    assert code == 0
    assert json.loads(out) == json.loads(target.read_text())
    assert json.loads(out)["hypotheses"][0]["kind"] == "bad_deploy"


def test_missing_bundle(tmp_path: Path) -> None:
    code, _, err = run("analyze", str(tmp_path / "nope"))
    assert code == 2
    assert "does not exist" in err


def test_help_texts() -> None:
    for cmd in ("clusters", "analyze"):
        code, out, _ = run(cmd, "--help")
        assert code == 0
        assert "BUNDLE" in out
        assert "--format" in out


def test_analyze_cli_on_an_empty_bundle(tmp_path: Path) -> None:
    bundle = Evidence.empty().save(tmp_path / "empty")
    res = CliRunner().invoke(cli, ["analyze", str(bundle)])
    assert res.exit_code == 0, res.output
    assert "The bundle is empty" in res.stdout
    assert "No hypothesis stands out" not in res.stdout
