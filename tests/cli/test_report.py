"""``edgeinvestigate report``: a bad bundle or notebook parameter is refused before any kernel starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from _helpers.cli import run


def test_report_refuses_a_corrupt_manifest_before_running(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{broken")
    out = tmp_path / "report"
    code, _, err = run(capsys, "report", str(bad), "--out", str(out))
    assert code == 1
    assert err.splitlines()[0].startswith(f"error: cannot read {bad / 'manifest.json'}: ")
    assert "hint: re-create the bundle with `edgeinvestigate collect" in err
    assert not out.exists()  # no kernel started, no partial report
    (bad / "manifest.json").write_text("[1, 2]")
    code, _, err = run(capsys, "report", str(bad), "--out", str(out))
    assert code == 1
    assert "is not an evidence bundle manifest" in err


@pytest.mark.parametrize(
    ("param", "needle"),
    [
        ("nosuch=1", "unknown parameter 'nosuch'"),
        ("top_n=five", "top_n"),
        ("api_token=x", "secrets are never notebook parameters"),
        ("bundle=elsewhere", "give the bundle as the BUNDLE argument"),
    ],
)
def test_bad_notebook_parameter_is_a_bad_argument(
    capsys: pytest.CaptureFixture[str], bundle: Path, tmp_path: Path, param: str, needle: str
) -> None:
    code, _, err = run(capsys, "report", str(bundle), "--out", str(tmp_path / "r"), "-p", param)
    assert code == 2  # like every other bad argument
    assert err.startswith("error: ")
    assert needle in err.splitlines()[0]
    assert err.splitlines()[1].startswith("hint: ")
    assert not (tmp_path / "r").exists()
