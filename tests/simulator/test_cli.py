"""``edgeinvestigate simulate`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeinvestigate.cli import main


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    main(["simulate", "--list"])
    out = capsys.readouterr().out
    for name in ("default", "bad-deploy", "dependency-outage", "poison-payload", "cpu-limits"):
        assert name in out


def test_simulate_writes_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "incident"
    main(["simulate", "bad-deploy", "--out", str(out), "--seed", "5", "--invocations", "300"])
    printed = capsys.readouterr().out
    assert "bad-deploy-email-render" in printed
    assert str(out) in printed
    for rel in (
        "tail/tail.json",
        "traceitems/traceitems.jsonl",
        "workers_logs/events.json",
        "dlq/messages.json",
    ):
        assert (out / rel).is_file()
    assert list((out / "logpush").glob("*/*.log.gz"))
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["seed"] == 5
    assert truth["scenario"] == "bad-deploy"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["simulate", "default"], "--out DIR is required"),
        (["simulate"], "no SCENARIO"),
        (["simulate", "nope", "--out", "x"], "unknown scenario 'nope'"),
    ],
)
def test_errors_are_one_line_with_a_hint(
    args: list[str],
    needle: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "hint:" in err


def test_sandbox_without_a_token_fails_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDGEINVESTIGATE_SANDBOX_TOKEN", raising=False)
    out = tmp_path / "incident"
    with pytest.raises(SystemExit):
        main(["simulate", "default", "--out", str(out), "--sandbox", "http://127.0.0.1:9"])
    assert "EDGEINVESTIGATE_SANDBOX_TOKEN" in capsys.readouterr().err
    assert not out.exists()


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    rv = main(["simulate", "--help"])
    assert rv in (0, None)
    out = capsys.readouterr().out
    for opt in ("--out", "--seed", "--scale", "--invocations", "--sandbox", "--list", "--format", "--start"):
        assert opt in out
