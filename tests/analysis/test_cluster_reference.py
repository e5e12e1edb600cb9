"""The clustering finds exactly what the per-row reference finds (``_helpers/cluster_reference.py``: a
frozen copy of the clustering before it was vectorised): ``Clusters.table``, ``.assign``, ``.dlq`` and
the key templates, row for row, on every simulator scenario (small sizes, every telemetry format, with
their DLQ), in memory and as a saved bundle read back, with other settings, with merge/split rules,
and on hand-made evidence."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from _helpers import cluster_reference as reference

from edgeinvestigate.analysis import _masking
from edgeinvestigate.analysis._masking import MASKS
from edgeinvestigate.analysis.clustering import ERROR_LEVELS, Clusters, cluster, group_texts
from edgeinvestigate.analysis.clustering._arrow import contains
from edgeinvestigate.analysis.clustering._ids import codes_of
from edgeinvestigate.analysis.clustering._rows import _maybe_object
from edgeinvestigate.analysis.clustering._structured import _object_of
from edgeinvestigate.analysis.rules import ClusterRules
from edgeinvestigate.evidence.bundle import Evidence, load
from edgeinvestigate.models.frames import conform
from edgeinvestigate.simulator import corpus, simulate
from edgeinvestigate.simulator._simulate import LAYOUT
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

from .conftest import T0, invocation, make_evidence

SCENARIOS = sorted(
    p.stem
    for p in (Path(__file__).resolve().parents[2] / "edgeinvestigate/simulator/scenarios").glob("*.toml")
)
#: the telemetry format each scenario is loaded from (every loader's frames take part)
FORMATS = ("traceitems", "logpush", "workers_logs", "tail")


def _type(value: Any) -> str:
    """A value's type; ``None`` and ``nan`` are both "missing": the error rows are an Arrow table,
    which has one null (the reference's ``nan``, a left join that found nothing, is ``None`` in
    ``assign``, as in the stored clusters)."""
    if value is None or (isinstance(value, float) and value != value):
        return "missing"
    return type(value).__name__


def _types(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The type of every value of the object columns (``assert_frame_equal`` takes None for nan)."""
    return {str(c): [_type(v) for v in frame[c]] for c in frame.columns if frame[c].dtype == object}


def _same(got: Clusters, want: Clusters) -> None:
    for part in ("table", "assign", "dlq"):
        pd.testing.assert_frame_equal(getattr(got, part), getattr(want, part), check_exact=True, obj=part)
        assert _types(getattr(got, part)) == _types(getattr(want, part)), part
    assert got.key_template == want.key_template
    assert got.key == want.key


def _check(ev: Evidence, rules: ClusterRules | None = None, **kw: Any) -> Clusters:
    got = cluster(ev, rules=rules, stored=False, **kw)
    want = reference.compute_clusters(
        ev,
        rules=None if rules is None else ClusterRules.model_validate(rules.model_dump()),
        levels=kw.get("levels", ERROR_LEVELS),
        max_examples=kw.get("max_examples", 3),
        masks=MASKS,
    )
    _same(got, want)
    return got


@pytest.fixture(scope="module")
def scenario_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Evidence, Evidence]]:
    """Every scenario, small, loaded from one format (with its DLQ file when it has one): in memory and
    saved then opened (frames read back from Parquet)."""
    out: dict[str, tuple[Evidence, Evidence]] = {}
    for i, name in enumerate(SCENARIOS):
        fmt = FORMATS[i % len(FORMATS)]
        base = tmp_path_factory.mktemp(f"ref-{name}")
        simulate(name, base / "sim", seed=3, invocations=1500, formats=(fmt, "dlq"))
        ev = load([base / "sim" / LAYOUT[fmt]], strict=True)
        dlq = base / "sim" / LAYOUT["dlq"]
        if dlq.is_file():
            ev = ev.with_dlq(dlq_frame_from_file(dlq))
        ev.in_storage_order().save(base / "bundle")
        out[name] = (ev, Evidence.open(base / "bundle"))
    return out


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_clusters_as_the_reference(
    name: str, scenario_bundles: dict[str, tuple[Evidence, Evidence]]
) -> None:
    in_memory, opened = scenario_bundles[name]
    got = _check(in_memory)
    assert len(got.table) > 1
    _check(opened)


