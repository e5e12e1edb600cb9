"""Clusters computed once and stored in the bundle (edgeinvestigate.analysis.clustering._stored): the
stored ones are exactly what clustering computes, they are used only for the same key, and a bundle
without them says so. Also: the vectorised triage gives what the per-text rules give."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

import edgeinvestigate as ei
from edgeinvestigate.analysis import triage
from edgeinvestigate.analysis._masking import MASKS
from edgeinvestigate.analysis.clustering import STORED_NAME, cluster, store_clusters
from edgeinvestigate.analysis.clustering._stored import clusters_key
from edgeinvestigate.analysis.clustering._stored_rows import StoredRows
from edgeinvestigate.analysis.rca import ERROR_ROW_COLUMNS
from edgeinvestigate.analysis.rules import ClusterRules
from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.simulator import corpus


def _saved(ev: Evidence, dest: Path, rules: Any = None) -> Evidence:
    """What `collect` does: storage order, cluster, store, save; then open the bundle."""
    ev = ev.in_storage_order()
    store_clusters(ev, cluster(ev, rules=rules, stored=False)).save(dest)
    return Evidence.open(dest)


def _same(a: ei.Clusters, b: ei.Clusters) -> None:
    for part in ("table", "assign", "dlq"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part), check_exact=True)
    assert a.key_template == b.key_template
    assert a.key == b.key


def test_stored_clusters_are_exactly_what_clustering_computes(
    default_incident: tuple[Evidence, dict[str, Any]], tmp_path: Path
) -> None:
    ev, _ = default_incident
    opened = _saved(ev, tmp_path / "b")
    stored = cluster(opened)
    computed = cluster(opened, stored=False)
    assert stored.origin == "stored"
    assert stored.note == ""
    assert computed.origin == "computed"
    _same(stored, computed)
    assert len(stored.dlq) == len(ev.dlq)
    assert stored.dlq["cluster_id"].notna().any()
    # the stored frames are the contract's: one row per error row, per cluster, per DLQ message
    d = opened.derived(STORED_NAME)
    assert d is not None
    assert set(d.frames) == {"clusters", "cluster_rows", "cluster_dlq", "cluster_keys"}
    assert {"source", "row", "cluster_id"} <= set(d.frame("cluster_rows").columns)
    # the analysis finds the same with either
    assert ei.analyze(opened, stored).model_dump() == ei.analyze(opened, computed).model_dump()
    # redaction applies to stored clusters like to computed ones
    _same(cluster(opened, redact=True), computed.redact())
    # reading them does not load the logs
    fresh = Evidence.open(tmp_path / "b")
    cluster(fresh)
    assert not isinstance(fresh.__dict__["_frame_logs"], pd.DataFrame)


def test_stored_rows_stay_in_the_bundle_until_columns_are_asked(
    default_incident: tuple[Evidence, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ev, _ = default_incident
    opened = _saved(ev, tmp_path / "b")
    computed = cluster(opened, stored=False)
    stored = cluster(opened)
    assert isinstance(stored.rows, StoredRows)
    assert len(stored.rows) == len(computed.assign) > 0
    read: list[list[str] | None] = []
    real = pq.read_table

    def spy(path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name == "cluster_rows.parquet":
            read.append(kwargs.get("columns"))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", spy)
    columns = ("ts", "invocation_id", "cluster_id")
    # a few columns: only those (and `source`, to leave out the DLQ rows) are read, values as computed
    got = stored.error_rows(columns, dlq=False)
    assert read == [["ts", "invocation_id", "cluster_id", "source"]]
    pd.testing.assert_frame_equal(got, computed.error_rows(columns, dlq=False), check_exact=True)
    table = stored.error_table(("job_id",))
    assert table.equals(computed.error_table(("job_id",)))
    assert isinstance(stored.rows, StoredRows)  # still in the bundle
    # the analysis reads the columns it uses once (for its pandas rows and the SQL engine alike)
    read.clear()
    ei.analyze(opened, stored)
    assert read == [list(dict.fromkeys([*ERROR_ROW_COLUMNS, "source"]))]
    assert isinstance(stored.rows, StoredRows)
    # `assign` reads them all, once, and holds that frame
    pd.testing.assert_frame_equal(stored.assign, computed.assign, check_exact=True)
    assert isinstance(stored.rows, pd.DataFrame)
    assert read[-1] is None
    # a rows file gone from under an opened bundle: a clear error that names it
    other = cluster(opened)
    (tmp_path / "b" / "derived" / "cluster_rows.parquet").unlink()
    with pytest.raises(ei.BundleError, match=r"cluster_rows\.parquet") as caught:
        other.error_rows(columns)
    assert "edgeinvestigate collect" in str(caught.value.hint)


def test_rules_give_the_key_and_the_bundle_keeps_the_rules_it_was_clustered_with(
    default_incident: tuple[Evidence, dict[str, Any]], tmp_path: Path
) -> None:
    ev, _ = default_incident
    plain = cluster(ev.in_storage_order(), stored=False)
    biggest = str(plain.table["cluster_id"].iloc[0])
    rules = ClusterRules.model_validate({"split": [{"name": "odd", "cluster": biggest, "pattern": "e"}]})
    opened = _saved(ev, tmp_path / "b", rules=rules)
    by_default = cluster(opened)  # no rules given: the bundle's own
    assert by_default.origin == "stored"
    _same(by_default, cluster(opened, rules=rules, stored=False))
    assert by_default.rules is not None
    assert by_default.rules.unused() == []
    other = cluster(opened, rules=ClusterRules())  # other rules (none): computed, and said so
    assert other.origin == "computed"
    assert "made with other rules" in other.note
    _same(other, plain)


def test_the_key_follows_every_setting() -> None:
    base = clusters_key(None, MASKS, ("error", "warn"), 3)
    assert base == clusters_key(ClusterRules(), MASKS, ("error", "warn"), 3)  # no rules either way
    assert base != clusters_key(None, MASKS[:-1], ("error", "warn"), 3)
    assert base != clusters_key(None, MASKS, ("error",), 3)
    assert base != clusters_key(None, MASKS, ("error", "warn"), 5)
    split = ClusterRules.model_validate({"split": [{"name": "s", "cluster": "c1", "pattern": "x"}]})
    assert base != clusters_key(split, MASKS, ("error", "warn"), 3)


def test_other_settings_compute_in_memory(
    default_incident: tuple[Evidence, dict[str, Any]], tmp_path: Path
) -> None:
    ev, _ = default_incident
    opened = _saved(ev, tmp_path / "b")
    more = cluster(opened, max_examples=5)
    assert more.origin == "computed"
    assert "other rules, settings" in more.note
    # evidence in memory has nothing stored and nothing to say
    assert cluster(ev).note == ""
    # a time window of a bundle is evidence in memory too
    window = dataclasses.replace(opened, logs=opened.logs.head(100))
    assert cluster(window).origin == "computed"
    assert cluster(window).note == ""


def test_a_bundle_whose_stored_clusters_do_not_match_its_dlq_is_clustered_again(
    default_incident: tuple[Evidence, dict[str, Any]], tmp_path: Path
) -> None:
    ev, _ = default_incident
    dest = tmp_path / "b"
    _saved(ev, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["derived"]["clusters"]["rows"]["cluster_dlq"] == len(ev.dlq)
    opened = Evidence.open(dest)
    assert cluster(opened.with_dlq(opened.dlq.head(3))).origin == "computed"


def test_vectorised_triage_agrees_with_the_rules_one_text_at_a_time() -> None:
    texts, _ = corpus(3000, seed=1)
    texts += [
        "TypeError: Cannot read properties of undefined (reading 'x')",
        "upstream responded 503 Service Unavailable",
        "Zeitüberschreitung: timed out nach 30 s",  # not plain ASCII: the Python path
        "connection\x0breset by peer",  # a vertical tab: the Python path
        "",
        "HTTP/1.1 429 Too Many Requests",
    ]
    texts.append(None)  # type: ignore[arg-type]
    assert triage.classify_texts(texts) == [triage.classify(t) for t in texts]
    assert triage.classify_many(texts[:50]) == triage.vote(triage.classify_texts(texts[:50]))


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_evidence_stores_and_reads_back(tmp_path: Path, n: int) -> None:
    from .conftest import make_evidence

    logs = [
        {
            "invocation_id": "i1",
            "ts": pd.Timestamp("2026-11-27T14:00Z"),
            "level": "error",
            "message": "boom 1",
        }
    ]
    inv = [{"invocation_id": "i1", "ts": pd.Timestamp("2026-11-27T14:00Z"), "outcome": "ok"}]
    ev = make_evidence(inv[:n], logs[:n], [], [])
    opened = _saved(ev, tmp_path / "b")
    _same(cluster(opened), cluster(opened, stored=False))
    assert len(cluster(opened).table) == n
