"""Damage costs only the damaged record: a bad element of a JSON array (one element per line,
pretty-printed, or on one line) is listed with its line and byte offset and every other element is
loaded; a pretty tail object with a missing or doubled closing brace does not swallow the next one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import edgeinvestigate as ei


def _load(path: Path, source: str) -> ei.Evidence:
    return ei.load([(path, source)])


def _errors(ev: ei.Evidence) -> list:
    return [i for _p, i in ev.report.issues("error")]


def _break(text: str) -> str:
    """Damage one JSON object: a key loses its colon."""
    return text.replace('": ', '" ', 1) if '": ' in text else text.replace('":', '"', 1)


@pytest.mark.parametrize("layout", ["line-per-element", "pretty", "one-line"])
def test_workers_logs_array_with_a_bad_element(tmp_path, data_dir, layout):
    events = json.loads((data_dir / "workers_logs/api-events.json").read_text())
    good = tmp_path / "good.json"
    bad = tmp_path / "bad.json"
    k = len(events) // 2
    if layout == "line-per-element":
        texts = [json.dumps(e) for e in events]
        good.write_text("[\n" + ",\n".join(texts) + "\n]\n")
        texts[k] = _break(texts[k])
        body = "[\n" + ",\n".join(texts) + "\n]\n"
    elif layout == "pretty":
        texts = [json.dumps(e, indent=2) for e in events]
        good.write_text("[\n" + ",\n".join(texts) + "\n]\n")
        texts[k] = _break(texts[k])
        body = "[\n" + ",\n".join(texts) + "\n]\n"
    else:
        texts = [json.dumps(e, separators=(",", ":")) for e in events]
        good.write_text("[" + ",".join(texts) + "]\n")
        texts[k] = _break(texts[k])
        body = "[" + ",".join(texts) + "]\n"
    bad.write_text(body)
    offset = len(body[: body.index(texts[k])].encode())
    ref = _load(good, "workers_logs_export")
    ev = _load(bad, "workers_logs_export")
    [f] = ev.report.files
    assert f.records == ref.report.files[0].records - 1
    assert f.skipped == 1
    [issue] = _errors(ev)
    assert f"array element at byte {offset}" in issue.message
    assert issue.offset == offset
    assert issue.line == body[:offset].count("\n") + 1
    assert "other elements were loaded" in issue.message


def test_traceitem_pretty_array_with_a_bad_element(tmp_path, data_dir):
    items = json.loads((data_dir / "traceitems/array.json").read_text())
    texts = [json.dumps(i, indent=2) for i in items]
    texts[1] = _break(texts[1])
    body = "[\n" + ",\n".join("\n".join("  " + ln for ln in t.splitlines()) for t in texts) + "\n]\n"
    path = tmp_path / "items.json"
    path.write_text(body)
    ev = _load(path, "traceitems")
    assert len(ev.invocations) == len(items) - 1
    [issue] = _errors(ev)
    assert issue.line == 2 + texts[0].count("\n") + 1  # "[" line, first element, then the bad one


def _tail_objects(data_dir: Path) -> list[str]:
    text = (data_dir / "tail/tail-4space.json").read_text()
    objs = []
    cur: list[str] = []
    for ln in text.splitlines():
        cur.append(ln)
        if ln == "}":
            objs.append("\n".join(cur))
            cur = []
    return objs[:5]


@pytest.mark.parametrize("damage", ["missing", "doubled"])
def test_tail_brace_error_loses_only_one_object(tmp_path, data_dir, damage):
    objs = _tail_objects(data_dir)
    assert len(objs) == 5
    if damage == "missing":
        objs[2] = objs[2][: objs[2].rfind("\n}")]
    else:
        objs[2] = objs[2] + "}"
    path = tmp_path / "tail.json"
    path.write_text("\n".join(objs) + "\n")
    ev = _load(path, "tail")
    [f] = ev.report.files
    assert f.invocations == 4
    assert f.skipped == 1
    [issue] = _errors(ev)
    assert issue.line == sum(o.count("\n") + 1 for o in objs[:2]) + 1
    assert "closing } is missing or doubled" in issue.message


def test_extra_closing_line_is_listed_and_nothing_is_lost(tmp_path, data_dir):
    objs = _tail_objects(data_dir)
    objs[2] = objs[2] + "\n}"
    path = tmp_path / "tail.json"
    path.write_text("\n".join(objs) + "\n")
    ev = _load(path, "tail")
    assert ev.report.files[0].invocations == 5
    [issue] = _errors(ev)
    assert issue.message == "not JSON: '}'"


def test_a_truncated_pretty_array_keeps_its_complete_elements(tmp_path, data_dir):
    # a Workers Logs export or TraceItem array whose download broke off: the elements before the
    # break load, the cut one is listed, and the missing "]" is a warning
    items = [json.loads(x)[0] for x in (data_dir / "traceitems/arrays.jsonl").read_text().splitlines()]
    text = json.dumps((items * 3)[:3], indent=2)
    cut = text.rindex('"outcome"')  # inside the third element
    path = tmp_path / "items.json"
    path.write_text(text[:cut])
    ev = _load(path, "traceitems")
    assert len(ev.invocations) == 2
    issues = [(i.severity, i.message.split(" (")[0][:40]) for _, i in ev.report.issues()]
    assert issues == [
        ("error", "invalid or unterminated JSON value start"),
        ("warning", "the JSON array starting here never close"),
    ]
    path.write_text("[\n  ")  # cut before its first element: one damaged value
    ev = _load(path, "traceitems")
    [issue] = _errors(ev)
    assert (issue.line, issue.message) == (1, "invalid or unterminated JSON value starting '['")
