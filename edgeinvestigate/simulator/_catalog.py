"""The background noise of a healthy job system: errors that always happen a little, and chatter.

Each :class:`NoiseError` is a failure a consumer Worker sees now and then for some job types
(``"*"`` = every type) with a relative ``weight``; ``kind`` says what the consumer does with it:
``transient`` errors are retried with backoff, ``permanent`` ones are sent to the DLQ as
``{original, error}``. :data:`UNCAUGHT` are bugs outside the per-message ``try`` (the handler throws
after the messages were acked: outcome ``exception``, no message affected). :data:`CHATTER` are
plain-text ``console.*`` lines (``warn`` ones are clustered too, so they have true templates).

Several templates differ only in constant words on purpose (``502 Bad Gateway`` / ``504 Gateway
Timeout``; ``connection reset`` / ``connection refused``): grouping them together is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeinvestigate.simulator._values import Template

__all__ = ["CHATTER", "NOISE_ERRORS", "UNCAUGHT", "Chatter", "NoiseError"]


@dataclass(frozen=True)
class NoiseError:
    template: Template
    job_types: tuple[str, ...]  # ("*",) = all
    weight: float = 1.0


def _e(
    tid: str, spec: str, kind: str, types: str = "*", weight: float = 1.0, name: str = "Error"
) -> NoiseError:
    return NoiseError(Template(tid, spec, kind=kind, name=name), tuple(types.split()), weight)


IMG = "IMAGE_PROCESSING"
EMAIL = "EMAIL_DELIVERY"
REPORT = "REPORT_GENERATION"
SYNC = "DATA_SYNC"
HOOK = "WEBHOOK_PROCESSING"

NOISE_ERRORS: tuple[NoiseError, ...] = (
    # every job type
    _e("N001", "KV GET {path} failed: Network connection lost.", "transient", weight=3),
    _e("N002", "D1_ERROR: database is locked: SQLITE_BUSY (traceparent {traceparent})", "transient", weight=2),  # noqa: E501
    _e("N003", "Durable Object {hex64} reset because its code was updated.", "transient"),
    _e("N004", "Tenant {tenant} is suspended since {iso}; job {job} rejected", "permanent", weight=1.5),
    _e("N005", "Auth token for tenant {tenant} expired at {epoch}; refreshing", "transient"),
    _e(
        "N006",
        "Unexpected token {squoted} in JSON at position {int} of payload {uuid}",
        "permanent",
        name="SyntaxError",
    ),
    _e("N007", "R2 PUT {path} failed with status {status} (ray {ray})", "transient", weight=1.5),
    _e("N008", "Too many subrequests by single Worker invocation for job {job}", "transient", weight=0.5),
    # IMAGE_PROCESSING
    _e("N010", "Unsupported image format {imgformat} for object {path}", "permanent", IMG, 2),
    _e("N011", "R2 object {path} not found", "permanent", IMG, 2),
    _e("N012", "Image dimensions {int}x{int} exceed the limit of 12000 px for {uuid}", "permanent", IMG),
    _e("N013", "Image {hex16} decode failed: corrupt JPEG data: {int} extraneous bytes", "permanent", IMG),
    # EMAIL_DELIVERY
    _e("N020", "Mail provider rate limited request {uuid}: 429 Too Many Requests, retry after {small}s",
       "transient", EMAIL, 3),
    _e("N021", "Recipient {email} is on the suppression list (bounce at {iso})", "permanent", EMAIL, 2),
    _e("N022", "SMTP relay {ip4}:{port} connection reset after {ms}", "transient", EMAIL, 1.5),
    _e("N023", "SMTP relay {ip4}:{port} connection refused after {ms}", "transient", EMAIL, 1.0),
    _e("N024", "Invalid recipient address {quoted} for customer {customer}", "permanent", EMAIL),
    # REPORT_GENERATION
    _e("N030", "D1 query on {quoted} exceeded {ms} (rows read {big})", "transient", REPORT, 2),
    _e("N031", "Report {uuid} references unknown dataset {quoted}", "permanent", REPORT),
    _e("N032", "Export of report {uuid} to {path} failed: upload part {small} timed out after {secs}",
       "transient", REPORT),
    # DATA_SYNC
    _e("N040", "Upstream API {url} responded 502 Bad Gateway (request id {uuid})", "transient", SYNC, 2),
    _e("N041", "Upstream API {url} responded 504 Gateway Timeout (request id {uuid})", "transient", SYNC, 2),
    _e("N042", "Optimistic lock conflict on record {hex16} (version {int} != {int})", "transient", SYNC, 1.5),
    _e("N043", "Sync cursor {b64} rejected by upstream: cursor expired", "permanent", SYNC),
    _e("N044", "Partner API quota exhausted for customer {customer}: {big} of {big} calls used",
       "transient", SYNC),
    # WEBHOOK_PROCESSING
    _e("N050", "Webhook endpoint {url} returned 500 Internal Server Error after {ms}", "transient", HOOK, 3),
    _e("N051", "Webhook endpoint {url} returned 410 Gone", "permanent", HOOK, 1.5),
    _e("N052", "getaddrinfo ENOTFOUND {host}", "transient", HOOK, 1.5),
    _e("N053", "connect ECONNREFUSED {ip4}:{port}", "transient", HOOK, 1.5),
    _e("N054", "connect ECONNREFUSED [{ip6}]:{port}", "transient", HOOK, 0.7),
    _e("N055", "Signature verification failed for delivery {uuid}: expected sha256={hex64}", "permanent",
       HOOK),
    _e("N056", "TLS handshake with {host} failed: certificate has expired", "permanent", HOOK, 0.7),
    _e("N057", "TLS handshake with {host} failed: unable to verify the first certificate", "permanent",
       HOOK, 0.7),
    _e("N058", "Webhook endpoint {url} timed out after {secs} (cf-ray {ray})", "transient", HOOK, 2),
)  # fmt: skip

#: bugs outside the per-message try: the handler throws after every message was settled
UNCAUGHT: tuple[Template, ...] = (
    Template(
        "U001",
        "Cannot read properties of undefined (reading 'flush') in metrics sink {hex8}",
        kind="benign",
        name="TypeError",
    ),
    Template(
        "U002",
        "analytics write to {url} failed after {ms}",
        kind="benign",
        name="Error",
    ),
    Template(
        "U003",
        "The script will never generate a response for batch {uuid}",
        kind="benign",
        name="Error",
    ),
)


@dataclass(frozen=True)
class Chatter:
    template: Template
    level: str  # debug | info | log | warn
    job_types: tuple[str, ...]
    weight: float = 1.0


def _c(tid: str, spec: str, level: str, types: str = "*", weight: float = 1.0) -> Chatter:
    return Chatter(Template(tid, spec, kind="benign"), level, tuple(types.split()), weight)


CHATTER: tuple[Chatter, ...] = (
    _c("B001", "cache hit for {path}", "debug", weight=3),
    _c("B002", "cache miss for {path}, fetching from origin", "debug", weight=2),
    _c("B003", "fetched {int} records from {url} in {ms}", "info", SYNC, 3),
    _c("B004", "rendered template {quoted} for {email} in {ms}", "info", EMAIL, 3),
    _c("B005", "resized image {hex16} to {int}x{int} ({float} MB)", "info", IMG, 3),
    _c("B006", "report {uuid} has {big} rows, streaming to {path}", "info", REPORT, 2),
    _c("B007", "delivered webhook {uuid} to {host} with status 200 in {ms}", "info", HOOK, 3),
    _c("B008", "slow subrequest to {url}: {ms}", "warn", weight=1.5),
    _c("B009", "retrying KV write for key {path} (attempt {small})", "warn", weight=0.8),
    _c("B010", "deprecated field {quoted} in payload from tenant {tenant}", "warn", weight=0.8),
    _c("B011", "D1 query took {ms}, consider an index on {quoted}", "warn", REPORT, 1),
    _c("B012", "tenant {tenant} is close to its quota: {float} of limit used", "warn", weight=0.6),
    _c("B013", "backlog {int} messages, oldest {secs} old", "info", weight=1),
)
