"""Reading one archive object as a stream into the Logpush parser: nothing is written to disk.

The body of a GetObject is read 64 KiB at a time, decompressed and cut into blocks of whole lines
like a local file (``files._reading``), and parsed by the same ``load_logpush``. A connection that
drops mid-body is resumed with a ranged GET from the byte where it stopped (``If-Match`` the listed
ETag, so a replaced object is never spliced). A truncated or corrupt gzip object is reported exactly
like a truncated local file: the records before the damage are loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from edgeinvestigate.errors import EdgeInvestigateError, LoadError, ServerError
from edgeinvestigate.models.load_report import FileReport
from edgeinvestigate.sources.archive._client import error_code, s3_error
from edgeinvestigate.sources.archive._listing import ArchiveObject
from edgeinvestigate.sources.archive._names import ArchiveURL
from edgeinvestigate.sources.files._context import FileContext
from edgeinvestigate.sources.files._logpush import load_logpush
from edgeinvestigate.sources.files._reading import (
    BLOCK_SIZE,
    GZIP_MAGIC,
    GZIP_READ_SIZE,
    _iter_gunzip,
    plain_despite_gz_name,
)

__all__ = ["ObjectStream", "iter_object_blocks", "load_object"]

log = logging.getLogger(__name__)

#: resumptions of one object's body after a dropped connection
MAX_RESUMES: Final = 4
#: errors of one object that fail that object only (listed in the report) instead of the load
OBJECT_CODES: Final = frozenset({"NoSuchKey", "PreconditionFailed", "InvalidRange", "InvalidObjectState"})


class ObjectFailed(Exception):
    """This object could not be read (gone, replaced, or failing after every retry); the others can."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _fatal_or_failed(err: EdgeInvestigateError) -> Exception:
    """Throttling, 5xx and dropped connections that outlived the retries fail this object only;
    credentials, permissions, the bucket and the endpoint fail the load (every object would fail)."""
    if isinstance(err, ServerError):
        return ObjectFailed(err.message)
    return err


