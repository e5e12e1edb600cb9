"""Helpers shared by the simulator tests (imported via the conftest's sys.path entry)."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path
from typing import Any

from edgeinvestigate.simulator import SimulationSummary


class Run:
    """One simulation written to disk, with its ground truth parsed."""

    def __init__(self, summary: SimulationSummary) -> None:
        self.summary = summary
        self.out = summary.out
        self.truth: dict[str, Any] = json.loads((self.out / "ground_truth.json").read_text(encoding="utf-8"))

    def tail_events(self) -> list[dict[str, Any]]:
        return concatenated_objects((self.out / "tail" / "tail.json").read_text(encoding="utf-8"))

    def trace_arrays(self) -> list[list[dict[str, Any]]]:
        lines = (self.out / "traceitems" / "traceitems.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def logpush_files(self) -> list[Path]:
        return sorted((self.out / "logpush").rglob("*"))

    def logpush_records(self) -> list[dict[str, Any]]:
        out = []
        for p in self.logpush_files():
            if p.is_file():
                out.extend(json.loads(line) for line in gzip.decompress(p.read_bytes()).splitlines())
        return out

    def wl_events(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = json.loads(
            (self.out / "workers_logs" / "events.json").read_text("utf-8")
        )
        return data

    def dlq(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.out / "dlq" / "messages.json").read_text(encoding="utf-8"))
        return data


def concatenated_objects(text: str) -> list[dict[str, Any]]:
    """Parse back-to-back JSON objects the way the reference says (raw_decode, skipping whitespace)."""
    dec = json.JSONDecoder()
    pos, out = 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        obj, pos = dec.raw_decode(text, pos)
        out.append(obj)


def decode_dlq_body(msg: dict[str, Any]) -> Any:
    assert msg["metadata"]["CF-Content-Type"] == "json"
    body = msg["body"]
    assert isinstance(body, str)
    try:
        return json.loads(body)
    except ValueError:
        return json.loads(base64.b64decode(body, validate=True))


def template_regex(text: str) -> re.Pattern[str]:
    """The true template text with ``<*>`` as 'one or more characters'."""
    return re.compile("^" + ".+?".join(re.escape(p) for p in text.split("<*>")) + "$", re.DOTALL)


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
