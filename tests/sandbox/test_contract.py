"""The contract helper itself: it accepts what the spec allows and rejects what it does not."""

from __future__ import annotations

import json

import pytest

from edgeinvestigate.sandbox.contract import ContractError, load_spec, validate_request, validate_response

URL = "http://127.0.0.1:9/client/v4/accounts/0123456789abcdef0123456789abcdef/queues/00112233445566778899aabbccddeeff"


def test_shipped_spec_is_the_reference_copy(openapi_spec_path):
    assert load_spec() == json.loads(openapi_spec_path.read_text())


def test_requests():
    validate_request("POST", f"{URL}/messages", {"body": "hi", "content_type": "text"})
    validate_request(
        "POST", f"{URL}/messages", {"body": {"a": 1}, "content_type": "json", "delay_seconds": 5}
    )
    validate_request(
        "POST",
        f"{URL}/messages/ack",
        {"acks": [{"lease_id": "x"}], "retries": [{"lease_id": "y", "delay_seconds": 1}]},
    )
    with pytest.raises(ContractError) as err:
        validate_request("POST", f"{URL}/messages", {"body": 5, "content_type": "text"})
    assert "/client/v4/accounts/" in str(err.value)
    with pytest.raises(ContractError):
        validate_request("POST", f"{URL}/messages/purge", {"refs": [{}]})
    with pytest.raises(ContractError):
        validate_request("POST", f"{URL}/messages/pull", {"batch_size": "ten"})
    with pytest.raises(ContractError, match="not a Cloudflare API URL"):
        validate_request("GET", "http://127.0.0.1:9/__admin/state")


def test_responses():
    ok = {
        "success": True,
        "errors": [],
        "messages": [],
        "result": {"backlog_count": 1, "backlog_bytes": 3, "oldest_message_timestamp_ms": 5},
    }
    validate_response("GET", f"{URL}/metrics", 200, ok)
    with pytest.raises(ContractError):  # required metric missing
        validate_response("GET", f"{URL}/metrics", 200, ok | {"result": {"backlog_count": 1}})
    with pytest.raises(ContractError):  # messages are strings in the Queues envelope
        validate_response("GET", f"{URL}/metrics", 200, ok | {"messages": [{"message": "x"}]})
    failure = {"success": False, "errors": [{"code": 11000, "message": "Queue not found"}], "messages": []}
    validate_response("GET", URL, 404, failure)
    with pytest.raises(ContractError):  # codes are >= 1000
        validate_response("GET", URL, 404, failure | {"errors": [{"code": 7, "message": "x"}]})
    with pytest.raises(ContractError):  # pull bodies are strings
        validate_response(
            "POST",
            f"{URL}/messages/pull",
            200,
            {
                "success": True,
                "errors": [],
                "messages": [],
                "result": {"messages": [{"id": "a", "body": {"k": 1}}]},
            },
        )
    tele = "http://h/client/v4/accounts/a/workers/observability/telemetry/query"
    query = {"queryId": "q", "timeframe": {"from": 0, "to": 1}, "view": "events"}
    run = {
        "id": "r",
        "accountId": "a",
        "timeframe": {"from": 0, "to": 1},
        "userId": "u",
        "status": "COMPLETED",
        "granularity": 0,
        "dry": False,
        "query": {
            "id": "q",
            "name": "q",
            "description": None,
            "adhoc": True,
            "parameters": {},
            "created": "c",
            "createdBy": "u",
            "updated": "c",
            "updatedBy": "u",
        },
    }
    event = {"dataset": "cloudflare-workers", "timestamp": 1, "source": "s", "$metadata": {"id": "x"}}

    def body(ev):
        return {
            "success": True,
            "errors": [],
            "messages": [{"message": "Successful request"}],
            "result": {
                "statistics": {"elapsed": 0, "rows_read": 0, "bytes_read": 0},
                "run": run,
                "events": {"count": 1, "events": [ev]},
            },
        }

    validate_response("POST", tele, 200, body(event), request_body=query)
    with pytest.raises(ContractError):  # telemetry events forbid unknown top-level keys
        validate_response("POST", tele, 200, body(event | {"extra": 1}), request_body=query)


def test_missing_openapi_core_is_a_friendly_error(monkeypatch):
    import sys

    from edgeinvestigate.errors import MissingExtraError
    from edgeinvestigate.sandbox import contract

    contract._openapi.cache_clear()
    monkeypatch.setitem(sys.modules, "openapi_core", None)
    try:
        with pytest.raises(MissingExtraError) as err:
            contract.validate_response("GET", f"{URL}/metrics", 200, {})
        assert "edgeinvestigate[dev]" in str(err.value)
    finally:
        monkeypatch.undo()
        contract._openapi.cache_clear()
