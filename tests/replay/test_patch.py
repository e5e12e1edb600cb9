"""Payload patches: RFC 7386 merge patches (the RFC's own examples) and Python patch functions, and
patches that return non-JSON or raise, explained per message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from replay_messages import job, message_id, peeked
from replay_scenario import bundle_of, cli_main, job_frame, plan_jobs

from edgeinvestigate.errors import ConfigError, ReplayError
from edgeinvestigate.replay import merge_patch, plan_replay
from edgeinvestigate.replay._patch import diff, load_patch
from edgeinvestigate.sources.api.dlq_frame import dlq_frame

ALLOW = ["--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]

# RFC 7386 appendix A: (original, patch, result)
RFC_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC_CASES)
def test_rfc7386_examples(original: object, patch: object, result: object) -> None:
    before = json.dumps(original)
    assert merge_patch(original, patch) == result
    assert json.dumps(original) == before  # the input is not changed


def test_merge_patch_fixes_the_poison_field_with_a_diff_preview(tmp_path: Path) -> None:
    patch_file = tmp_path / "fix.json"
    patch_file.write_text(json.dumps({"payload": {"to": "ops@example.com", "data": None}}))
    msgs = [peeked(i, job(i, "EMAIL_DELIVERY")) for i in range(5)]
    p = plan_replay(dlq_frame(msgs, "jobs-dlq"), "jobs-dlq", "jobs", allow_queues=["jobs"], patch=patch_file)
    for m in p.messages:
        assert m.body["payload"]["to"] == "ops@example.com"
        assert "data" not in m.body["payload"]
        assert m.patched
        paths = {c["path"] for c in m.changes}
        assert paths == {"payload.to", "payload.data"}
    assert p.selection["patch"]["kind"] == "merge"
    assert len(p.selection["patch"]["sha256"]) == 64
    text = p.summary()
    assert 'payload.to: "user0@example.com" -> "ops@example.com"' in text
    assert "payload.data" in text
    assert "(removed)" in text


def test_python_patch_function_and_its_failures(tmp_path: Path) -> None:
    fn = tmp_path / "fix.py"
    fn.write_text(
        "def patch(message):\n"
        "    if message['payload']['jobId'] == 'job-000003':\n"
        "        raise ValueError('cannot fix this one')\n"
        "    message['payload']['url'] = message['payload']['url'].replace('http:', 'https:')\n"
        "    return message\n"
    )
    msgs = [peeked(i, job(i, "WEBHOOK_PROCESSING")) for i in range(5)]
    p = plan_replay(dlq_frame(msgs, "jobs-dlq"), "jobs-dlq", "jobs", allow_queues=["jobs"], patch=fn)
    assert len(p.messages) == 4
    assert [(e.reason, "cannot fix this one" in e.detail) for e in p.excluded] == [("patch_error", True)]
    assert not any(m.patched for m in p.messages)  # https already: no change, no diff

    bad = tmp_path / "nofunc.py"
    bad.write_text("x = 1\n")
    with pytest.raises(ConfigError, match=r"defines no function patch"):
        load_patch(bad)
    broken = tmp_path / "broken.json"
    broken.write_text('{"payload": \n {oops}')
    with pytest.raises(ConfigError, match=r"broken.json:2: the patch is not valid JSON"):
        load_patch(broken)


def test_diff_lists_changed_added_and_removed_paths() -> None:
    assert diff({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3, "d": 4}}) == [
        {"path": "b.c", "before": 2, "after": 3},
        {"path": "b.d", "after": 4},
    ]
    assert diff({"a": 1}, {}) == [{"path": "a", "before": 1}]
    assert diff(1, 1.0) == [{"path": "$", "before": 1, "after": 1.0}]


@pytest.mark.timeout(240)
def test_patches_that_return_non_json_or_raise_are_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fn = tmp_path / "objpatch.py"
    fn.write_text(
        "def patch(message):\n"
        "    job_id = message['payload']['jobId']\n"
        "    if job_id == 'job-000001':\n"
        "        message['payload']['when'] = object()\n"
        "    if job_id == 'job-000002':\n"
        "        raise KeyError('templateId')\n"
        "    return message\n"
    )
    p = plan_jobs(job_frame(), patch=fn)
    assert len(p.messages) == 4
    why = {e.message_id: e.detail for e in p.excluded if e.reason == "patch_error"}
    assert "not JSON: Object of type object is not JSON serializable" in why[message_id(1)]
    assert "patch() raised KeyError: 'templateId'" in why[message_id(2)]
    review = p.summary()
    assert f"{message_id(2)}: {fn}: patch() raised KeyError: 'templateId'" in review
    assert "Object of type object" in review

    every = tmp_path / "every.py"
    every.write_text("def patch(message):\n    return object()\n")
    with pytest.raises(ReplayError, match="failed on every one of the 6 selected messages") as exc:
        plan_jobs(job_frame(), patch=every)
    assert "returned object" in exc.value.message
    out = tmp_path / "plan.json"
    args = ["replay", "plan", str(bundle_of(tmp_path, job_frame())), *ALLOW, "--patch", str(every)]
    code, text = cli_main([*args, "--out", str(out)], capsys)
    assert code != 0
    assert "failed on every one" in text
    assert not out.exists()