def test_the_reference_with_other_settings(scenario_bundles: dict[str, tuple[Evidence, Evidence]]) -> None:
    _ev, opened = scenario_bundles["default"]
    _check(opened, levels=("error",), max_examples=5)
    _check(opened, levels=("error", "warn", "log", "info"), max_examples=1)


def test_the_reference_with_rules(scenario_bundles: dict[str, tuple[Evidence, Evidence]]) -> None:
    ev, _opened = scenario_bundles["default"]
    base = cluster(ev, stored=False)
    ids = list(base.table["cluster_id"])
    rules = ClusterRules.model_validate(
        {
            "split": [{"name": "early", "cluster": ids[0], "pattern": "[0-4]$"}],
            "merge": [{"name": "two", "clusters": ids[1:3], "templates": ["*timed out*"], "into": ids[2]}],
        }
    )
    got = _check(ev, rules)
    assert got.rules is not None
    assert got.rules.unused() == reference_rules_unused(ev, rules)


def reference_rules_unused(ev: Evidence, rules: ClusterRules) -> list[str]:
    fresh = ClusterRules.model_validate(rules.model_dump())
    reference.compute_clusters(ev, rules=fresh, levels=ERROR_LEVELS, max_examples=3, masks=MASKS)
    return fresh.unused()


def test_the_reference_on_hand_made_evidence(small_evidence: Evidence) -> None:
    _check(small_evidence)
    _check(small_evidence, ClusterRules())
    empty = Evidence(
        invocations=small_evidence.invocations.iloc[:0],
        logs=small_evidence.logs.iloc[:0],
        exceptions=small_evidence.exceptions.iloc[:0],
    )
    _check(empty)
    _check(
        Evidence(invocations=empty.invocations, logs=empty.logs, exceptions=empty.exceptions).with_dlq(
            small_evidence.dlq
        )
    )
    no_invocations = Evidence(
        invocations=small_evidence.invocations.iloc[:0],
        logs=small_evidence.logs,
        exceptions=small_evidence.exceptions,
        dlq=small_evidence.dlq,
    )
    _check(no_invocations)


ERRORS = (
    "Upstream API https://api.example.com/v1/items/{i} responded 503 Service Unavailable",
    "Cannot read properties of undefined (reading 'width')",
    "quota exhausted for tenant t_{i}",
    "D1_ERROR: database is locked after {i} ms",
)


