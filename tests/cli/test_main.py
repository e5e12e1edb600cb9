"""The CLI's one error boundary (``cli/_main.py``): a bad argument, or a failure a reviewer probed, ends in a
one-line error with a hint, never a traceback (unless -vv or EDGEINVESTIGATE_DEBUG=1 asks for it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers.cli import run

from edgeinvestigate.cli import main
from edgeinvestigate.simulator import simulate


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("incident")
    simulate("default", out, seed=5, invocations=200, formats=["tail", "dlq"])
    return out


@pytest.fixture(scope="module")
def bundle(incident: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "ev"
    main(["collect", str(incident / "tail" / "tail.json"), "--out", str(out)])
    assert (out / "manifest.json").is_file()
    return out


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI as a subprocess, the way an on-call engineer does."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    full_env.pop("EDGEINVESTIGATE_DEBUG", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert lines[-1].startswith("hint: "), proc.stderr
    for needle in needles:
        assert needle in errors[0], proc.stderr


@pytest.mark.parametrize("under_a_file", [True, False], ids=["below-a-file", "in-proc"])
def test_report_output_path_that_cannot_be_created(
    bundle: Path, incident: Path, tmp_path: Path, under_a_file: bool
) -> None:
    target = str(incident / "tail" / "tail.json" / "sub") if under_a_file else "/proc/edgeinvestigate-x"
    proc = cli("report", str(bundle), "-o", target, cwd=tmp_path)
    assert_one_line_error(proc, "cannot read or write")
    assert ("Not a directory" in proc.stderr) if under_a_file else ("/proc/" in proc.stderr)


def test_collect_and_simulate_output_below_a_file(incident: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker.json"
    blocker.write_text("{}")
    proc = cli("collect", str(incident / "tail" / "tail.json"), "--out", str(blocker / "sub"), cwd=tmp_path)
    assert_one_line_error(proc, "cannot read or write", "blocker.json")
    assert blocker.read_text() == "{}"
    below = str(incident / "tail" / "tail.json" / "sub")
    proc = cli("simulate", "default", "--out", below, "--invocations", "50", cwd=tmp_path)
    assert_one_line_error(proc, "cannot read or write", "tail.json/sub", "Not a directory")
    assert "a part of the path is a file" in proc.stderr


def test_debug_switch_keeps_the_traceback(incident: Path, tmp_path: Path) -> None:
    below = str(incident / "tail" / "tail.json" / "sub")
    proc = cli("-vv", "simulate", "default", "--out", below, "--invocations", "50", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert "NotADirectoryError" in proc.stderr
    assert proc.stderr.strip().splitlines()[-2].startswith("error: cannot read or write")
    proc = cli(
        "simulate",
        "default",
        "--out",
        below,
        "--invocations",
        "50",
        cwd=tmp_path,
        env={"EDGEINVESTIGATE_DEBUG": "1"},
    )
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle", "command"),
    [
        (["clusters", "/nonexistent/bundle"], "'/nonexistent/bundle' does not exist", "clusters"),
        (["report", ".", "--out", "x", "--notebook", "nosuch"], "'nosuch' is not one of", "report"),
        (["collect", "--bogus"], "No such option '--bogus'", "collect"),
        (["replay", "plan", "."], "Missing option '--from'", "replay plan"),
    ],
)
def test_usage_errors_are_one_line_with_a_hint(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str, command: str
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("error: ")
    assert needle in lines[0]
    assert lines[1] == f"hint: `edgeinvestigate {command} --help` lists the arguments and options"
    assert "Usage:" not in err
    assert "Traceback" not in err
