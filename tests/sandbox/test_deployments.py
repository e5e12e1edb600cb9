"""Worker deployments against a real sandbox process, through Cloudflare's own Python SDK (``cloudflare``,
generated from Cloudflare's OpenAPI: the subset the other sandbox tests validate against lacks these
routes) and through edgeinvestigate's client."""

from __future__ import annotations

import time

import cloudflare
import pytest

from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.errors import NotFoundError

pytestmark = pytest.mark.e2e

V141 = "11111111-1111-4111-8111-111111111111"
V142 = "22222222-2222-4222-8222-222222222222"
V143 = "33333333-3333-4333-8333-333333333333"


@pytest.fixture
def cf(sandbox):
    with cloudflare.Cloudflare(api_token=sandbox.token, base_url=sandbox.url, max_retries=0) as client:
        yield client


def _load(sandbox, account: str, script: str = "jobs-consumer", **extra) -> dict:
    history = [
        {"version_id": V141, "created_on": "2026-11-24T14:00:00Z", "message": "consumer: structured logs"},
        {"version_id": V142, "created_on": "2026-11-27T14:45:00Z", "message": "email: new render pipeline"},
    ]
    r = sandbox.admin.post(
        f"/__admin/accounts/{account}/scripts/{script}/deployments", json={"deployments": history, **extra}
    )
    assert r.status_code == 200, r.text
    return r.json()["result"]


def _listed(cf, account: str, script: str = "jobs-consumer") -> list:
    page = cf.workers.scripts.deployments.list(script, account_id=account)
    return page.result.deployments  # the SDK pages over result.items; this route answers result.deployments


def test_sdk_lists_loaded_deployments_newest_first(sandbox, cf, account) -> None:
    assert _load(sandbox, account) == {"loaded": 2, "script_name": "jobs-consumer"}
    raw = cf.workers.scripts.deployments.with_raw_response.list("jobs-consumer", account_id=account)
    envelope = raw.http_response.json()
    assert envelope["success"] is True
    assert envelope["errors"] == []
    deployments = envelope["result"]["deployments"]
    assert [d["versions"][0]["version_id"] for d in deployments] == [V142, V141]
    first = deployments[0]
    assert first["strategy"] == "percentage"
    assert first["versions"] == [{"percentage": 100.0, "version_id": V142}]
    assert first["created_on"].startswith("2026-11-27T14:45:00")
    assert first["annotations"]["workers/message"] == "email: new render pipeline"
    assert first["annotations"]["workers/triggered_by"] == "upload"
    assert {"id", "source", "author_email"} <= set(first)
    assert [d["versions"][0]["version_id"] for d in _listed(cf, account)] == [V142, V141]


def test_sdk_rollback_is_a_new_deployment_of_an_older_version(sandbox, cf, account) -> None:
    _load(sandbox, account)
    created = cf.workers.scripts.deployments.create(
        "jobs-consumer",
        account_id=account,
        strategy="percentage",
        versions=[{"version_id": V141, "percentage": 100}],
        annotations={"workers_message": "roll back v142"},
    )
    assert created.versions[0].version_id == V141
    assert created.annotations is not None
    assert created.annotations.workers_message == "roll back v142"
    listed = _listed(cf, account)
    assert [d["versions"][0]["version_id"] for d in listed] == [V141, V142, V141]
    assert listed[0]["id"] == created.id
    # a gradual deployment of two versions
    split = cf.workers.scripts.deployments.create(
        "jobs-consumer",
        account_id=account,
        strategy="percentage",
        versions=[{"version_id": V142, "percentage": 10}, {"version_id": V141, "percentage": 90}],
    )
    assert {v.version_id: v.percentage for v in split.versions} == {V142: 10.0, V141: 90.0}


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ([{"version_id": V143, "percentage": 100}], "is not a version of 'jobs-consumer'"),
        ([{"version_id": V141, "percentage": 50}], "add up to 100"),
        ([{"version_id": V141, "percentage": 0}, {"version_id": V142, "percentage": 100}], "above 0"),
        ([{"version_id": V141, "percentage": 50}, {"version_id": V141, "percentage": 50}], "listed twice"),
        ([], "1 or 2"),
    ],
)
def test_sdk_bad_deployments_are_refused(sandbox, cf, account, versions, expected) -> None:
    _load(sandbox, account)
    with pytest.raises(cloudflare.BadRequestError) as caught:
        cf.workers.scripts.deployments.create(
            "jobs-consumer", account_id=account, strategy="percentage", versions=versions
        )
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["success"] is False
    assert expected in body["errors"][0]["message"]
    assert len(_listed(cf, account)) == 2  # nothing was deployed