class ObjectStream:
    """A read-only file-like view of one object's body that resumes after dropped connections and
    hashes what it reads (sha256, for the manifest)."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        obj: ArchiveObject,
        *,
        backoff: float = 0.5,
        stop: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.stop = stop
        self.bucket = bucket
        self.obj = obj
        self.pos = 0
        self.resumes = 0
        self.backoff = backoff
        self.sha256 = hashlib.sha256()
        self._body: Any = None

    def _open(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        kw: dict[str, Any] = {"Bucket": self.bucket, "Key": self.obj.key}
        if self.pos:
            kw["Range"] = f"bytes={self.pos}-"
            if self.obj.etag:
                kw["IfMatch"] = self.obj.etag
        try:
            self._body = self.client.get_object(**kw)["Body"]
        except ClientError as exc:
            code = error_code(exc)
            if code in OBJECT_CODES:
                raise ObjectFailed(
                    "the object was deleted after it was listed (NoSuchKey)"
                    if code == "NoSuchKey"
                    else f"the object changed while it was read ({code})"
                ) from exc
            raise _fatal_or_failed(
                s3_error(exc, self.client, "GetObject", self.bucket, self.obj.key)
            ) from exc
        except BotoCoreError as exc:
            raise _fatal_or_failed(
                s3_error(exc, self.client, "GetObject", self.bucket, self.obj.key)
            ) from exc

    def read(self, n: int = -1) -> bytes:
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError

        while True:
            if self.stop is not None and self.stop.is_set():
                raise ObjectFailed("the load stopped (another object failed)")
            try:
                if self._body is None:
                    self._open()
                data: bytes = self._body.read(n if n > 0 else None)
            except (BotoCoreError, HTTPError, OSError) as exc:
                # a dropped connection or a short body (botocore checks Content-Length): resume
                self._close()
                self.resumes += 1
                if self.resumes > MAX_RESUMES:
                    raise ObjectFailed(
                        f"the connection dropped {self.resumes} times while reading it, the last time "
                        f"at byte {self.pos} ({type(exc).__name__})"
                    ) from exc
                log.info("resuming %s at byte %d after %s", self.obj.key, self.pos, type(exc).__name__)
                time.sleep(self.backoff * 2 ** (self.resumes - 1))
                continue
            self.pos += len(data)
            self.sha256.update(data)
            return data

    def _close(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._body.close()
            self._body = None

    def close(self) -> None:
        self._close()


class _Prefixed:
    """A stream with some bytes already read put back in front."""

    def __init__(self, head: bytes, stream: ObjectStream) -> None:
        self.head = head
        self.stream = stream

    def read(self, n: int = -1) -> bytes:
        if self.head:
            data, self.head = self.head, b""
            return data
        return self.stream.read(n)


def iter_object_blocks(
    stream: ObjectStream, name: str, ctx: FileContext, block_size: int = BLOCK_SIZE
) -> Iterator[tuple[bytes, int]]:
    """Blocks of whole lines of one (possibly gzip) object, as ``files._reading.iter_line_blocks``
    yields them for a local file (line numbers 0: the Logpush parser counts lines itself)."""
    head = stream.read(64 * 1024)
    pieces: Iterator[bytes]
    if head[:2] == GZIP_MAGIC:
        pieces = _iter_gunzip(_Prefixed(head, stream), ctx, block_size)
    elif plain_despite_gz_name(Path(name), head[:64], ctx):
        plain = _Prefixed(head, stream)
        pieces = iter(lambda: plain.read(block_size), b"")
    else:
        return
    buf: list[bytes] = []
    size = 0
    for piece in pieces:
        buf.append(piece)
        size += len(piece)
        if size < block_size:
            continue
        data = b"".join(buf)
        cut = data.rfind(b"\n")
        if cut < 0:
            buf, size = [data], len(data)
            continue
        rest = data[cut + 1 :]
        buf, size = ([rest], len(rest)) if rest else ([], 0)
        yield data[: cut + 1], 0
    if buf:
        yield b"".join(buf), 0


def load_object(
    client: Any,
    url: ArchiveURL,
    obj: ArchiveObject,
    since_ms: int | None,
    until_ms: int | None,
    strict: bool,
    frames: tuple[str, ...],
    *,
    stop: threading.Event | None = None,
) -> tuple[dict[str, pa.Table] | None, FileReport, str | None]:
    """Stream and parse one object: ``(tables, report, None)``, or ``(None, report, reason)`` when
    the object could not be read (the report then says so). Errors that would fail every object
    (credentials, the bucket, the endpoint) and strict-mode parse errors are raised."""
    path = url.url(obj.key)
    mtime = int(obj.last_modified.timestamp() * 1e9) if obj.last_modified else 0
    report = FileReport(path=path, source="logpush", size=obj.size, mtime_ns=mtime)
    ctx = FileContext(
        path=path,
        source="logpush",
        since_ms=since_ms,
        until_ms=until_ms,
        strict=strict,
        frames=frames,
        report=report,
    )
    stream = ObjectStream(client, url.bucket, obj, stop=stop)
    try:
        tables = load_logpush(Path(obj.key), ctx, blocks=iter_object_blocks(stream, obj.key, ctx))
        with contextlib.suppress(ObjectFailed):  # then only the hash is of a prefix
            while stream.read(GZIP_READ_SIZE):  # the rest of a corrupt object: hashed, not parsed
                pass
    except ObjectFailed as exc:
        failed = FileReport(path=path, source="logpush", size=obj.size, mtime_ns=mtime)
        FileContext(path=path, source="logpush", report=failed).issue(
            "s3",
            f"could not be read: {exc.reason}; nothing of it was loaded",
            offset=stream.pos,
            expected="an object that stays readable while the archive is read",
        )
        if strict:
            raise LoadError(
                f"{path} could not be read: {exc.reason}",
                hint="run without --strict to list it in the load report and go on",
            ) from exc
        return None, failed, exc.reason
    finally:
        stream.close()
    report.sha256 = stream.sha256.hexdigest() if stream.pos >= obj.size else ""
    return tables, report, None