def _mixed(seed: int, n: int, hex_ids: bool) -> Evidence:
    """Every kind of error row at once, with the awkward cases: structured lines (an event, a message
    field, other keys; in ``message`` or in ``args``), ``error`` fields (text and object), errors thrown
    and logged by one invocation, bare values, versions only in the logs, batch invocations with several
    jobs, exceptions with and without a name or a message, rows without a time, log lines of unknown
    invocations, request and ray ids, limit outcomes, and DLQ messages of every join kind."""
    rnd = random.Random(seed)
    inv: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    exc: list[dict[str, Any]] = []
    dlq: list[dict[str, Any]] = []

    def iid(i: int) -> str:
        return f"{i * 7919 + seed:016x}" if hex_ids else f"inv-{i}"

    for i in range(n):
        ts = T0 + pd.Timedelta(seconds=rnd.randrange(3600))
        outcome = rnd.choice(["ok"] * 6 + ["exception", "exceededCpu", "exceededMemory"])
        extra: dict[str, Any] = {}
        if rnd.random() < 0.3:
            extra["request_id"] = f"req-{i % 50}"
        if rnd.random() < 0.3:
            extra["ray_id"] = f"{i:016x}-SJC"
        version = None if rnd.random() < 0.3 else rnd.choice(["v1", "v2"])
        row = invocation(i, ts, outcome=outcome, **extra)
        row["invocation_id"] = iid(i)
        row["script_version"] = version
        row["script"] = rnd.choice(["jobs-consumer", "jobs-api", None])
        inv.append(row)
        jobs = [f"job_{i}_{k}" for k in range(rnd.choice([1, 1, 1, 2, 3]))]
        jtype = rnd.choice(["EMAIL_DELIVERY", "DATA_SYNC", None])
        err = rnd.choice(ERRORS).format(i=rnd.randrange(40))
        at = ts if rnd.random() > 0.02 else None
        for job in jobs:
            logs.append(
                {"invocation_id": iid(i), "ts": at, "level": "log", "job_id": job, "job_type": jtype,
                 "message": json.dumps({"event": "job.started", "jobId": job, "deploy": f"d{i % 3}"})}
            )  # fmt: skip
        kind = rnd.randrange(10)
        job = rnd.choice([*jobs, None])
        if kind == 0:  # thrown and logged
            stack = f"TypeError: {err}\n    at run (worker.js:{rnd.choice([10, 20])}:5)"
            exc.append(
                {"invocation_id": iid(i), "ts": at, "name": "TypeError", "message": err, "stack": stack}
            )
            line = json.dumps({"event": "job.error", "jobId": job, "error": err})
            logs.append({"invocation_id": iid(i), "ts": at, "level": "error", "job_id": job, "message": line})
        elif kind == 1:  # structured warn line, by its meaning
            body = {"event": rnd.choice(["sync.rate_limited", "webhook.slow"]), "backoffMs": i}
            if rnd.random() < 0.7:
                body["msg"] = f"rate limit hit for tenant t_{i % 9}, retry in {i} ms"
            logs.append({"invocation_id": iid(i), "ts": at, "level": "warn", "job_id": job,
                         "message": json.dumps(body)})  # fmt: skip
        elif kind == 2:  # structured object in args, error as an object
            body = {"event": "job.failed", "error": {"name": "RangeError", "message": err}}
            logs.append({"invocation_id": iid(i), "ts": at, "level": "log", "message": "job failed",
                         "args": json.dumps(["job failed", body])})  # fmt: skip
        elif kind == 3:  # bare values
            empty = "" if hex_ids else None  # an empty text, or none at all (a template of such rows only)
            bare = rnd.choice(["42", "0f8fad5b-d9cb-469f-a165-708677280012", "[1, 2]", empty])
            logs.append({"invocation_id": iid(i), "ts": at, "level": "error", "message": bare})
        elif kind == 4:  # exceptions: name in the message, no name, no message, no stack
            name, message = rnd.choice([("Error", f"Error: {err}"), (None, err), ("Error", None), ("E", err)])
            stack = None if rnd.random() < 0.5 else f"Error\n    at f (src/{i % 4}.js:1:1)"
            exc.append({"invocation_id": iid(i), "ts": at, "name": name, "message": message, "stack": stack})
        elif kind == 5:  # plain error text, a log line of an invocation nobody knows
            logs.append({"invocation_id": rnd.choice([iid(i), f"ghost-{i}", None]), "ts": at,
                         "level": rnd.choice(["error", "warn", "ERROR"]), "job_id": job, "job_type": jtype,
                         "message_id": f"m-{job}" if job else None, "message": err})  # fmt: skip
        elif kind == 6:
            logs.append({"invocation_id": iid(i), "ts": at, "level": "info", "message": err})
        elif kind == 7:  # JSON-looking texts with odd whitespace around them, or not JSON at all
            body = json.dumps({"event": "cache.miss", "msg": f"key k{i % 5} missing", "n": i})
            odd = rnd.choice(
                [f" {body} ", f"\u00a0{body}", f"{body}\x1c", f"[{body}]\n", "[auth] denied", "{x}"]
            )
            logs.append({"invocation_id": iid(i), "ts": at, "level": "warn", "message": odd})
        if rnd.random() < 0.15:
            dlq.append(
                {"message_id": rnd.choice([f"m-{job}", f"dlq-{i}"]), "job_id": rnd.choice([job, None]),
                 "job_type": rnd.choice([jtype, "DATA_SYNC", None]),
                 "enqueued_at": T0 + pd.Timedelta(seconds=rnd.randrange(4000)),
                 "last_attempt": rnd.choice([None, ts + pd.Timedelta(seconds=rnd.randrange(-90, 90))]),
                 "attempts": 4, "envelope": "wrapped" if rnd.random() < 0.3 else "raw",
                 "error": err if rnd.random() < 0.3 else None}
            )  # fmt: skip
    if not hex_ids:
        inv.append(dict(inv[0]))  # an invocation listed twice
    return make_evidence(inv, logs, exc, dlq)


