"""``collect --workers-logs`` with a script name that has no events: say which Workers have events in
the window, refuse a likely typo ("did you mean"), and never cost the normal path a request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _helpers.cli import run

from edgeinvestigate._http import Secret
from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.evidence.collect import collect
from edgeinvestigate.sandbox.testing import RunningSandbox, running_sandbox
from edgeinvestigate.simulator import simulate

pytestmark = pytest.mark.e2e

TOKEN = "unknown-script-token"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningSandbox, str]]:
    tmp = tmp_path_factory.mktemp("typo")
    with running_sandbox(tmp, token=TOKEN) as sb:
        summary = simulate(
            "default", tmp / "incident", seed=3, invocations=400, start="-2h", sandbox_url=sb.base,
            token=Secret(TOKEN), formats=["dlq"],
        )  # fmt: skip
        yield sb, json.loads(summary.ground_truth.read_text())["account_id"]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, loaded: tuple[RunningSandbox, str]) -> tuple[RunningSandbox, str]:
    sb, account = loaded
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", account)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", sb.url)
    return sb, account


def test_a_typo_is_refused_with_did_you_mean_and_nothing_written(
    env: tuple[RunningSandbox, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sb, account = env
    dlq_before = sb.queue_state(account, "jobs-dlq")["stats"]
    out_dir = tmp_path / "ev"
    code, _out, err = run(
        capsys,
        "collect",
        "--workers-logs",
        "jobs-consumr",
        "--dlq",
        "jobs-dlq",
        "--since",
        "-3h",
        "--out",
        str(out_dir),
    )
    assert code == 2, err
    assert "did you mean 'jobs-consumer'?" in err
    assert "jobs-consumer (" in err
    assert "jobs-api (" in err
    assert "hint: run the same collect with --workers-logs jobs-consumer" in err
    assert "Traceback" not in err
    assert not out_dir.exists()  # no empty bundle
    assert sb.queue_state(account, "jobs-dlq")["stats"] == dlq_before  # the DLQ was not touched


def test_a_name_close_to_nothing_warns_with_the_workers_that_have_events(
    env: tuple[RunningSandbox, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _out, err = run(
        capsys, "collect", "--workers-logs", "payments", "--since", "-3h", "--out", str(tmp_path / "ev")
    )
    assert code == 0, err
    assert "Workers Logs returned 0 events for 'payments'" in err
    assert "Workers with events in this window: jobs-consumer (" in err
    assert "did you mean" not in err


def test_an_empty_window_says_no_worker_has_events(
    env: tuple[RunningSandbox, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _out, err = run(
        capsys, "collect", "--workers-logs", "jobs-consumr", "--since", "2025-01-01T00:00Z",
        "--until", "2025-01-01T01:00Z", "--out", str(tmp_path / "ev"),
    )  # fmt: skip
    assert code == 0, err  # nothing to match a typo against: the window is the likely cause
    assert "no Worker has events in this window" in err


def test_the_check_costs_one_request_and_only_on_the_empty_path(env: tuple[RunningSandbox, str]) -> None:
    sb, account = env
    with CloudflareClient(account_id=account, token=Secret(TOKEN), api_url=sb.url) as client:
        ev = collect(workers_logs=["jobs-consumer"], since="-3h", client=client)
        pages = ev.manifest["sources"][0]["pages"]
        assert client.requests_sent == pages  # the normal path: the event pages, nothing more
        assert len(ev.logs) > 0
    with CloudflareClient(account_id=account, token=Secret(TOKEN), api_url=sb.url) as client:
        with pytest.raises(ConfigError) as caught:
            collect(workers_logs=["jobs-consumr"], since="-3h", client=client)
        assert client.requests_sent == 2  # the empty page, then the one facet query
    assert "did you mean 'jobs-consumer'?" in caught.value.message
