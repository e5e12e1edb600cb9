"""Validate what the client exchanges against Cloudflare's OpenAPI subset.

Delegates to :mod:`edgeinvestigate.sandbox.contract` (openapi-core over the shipped copy of
``cloudflare-openapi-subset.json``, with the spec's three known quirks patched) and adds one check
of ours: every request carries a non-empty bearer token.
"""

from __future__ import annotations

import httpx

from edgeinvestigate.sandbox import contract


def validate_request(request: httpx.Request) -> None:
    """Raise when ``request`` does not match an operation of the OpenAPI subset."""
    auth = request.headers.get("authorization", "")
    assert auth.startswith("Bearer "), "every API request must carry a bearer token"
    assert len(auth) > len("Bearer "), "the bearer token is empty"
    contract.validate_request(
        request.method, str(request.url), request.content or None, dict(request.headers)
    )


def validate_response(request: httpx.Request, response: httpx.Response) -> None:
    """Raise when ``response`` does not match the operation's documented responses."""
    contract.validate_response(
        request.method,
        str(request.url),
        response.status_code,
        response.content,
        request_body=request.content or None,
    )
