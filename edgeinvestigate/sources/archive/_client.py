"""The S3 client (boto3, the ``s3`` extra) and the translation of its errors into one-line errors.

Credentials and the endpoint come only from boto3's default chain: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the shared credentials and
config files, ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (R2:
``https://<ACCOUNT_ID>.r2.cloudflarestorage.com``), ``AWS_REGION`` / ``AWS_DEFAULT_REGION``. With an
endpoint other than AWS and no region, the region is ``auto`` (what R2 wants). No message built here
holds a credential: only the operation, bucket, key, endpoint and the server's error code.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Final
from urllib.parse import urlsplit

from edgeinvestigate.errors import (
    AuthError,
    ConfigError,
    EdgeInvestigateError,
    MissingExtraError,
    NotFoundError,
    ServerError,
)
from edgeinvestigate.sources.archive._names import RUNBOOK

__all__ = ["S3_EXTRA", "make_s3_client", "not_s3_error", "s3_error"]

log = logging.getLogger(__name__)

S3_EXTRA: Final = "s3"
#: tries per request (botocore's "standard" mode: exponential backoff with jitter on throttling
#: (SlowDown, 503), 500/502/504 and dropped connections)
MAX_ATTEMPTS: Final = 6
_AUTH_CODES: Final = {
    "AccessDenied": "access denied",
    "AllAccessDisabled": "all access to the bucket is disabled",
    "InvalidAccessKeyId": "the access key id is not known to this endpoint",
    "SignatureDoesNotMatch": "the secret access key does not match the access key id",
    "InvalidToken": "the session token is not valid",
    "Unauthorized": "unauthorized",
}
_EXPIRED_CODES: Final = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired", "RequestExpired"}
)
_RETRIED_CODES: Final = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling", "503", "500"}
)


def _import_boto3() -> Any:
    try:
        import boto3
        import botocore  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(S3_EXTRA, "reading Logpush archives from R2 or S3") from exc
    return boto3


def make_s3_client(connections: int = 4) -> Any:
    """A boto3 S3 client from the environment (see the module doc), with retries and a connection
    pool for ``connections`` parallel reads."""
    boto3 = _import_boto3()
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    try:
        session = boto3.session.Session()  # AWS_PROFILE, the environment, the shared files
        region = session.region_name
    except BotoCoreError as exc:  # ProfileNotFound and other configuration problems
        raise ConfigError(f"the AWS configuration cannot be used: {exc}", hint=f"see {RUNBOOK}") from exc

    def client(region_name: str | None, path_style: bool) -> Any:
        retries: dict[str, Any] = {"mode": os.environ.get("AWS_RETRY_MODE") or "standard"}
        if not os.environ.get("AWS_MAX_ATTEMPTS"):  # the AWS convention wins when set
            retries["total_max_attempts"] = MAX_ATTEMPTS
        cfg: dict[str, Any] = {
            "retries": retries,
            "max_pool_connections": max(10, connections + 2),
            "connect_timeout": 10,
            "read_timeout": 60,
            "tcp_keepalive": True,
            # what R2 documents for boto3 >= 1.36: checksums only where an operation needs them
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
            "user_agent_extra": "edgeinvestigate",
        }
        if path_style:
            cfg["s3"] = {"addressing_style": "path"}
        return session.client("s3", region_name=region_name, config=Config(**cfg))

    try:
        s3 = client(region, False)
        if not is_aws(s3.meta.endpoint_url):
            # R2 and other S3-compatible stores: path-style URLs work everywhere, region "auto"
            s3 = client(region or "auto", True)
    except BotoCoreError as exc:
        raise ConfigError(f"cannot set up the S3 client: {exc}", hint=f"see {RUNBOOK}") from exc
    return s3


def is_aws(endpoint_url: str) -> bool:
    host = urlsplit(endpoint_url).hostname or ""
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn")) or host == "amazonaws.com"


def endpoint_of(client: Any) -> str:
    """The endpoint for messages: scheme, host, port and path, never a ``user:password@`` part."""
    parts = urlsplit(str(client.meta.endpoint_url))
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return parts._replace(netloc=host).geturl()


def attempts(client: Any) -> int:
    """Tries per request of ``client`` (``AWS_MAX_ATTEMPTS`` or ours)."""
    retries = getattr(client.meta.config, "retries", None) or {}
    return int(retries.get("total_max_attempts") or retries.get("max_attempts") or MAX_ATTEMPTS)


def not_s3_error(client: Any, what: str, detail: str) -> ConfigError:
    """The endpoint answered, but not like S3 (a web server, a proxy's login page, a wrong port)."""
    return ConfigError(
        f"the endpoint {endpoint_of(client)} did not answer {what} like S3 ({detail})",
        hint="AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) must be the S3 API endpoint, for R2 "
        f"https://<ACCOUNT_ID>.r2.cloudflarestorage.com; unset it for AWS S3; see {RUNBOOK}",
    )


def s3_error(exc: Exception, client: Any, op: str, bucket: str, key: str = "") -> EdgeInvestigateError:
    """One error of this package for a botocore exception raised by ``op`` on ``bucket``/``key``."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        CredentialRetrievalError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    endpoint = endpoint_of(client)
    where = f"s3://{bucket}/{key}"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return ConfigError(
            f"no usable S3 credentials for {where} ({type(exc).__name__})",
            hint="export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (R2: an API token's S3 credentials), "
            f"or set AWS_PROFILE; credentials are never taken from an option; see {RUNBOOK}",
        )
    if isinstance(exc, ConnectionError):
        return ServerError(
            f"cannot reach the S3 endpoint {endpoint} for {op} {where}: {type(exc).__name__}",
            method=op,
            url=where,
            hint="check AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 and the network (tried "
            f"{attempts(client)} times); see {RUNBOOK}",
        )
    if not isinstance(exc, ClientError):
        return ServerError(
            f"{op} {where} at {endpoint} failed: {type(exc).__name__}: {exc}",
            method=op,
            url=where,
            hint=f"see {RUNBOOK}",
        )
    err = exc.response.get("Error", {})
    code = str(err.get("Code") or "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    said = f"HTTP {status} {code}".strip()
    kw: dict[str, Any] = {"status": status, "method": op, "url": where}
    if not code:
        return not_s3_error(client, op, f"HTTP {status} without an S3 error code")
    if code in _EXPIRED_CODES:
        return AuthError(
            f"the S3 credentials have expired ({said} on {op} {where})",
            hint="get fresh credentials (a new AWS_SESSION_TOKEN with its key pair, or a new R2 API token) "
            f"and run again; see {RUNBOOK}",
            **kw,
        )
    if code in _AUTH_CODES or status in (401, 403):
        why = _AUTH_CODES.get(code, "refused")
        return AuthError(
            f"S3 refused {op} on {where}: {why} ({said} at {endpoint})",
            hint="the credentials need list and read access to the bucket (R2: an API token with Object "
            f"Read on it; AWS: s3:ListBucket and s3:GetObject); see {RUNBOOK}",
            **kw,
        )
    if code == "NoSuchBucket":
        return NotFoundError(
            f"there is no bucket {bucket!r} at {endpoint} ({said})",
            hint="check the bucket name in the URL and the endpoint (R2: AWS_ENDPOINT_URL="
            "https://<ACCOUNT_ID>.r2.cloudflarestorage.com; an EU-jurisdiction bucket is only on "
            f"https://<ACCOUNT_ID>.eu.r2.cloudflarestorage.com); see {RUNBOOK}",
            **kw,
        )
    if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
        return ConfigError(
            f"{op} {where}: the bucket is in another region than the client's ({said})",
            hint=f"set AWS_REGION to the bucket's region (R2: auto); see {RUNBOOK}",
        )
    if code in _RETRIED_CODES or (isinstance(status, int) and status >= 500):
        return ServerError(
            f"{op} {where} at {endpoint} still failed after {attempts(client)} tries ({said})",
            hint=f"the store is throttling or failing; wait a minute and run again; see {RUNBOOK}",
            **kw,
        )
    message = str(err.get("Message") or "")
    return ServerError(
        f"{op} {where} at {endpoint} failed ({said}{': ' + message if message else ''})",
        hint=f"see {RUNBOOK}",
        **kw,
    )


def error_code(exc: Exception) -> str:
    """The S3 error code of a botocore ``ClientError`` (``""`` for other exceptions)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code") or "")
