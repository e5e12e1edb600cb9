"""Validate requests and responses against Cloudflare's OpenAPI subset (with openapi-core).

The spec ships with the package (``cloudflare-openapi-subset.json``, a copy of
``../shared/reference/cloudflare-openapi-subset.json``). Any URL works: everything after ``/client/v4`` is
matched against the spec's paths, whatever the host (the sandbox or api.cloudflare.com).

>>> url = f"{sb.url}/accounts/a/queues"
>>> validate_response("GET", url, resp.status_code, resp.content)  # doctest: +SKIP
>>> validate_request("POST", f"{url}/q/messages", {"body": "x", "content_type": "text"})  # doctest: +SKIP

openapi-core is a development dependency (``edgeinvestigate[dev]``); it is imported on first use.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from edgeinvestigate.errors import EdgeInvestigateError, MissingExtraError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "SPEC_FILE",
    "ContractError",
    "load_spec",
    "patched_spec",
    "validate_exchange",
    "validate_request",
    "validate_response",
]

SPEC_FILE = "cloudflare-openapi-subset.json"
_SPEC_HOST = "https://api.cloudflare.com"
_PREFIX = "/client/v4"


class ContractError(EdgeInvestigateError):
    """A request or response does not match Cloudflare's OpenAPI subset."""


def load_spec() -> dict[str, Any]:
    """The OpenAPI subset as a dict."""
    text = resources.files(__package__).joinpath(SPEC_FILE).read_text(encoding="utf-8")
    spec: dict[str, Any] = json.loads(text)
    return spec


def _drop_unmapped_discriminators(node: Any) -> None:
    if isinstance(node, dict):
        disc = node.get("discriminator")
        if isinstance(disc, dict) and "mapping" not in disc:
            del node["discriminator"]
        for value in node.values():
            _drop_unmapped_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            _drop_unmapped_discriminators(value)


def patched_spec() -> dict[str, Any]:
    """The spec with three quirks of the published file fixed (for validators and fuzzers)."""
    spec = load_spec()
    # Spec quirk: ``mq_identifier`` (used for the account_id/queue_id PATH parameters) is marked
    # ``readOnly``, which makes every request "write a read-only property". readOnly only matters
    # for requests, so dropping it changes nothing for responses.
    spec["components"]["schemas"]["mq_identifier"].pop("readOnly", None)
    # Spec quirk: the telemetry ``calculations`` items use ``discriminator: {propertyName: operator}``
    # without a mapping, so validators look for schemas named after the operator ("count") that do
    # not exist. ``oneOf`` alone says the same thing.
    _drop_unmapped_discriminators(spec)
    # Spec quirk: the Queues operations list ONE security requirement holding api_email AND api_key
    # AND api_token, i.e. all three at once. Cloudflare means "a token, or email + key" (as the
    # Workers operations of the same file say).
    either: list[dict[str, list[str]]] = [{"api_token": []}, {"api_email": [], "api_key": []}]
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("security") == [
                {"api_email": [], "api_key": [], "api_token": []}
            ]:
                op["security"] = either
    return spec


@lru_cache(maxsize=1)
def _openapi() -> Any:
    try:
        from openapi_core import Config, OpenAPI
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError("dev", "OpenAPI contract validation (openapi-core)") from exc
    spec = patched_spec()
    # The published spec is Cloudflare's; checking it costs a second per process and tells us nothing.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


def _split(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    path = parts.path
    idx = path.find(_PREFIX)
    if idx < 0:
        raise ContractError(f"{url}: not a Cloudflare API URL (no {_PREFIX} in the path)")
    return path[idx:], dict(parse_qsl(parts.query))


def _body_bytes(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def _mock_request(method: str, url: str, body: Any, headers: dict[str, str] | None) -> Any:
    from openapi_core.testing import MockRequest

    path, query = _split(url)
    hdrs = {k: v for k, v in (headers or {}).items()}
    # Auth is tested on its own: a placeholder keeps the security check quiet when the caller
    # passes no headers. The real Authorization header (if given) is never echoed anywhere.
    if not any(k.lower() == "authorization" for k in hdrs):
        hdrs["Authorization"] = "Bearer contract-check"
    return MockRequest(
        _SPEC_HOST,
        method.lower(),
        path,
        args=query,
        headers=hdrs,
        data=_body_bytes(body),
        content_type="application/json",
    )


def _raise(kind: str, method: str, url: str, errors: list[Exception]) -> None:
    details = []
    for err in errors:
        details.append(f"{type(err).__name__}: {err}")
        cause: BaseException | None = err
        while cause is not None:
            for sub in getattr(cause, "schema_errors", ()) or ():
                where = "/".join(str(p) for p in getattr(sub, "absolute_path", []))
                details.append(f"{getattr(sub, 'message', sub)} at /{where}")
            cause = cause.__cause__
    raise ContractError(
        f"{kind} {method.upper()} {_split(url)[0]} does not match the OpenAPI subset: "
        + "; ".join(details)[:4000],
        hint="compare with cloudflare-openapi-subset.json (reference section D/F)",
    )


def validate_request(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> None:
    """Raise :class:`ContractError` unless the request matches the spec (path, parameters, body)."""
    api = _openapi()
    request = _mock_request(method, url, body, headers)
    errors = list(api.iter_request_errors(request))
    if errors:
        _raise("request", method, url, errors)


def validate_response(
    method: str,
    url: str,
    status_code: int,
    body: Any,
    headers: dict[str, str] | None = None,
    *,
    request_body: Any = None,
) -> None:
    """Raise :class:`ContractError` unless the response (status + JSON body) matches the spec."""
    api = _openapi()  # raises MissingExtraError before any other openapi_core import
    from openapi_core.testing import MockResponse

    request = _mock_request(method, url, request_body, None)
    data = _body_bytes(body) or b""
    response = MockResponse(
        data, status_code=status_code, headers=headers or {}, content_type="application/json"
    )
    errors = list(api.iter_response_errors(request, response))
    if errors:
        _raise(f"response {status_code} to", method, url, errors)


def validate_exchange(response: httpx.Response, *, check_request: bool = False) -> None:
    """Validate an ``httpx.Response`` (and optionally its request) against the spec."""
    req = response.request
    content = req.content if req.content else None
    if check_request:
        validate_request(req.method, str(req.url), content, dict(req.headers))
    validate_response(req.method, str(req.url), response.status_code, response.content, request_body=content)
