"""``corpus()``: a large labelled corpus of log/error messages for the clustering benchmark.

Messages come from ``n_templates`` true templates (default 200) with variable parts of every kind
the masking must handle (uuids, hex ids, ints, floats, IPv4/IPv6, emails, URLs, paths, quoted
strings, ISO and epoch timestamps, durations, traceparents, ray ids, base64). Template frequencies
follow a Zipf law (a few templates dominate, a long tail is rare), and many templates differ only
in constant words (``502 Bad Gateway`` / ``504 Gateway Timeout``, ``reset`` / ``refused``, the
component prefix), so grouping accuracy measures something real.
"""

from __future__ import annotations

import numpy as np

from edgeinvestigate.simulator._catalog import CHATTER, NOISE_ERRORS, UNCAUGHT
from edgeinvestigate.simulator._values import Template

__all__ = ["corpus", "corpus_templates"]

_BASE: tuple[str, ...] = (
    "Cannot read properties of undefined (reading 'displayName') while rendering template {template} "
    "for {email}",
    "Image service returned 503 Service Unavailable for {url} (cf-ray {ray})",
    "fetch to {url} timed out after {ms}",
    'Invalid DATA_SYNC payload for job {job}: field "since" must be an ISO-8601 timestamp, got {quoted}',
    "Worker exceeded CPU time limit.",
    "Worker exceeded the 30 s wall-time limit for this invocation.",
    "upstream {host} responded 502 Bad Gateway after {ms}",
    "upstream {host} responded 503 Service Unavailable after {ms}",
    "upstream {host} responded 504 Gateway Timeout after {ms}",
    "job {job} failed on attempt {small} of 4: {quoted}",
    "job {job} succeeded on attempt {small} after {secs}",
    "user {email} logged in from {ip4}",
    "user {email} logged in from {ip6}",
    "user {email} failed to log in from {ip4}: bad password",
    "session {hex32} expired at {iso}",
    "session {hex32} refreshed at {iso}",
    "request {uuid} to {url} completed in {ms} with status 200",
    "request {uuid} to {url} completed in {ms} with status 404",
    "traceparent {traceparent} dropped: sampler rejected span",
    "cache eviction of {int} keys took {ms} on shard {small}",
    "wrote {big} bytes to {path} in {secs}",
    "read {big} bytes from {path} in {secs}",
    "checksum mismatch for {path}: expected {hex64}, got {hex64}",
    "payload {b64} is not valid UTF-8",
    "token {b64} was revoked at {epoch}",
    "rate limit exceeded for tenant {tenant}: {int} requests in {secs}",
    "rate limit reset for tenant {tenant} at {epoch}",
    "invoice {uuid} for customer {customer} is {float} EUR past due",
    "refund of {float} USD for charge ch_{hex16} failed: card_declined",
    "refund of {float} USD for charge ch_{hex16} failed: expired_card",
    "webhook {uuid} delivered to {url} on attempt {small}",
    "dns lookup for {host} returned {ip4} in {ms}",
    "dns lookup for {host} returned {ip6} in {ms}",
    "Durable Object {hex64} exceeded its memory limit",
    "Durable Object {hex64} was evicted after {secs} idle",
    "queue consumer received batch of {small} messages, backlog {int}",
    "queue consumer acked {small} messages and retried {small}",
    "config reloaded from {path}: {int} keys, version {hex8}",
    "feature flag {quoted} evaluated to true for {customer}",
    "feature flag {quoted} evaluated to false for {customer}",
    "slow query on table {quoted}: {ms}, {big} rows scanned",
    "deadlock detected on table {quoted} (tx {hex16} vs {hex16})",
    "certificate for {host} expires at {iso}",
    "certificate for {host} renewed until {iso}",
    "ray {ray}: origin unreachable at {ip4}:{port}",
    "ray {ray}: origin returned malformed headers",
    "R2 multipart upload {hex32} of {path} aborted after {small} parts",
    "R2 multipart upload {hex32} of {path} completed with {small} parts",
    "KV namespace {hex32} write for key {path} took {ms}",
    "D1 replica in {quoted} lagging by {secs}",
    "email to {email} bounced: mailbox full",
    "email to {email} bounced: domain does not exist",
    "email to {email} deferred by {ip4}: greylisted for {secs}",
    "image {hex16} resized from {int}x{int} to {int}x{int}",
    "image {hex16} rejected: {int}x{int} exceeds the pixel limit",
    "report {uuid} generated in {secs} ({big} rows)",
    "report {uuid} failed: dataset {quoted} missing",
    "sync cursor {b64} advanced to {iso}",
    "sync for {customer} paused: partner quota {big}/{big}",
)

# component prefixes: templates that differ only in this constant word
_COMPONENTS = (
    "billing",
    "images",
    "mailer",
    "reports",
    "sync",
    "webhooks",
    "auth",
    "gateway",
    "scheduler",
    "search",
)


def corpus_templates(n_templates: int = 200) -> list[Template]:
    """The ``n_templates`` true templates of :func:`corpus`, in template-id order."""
    specs: list[str] = []
    seen: set[str] = set()

    def add(spec: str) -> None:
        text = Template("check", spec).text  # distinct true templates, not just distinct specs
        if text not in seen:
            seen.add(text)
            specs.append(spec)

    for spec in _BASE:
        add(spec)
    for n in NOISE_ERRORS:
        add(n.template.spec)
    for t in UNCAUGHT:
        add(t.spec)
    for c in CHATTER:
        add(c.template.spec)
    k = 0
    pool = list(_BASE) + [n.template.spec for n in NOISE_ERRORS]
    while len(specs) < n_templates:
        comp = _COMPONENTS[k % len(_COMPONENTS)]
        base = pool[(k * 7) % len(pool)]
        add(f"[{comp}] {base}")
        k += 1
        if k > 100_000:  # pragma: no cover - only for absurd n_templates
            raise ValueError(f"cannot build {n_templates} distinct templates")
    return [Template(f"C{i:03d}", s) for i, s in enumerate(specs[:n_templates])]


def corpus(n: int, seed: int = 0, n_templates: int = 200) -> tuple[list[str], list[int]]:
    """``n`` messages and, for each, the id (0..n_templates-1) of its true template.

    Deterministic for a ``seed``; about a second per 300,000 messages.
    """
    if n < 0 or n_templates < 1:
        raise ValueError("n must be >= 0 and n_templates >= 1")
    templates = corpus_templates(n_templates)
    rng = np.random.default_rng([seed, 0xC0DE])
    # Zipf-like frequencies over a shuffled template order (so frequent ones are not all first)
    ranks = rng.permutation(n_templates) + 1
    weights = 1.0 / ranks**1.05
    counts = rng.multinomial(n, weights / weights.sum())
    msgs: list[str] = []
    ids: list[int] = []
    for tid, (t, c) in enumerate(zip(templates, counts.tolist(), strict=True)):
        if c:
            msgs.extend(t.render(rng, c))
            ids.extend([tid] * c)
    perm = rng.permutation(len(msgs)).tolist()
    return [msgs[i] for i in perm], [ids[i] for i in perm]
