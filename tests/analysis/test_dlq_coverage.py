"""A peek bundle's DLQ numbers say "of the first 100 only" (analysis.dlq_coverage): in the findings,
their notes, the CLI's text and the Markdown summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _helpers.peek import as_peeked
from click.testing import CliRunner

import edgeinvestigate as ei
from edgeinvestigate.analysis.dlq_coverage import dlq_coverage
from edgeinvestigate.cli import cli
from edgeinvestigate.evidence.bundle import Evidence, load
from edgeinvestigate.report.summary import markdown_summary
from edgeinvestigate.simulator import simulate
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

PEEK = 100  # the most messages one peek shows


@pytest.fixture(scope="module")
def snapshot_and_peek(tmp_path_factory: pytest.TempPathFactory) -> tuple[Evidence, Evidence, dict[str, Any]]:
    """The default incident with its whole DLQ (a snapshot), and as a peek sees it: the head of the
    queue (the first 100 messages by arrival) with the manifest's collection record."""
    out = tmp_path_factory.mktemp("peek")
    summary = simulate("default", out, seed=7, formats=("traceitems", "dlq"))
    ev = load([out / "traceitems" / "traceitems.jsonl"], strict=True)
    dlq = dlq_frame_from_file(out / "dlq" / "messages.json")
    full = ev.with_dlq(dlq)
    peek = as_peeked(ev, dlq, PEEK)
    return full, peek, json.loads(summary.ground_truth.read_text())


def test_coverage_is_read_from_the_manifest() -> None:
    rec = {"queue": "q", "mode": "peek", "messages": 100, "backlog_count": 566, "complete": False}
    cov = dlq_coverage({"dlq_collections": [rec]})
    assert cov is not None
    assert (cov.mode, cov.seen, cov.backlog, cov.queues) == ("peek", 100, 566, ["q"])
    assert cov.label == "of the first 100 only"
    assert "q held 566" in cov.reason
    assert (
        dlq_coverage(
            {"dlq_collections": [{**rec, "mode": "snapshot", "backlog_count": 100, "complete": True}]}
        )
        is None
    )
    assert dlq_coverage({}) is None  # a DLQ file, or no DLQ
    stopped = dlq_coverage({"dlq_collections": [{**rec, "mode": "snapshot", "messages": 300}]})
    assert stopped is not None
    assert stopped.label == "of the first 300 only"
    assert "snapshot stopped" in stopped.reason


def test_a_peek_under_counts_and_every_dlq_number_says_so(
    snapshot_and_peek: tuple[Evidence, Evidence, dict[str, Any]],
) -> None:
    full, peek, truth = snapshot_and_peek
    whole = ei.analyze(full)
    part = ei.analyze(peek)
    assert whole.dlq_coverage is None
    assert part.dlq_coverage is not None
    label = f"of the first {PEEK} only"
    assert part.dlq_coverage.label == label
    # the outage's DLQ messages arrive after the bad deploy's: the head of the queue misses them
    outage = next(rc for rc in truth["root_causes"] if rc["kind"] == "dependency_outage")
    h_whole = next(h for h in whole.hypotheses if h.kind == "dependency_outage")
    h_part = next(h for h in part.hypotheses if h.kind == "dependency_outage")
    in_full = set(full.dlq["message_id"].astype(str)) & set(outage["dlq_message_ids"])
    assert h_whole.evidence["dlq_messages"] == len(in_full) > 0
    assert h_part.evidence["dlq_messages"] < h_whole.evidence["dlq_messages"]
    for h in part.hypotheses:
        if "dlq_messages" in h.evidence:
            assert h.evidence["dlq_partial"] == label
            assert f"{h.evidence['dlq_messages']:,}, {label}" in h.sentence
    for h in whole.hypotheses:
        assert "dlq_partial" not in h.evidence
        assert "of the first" not in h.sentence
    assert any(label in n for n in part.notes)
    assert "--dlq-mode snapshot" in " ".join(part.notes)
    text = part.to_text()
    assert f"in the incident's clusters ({label})" in text or f", {label})" in text
    assert label not in whole.to_text()
    assert part.dlq_count(64) == f"64 ({label})"
    assert whole.dlq_count(64) == "64"
    md = markdown_summary(part)
    assert label in md
    assert f"dlq messages {h_part.evidence['dlq_messages']:,} ({label})" in md
    # the JSON keeps it
    again = type(part).model_validate_json(part.model_dump_json())
    assert again.dlq_coverage == part.dlq_coverage


def test_analyze_cli_text_says_of_the_first_100_only(
    snapshot_and_peek: tuple[Evidence, Evidence, dict[str, Any]], tmp_path: Path
) -> None:
    _full, peek, _truth = snapshot_and_peek
    bundle = peek.save(tmp_path / "peek")
    out = CliRunner().invoke(cli, ["analyze", str(bundle)])
    assert out.exit_code == 0, out.output
    text = " ".join(out.stdout.split())  # wrapped to the terminal
    assert f"of the first {PEEK} only" in text
    assert "--dlq-mode snapshot" in text
    table = CliRunner().invoke(cli, ["clusters", str(bundle)]).stdout
    assert f"the dlq counts are of the first {PEEK} only" in table
    md = CliRunner().invoke(cli, ["analyze", str(bundle), "--format", "markdown"]).stdout
    assert f"of the first {PEEK} only" in md
    data = json.loads(CliRunner().invoke(cli, ["analyze", str(bundle), "--format", "json"]).stdout)
    assert data["dlq_coverage"]["seen"] == PEEK
    assert data["dlq_coverage"]["backlog"] == len(_full.dlq)
    assert pd.notna(data["dlq_coverage"]["mode"])
