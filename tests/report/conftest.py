"""Shared, session-scoped notebook executions: each notebook runs ONCE per test session.

Executing a notebook costs a kernel start plus the analysis, so every test of this folder reads the
same executed reports. The bundle is the bundled sample incident (bad deploy + dependency outage)
plus one hostile error line (script tags, an onerror image, an email, an IP and an auth header), and
a fake API token is set in the environment while the notebooks run: the tests then check that the
root cause is found, that the hostile text is shown as text, that PII is redacted, and that the
token appears nowhere.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.report.runner import NOTEBOOKS, NotebookRun, write_report

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(1)>"
HOSTILE_EMAIL = "mallory.victim@example.org"
HOSTILE_IP = "198.51.100.23"
HOSTILE_LINE = (
    f"Webhook target rejected payload {XSS_SCRIPT} {XSS_IMG} for {HOSTILE_EMAIL} "
    f"from {HOSTILE_IP} with Authorization: Bearer abcdefghijklmnopqrstuvwxyz"
)
FAKE_TOKEN = "eiTest" + secrets.token_hex(17)  # 40 chars, set as CLOUDFLARE_API_TOKEN during runs


@dataclasses.dataclass
class Executed:
    bundle: Path
    runs: dict[str, NotebookRun]
    token: str
    ground_truth: dict[str, object]

    def files(self) -> list[Path]:
        """Every file the report runs wrote."""
        found: set[Path] = set()
        for run in self.runs.values():
            found.update(p for p in run.out_dir.rglob("*") if p.is_file())
        return sorted(found)


def _sample_evidence() -> tuple[ei.Evidence, dict[str, object]]:
    sample = ei.sample_bundle()
    ev = sample if isinstance(sample, ei.Evidence) else ei.Evidence.open(sample)
    truth = dict(ev.manifest.get("ground_truth") or {})
    if not truth and not isinstance(sample, ei.Evidence):
        gt = Path(sample) / "ground_truth.json"
        if gt.is_file():
            truth = json.loads(gt.read_text())
    return ev, truth


def _with_hostile_line(ev: ei.Evidence) -> ei.Evidence:
    """Add one error (log line + exception) whose text is hostile HTML and PII, as the latest error."""
    inv = ev.invocations
    last = inv["ts"].max()
    row = inv.iloc[[-1]].copy()
    row["invocation_id"] = "hostile-invocation-0001"
    row["ts"] = last
    row["outcome"] = "exception"
    row["failed"] = True
    row["n_logs"] = 1
    row["n_exceptions"] = 1
    invocations = pd.concat([inv, row], ignore_index=True)
    log = ev.logs.iloc[[-1]].copy()
    for col in log.columns:
        log[col] = pd.NA if col not in ("ts",) else last
    log = log.assign(
        invocation_id="hostile-invocation-0001",
        level="error",
        message=HOSTILE_LINE,
        args=json.dumps([HOSTILE_LINE]),
        job_type="WEBHOOK_PROCESSING",
        job_id="hostile-job-0001",
    ).astype(ev.logs.dtypes.to_dict())
    logs = pd.concat([ev.logs, log], ignore_index=True)
    exc = ev.exceptions.iloc[[-1]].copy() if len(ev.exceptions) else None
    assert exc is not None, "the sample has exceptions"
    exc = exc.assign(
        invocation_id="hostile-invocation-0001", ts=last, name="Error", message=HOSTILE_LINE, stack=pd.NA
    ).astype(ev.exceptions.dtypes.to_dict())
    exceptions = pd.concat([ev.exceptions, exc], ignore_index=True)
    from edgeinvestigate.models.frames import conform

    return dataclasses.replace(
        ev,
        invocations=conform(invocations, "invocations"),
        logs=conform(logs, "logs"),
        exceptions=conform(exceptions, "exceptions"),
    )


@pytest.fixture(scope="session")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Executed]:
    """Run all five notebooks once on the (hostile) sample bundle, with a token in the environment."""
    root = tmp_path_factory.mktemp("notebooks")
    ev, truth = _sample_evidence()
    bundle = _with_hostile_line(ev).save(root / "bundle")
    runs: dict[str, NotebookRun] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLOUDFLARE_API_TOKEN", FAKE_TOKEN)
        for name in NOTEBOOKS:
            if name == "incident-report":
                continue
            # the bundle does not name the work queue its DLQ belongs to: dlq-replay plans only with a target
            params = {"to_queue": "jobs"} if name == "dlq-replay" else None
            runs[name] = write_report(bundle, root / name, notebook=name, parameters=params, progress=False)
        # the incident report goes through the CLI, as an on-call engineer runs it
        from edgeinvestigate.cli._main import main

        out = root / "incident-report"
        code = main(["report", str(bundle), "--out", str(out), "-p", "incident_id=INC-7", "--no-progress"])
        assert code in (None, 0)
        runs["incident-report"] = NotebookRun(
            notebook="incident-report",
            out_dir=out,
            ipynb=out / "incident-report.ipynb",
            html=out / "incident-report.html",
            findings=out / "findings.json",
            ok=True,
        )
    return Executed(Path(bundle), runs, FAKE_TOKEN, truth)


@dataclasses.dataclass(frozen=True)
class Hostile:
    script: str = XSS_SCRIPT
    img: str = XSS_IMG
    email: str = HOSTILE_EMAIL
    ip: str = HOSTILE_IP
    line: str = HOSTILE_LINE


@pytest.fixture(scope="session")
def hostile() -> Hostile:
    """The hostile strings planted in the bundle."""
    return Hostile()
