"""A notebook run at DEBUG level (``-vv``) never logs cell outputs or credentials in clear text."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import edgeinvestigate as ei
from edgeinvestigate.report._kernel_logs import OUTPUT_PLACEHOLDER, redacted_kernel_logs
from edgeinvestigate.report.redact import Redactor
from edgeinvestigate.report.sample import sample_dir

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def test_kernel_records_are_filtered_while_a_notebook_runs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = "Zq" * 20
    papermill = logging.getLogger("papermill")
    with redacted_kernel_logs(Redactor(secrets=[token])):
        papermill.debug("content: %s", {"data": {"text/html": "<pre>mail bob@example.com</pre>"}})
        papermill.debug("content: {'execution_state': 'idle'}")
        logging.getLogger("traitlets").debug("Starting kernel with Authorization: Bearer %s", token)
    papermill.debug("after the run: %s", "carol@example.com")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == OUTPUT_PLACEHOLDER
    assert messages[1] == "content: {'execution_state': 'idle'}"
    assert token not in messages[2]
    assert "[redacted]" in messages[2] or "[secret]" in messages[2]
    # the filter is gone once the run is over
    assert messages[3] == "after the run: carol@example.com"


@pytest.mark.e2e
@pytest.mark.slow
def test_vv_report_of_dlq_replay_logs_no_payload(tmp_path: Path) -> None:
    sample = ei.sample_bundle()
    emails = {m for payload in sample.dlq["payload"].astype(str) for m in EMAIL.findall(payload)}
    assert emails, "the sample DLQ must hold e-mail addresses for this test to mean anything"
    token = "Tk" * 20
    env = {**os.environ, "CLOUDFLARE_API_TOKEN": token}
    bundle = sample_dir() / "bundle"
    proc = subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", "-vv", "report", str(bundle), "-n", "dlq-replay",
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "DEBUG papermill" in proc.stderr, "-vv must still show papermill's debug records"
    assert OUTPUT_PLACEHOLDER in proc.stderr
    leaked = sorted(e for e in emails if e in proc.stderr)
    assert leaked == [], f"e-mail addresses from DLQ payloads in the -vv log: {leaked[:3]}"
    assert token not in proc.stderr
