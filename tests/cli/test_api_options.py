"""What a reviewer met following the README literally, against a real sandbox on 127.0.0.1.

A bare sandbox URL, a wrong token, an empty Workers Logs window, a tail on a script that does not
exist, and DLQ warnings printed three times: each now works or says what to check, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgeinvestigate._http import Secret
from edgeinvestigate.cli import main
from edgeinvestigate.cloudflare.client import CloudflareClient, normalize_api_url
from edgeinvestigate.errors import AuthError, NotFoundError
from edgeinvestigate.sandbox.testing import RunningSandbox, running_sandbox
from edgeinvestigate.simulator import simulate
from edgeinvestigate.simulator._scenario import DEFAULT_ACCOUNT_ID as SIMULATOR_ACCOUNT_ID

TOKEN = "reviewer-findings-token"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningSandbox, Path]]:
    """A sandbox holding the default incident moved to the last two hours (133 DLQ messages)."""
    tmp = tmp_path_factory.mktemp("reviewer")
    with running_sandbox(tmp, token=TOKEN) as sb:
        incident = tmp / "incident"
        summary = simulate(
            "default",
            incident,
            seed=3,
            invocations=1000,
            start="-2h",
            sandbox_url=sb.base,  # the root URL, as the README shows it
            token=Secret(TOKEN),
            formats=["dlq"],
        )
        assert summary.dlq_messages > 100  # more than a peek can see
        yield sb, incident


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, loaded: tuple[RunningSandbox, Path]) -> RunningSandbox:
    sb, incident = loaded
    account = json.loads((incident / "ground_truth.json").read_text())["account_id"]
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", account)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", sb.base)  # no /client/v4: accepted
    return sb


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_documented_account_id_is_the_simulators(loaded: tuple[RunningSandbox, Path]) -> None:
    _, incident = loaded
    assert json.loads((incident / "ground_truth.json").read_text())["account_id"] == SIMULATOR_ACCOUNT_ID
    for doc in ("README.md", "runbooks/README.md"):
        text = (Path(__file__).resolve().parents[2] / doc).read_text()
        assert SIMULATOR_ACCOUNT_ID in text, doc
        assert "--start -2h" in text, doc


# --- G: the API base URL ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8789", "http://127.0.0.1:8789/client/v4"),
        ("http://127.0.0.1:8789/", "http://127.0.0.1:8789/client/v4"),
        ("http://127.0.0.1:8789/client/v4/", "http://127.0.0.1:8789/client/v4"),
        ("https://api.cloudflare.com", "https://api.cloudflare.com/client/v4"),
        ("https://proxy.example/cf/client/v4", "https://proxy.example/cf/client/v4"),
        ("https://proxy.example/cf", "https://proxy.example/cf"),  # another path: kept as given
    ],
)
def test_normalize_api_url(given: str, expected: str) -> None:
    assert normalize_api_url(given) == expected


def test_root_url_of_the_sandbox_works(loaded: tuple[RunningSandbox, Path]) -> None:
    sb, _ = loaded
    with CloudflareClient(SIMULATOR_ACCOUNT_ID, TOKEN, api_url=sb.base) as client:
        assert client.api_url == sb.url
        assert [q["queue_name"] for q in client.list_queues("jobs-dlq")] == ["jobs-dlq"]


def test_a_url_with_another_path_says_it_should_end_in_client_v4(loaded: tuple[RunningSandbox, Path]) -> None:
    sb, _ = loaded
    client = CloudflareClient(SIMULATOR_ACCOUNT_ID, TOKEN, api_url=sb.base + "/v4")
    with client, pytest.raises(NotFoundError) as info:
        client.list_queues("jobs-dlq")
    assert "No route for the URI" in info.value.message
    assert info.value.hint is not None
    assert "must end in /client/v4" in info.value.hint
    assert "check the account id and the name" not in info.value.hint


# --- H: a wrong token is not a missing permission -----------------------------------------------


def test_wrong_token_says_invalid_not_permission(loaded: tuple[RunningSandbox, Path]) -> None:
    sb, _ = loaded
    client = CloudflareClient(SIMULATOR_ACCOUNT_ID, "not-the-token", api_url=sb.url)
    with client, pytest.raises(AuthError) as info:
        client.list_queues("jobs-dlq")
    assert 9109 in info.value.codes
    hint = info.value.hint or ""
    assert "invalid or expired" in hint
    assert "CLOUDFLARE_API_TOKEN" in hint
    assert "lacks a permission" not in hint
    assert "not-the-token" not in info.value.message + hint


def _answer(status: int, code: int, message: str) -> httpx.MockTransport:
    body = {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body))


@pytest.mark.parametrize(
    ("status", "code", "message", "needle", "absent"),
    [
        (403, 9109, "Invalid access token", "invalid or expired", "lacks a permission"),
        (
            401,
            9106,
            "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
            "invalid or expired",
            "lacks",
        ),
        (403, 10000, "Authentication error", "invalid or expired?", "lacks a permission"),
        (401, 10000, "Authentication error", "invalid or expired?", "lacks a permission"),
        # a real scope problem keeps the permission hint
        (403, 9999, "Unauthorized to access requested resource", "lacks a permission", "invalid or expired"),
    ],
)
def test_auth_hints_follow_the_error_code(
    status: int, code: int, message: str, needle: str, absent: str
) -> None:
    client = CloudflareClient(SIMULATOR_ACCOUNT_ID, "t0ken", transport=_answer(status, code, message))
    with client, pytest.raises(AuthError) as info:
        client.peek("f" * 32, batch_size=1)
    hint = info.value.hint or ""
    assert needle in hint
    assert absent not in hint
    if code in (10000, 9999):  # ambiguous or scope: names the permission the call needs
        assert "Queues Edit" in hint


# --- A / C / J: collect against the sandbox -----------------------------------------------------


def test_collect_warns_once_per_dlq_warning(
    env: RunningSandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "collect", "--dlq", "jobs-dlq", "--out", str(tmp_path / "ev"))
    assert code == 0, err
    both = out + err
    assert both.count("peek saw 100 of") == 1, both  # was: stdout note, bare stderr, stderr warning
    assert "warning: peek saw 100 of" in err
    manifest = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    notes = manifest["report"]["notes"] if "report" in manifest else []
    assert any("peek saw 100 of" in n for n in notes)  # kept for the report
    (collection,) = manifest["dlq_collections"]
    assert collection["complete"] is False
    assert collection["backlog_count"] > 100


def test_collect_warns_when_workers_logs_returns_nothing(
    env: RunningSandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "ev"
    code, out, err = run(
        capsys,
        "collect",
        "--workers-logs",
        "jobs-consumer",
        "--since",
        "2025-01-01T00:00Z",
        "--until",
        "2025-01-01T01:00Z",
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    assert err.count("Workers Logs returned 0 events for 'jobs-consumer'") == 1, err
    assert "2025-01-01T00:00:00+00:00 and 2025-01-01T01:00:00+00:00" in err
    assert "check the window" in err
    assert "CLOUDFLARE_ACCOUNT_ID" in err
    assert "returned 0 events" not in out  # shown once, on stderr
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert any("returned 0 events" in n for n in manifest.get("report", {}).get("notes", []))


def test_collect_in_the_window_gets_events_and_no_empty_warning(
    env: RunningSandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _out, err = run(
        capsys, "collect", "--workers-logs", "jobs-consumer", "--since", "-3h", "--out", str(tmp_path / "ev")
    )
    assert code == 0, err
    assert "returned 0 events" not in err
    rows = json.loads((tmp_path / "ev" / "manifest.json").read_text())["rows"]
    assert rows["invocations"] > 0


def test_unknown_queue_on_the_sandbox_names_the_simulator_account(
    env: RunningSandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        capsys, "collect", "--dlq", "jobs-dlq", "--account-id", "0" * 32, "--out", str(tmp_path / "ev")
    )
    assert code != 0
    assert "unknown queue name 'jobs-dlq'" in err
    assert "ground_truth.json" in err
    # the client does not know the simulator: the hint names the file and the variable to set
    assert "set CLOUDFLARE_ACCOUNT_ID (or --account-id) to that account_id" in err


# --- I: a tail that captured nothing ------------------------------------------------------------


def test_tail_of_nothing_warns(
    env: RunningSandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(
        capsys, "tail", "nosuch-script", "--duration", "0.5", "--out", str(tmp_path / "t.ndjson")
    )
    assert code == 0, err
    assert "captured 0 tail events" in out
    assert err.count("no tail events of 'nosuch-script' arrived in 0.5s") == 1, err
    assert "wrangler deployments list --name nosuch-script" in err


def test_help_of_dlq_mode_tells_the_attempt_cost(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "collect", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "every snapshot spends one of the DLQ pull consumer's max_retries" in text
    assert "pushed back as a new message" in text
    assert "refuses up front" in text
