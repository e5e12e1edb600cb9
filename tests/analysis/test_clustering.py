"""cluster(): error rows from every frame, stable ids, DLQ joins, rules, explanations, edge cases."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

import edgeinvestigate as ei
import edgeinvestigate.analysis._masking as masking
from edgeinvestigate.analysis.clustering import CLUSTER_COLUMNS, group_texts
from edgeinvestigate.analysis.rules import ClusterRules
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.evidence.bundle import Evidence

from .conftest import T0, invocation, make_evidence


def _errors(n: int, template: str, start: int = 0, **kw: object) -> list[dict[str, object]]:
    return [
        {"invocation_id": f"inv-{start + i}", "ts": T0 + pd.Timedelta(seconds=start + i), "level": "error",
         "message": template.format(i=start + i), **kw}
        for i in range(n)
    ]  # fmt: skip


def test_empty_evidence() -> None:
    cl = ei.cluster(Evidence.empty())
    assert list(cl.table.columns) == list(CLUSTER_COLUMNS)
    assert len(cl) == 0
    assert cl.assign.empty
    assert cl.dlq.empty
    assert json.loads(cl.to_json()) == {"clusters": [], "redacted": False}
    findings = ei.analyze(Evidence.empty(), cl)
    assert findings.hypotheses == []
    assert findings.window is None
    text = findings.to_text()
    assert "no telemetry" in text
    assert "The bundle is empty" in text
    assert "No hypothesis stands out" not in text  # that would read as "all is well"
    assert findings.has_telemetry is False


def test_one_error() -> None:
    ev = make_evidence(
        invocations=[invocation(0, T0, outcome="exception")],
        exceptions=[{"invocation_id": "inv-0", "ts": T0, "name": "Error", "message": "boom 42"}],
    )
    cl = ei.cluster(ev)
    assert len(cl) == 1
    row = cl.table.iloc[0]
    assert row["count"] == 1
    assert row["share"] == 1.0
    assert row["template"] == "Error: boom <int>"
    assert row["outcomes"] == ["exception"]
    assert row["scripts"] == ["jobs-consumer"]
    assert row["examples"] == ["Error: boom 42"]


def test_million_identical_errors_take_the_dedup_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = masking.mask_keys

    def spy(texts, masks=masking.MASKS):  # type: ignore[no-untyped-def]
        seen.append(len(texts))
        return real(texts, masks)

    monkeypatch.setattr("edgeinvestigate.analysis.clustering._grouping.mask_keys", spy)
    g = group_texts(["Error: upstream 10.0.0.1:443 refused connection"] * 1_000_000)
    assert len(g.templates) == 1
    assert len(g.labels) == 1_000_000
    assert seen == [1]  # masked once, not a million times


def test_non_ascii_and_huge_messages() -> None:
    huge = "Fehler: Nutzlast zu groß " + "ä" * 300_000
    logs = _errors(3, "Zeitüberschreitung bei Anfrage {i} für Benutzer 名前 nach 30 Sekunden")
    logs += [{"invocation_id": "inv-9", "ts": T0, "level": "error", "message": huge}]
    cl = ei.cluster(make_evidence(logs=logs))
    templates = set(cl.table["template"])
    assert "Zeitüberschreitung bei Anfrage <int> für Benutzer 名前 nach <int> Sekunden" in templates
    big = cl.table[cl.table["template"].str.startswith("Fehler")].iloc[0]
    assert len(big["examples"][0]) <= 500


def test_structured_error_field_is_used_before_free_text() -> None:
    logs = [
        {"invocation_id": "a", "ts": T0, "level": "log", "job_id": "job_1", "job_type": "DATA_SYNC",
         "message": json.dumps({"event": "job_failed", "jobId": "job_1", "error": "quota exhausted for cus_1a2b3c"})},  # noqa: E501
        {"invocation_id": "b", "ts": T0, "level": "info", "message": "all good"},
        {"invocation_id": "c", "ts": T0, "level": "log",
         "args": json.dumps([{"event": "job_failed", "error": {"name": "TypeError", "message": "x is undefined"}}]),  # noqa: E501
         "message": "[object Object]"},
    ]  # fmt: skip
    cl = ei.cluster(make_evidence(logs=logs))
    assert set(cl.assign["text"]) == {"quota exhausted for cus_1a2b3c", "TypeError: x is undefined"}
    assert cl.table.set_index("template").loc["quota exhausted for <id>", "job_types"] == ["DATA_SYNC"]


def _mixed_logs(n: int) -> list[dict[str, object]]:
    rng = random.Random(3)
    out = []
    for i in range(n):
        kind = i % 4
        text = [
            f"Upstream API https://sync.partner-api.com/v1/x/{rng.randrange(10**6)} responded 503 (request id "  # noqa: E501
            f"{rng.randrange(16**8):08x}-aaaa-4bbb-8ccc-{rng.randrange(16**12):012x})",
            f"tenant {rng.choice(['acme', 'globex', 'initech', 'hooli'])} over quota: {rng.randrange(1000)} calls",  # noqa: E501
            f"SMTP relay 10.0.{rng.randrange(255)}.{rng.randrange(255)}:25 connection reset after {rng.randrange(900)}ms",  # noqa: E501
            f"SMTP relay 10.0.{rng.randrange(255)}.{rng.randrange(255)}:25 connection refused after {rng.randrange(900)}ms",  # noqa: E501
        ][kind]
        out.append(
            {
                "invocation_id": f"inv-{i}",
                "ts": T0 + pd.Timedelta(seconds=i),
                "level": "error",
                "message": text,
            }
        )
    return out


def test_ids_are_stable_across_orderings_and_split_bundles() -> None:
    logs = _mixed_logs(400)
    whole = ei.cluster(make_evidence(logs=logs))
    shuffled = logs[:]
    random.Random(9).shuffle(shuffled)
    again = ei.cluster(make_evidence(logs=shuffled))
    first = ei.cluster(make_evidence(logs=logs[:200]))  # one bundle split in two time windows
    second = ei.cluster(make_evidence(logs=logs[200:]))
    ids = set(whole.table["cluster_id"])
    assert len(ids) == 4  # reset and refused are different errors
    assert set(again.table["cluster_id"]) == ids
    assert set(first.table["cluster_id"]) == ids == set(second.table["cluster_id"])
    by_template = dict(zip(whole.table["template"], whole.table["cluster_id"], strict=True))
    assert by_template == dict(zip(first.table["template"], first.table["cluster_id"], strict=True))


def test_stack_fingerprint_splits_and_log_lines_join(small_evidence: Evidence) -> None:
    cl = ei.cluster(small_evidence)
    typeerr = cl.table[cl.table["template"].str.startswith("TypeError")].iloc[0]
    assert typeerr["fingerprint"] != ""
    assert typeerr["count"] == 15
    assert typeerr["script_versions"] == ["v2"]
    assert typeerr["job_types"] == ["IMAGE_PROCESSING"]
    assert typeerr["kind"] == "permanent"
    assert typeerr["kind_rule"] == "type-error"
    upstream = cl.table[cl.table["template"].str.startswith("Upstream")].iloc[0]
    assert upstream["kind"] == "transient"
    assert upstream["kind_rule"] == "http-5xx"
    assert upstream["sources"] == ["dlq", "log"]


def test_dlq_joins(small_evidence: Evidence) -> None:
    cl = ei.cluster(small_evidence)
    joins = dict(zip(cl.dlq["message_id"], cl.dlq["cluster_join"], strict=True))
    assert joins == {"dlq-1": "envelope_error", "dlq-2": "job_id", "dlq-3": "type_time", "dlq-4": "none"}
    ids = dict(zip(cl.dlq["message_id"], cl.dlq["cluster_id"], strict=True))
    typeerr = cl.table[cl.table["template"].str.startswith("TypeError")]["cluster_id"].iloc[0]
    assert ids["dlq-2"] == ids["dlq-3"] == typeerr
    assert ids["dlq-4"] is None
    assert cl.table.set_index("cluster_id").loc[typeerr, "n_dlq_messages"] == 2


def test_explain(small_evidence: Evidence) -> None:
    cl = ei.cluster(small_evidence)
    e = cl.explain("dlq-1")
    assert e.join == "envelope_error"
    assert e.cluster_id == cl.dlq.set_index("message_id").loc["dlq-1", "cluster_id"]
    assert any("<url>" in s for s in e.steps)
    assert any("<uuid>" in s for s in e.steps)
    text = str(e)
    assert "http-5xx" in text
    assert "template" in text
    e3 = cl.explain("dlq-3")
    assert e3.join == "type_time"
    assert "job type" in e3.rule
    e4 = cl.explain("dlq-4")
    assert e4.cluster_id is None
    assert "no error text" in e4.rule
    row = int(cl.assign.index[cl.assign["source"] == "exception"][0])
    er = cl.explain(row)
    assert er.fingerprint
    assert er.frames[0].startswith("resizeImage")
    new = cl.explain(
        "Upstream API https://other.example.com/a responded 503 Service Unavailable "
        "(request id 0f8fad5b-d9cb-469f-a165-70867728950e)"
    )
    assert new.cluster_id == e.cluster_id
    assert new.kind == "transient"
    other = cl.explain("something never seen before")
    assert other.cluster_id is None
    assert "no cluster" in other.rule
    with pytest.raises(ConfigError, match="error row 99999"):
        cl.explain(99999)


def test_rules_merge_and_split(small_evidence: Evidence, tmp_path: Path) -> None:
    base = ei.cluster(small_evidence)
    typeerr, upstream = (
        base.table[base.table["template"].str.startswith(p)]["cluster_id"].iloc[0]
        for p in ("TypeError", "Upstream")
    )
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f'[[split]]\nname = "late"\ncluster = "{typeerr}"\npattern = "worker.js"\n\n'
        f'[[merge]]\nname = "everything"\nclusters = ["{upstream}"]\ntemplates = ["TypeError*"]\n'
        f'into = "{upstream}"\n\n[[merge]]\nname = "nothing"\nclusters = ["c000000000000"]\n'
    )
    cl = ei.cluster(small_evidence, rules=rules)
    assert list(cl.table["cluster_id"]) == [upstream]
    assert cl.table["count"].iloc[0] == 20
    assert "merge rule 'everything'" in cl.explain(0).rule
    assert cl.rules is not None
    assert cl.rules.unused() == ["split[0]", "merge[1]"]


def test_split_rule_moves_matching_messages(small_evidence: Evidence) -> None:
    base = ei.cluster(small_evidence)
    upstream = base.table[base.table["template"].str.startswith("Upstream")]["cluster_id"].iloc[0]
    rules = ClusterRules.model_validate(
        {"split": [{"name": "item-12", "cluster": upstream, "pattern": "items/12abc"}]}
    )
    cl = ei.cluster(small_evidence, rules=rules)
    parts = cl.table[cl.table["template"].str.startswith("Upstream")]
    assert len(parts) == 2
    assert parts["template"].str.endswith("[item-12]").sum() == 1
    assert sorted(parts["count"]) == [1, 4]


@pytest.mark.parametrize(
    ("content", "suffix", "match"),
    [
        ("[[merge]]\nname = 'x'\n", ".toml", r"rules\.toml: rule merge\[0\].*clusters"),
        ("[[split]]\nname = 'x'\ncluster = 'c1'\npattern = '('\n", ".toml", r"split\[0\] field pattern"),
        ("[[merge]\n", ".toml", r"not valid TOML"),
        (
            '{"merge": [{"name": "x", "clusters": ["c1"], "colour": 1}]}',
            ".json",
            r"rules\.json: rule merge\[0\] field colour",
        ),
        ("[1, 2]", ".json", "expected a table"),
    ],
)
def test_bad_rules_files_name_the_file_and_rule(
    tmp_path: Path, content: str, suffix: str, match: str
) -> None:
    path = tmp_path / f"rules{suffix}"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        ClusterRules.load(path)


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the cluster rules file"):
        ei.cluster(Evidence.empty(), rules=tmp_path / "nope.toml")


def test_redact_masks_examples(small_evidence: Evidence) -> None:
    cl = ei.cluster(small_evidence, redact=True)
    examples = [e for ex in cl.table["examples"] for e in ex]
    assert examples
    assert all("0f8fad5b" not in e and "partner-api" not in e for e in examples)
    assert json.loads(cl.to_json())["redacted"] is True


def test_get_unknown_cluster(small_evidence: Evidence) -> None:
    cl = ei.cluster(small_evidence)
    with pytest.raises(ConfigError, match="no cluster 'cnope'"):
        cl.get("cnope")


def test_fifty_thousand_distinct_errors_go_through_the_vectorised_path() -> None:
    logs = _mixed_logs(50_000)  # > 20,000 distinct texts: the DuckDB pass
    cl = ei.cluster(make_evidence(logs=logs))
    assert len(cl) == 4
    assert int(cl.table["count"].sum()) == 50_000
