"""Run the sandbox with uvicorn on a socket we bind ourselves (so ``--port 0`` gives a known port)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from edgeinvestigate.errors import SandboxError
from edgeinvestigate.sandbox._context import SandboxConfig
from edgeinvestigate.sandbox._endpoint import DropFilter
from edgeinvestigate.sandbox.app import API_PREFIX, create_app

__all__ = ["serve", "write_ready_file"]


def write_ready_file(path: Path, info: dict[str, Any]) -> None:
    """Write ``info`` as JSON atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


def check_ready_file(path: Path) -> None:
    """Refuse a ready file that cannot be written, before listening (a caller would wait forever)."""
    parent = path.parent
    if path.is_dir():
        raise SandboxError(
            f"--ready-file {path} is a directory", hint="name a file, e.g. --ready-file /tmp/sandbox.json"
        )
    if not parent.is_dir():
        raise SandboxError(
            f"cannot write the ready file {path}: its directory {parent} does not exist",
            hint=f"create it first (mkdir -p {parent}) or choose another --ready-file",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SandboxError(
            f"cannot write the ready file {path}: no permission to write in {parent}",
            hint="choose a --ready-file in a directory you can write",
        )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SandboxError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="pick another --port, or --port 0 for a free one",
        ) from exc
    sock.listen(256)
    sock.set_inheritable(True)
    return sock


async def _announce(
    server: uvicorn.Server, ready_file: Path | None, info: dict[str, Any], failed: list[OSError]
) -> None:
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.01)
    if ready_file is not None:
        try:
            write_ready_file(ready_file, info)
        except OSError as exc:  # checked before listening, but the directory may have gone since
            failed.append(exc)
            server.should_exit = True
            return
    print(
        f"edgeinvestigate sandbox listening on {info['url']} (pid {info['pid']})", file=sys.stderr, flush=True
    )


def serve(
    config: SandboxConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ready_file: Path | None = None,
    log_level: str = "warning",
    on_bound: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM.

    Writes ``{"url", "base", "pid", "port"}`` to ``ready_file`` once listening; a ready file that
    cannot be written is a :class:`SandboxError` before listening (or a stop right after).
    ``on_bound`` gets the same dict as soon as the port is bound (``port=0`` picks a free one)."""
    if ready_file is not None:
        check_ready_file(ready_file)
    sock = _bind(host, port)
    actual_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    base = f"http://{shown_host}:{actual_port}"
    config.public_base = base
    info = {"url": base + API_PREFIX, "base": base, "pid": os.getpid(), "port": actual_port}
    if on_bound is not None:
        on_bound(dict(info))
    try:
        app = create_app(config)  # opens the state database: a corrupt one is a SandboxError
    except BaseException:
        sock.close()
        raise
    uv_config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        ws_ping_interval=None,
    )
    server = uvicorn.Server(uv_config)
    logging.getLogger("uvicorn.error").addFilter(DropFilter())

    failed: list[OSError] = []

    async def main() -> None:
        announcer = asyncio.create_task(_announce(server, ready_file, info, failed))
        try:
            await server.serve(sockets=[sock])
        finally:
            announcer.cancel()

    try:
        asyncio.run(main())
    finally:
        sock.close()
    if failed:
        exc = failed[0]
        raise SandboxError(
            f"stopped: cannot write the ready file {ready_file}: {exc.strerror or exc}",
            hint="choose a --ready-file in a directory that exists and that you can write",
        ) from exc