@pytest.mark.parametrize(("seed", "hex_ids"), [(1, True), (2, False), (3, True)])
def test_the_reference_on_every_kind_of_row(seed: int, hex_ids: bool, tmp_path: Path) -> None:
    ev = _mixed(seed, 1200, hex_ids)
    got = _check(ev)
    assert got.assign["rule"].str.contains("by the invocations that threw it").any()
    assert got.assign["key"].str.contains("backoffMs").any()
    assert (got.dlq["cluster_join"].nunique()) >= 3
    ev.in_storage_order().save(tmp_path / "b")
    _check(Evidence.open(tmp_path / "b"))
    _check(_rechunked(ev))


def _rechunked(ev: Evidence) -> Evidence:
    """The same evidence with its frames' columns in many chunks (as large bundles are read: one per
    row group)."""

    def chunked(df: pd.DataFrame, name: str) -> pd.DataFrame:
        table = pa.Table.from_pandas(df, preserve_index=False)
        return conform(pa.Table.from_batches(table.to_batches(max_chunksize=97)), name)

    return Evidence(
        invocations=chunked(ev.invocations, "invocations"),
        logs=chunked(ev.logs, "logs"),
        exceptions=chunked(ev.exceptions, "exceptions"),
        dlq=chunked(ev.dlq, "dlq"),
    )


def _same_grouping(texts: Any, **kw: Any) -> None:
    got, want = group_texts(texts, **kw), reference.group_texts(texts, **kw)
    assert got.templates == want.templates
    assert got.keys == want.keys
    for part in ("labels", "key_labels", "key_template"):
        assert (getattr(got, part) == getattr(want, part)).all(), part


