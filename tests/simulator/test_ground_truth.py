"""ground_truth.json agrees with the files: counts, DLQ ids, every error and its true template."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from _sim_helpers import Run, decode_dlq_body, template_regex


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_counts_match_the_files(default_run: Run) -> None:
    c = default_run.truth["counts"]
    tail = default_run.tail_events()
    assert len(tail) == c["invocations"]["total"]
    assert Counter(e["outcome"] for e in tail) == Counter(c["invocations"]["by_outcome"])
    assert Counter(e["scriptName"] for e in tail) == Counter(c["invocations"]["by_script"])
    assert sum(len(e["logs"]) for e in tail) == c["logs"]["total"]
    assert Counter(lg["level"] for e in tail for lg in e["logs"]) == Counter(c["logs"]["by_level"])
    assert sum(len(e["exceptions"]) for e in tail) == c["exceptions"]
    failed = sum(1 for e in tail if e["outcome"] != "ok" or e["exceptions"])
    assert failed == c["invocations"]["failed"]
    dlq = default_run.dlq()["messages"]
    assert len(dlq) == c["dlq"]["total"] == c["dlq"]["wrapped"] + c["dlq"]["raw"]


def test_dlq_ids_and_envelopes_match(default_run: Run) -> None:
    truth = default_run.truth
    msgs = {m["id"]: m for m in default_run.dlq()["messages"]}
    assert [d["dlq_message_id"] for d in truth["dlq"]] == list(msgs)
    for d in truth["dlq"]:
        m = msgs[d["dlq_message_id"]]
        body = decode_dlq_body(m)
        assert m["attempts"] == d["dlq_attempts"]
        if d["envelope"] == "wrapped":
            assert body["error"] == d["error"]
            assert body["original"]["id"] == d["message_id"]
            assert body["original"]["body"]["payload"]["jobId"] == d["job_id"]
            assert template_regex(_template(truth, d["template_id"])).match(d["error"])
        else:
            assert m["id"] == d["message_id"]
            assert body["payload"]["jobId"] == d["job_id"]
            assert d["deliveries"] == truth["consumer"]["max_retries"] + 1
    ids = [i for rc in truth["root_causes"] for i in rc["dlq_message_ids"]]
    assert len(ids) == len(set(ids))
    assert set(ids) <= set(msgs)


def _template(truth: dict[str, Any], tid: str) -> str:
    return next(t["text"] for t in truth["templates"] if t["id"] == tid)


def test_every_error_message_has_its_true_template(default_run: Run) -> None:
    truth = default_run.truth
    texts = {t["id"]: template_regex(t["text"]) for t in truth["templates"]}
    errors = truth["errors"]
    assert Counter(e["where"] for e in errors) == Counter(truth["counts"]["errors"])
    for e in errors:
        assert texts[e["template_id"]].match(e["text"]), (e["template_id"], e["text"])
    # and the same errors are in the files: every warn/error line, every exception
    tail = default_run.tail_events()
    file_errors: Counter[str] = Counter()
    for ev in tail:
        for lg in ev["logs"]:
            if lg["level"] in ("warn", "error"):
                text = lg["message"][0]
                file_errors[json.loads(text)["error"] if text.startswith("{") else text] += 1
        for x in ev["exceptions"]:
            file_errors[x["message"]] += 1
    truth_errors = Counter(e["text"] for e in errors if e["where"] in ("log", "exception"))
    assert file_errors == truth_errors
    # many distinct templates, with realistic variable parts
    used = {e["template_id"] for e in errors}
    assert len(used) >= 30


def test_root_causes_are_consistent_with_the_logs(default_run: Run) -> None:
    truth = default_run.truth
    by_id = {rc["id"]: rc for rc in truth["root_causes"]}
    assert set(by_id) == {"bad-deploy-email-render", "image-service-outage"}
    assert truth["affected_job_types"] == ["EMAIL_DELIVERY", "IMAGE_PROCESSING"]
    bad, outage = by_id["bad-deploy-email-render"], by_id["image-service-outage"]
    assert bad["script_version"]["tag"] == "v142"
    assert bad["fixed_by"]["tag"] == "v143"
    versions = {d["version_id"]: d["tag"] for d in truth["deployments"]}
    tails = default_run.tail_events()
    bad_tpl = set(bad["template_ids"])
    out_tpl = set(outage["template_ids"])
    regex = {t["id"]: template_regex(t["text"]) for t in truth["templates"]}
    n_bad = n_out = 0
    for ev in tails:
        for lg in ev["logs"]:
            text = lg["message"][0]
            if not text.startswith("{"):
                continue
            rec = json.loads(text)
            err = rec.get("error")
            if err is None:
                continue
            if any(regex[t].match(err) for t in bad_tpl):
                n_bad += 1
                assert versions[ev["scriptVersion"]["id"]] == "v142"
                assert rec["type"] == "EMAIL_DELIVERY"
                assert rec["event"] == "job.dead_lettered"
                assert _ms(bad["start"]) <= ev["eventTimestamp"] < _ms(bad["end"])
            elif any(regex[t].match(err) for t in out_tpl):
                n_out += 1
                assert rec["type"] == "IMAGE_PROCESSING"
                assert rec["event"] in ("job.retry", "job.exhausted")
                assert _ms(outage["start"]) <= ev["eventTimestamp"] < _ms(outage["end"])
    assert n_bad == bad["n_failed_deliveries"] > 0
    assert n_out == outage["n_failed_deliveries"] > 0
    assert truth["window"]["start"] <= bad["first_error"] <= bad["last_error"]
    # the outage's exhausted jobs were moved raw, the bad deploy's were sent wrapped
    env = Counter((d["root_cause"], d["envelope"]) for d in truth["dlq"])
    assert env[("image-service-outage", "raw")] > 0
    assert env[("image-service-outage", "wrapped")] == 0
    assert env[("bad-deploy-email-render", "wrapped")] > 0
    assert env[("bad-deploy-email-render", "raw")] == 0


def test_retries_back_off_exponentially(default_run: Run) -> None:
    attempts: dict[str, list[tuple[int, int]]] = {}
    for ev in default_run.tail_events():
        for lg in ev["logs"]:
            text = lg["message"][0]
            if text.startswith('{"event":"job.'):
                rec = json.loads(text)
                attempts.setdefault(rec["messageId"], []).append((rec["attempt"], lg["timestamp"]))
    gaps: dict[int, list[int]] = {}
    for seq in attempts.values():
        seq.sort()
        assert [a for a, _ in seq] == list(range(1, len(seq) + 1))  # attempts grow by one
        assert len(seq) <= 4  # max_retries = 3
        for (a, t0), (_, t1) in itertools.pairwise(seq):
            gaps.setdefault(a, []).append(t1 - t0)
    assert min(gaps[1]) >= 8_000  # 10 s base delay with jitter
    assert sorted(gaps[2])[len(gaps[2]) // 2] > 2 * sorted(gaps[1])[len(gaps[1]) // 2]


@pytest.mark.parametrize("scenario", ["cpu-limits", "poison-payload", "dependency-outage", "bad-deploy"])
def test_each_scenario_shows_its_root_cause(scenario: str, sim_factory: Callable[..., Run]) -> None:
    run = sim_factory(scenario)
    truth = run.truth
    (rc,) = truth["root_causes"]
    assert rc["n_failed_deliveries"] > 0
    assert rc["affected_message_ids"]
    assert rc["dlq_message_ids"]
    outcomes = truth["counts"]["invocations"]["by_outcome"]
    dlq = [d for d in truth["dlq"] if d["root_cause"] == rc["id"]]
    if scenario == "cpu-limits":
        assert outcomes.get("exceededCpu", 0) > 0
        assert outcomes.get("exceededWallTime", 0) > 0
        assert {d["envelope"] for d in dlq} == {"raw"}
        assert rc["n_collateral_deliveries"] > 0  # messages after the killer in its batch are retried
        limit = [e for e in run.tail_events() if e["outcome"] == "exceededCpu"]
        assert all(e["exceptions"] and e["cpuTime"] >= 30_000 for e in limit)
    elif scenario == "poison-payload":
        assert {d["envelope"] for d in dlq} == {"wrapped"}
        assert all(d["deliveries"] == 1 for d in dlq)  # permanent: no retry
    elif scenario == "dependency-outage":
        assert {d["envelope"] for d in dlq} == {"raw"}
    else:
        assert {d["envelope"] for d in dlq} == {"wrapped"}
