"""CloudflareClient against httpx.MockTransport: config, name resolution, errors, retries, rate limits.

Every request the client sends is validated against the OpenAPI subset by the Recorder transport.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from _helpers.api import ACCOUNT, TOKEN, Recorder, fail, ok
from _helpers.incident import TOKEN as SANDBOX_TOKEN

from edgeinvestigate._http import Secret
from edgeinvestigate.cloudflare.client import (
    DEFAULT_API_URL,
    CloudflareClient,
    RateLimitState,
    normalize_api_url,
)
from edgeinvestigate.errors import (
    APIError,
    AuthError,
    ConfigError,
    NotFoundError,
    RateLimitedError,
    ServerError,
)
from edgeinvestigate.sandbox.testing import RunningSandbox
from edgeinvestigate.simulator._scenario import DEFAULT_ACCOUNT_ID as SIMULATOR_ACCOUNT_ID

QID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def make(handler, *, sleeps: list[float] | None = None, **kw) -> tuple[CloudflareClient, Recorder]:
    rec = Recorder(handler)
    sl = sleeps if sleeps is not None else []
    client = CloudflareClient(
        ACCOUNT,
        Secret(TOKEN),
        api_url="http://cf.test/client/v4",
        transport=rec.transport(),
        sleep=sl.append,
        **kw,
    )
    return client, rec


def queue(name: str, qid: str) -> dict:
    return {
        "queue_id": qid,
        "queue_name": name,
        "created_on": "2026-11-20T10:00:00.000000Z",
        "modified_on": "2026-11-20T10:00:00.000000Z",
        "producers": [],
        "producers_total_count": 0,
        "consumers": [],
        "consumers_total_count": 0,
        "settings": {"delivery_delay": 0, "delivery_paused": False, "message_retention_period": 345600},
    }


# ---------------------------------------------------------------- configuration


def test_from_env_reads_wrangler_variables_and_hides_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", "http://127.0.0.1:9/client/v4/")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok({"backlog_count": 0, "backlog_bytes": 0, "oldest_message_timestamp_ms": 0})

    client = CloudflareClient.from_env(transport=httpx.MockTransport(handler))
    assert client.account_id == ACCOUNT
    assert client.api_url == "http://127.0.0.1:9/client/v4"
    assert TOKEN not in repr(client)
    assert TOKEN not in str(client)
    assert TOKEN not in repr(vars(client))
    client.metrics(QID)
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert str(seen[0].url) == f"http://127.0.0.1:9/client/v4/accounts/{ACCOUNT}/queues/{QID}/metrics"


def test_default_base_url_and_explicit_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "envaccount")
    c = CloudflareClient.from_env()
    assert c.api_url == DEFAULT_API_URL
    assert c.account_id == "envaccount"
    c2 = CloudflareClient.from_env(api_url="http://x.test/client/v4", account_id=ACCOUNT)
    assert c2.api_url == "http://x.test/client/v4"
    assert c2.account_id == ACCOUNT
    c.close()
    c2.close()


def test_token_file_is_read_and_never_shown(tmp_path: Path) -> None:
    tf = tmp_path / "token"
    tf.write_text(f"  {TOKEN}\n\n", encoding="utf-8")
    captured: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request.headers["authorization"])
        return ok([])

    c = CloudflareClient.from_env(
        account_id=ACCOUNT, token_file=tf, transport=httpx.MockTransport(handler), environ={}
    )
    c.list_queues()
    assert captured == [f"Bearer {TOKEN}"]


@pytest.mark.parametrize(
    ("environ", "token_file", "needle"),
    [
        ({"CLOUDFLARE_ACCOUNT_ID": ACCOUNT}, None, "CLOUDFLARE_API_TOKEN is not set"),
        ({"CLOUDFLARE_API_TOKEN": TOKEN}, None, "CLOUDFLARE_ACCOUNT_ID is not set"),
        ({"CLOUDFLARE_ACCOUNT_ID": ACCOUNT}, "missing", "cannot read the token file"),
        ({"CLOUDFLARE_ACCOUNT_ID": ACCOUNT}, "empty", "is empty"),
        (
            {
                "CLOUDFLARE_API_TOKEN": TOKEN,
                "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
                "CLOUDFLARE_API_BASE_URL": "ftp://x",
            },
            None,
            "is not an http(s) URL",
        ),
    ],
)
def test_configuration_errors_are_clear(tmp_path: Path, environ, token_file, needle) -> None:
    path = None
    if token_file == "missing":
        path = tmp_path / "nope"
    elif token_file == "empty":
        path = tmp_path / "empty"
        path.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        CloudflareClient.from_env(token_file=path, environ=environ)
    assert needle in str(info.value)
    assert info.value.hint
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize("bad", ["\n", "\u00e9", "\x00"])
def test_a_token_that_is_no_header_value_is_a_clear_error_without_the_token(bad: str) -> None:
    token = TOKEN[:10] + bad + TOKEN[10:]
    with pytest.raises(ConfigError) as info:
        CloudflareClient(ACCOUNT, Secret(token), transport=httpx.MockTransport(lambda r: ok([])))
    assert "not a valid HTTP header value" in str(info.value)
    assert "CLOUDFLARE_API_TOKEN" in info.value.hint
    for text in (str(info.value), repr(info.value)):
        assert TOKEN[:10] not in text
        assert TOKEN[10:] not in text


# ---------------------------------------------------------------- queue names


def test_queue_id_uses_name_filter_and_exact_match_and_caches() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["name"] == "jobs-dlq"
        # a server that filters by prefix: the exact match must win
        return ok(
            [queue("jobs-dlq-old", "f" * 32), queue("jobs-dlq", QID)],
            result_info={"page": 1, "per_page": 100, "count": 2, "total_count": 2, "total_pages": 1},
        )

    client, rec = make(handler)
    assert client.queue_id("jobs-dlq") == QID
    assert client.queue_id("jobs-dlq") == QID
    assert len(rec.requests) == 1
    assert client.queue_name(QID) == "jobs-dlq"


def test_queue_id_pages_through_when_name_filter_is_ignored() -> None:
    pages = {
        1: [queue(f"q{i}", f"{i:032x}") for i in range(100)],
        2: [queue(f"q{i}", f"{i:032x}") for i in range(100, 200)],
        3: [queue("jobs-dlq", QID), queue("zzz", "e" * 32)],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        return ok(
            pages[page],
            result_info={
                "page": page,
                "per_page": 100,
                "count": len(pages[page]),
                "total_count": 202,
                "total_pages": 3,
            },
        )

    client, rec = make(handler)
    assert client.queue_id("jobs-dlq") == QID
    # first the filtered listing (ignored by this server, no exact match on its 3 pages? it is on page 3)
    assert [r.url.params.get("page") for r in rec.requests] == ["1", "2", "3"]


def test_queue_paging_without_result_info_stops() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return ok([queue("a", "1" * 32)])  # ignores page, no result_info

    client, rec = make(handler)
    assert [q["queue_name"] for q in client.list_queues()] == ["a"]
    assert len(rec.requests) == 1


def test_unknown_queue_name_is_a_clear_not_found() -> None:
    client, _ = make(lambda r: ok([queue("other", "1" * 32)], result_info={"total_pages": 1}))
    with pytest.raises(NotFoundError) as info:
        client.queue_id("jobs-dlq")
    msg = str(info.value)
    assert "unknown queue name 'jobs-dlq'" in msg
    assert "wrangler queues list" in msg


# ---------------------------------------------------------------- errors


def test_401_is_auth_error_with_codes_and_scope_hint() -> None:
    client, _ = make(lambda r: fail(401, 10000, "Authentication error"))
    with pytest.raises(AuthError) as info:
        client.peek(QID)
    err = info.value
    assert err.status == 401
    assert err.codes == (10000,)
    assert "Authentication error" in err.message
    assert "[10000]" in err.message
    assert "Queues Edit" in err.hint
    assert "CLOUDFLARE_API_TOKEN" in err.hint
    assert TOKEN not in str(err)
    assert TOKEN not in repr(err)
    assert TOKEN not in err.url


def test_403_on_telemetry_names_observability_permission() -> None:
    client, rec = make(lambda r: fail(403, 10000, "Forbidden: missing permission"))
    with pytest.raises(AuthError) as info:
        client.telemetry_query({"queryId": "q", "timeframe": {"from": 0, "to": 1}, "view": "events"})
    assert "Workers Observability" in info.value.hint
    assert len(rec.requests) == 1  # auth errors are never retried


def test_404_on_a_queue_names_it_and_says_how_to_list() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/queues"):
            return ok([queue("jobs-dlq", QID)], result_info={"total_pages": 1})
        return fail(404, 11000, "Queue does not exist")

    client, _ = make(handler)
    qid = client.queue_id("jobs-dlq")
    with pytest.raises(NotFoundError) as info:
        client.metrics(qid)
    assert "queue 'jobs-dlq'" in info.value.message
    assert info.value.codes == (11000,)
    assert "wrangler queues list" in info.value.hint


def test_429_is_retried_for_reads_honouring_retry_after() -> None:
    answers = iter(
        [
            fail(429, 10429, "Rate limited", {"Retry-After": "7", "Ratelimit": '"default";r=0;t=7'}),
            ok(
                {"messages": []},
            ),
        ]
    )
    sleeps: list[float] = []
    client, rec = make(lambda r: next(answers), sleeps=sleeps)
    assert client.peek(QID) == {"messages": []}
    assert len(rec.requests) == 2
    assert 7.0 in sleeps


def test_429_on_push_is_never_retried() -> None:
    client, rec = make(lambda r: fail(429, 10429, "Rate limited", {"Retry-After": "3"}))
    with pytest.raises(RateLimitedError) as info:
        client.push(QID, {"type": "EMAIL_DELIVERY"})
    assert info.value.retry_after == 3.0
    assert "retry after 3s" in info.value.hint
    assert len(rec.requests) == 1


def test_429_with_a_long_retry_after_raises_at_once() -> None:
    client, rec = make(lambda r: fail(429, 10429, "Rate limited", {"Retry-After": "290"}), max_retry_wait=60)
    with pytest.raises(RateLimitedError) as info:
        client.metrics(QID)
    assert info.value.retry_after == 290.0
    assert len(rec.requests) == 1


def test_5xx_reads_are_retried_then_raise_server_error() -> None:
    sleeps: list[float] = []
    client, rec = make(lambda r: fail(502, 10013, "Bad gateway"), sleeps=sleeps, max_attempts=3)
    with pytest.raises(ServerError) as info:
        client.pull(QID, batch_size=10, visibility_timeout_ms=60_000)
    assert len(rec.requests) == 3
    assert len(sleeps) == 2
    assert info.value.status == 502
    assert info.value.codes == (10013,)


@pytest.mark.parametrize("call", ["ack", "push_batch", "purge_refs", "purge_queue", "create_tail"])
def test_unsafe_requests_are_sent_exactly_once(call: str) -> None:
    client, rec = make(lambda r: fail(500, 10001, "Internal error"))
    calls = {
        "ack": lambda: client.ack(QID, acks=["l1"], retries=["l2"]),
        "push_batch": lambda: client.push_batch(QID, [{"body": {"a": 1}, "content_type": "json"}]),
        "purge_refs": lambda: client.purge_refs(QID, ["r1"]),
        "purge_queue": lambda: client.purge_queue(QID),
        "create_tail": lambda: client.create_tail("jobs-consumer"),
    }
    with pytest.raises(ServerError):
        calls[call]()
    assert len(rec.requests) == 1


def test_dropped_connection_and_timeout_become_server_errors() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if request.url.path.endswith("/peek") and calls["n"] == 1:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        if request.url.path.endswith("/messages"):
            raise httpx.ReadTimeout("timed out", request=request)
        return ok({"messages": []})

    client, rec = make(handler)
    assert client.peek(QID) == {"messages": []}  # retried after the drop
    with pytest.raises(ServerError) as info:
        client.push(QID, {"a": 1})
    assert "timed out" in info.value.message
    assert sum(1 for r in rec.requests if r.url.path.endswith("/messages")) == 1


def test_non_json_and_success_false_answers() -> None:
    client, _ = make(lambda r: httpx.Response(200, text="<html>login</html>"), max_attempts=1)
    with pytest.raises(ServerError) as info:
        client.metrics(QID)
    assert "not JSON" in info.value.message
    assert "/client/v4" in info.value.hint
    client2, _ = make(
        lambda r: httpx.Response(200, json={"success": False, "errors": [{"code": 1001, "message": "bad"}]})
    )
    with pytest.raises(APIError) as info2:
        client2.metrics(QID)
    assert info2.value.codes == (1001,)


def test_400_maps_to_api_error_with_detail() -> None:
    client, _ = make(
        lambda r: httpx.Response(
            400,
            json={
                "success": False,
                "errors": [{"message": "Invalid query", "detail": "limit too big"}],
                "messages": [],
            },
        )
    )
    with pytest.raises(APIError) as info:
        client.telemetry_query({"queryId": "q", "timeframe": {"from": 0, "to": 1}, "view": "events"})
    assert type(info.value) is APIError
    assert "Invalid query: limit too big" in info.value.message


# ---------------------------------------------------------------- rate limits


def test_rate_limit_headers_are_tracked() -> None:
    client, _ = make(
        lambda r: httpx.Response(
            200,
            json={"success": True, "errors": [], "messages": [], "result": []},
            headers={"Ratelimit": '"default";r=1187;t=212', "Ratelimit-Policy": '"default";q=1200;w=300'},
        )
    )
    assert client.rate_limit == RateLimitState()
    client.list_queues()
    rl = client.rate_limit
    assert (rl.limit, rl.remaining, rl.reset_s, rl.window_s) == (1200, 1187, 212.0, 300.0)
    assert "1187 requests left of 1200/300s" in str(rl)


def test_exhausted_budget_waits_before_the_next_request() -> None:
    answers = iter(
        [
            httpx.Response(
                200,
                json={"success": True, "errors": [], "messages": [], "result": []},
                headers={"Ratelimit": '"default";r=0;t=5', "Ratelimit-Policy": '"default";q=1200;w=300'},
            ),
            ok([]),
        ]
    )
    sleeps: list[float] = []
    client, _ = make(lambda r: next(answers), sleeps=sleeps)
    client.list_queues()
    client.list_queues()
    assert sleeps
    assert 4.0 < sleeps[0] <= 5.0


# ---------------------------------------------------------------- request shapes


def test_request_bodies_match_the_reference(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/tails") and request.method == "POST":
            return ok({"id": "t" * 32, "url": "wss://tail.test/abc", "expires_at": "2026-11-28T12:00:00Z"})
        if path.endswith("/ack"):
            return ok({"ackCount": 1, "retryCount": 1, "warnings": {}})
        return ok({})

    caplog.set_level(logging.DEBUG)
    client, rec = make(handler)
    client.pull(QID, batch_size=100, visibility_timeout_ms=120_000)
    client.ack(QID, acks=["lease-a"], retries=["lease-b", {"lease_id": "lease-c", "delay_seconds": 30}])
    client.extend(QID, ["lease-a"], 60_000)
    client.peek(QID, 100)
    client.purge_refs(QID, ["ref-1"])
    client.push(QID, "plain text", content_type="text", delay_seconds=5)
    client.push_batch(QID, [{"body": {"type": "DATA_SYNC"}, "content_type": "json"}])
    client.purge_queue(QID)
    client.purge_status(QID)
    client.get_queue(QID)
    client.list_consumers(QID)
    tail = client.create_tail("jobs-consumer", [{"outcome": ["exception"]}, {"sampling_rate": 0.5}])
    client.list_tails("jobs-consumer")
    client.delete_tail("jobs-consumer", tail["id"])
    bodies = [
        (r.method, r.url.path.rsplit("/", 1)[-1], json.loads(r.content) if r.content else None)
        for r in rec.requests
    ]
    assert bodies[0] == ("POST", "pull", {"batch_size": 100, "visibility_timeout_ms": 120_000})
    assert bodies[1][2] == {
        "acks": [{"lease_id": "lease-a"}],
        "retries": [
            {"lease_id": "lease-b", "delay_seconds": 0},
            {"lease_id": "lease-c", "delay_seconds": 30},
        ],
    }
    assert bodies[2][2] == {"extend": [{"lease_id": "lease-a"}], "visibility_timeout_ms": 60_000}
    assert bodies[4][2] == {"refs": [{"ref": "ref-1"}]}
    assert bodies[5][2] == {"body": "plain text", "content_type": "text", "delay_seconds": 5}
    assert bodies[7][2] == {"delete_messages_permanently": True}
    assert bodies[11][2] == {"filters": [{"outcome": ["exception"]}, {"sampling_rate": 0.5}]}
    assert bodies[13][0] == "DELETE"
    assert TOKEN not in caplog.text
    assert any("/messages/pull -> 200" in m for m in caplog.messages)


def test_push_batch_refuses_more_than_100() -> None:
    client, rec = make(lambda r: ok({}))
    with pytest.raises(ConfigError):
        client.push_batch(QID, [{"body": {"i": i}, "content_type": "json"} for i in range(101)])
    assert rec.requests == []


def test_refused_connection_says_so_and_is_retried_for_reads() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    sleeps: list[float] = []
    client, rec = make(handler, sleeps=sleeps)
    with pytest.raises(ServerError) as info:
        client.list_queues()
    assert "could not connect" in info.value.message
    assert "--api-url" in info.value.hint
    assert len(rec.requests) == 4
    assert len(sleeps) == 3


def test_the_contract_check_is_real() -> None:
    """The Recorder's OpenAPI check rejects what the spec forbids (so the passing tests mean something)."""
    from _helpers.contract import validate_request

    from edgeinvestigate.sandbox.contract import ContractError

    url = f"http://cf.test/client/v4/accounts/{ACCOUNT}/queues/{QID}/messages"
    with pytest.raises(ContractError):
        validate_request(
            httpx.Request(
                "POST",
                url,
                json={"body": [1, 2], "content_type": "json"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        )
    with pytest.raises(ContractError):
        validate_request(
            httpx.Request(
                "POST",
                url + "/pull",
                json={"batch_size": "ten"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        )
    with pytest.raises(AssertionError):
        validate_request(httpx.Request("POST", url + "/pull", json={"batch_size": 10}))


# --- the API base URL: a bare sandbox URL gets /client/v4 -----------------------------------------


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


def test_root_url_of_the_sandbox_works(incident_sandbox: tuple[RunningSandbox, Path]) -> None:
    sb, _ = incident_sandbox
    with CloudflareClient(SIMULATOR_ACCOUNT_ID, SANDBOX_TOKEN, api_url=sb.base) as client:
        assert client.api_url == sb.url
        assert [q["queue_name"] for q in client.list_queues("jobs-dlq")] == ["jobs-dlq"]


def test_a_url_with_another_path_says_it_should_end_in_client_v4(
    incident_sandbox: tuple[RunningSandbox, Path],
) -> None:
    sb, _ = incident_sandbox
    client = CloudflareClient(SIMULATOR_ACCOUNT_ID, SANDBOX_TOKEN, api_url=sb.base + "/v4")
    with client, pytest.raises(NotFoundError) as info:
        client.list_queues("jobs-dlq")
    assert "No route for the URI" in info.value.message
    assert info.value.hint is not None
    assert "must end in /client/v4" in info.value.hint
    assert "check the account id and the name" not in info.value.hint


# --- a wrong token is not a missing permission ----------------------------------------------------


def test_wrong_token_says_invalid_not_permission(incident_sandbox: tuple[RunningSandbox, Path]) -> None:
    sb, _ = incident_sandbox
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