@pytest.mark.parametrize("repeat", [1, 8], ids=["distinct", "repeated"])
def test_the_grouping_kernel_as_the_reference(repeat: int) -> None:
    """Distinct texts and texts repeated (the kernel masks the distinct ones first), with bare values,
    nulls and empty texts, and premasked keys of several events."""
    msgs, _ = corpus(30_000 // repeat, seed=4, n_templates=60)
    texts: list[str | None] = [
        *msgs * repeat,
        "42",
        "0f8fad5b-d9cb-469f-a165-708677280012",
        "[1, 2]",
        "",
        None,
    ]
    _same_grouping(texts)
    flags = [i % 7 == 0 for i in range(len(texts))]
    events = [f"event.{i % 3}" if f else None for i, f in enumerate(flags)]
    premasked = [f"<*> {t} {{n: <*>}}" if f else t for t, f in zip(texts, flags, strict=True)]
    _same_grouping(premasked, premasked=flags, partitions=events)


def test_contains_is_substring_search() -> None:
    """The buffer scan that finds ``"error"`` in log texts answers as ``in`` does, matches that run
    from one text into the next (or over empty and null texts) included."""
    rnd = random.Random(5)
    parts = ['"', "error", '"error"', "x", "é", '"err', 'or"', "", 'r"']
    for _ in range(3000):
        texts = [
            None if rnd.random() < 0.1 else "".join(rnd.choice(parts) for _ in range(rnd.randrange(4)))
            for _ in range(rnd.randrange(1, 12))
        ]
        arr = pa.array(texts, pa.string())
        if rnd.random() < 0.3 and len(arr) > 2:
            arr = arr.slice(1)
        want = [t is not None and '"error"' in t for t in arr.to_pylist()]
        assert contains(arr, '"error"').tolist() == want, arr.to_pylist()


def test_lines_skipped_as_not_json_objects_are_not() -> None:
    """The byte test that spares the JSON parser most log lines (raw console arguments ``["text"]``)
    never skips a line that holds a JSON object, or an array of one (or of its JSON text)."""
    rnd = random.Random(7)
    parts = [
        "[",
        "]",
        "{",
        "}",
        '"',
        " ",
        "\n",
        "\u00a0",
        "\\",
        "1",
        "a",
        ",",
        ":",
        '{"a": 1}',
        '"{\\"a\\": 1}"',
    ]
    texts = [
        '["{\\"event\\": \\"x\\"}"]',
        '[" {\\"event\\": \\"x\\"}"]',
        '["\\n{\\"event\\": \\"x\\"}"]',
        '[{"event": "x"}]',
        '[ {"event": "x"} ]',
        '["text", {"a": 1}]',
        *("".join(rnd.choice(parts) for _ in range(rnd.randrange(1, 9))) for _ in range(20_000)),
    ]
    maybe = _maybe_object(pa.array(texts, pa.string()))
    objects = 0
    for text, kept in zip(texts, maybe.tolist(), strict=True):
        if _object_of(text) is not None:
            assert kept, text
            objects += 1
    assert maybe[:5].all()
    assert objects > 100
    assert maybe.sum() < 0.5 * len(texts)


def test_invocation_ids_are_numbered_by_their_exact_text() -> None:
    """Hex ids are read as numbers, but an id in upper case is another id (the string path)."""
    lower = pa.array(["00000000000000ab", None, "00000000000000ab", "0000000000000001"], pa.string())
    upper = pa.array(["00000000000000AB", "00000000000000ab", "x"], pa.string())
    (a, b), n = codes_of(lower, upper)
    assert n == 4
    assert a.tolist()[:3] == [a[0], -1, a[0]]
    assert b[1] == a[0]
    assert len({a[0], a[3], b[0], b[2]}) == 4
    (c,), m = codes_of(lower)
    assert m == 2
    assert c.tolist() == [c[0], -1, c[0], c[3]]


def test_masking_in_many_batches_keeps_every_key_in_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB masks the texts in record batches (in parallel); the keys come back in their rows'
    order, as one batch gave them."""
    msgs, _ = corpus(30_000, seed=6, n_templates=80)
    texts = pa.array([*msgs, "::1 from fe80::1", "x" * 2500 + " 42", None, ""], pa.string())
    want = reference.mask_keys(texts)
    monkeypatch.setattr(_masking, "_BATCH_ROWS", 997)
    monkeypatch.setattr(_masking, "_MAX_BATCHES", 1000)
    assert _masking.mask_keys(texts).equals(want)


def _keys_in_child(texts: pa.Array, out: Any) -> None:
    out.send(_masking.mask_keys(texts).to_pylist())


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python 3.12+: fork with threads
def test_masking_in_threads_and_in_a_forked_child() -> None:
    """The masking queries share one DuckDB database per process: callers in several threads get
    their own keys, and a child forked after the parent masked opens its own database."""
    import multiprocessing
    import threading

    msgs, _ = corpus(25_000, seed=8, n_templates=60)
    texts = pa.array(msgs, pa.string())
    want = reference.mask_keys(texts)
    got: list[bool] = []
    threads = [
        threading.Thread(target=lambda: got.append(_masking.mask_keys(texts).equals(want))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [True, True, True]
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_keys_in_child, args=(texts, send))
    child.start()
    keys = receive.recv() if receive.poll(120) else None
    child.join(30)
    assert child.exitcode == 0
    assert keys == want.to_pylist()


def test_distinct_values_per_group_both_ways() -> None:
    """The invocations counted per cluster: one group after the other (many rows per group) and by
    distinct pairs (few), both as a set of (group, value) pairs counts them; negative values never."""
    import numpy as np

    from edgeinvestigate.analysis.clustering._table import _by_group, _distinct_per_group

    rng = np.random.default_rng(3)
    for _ in range(200):
        m, n = int(rng.integers(0, 4000)), int(rng.integers(1, 40))
        codes = rng.integers(0, n, m)
        values = rng.integers(-1, int(rng.integers(1, 300)), m)
        order = _by_group(codes, rng.permutation(m))
        want = np.zeros(n, dtype=np.int64)
        for g, v in {(int(g), int(v)) for g, v in zip(codes, values, strict=True) if v >= 0}:
            want[g] += 1
        assert _distinct_per_group(codes, order, values, n).tolist() == want.tolist()
