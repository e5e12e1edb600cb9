"""Payload patches applied before a replay: RFC 7386 JSON merge patches or a Python function.

A merge patch is a JSON file merged into the whole job ``{type, payload, metadata}``: to fix the
poison field ``payload.to``, write ``{"payload": {"to": "user@example.com"}}``; ``null`` deletes a
key. A ``.py`` file must define ``def patch(message: dict) -> dict`` and return the fixed job (it
gets a copy; it may also change it in place and return it).

RFC 7386 is specified as a ten-line algorithm (section 2); it is implemented here as written
rather than adding a dependency for it, and tested against the RFC's appendix A examples.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeinvestigate.errors import ConfigError, ReplayError
from edgeinvestigate.replay._rewrite import sha256_hex

__all__ = ["Patch", "check_json", "diff", "load_patch", "merge_patch"]


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch (section 2, verbatim) and return the result."""
    if isinstance(patch, dict):
        result = dict(target) if isinstance(target, dict) else {}
        for name, value in patch.items():
            if value is None:
                result.pop(name, None)
            else:
                result[name] = merge_patch(result.get(name), value)
        return result
    return copy.deepcopy(patch)


@dataclass(frozen=True)
class Patch:
    """A loaded patch: ``kind`` is ``merge`` or ``python``; ``sha256`` identifies its content."""

    kind: str
    path: str
    sha256: str
    apply: Callable[[dict[str, Any]], dict[str, Any]]

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "path": self.path, "sha256": self.sha256}


def load_patch(path: str | Path) -> Patch:
    """Load a merge patch (``.json``) or a Python patch function (``.py``)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the patch file {p}: {exc.strerror}", hint="check --patch") from exc
    digest = sha256_hex(data)
    if p.suffix == ".py":
        return Patch("python", str(p), digest, _python_patch(p))
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ConfigError(
            f"{p}:{getattr(exc, 'lineno', '?')}: the patch is not valid JSON ({exc})",
            hint="--patch takes an RFC 7386 JSON merge patch (.json) or a .py file defining patch(message)",
        ) from exc
    if not isinstance(doc, dict):
        raise ConfigError(
            f'{p}: a merge patch for a job must be a JSON object like {{"payload": {{...}}}}',
            hint="see runbooks/replay-failed-jobs.md (patching the poison field)",
        )

    def apply(message: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = merge_patch(message, doc)
        return result

    return Patch("merge", str(p), digest, apply)


def _python_patch(path: Path) -> Callable[[dict[str, Any]], dict[str, Any]]:
    spec = importlib.util.spec_from_file_location(f"_ei_replay_patch_{sha256_hex(str(path))[:8]}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load the patch module {path}", hint="check --patch")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(
            f"{path}: the patch module failed to import: {exc!r}", hint="fix the patch file"
        ) from exc
    func = getattr(module, "patch", None)
    if not callable(func):
        raise ConfigError(
            f"{path} defines no function patch(message: dict) -> dict",
            hint="add def patch(message: dict) -> dict to the file",
        )

    def apply(message: dict[str, Any]) -> dict[str, Any]:
        arg = copy.deepcopy(message)
        try:
            out = func(arg)
        except Exception as exc:
            raise ReplayError(f"{path}: patch() raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(out, dict):
            raise ReplayError(f"{path}: patch() returned {type(out).__name__}, expected the job as a dict")
        check_json(out, f"{path}: patch()")
        return out

    return apply


def check_json(out: Any, where: str) -> None:
    """Raise ReplayError naming the offending type when ``out`` cannot be pushed as JSON."""
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ReplayError(f"{where} returned a job that is not JSON: {exc}") from exc


def diff(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """The changes between two JSON values as ``[{path, before, after}]`` (``path`` like ``payload.to``).

    A key that disappears has ``after`` missing; a new key has ``before`` missing.
    """
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in after:
                out.append({"path": sub, "before": before[key]})
            elif key not in before:
                out.append({"path": sub, "after": after[key]})
            else:
                out.extend(diff(before[key], after[key], sub))
        return out
    if before == after and type(before) is type(after):
        return []
    return [{"path": path or "$", "before": before, "after": after}]