def test_unknown_script_is_a_404_with_code_10007(sandbox, cf, account) -> None:
    with pytest.raises(cloudflare.NotFoundError) as caught:
        cf.workers.scripts.deployments.list("jobs-consumr", account_id=account)
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["errors"][0]["code"] == 10007
    assert "'jobs-consumr'" in body["errors"][0]["message"]
    with pytest.raises(cloudflare.NotFoundError):
        cf.workers.scripts.deployments.create(
            "jobs-consumr",
            account_id=account,
            strategy="percentage",
            versions=[{"version_id": V141, "percentage": 100}],
        )


def test_admin_load_replaces_the_history_and_checks_it(sandbox, cf, account) -> None:
    _load(sandbox, account)
    url = f"/__admin/accounts/{account}/scripts/jobs-consumer/deployments"
    again = sandbox.admin.post(
        url, json={"deployments": [{"version_id": V143, "created_ms": 1_700_000_000_000}]}
    )
    assert again.status_code == 200
    assert [d["versions"][0]["version_id"] for d in _listed(cf, account)] == [V143]
    for body, expected in [
        ({"deployments": [{"version_id": V141}]}, "needs created_on"),
        ({"deployments": [{"version_id": V141, "created_on": "yesterday"}]}, "needs created_on"),
        ({"deployments": [{"created_ms": 1}]}, "version_id must be a version id"),
        ({"deployments": [{"version_id": V141, "created_ms": 1, "message": 7}]}, "message must be a string"),
        ({"items": []}, 'send {"deployments"'),
    ]:
        r = sandbox.admin.post(url, json=body)
        assert r.status_code == 400, body
        assert expected in r.json()["errors"][0]["message"]
    bad_name = sandbox.admin.post(
        f"/__admin/accounts/{account}/scripts/..%2Fetc/deployments", json={"deployments": []}
    )
    assert bad_name.status_code in (400, 404)
    upper = sandbox.admin.post(
        f"/__admin/accounts/{account}/scripts/Jobs/deployments", json={"deployments": []}
    )
    assert upper.status_code == 400
    assert "not a valid Worker name" in upper.json()["errors"][0]["message"]
    assert [d["versions"][0]["version_id"] for d in _listed(cf, account)] == [V143]


def test_edgeinvestigate_client_lists_deployments(sandbox, account) -> None:
    _load(sandbox, account)
    with CloudflareClient(account_id=account, token=sandbox.secret, api_url=sandbox.url) as client:
        listed = client.list_deployments("jobs-consumer")
        assert [d["versions"][0]["version_id"] for d in listed] == [V142, V141]
        with pytest.raises(NotFoundError) as caught:
            client.list_deployments("jobs-consumr")
    assert "jobs-consumr" in str(caught.value)


def test_deployments_after_the_sandbox_clock_are_not_made_yet(sandbox, cf, account, clock) -> None:
    now = int(time.time() * 1000)
    history = [
        {"version_id": V141, "created_ms": now - 3_600_000},
        {"version_id": V142, "created_ms": now + 3_600_000},
    ]
    r = sandbox.admin.post(
        f"/__admin/accounts/{account}/scripts/jobs-consumer/deployments", json={"deployments": history}
    )
    assert r.status_code == 200
    assert [d["versions"][0]["version_id"] for d in _listed(cf, account)] == [V141]
    clock(2 * 3_600_000)
    assert [d["versions"][0]["version_id"] for d in _listed(cf, account)] == [V142, V141]
