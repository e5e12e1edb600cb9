"""Schema-driven fuzzing (schemathesis) of the running sandbox: no 5xx, responses match the spec."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from edgeinvestigate.sandbox.contract import patched_spec
from edgeinvestigate.sandbox.testing import running_sandbox

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ACCOUNT = "0123456789abcdef0123456789abcdef"
_CONSUMER = "/accounts/{account_id}/queues/{queue_id}/consumers/{consumer_id}"


def _with_consumer_update(spec: dict) -> dict:
    """The subset lacks ``PUT .../consumers/{id}`` (Cloudflare's API has it and so does the sandbox): add
    it, shaped like the ``cloudflare`` SDK's ``ConsumerUpdateParams``, so the fuzzer covers it too and the
    sandbox's ``Allow`` header (GET, HEAD, PUT) matches the schema."""
    number = {"type": "number"}
    worker_settings = ("batch_size", "max_concurrency", "max_retries", "max_wait_time_ms", "retry_delay")
    pull_settings = ("batch_size", "max_retries", "retry_delay", "visibility_timeout_ms")
    request = {
        "oneOf": [
            {
                "type": "object",
                "required": ["type", "script_name"],
                "properties": {
                    "type": {"enum": ["worker"]},
                    "script_name": {"type": "string"},
                    "dead_letter_queue": {"type": "string"},
                    "settings": {"type": "object", "properties": dict.fromkeys(worker_settings, number)},
                },
            },
            {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"enum": ["http_pull"]},
                    "dead_letter_queue": {"type": "string"},
                    "settings": {"type": "object", "properties": dict.fromkeys(pull_settings, number)},
                },
            },
        ]
    }
    item = spec["paths"][_CONSUMER]
    item["put"] = {
        **item["get"],
        "operationId": "queues-update-consumer",
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
    }
    return spec


schema = schemathesis.openapi.from_dict(_with_consumer_update(patched_spec()))


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    with running_sandbox(tmp_path_factory.mktemp("fuzz"), rate_limit="0") as sb:
        queue = sb.create_queue(
            ACCOUNT, "jobs", consumer={"type": "http_pull", "max_retries": 2, "dead_letter_queue": "jobs-dlq"}
        )
        sb.load_messages(ACCOUNT, "jobs", [{"body": {"type": "EMAIL_DELIVERY", "n": i}} for i in range(50)])
        yield sb, queue


@schema.parametrize()
@settings(
    # 10 (plus schemathesis' coverage phase) keeps the run well under a minute on a busy 2-core
    # machine; set EDGEINVESTIGATE_FUZZ_EXAMPLES=30 or more for a deeper run.
    max_examples=int(os.environ.get("EDGEINVESTIGATE_FUZZ_EXAMPLES", "10")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors_and_responses_match_the_spec(case, fuzz_target):
    sb, queue = fuzz_target
    # Half of the cases hit the real account/queue so the handlers (not only the 404 path) are fuzzed.
    if case.path_parameters and hash(repr(case.body)) % 2 == 0:
        if "account_id" in case.path_parameters:
            case.path_parameters["account_id"] = ACCOUNT
        if "queue_id" in case.path_parameters:
            case.path_parameters["queue_id"] = queue["queue_id"]
        if "consumer_id" in case.path_parameters:
            case.path_parameters["consumer_id"] = queue["consumers"][0]["consumer_id"]
    case.call_and_validate(
        base_url=sb.url,
        headers={"Authorization": f"Bearer {sb.token}"},
        excluded_checks=[
            schemathesis.checks.positive_data_acceptance,
            schemathesis.checks.negative_data_rejection,
        ],
    )
