"""The Tail Worker collector: Tail Worker POSTs of ``TraceItem[]`` -> TraceItem JSONL.

A Tail Worker (``tail(events)``) sends ``JSON.stringify(events)`` to this server; every accepted
POST becomes one line of ``out``: the array exactly as the runtime sent it (compact JSON), which
is the framing the ``traceitems`` loader reads (one array per line). Nothing is reformatted, so the
file is the runtime's own telemetry.

- ``POST`` (any path): the body must be a JSON array (of TraceItem objects) or one TraceItem
  object, which is stored as a one-element array. Answer ``204``. Anything else gets ``400`` and
  is kept, with the reason, in ``<out>.rejected.jsonl`` so that nothing sent is lost silently.
- ``GET /health``: ``{"ok": true, "lines": n, "rejected": n, "out": path}``.

The server is uvicorn + Starlette on a socket bound here with a listen backlog of ``backlog``
(256 by default): a burst of Tail Worker POSTs overflows the small stdlib default (5) and
connections get refused. Lines are appended under one lock and flushed as they arrive, so
concurrent POSTs never interleave and a crash loses at most the request in flight.

``serve_collector(host, port, out, ready_file=...)`` blocks until SIGINT/SIGTERM;
``edgeinvestigate collect --listen HOST:PORT --out FILE`` runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgeinvestigate.errors import ConfigError

__all__ = ["DEFAULT_BACKLOG", "MAX_BODY_BYTES", "CollectorSink", "bind_socket", "make_app", "serve_collector"]

log = logging.getLogger(__name__)

#: listen backlog of the collector socket (the stdlib default of 5 loses POSTs under load)
DEFAULT_BACKLOG = 256
#: largest POST accepted (a Tail Worker array is a few KB; workerd caps logs per invocation)
MAX_BODY_BYTES = 32 * 1024 * 1024


class CollectorSink:
    """Appends accepted arrays to ``out`` and refused bodies to ``<out>.rejected.jsonl``."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.rejected_path = self.out.with_name(self.out.name + ".rejected.jsonl")
        self.lines = 0
        self.rejected = 0
        self._lock = asyncio.Lock()
        self._fh: BinaryIO | None = None
        self._rej: BinaryIO | None = None

    def open(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.out.open("ab")
        if self.out.stat().st_size > 0:
            # continue an existing file: make sure the next line starts on its own line
            with self.out.open("rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    self._fh.write(b"\n")
                    self._fh.flush()

    def close(self) -> None:
        for fh in (self._fh, self._rej):
            if fh is not None:
                fh.close()
        self._fh = self._rej = None

    async def accept(self, raw: bytes) -> tuple[bool, str]:
        """Store one POST body. Returns ``(accepted, reason)``."""
        try:
            value = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            await self._reject(raw, f"not JSON: {exc}")
            return False, f"the body is not JSON: {exc}"
        if isinstance(value, dict):
            value = [value]
        elif not isinstance(value, list):
            reason = f"expected a JSON array of TraceItem objects, got {type(value).__name__}"
            await self._reject(raw, reason)
            return False, reason
        bad = next((i for i, item in enumerate(value) if not isinstance(item, dict)), None)
        if bad is not None:
            reason = f"item {bad} of the array is not a TraceItem object"
            await self._reject(raw, reason)
            return False, reason
        line = raw.strip()
        if b"\n" in line or b"\r" in line or not line.startswith(b"["):
            line = msgspec.json.encode(value)  # keep one array per line
        async with self._lock:
            assert self._fh is not None, "CollectorSink.open() was not called"
            self._fh.write(line + b"\n")
            self._fh.flush()
            self.lines += 1
        return True, ""

    async def _reject(self, raw: bytes, reason: str) -> None:
        record = {"reason": reason, "body": raw.decode("utf-8", errors="replace")}
        async with self._lock:
            if self._rej is None:
                self._rej = self.rejected_path.open("ab")
            self._rej.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
            self._rej.flush()
            self.rejected += 1
        log.warning("collector refused a POST: %s", reason)


def make_app(out: Path | str, *, ready_file: Path | str | None = None, url: str = "") -> Starlette:
    """The Starlette app of the collector, writing to ``out``.

    ``ready_file`` (if given) gets ``{"url", "pid", "out"}`` once the app has started.
    """
    sink = CollectorSink(Path(out))

    async def ingest(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return JSONResponse({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return JSONResponse({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
            chunks.append(chunk)
        ok, reason = await sink.accept(b"".join(chunks))
        if not ok:
            return JSONResponse({"error": reason}, status_code=400)
        return Response(status_code=204)

    async def health(request: Request) -> Response:
        return JSONResponse(
            {"ok": True, "lines": sink.lines, "rejected": sink.rejected, "out": str(sink.out)}
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sink.open()
        if ready_file is not None:
            _write_ready(Path(ready_file), {"url": url, "pid": os.getpid(), "out": str(sink.out)})
        try:
            yield
        finally:
            sink.close()

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/{path:path}", ingest, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.sink = sink
    return app


def _write_ready(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a file


def bind_socket(host: str, port: int, backlog: int = DEFAULT_BACKLOG) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0 picks a free one) with ``backlog``."""
    if not 0 <= port <= 65535:
        raise ConfigError(
            f"the collector cannot listen on {host}:{port}: the port must be between 0 and 65535",
            hint="pick another --listen HOST:PORT, e.g. --listen 127.0.0.1:8788 (port 0 picks a free one)",
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except (OSError, OverflowError) as exc:
        sock.close()
        raise ConfigError(
            f"the collector cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}",
            hint="pick another --listen HOST:PORT (port 0 picks a free one)",
        ) from exc
    sock.set_inheritable(True)
    return sock


def serve_collector(
    host: str,
    port: int,
    out: Path | str,
    *,
    ready_file: Path | str | None = None,
    backlog: int = DEFAULT_BACKLOG,
) -> None:
    """Run the collector on ``host:port`` until SIGINT/SIGTERM, appending to ``out``.

    ``port`` 0 picks a free port; the URL is written to ``ready_file`` (``{"url", "pid", "out"}``)
    once the server accepts requests.
    """
    import uvicorn

    if backlog < 1:
        raise ConfigError(f"the listen backlog must be at least 1, got {backlog}")
    sock = bind_socket(host, port, backlog)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}"
    app = make_app(out, ready_file=ready_file, url=url)
    # like any server's start line: where to point the Tail Worker (COLLECTOR_URL)
    print(f"collector listening on {url}/ ; appending TraceItem arrays to {out}", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        backlog=backlog,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
