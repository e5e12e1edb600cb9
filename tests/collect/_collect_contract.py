"""Validate requests/responses the client exchanges against Cloudflare's OpenAPI subset (openapi-core).

Uses ``edgeinvestigate.sandbox.contract`` when the sandbox provides it; this module is the fallback
so the collect tests do not depend on it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

SPEC = Path(__file__).resolve().parents[3] / "shared" / "reference" / "cloudflare-openapi-subset.json"
CF_HOST = "https://api.cloudflare.com"
CF_PREFIX = "/client/v4"


@functools.cache
def _openapi() -> OpenAPI:
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    # Cloudflare marks the id schemas readOnly and reuses them for path parameters, which
    # openapi-core then refuses to accept in a request. Inline them without readOnly for parameters.
    for item in spec["paths"].values():
        for op in item.values():
            for param in op.get("parameters", []) if isinstance(op, dict) else []:
                schema = param.get("schema", {})
                if "$ref" in schema:
                    schema = dict(schemas[schema["$ref"].rsplit("/", 1)[-1]])
                schema.pop("readOnly", None)
                param["schema"] = schema
    _drop_unmapped_discriminators(spec)
    return OpenAPI.from_dict(spec)


def _drop_unmapped_discriminators(node: object) -> None:
    """The telemetry ``calculations`` items use ``discriminator: {propertyName: operator}`` without a
    mapping, so a validator looks for a schema named after the value (``#/components/schemas/count``),
    which does not exist: a defect of the published spec. The ``oneOf`` still validates the shape."""
    if isinstance(node, dict):
        disc = node.get("discriminator")
        if isinstance(disc, dict) and "mapping" not in disc and "oneOf" in node:
            del node["discriminator"]
        for v in node.values():
            _drop_unmapped_discriminators(v)
    elif isinstance(node, list):
        for v in node:
            _drop_unmapped_discriminators(v)


def _mock_request(request: httpx.Request) -> MockRequest:
    path = request.url.path
    idx = path.find(CF_PREFIX)
    assert idx >= 0, f"request path {path} is not under {CF_PREFIX}"
    rel = path[idx:]
    body = request.content or None
    auth = request.headers.get("authorization", "")
    assert auth.startswith("Bearer "), "every API request must carry a bearer token"
    assert len(auth) > len("Bearer "), "the bearer token is empty"
    headers = dict(request.headers.items())
    # The subset's per-operation security lists api_email, api_key and api_token in ONE requirement
    # (a quirk of Cloudflare's spec: any of them works in reality). We authenticate with the bearer
    # token (checked above) and fill the other two so openapi-core checks everything else.
    headers.setdefault("x-auth-email", "unused@example.invalid")
    headers.setdefault("x-auth-key", "unused")
    return MockRequest(
        CF_HOST,
        request.method,
        rel,
        args=dict(parse_qsl(urlsplit(str(request.url)).query)),
        headers=headers,
        data=body,
        content_type=request.headers.get("content-type", "application/json"),
    )


def validate_request(request: httpx.Request) -> None:
    """Raise when ``request`` does not match an operation of the OpenAPI subset."""
    _openapi().validate_request(_mock_request(request))


def validate_response(request: httpx.Request, response: httpx.Response) -> None:
    """Raise when ``response`` does not match the operation's documented responses."""
    mock = MockResponse(
        response.content,
        status_code=response.status_code,
        content_type=response.headers.get("content-type", "application/json").split(";")[0],
    )
    _openapi().validate_response(_mock_request(request), mock)
