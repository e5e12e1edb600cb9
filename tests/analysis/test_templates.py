"""The template step: order independence, stable ids, no over-grouping of near-identical templates."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeinvestigate.analysis._templates import (
    cluster_id_for,
    display_template,
    merge_templates,
    stack_fingerprint,
)
from edgeinvestigate.analysis.clustering import group_texts


def test_plain_words_with_many_values_become_a_slot() -> None:
    keys = [f"tenant {w} failed" for w in ("acme", "globex", "initech", "umbrella")]
    assert set(merge_templates(keys)) == {"tenant <*> failed"}


@pytest.mark.parametrize(
    "pair",
    [
        ("SMTP relay <*> connection reset after <*>", "SMTP relay <*> connection refused after <*>"),
        ("upstream <*> responded 502 Bad Gateway", "upstream <*> responded 504 Gateway Timeout"),
        ("request <*> completed with status 200", "request <*> completed with status 404"),
        ("flag <*> evaluated to true", "flag <*> evaluated to false"),
    ],
)
def test_two_alternatives_stay_apart(pair: tuple[str, str]) -> None:
    out = merge_templates(list(pair) * 3)
    assert len(set(out)) == 2


def test_instances_join_the_general_template() -> None:
    keys = ["lock (version <*> != <*>)", "lock (version 121 != 130)", "lock (version <*> != 404)"]
    assert set(merge_templates(keys)) == {"lock (version <*> != <*>"}  # "<*>)" is one slot


def test_result_depends_only_on_the_set() -> None:
    msgs = [f"user {u} logged in from 10.0.{i % 250}.{i % 7}" for i, u in enumerate(["ana", "bo", "cy"] * 50)]
    msgs += [f"job job_01J{i:05d}ABC failed on attempt {i % 4} of 4" for i in range(200)]
    shuffled = msgs[:]
    random.Random(1).shuffle(shuffled)
    a = group_texts(msgs)
    b = group_texts(shuffled)
    assert sorted(a.templates) == sorted(b.templates)
    ta = {m: a.templates[i] for m, i in zip(msgs, a.labels, strict=True)}
    tb = {m: b.templates[i] for m, i in zip(shuffled, b.labels, strict=True)}
    assert ta == tb


def test_cluster_id_is_a_stable_hash() -> None:
    cid = cluster_id_for("Upstream API <*> responded <*>")
    assert cid == cluster_id_for("Upstream  API <*>   responded <*>")  # whitespace normalised
    assert cid != cluster_id_for("Upstream API <*> responded <*>", "ab12cd34")
    assert (
        cid
        == "c" + __import__("hashlib").blake2b(b"Upstream API <*> responded <*>", digest_size=6).hexdigest()
    )


def test_stack_fingerprint_ignores_line_and_column_and_vendor_frames() -> None:
    a = (
        "TypeError: x is undefined\n    at render (worker.js:120:11)\n"
        "    at async processJob (worker.js:88:5)\n    at node_modules/lib/index.js:1:1"
    )
    b = (
        "TypeError: x is undefined\n    at render (worker.js:133:2)\n"
        "    at async processJob (worker.js:90:7)\n    at node_modules/lib/index.js:9:9"
    )
    c = "TypeError: x is undefined\n    at other (worker.js:1:1)"
    assert stack_fingerprint(a) == stack_fingerprint(b) != ""
    assert stack_fingerprint(a) != stack_fingerprint(c)
    assert stack_fingerprint("") == stack_fingerprint(None) == ""


def test_display_template_keeps_types_and_spacing() -> None:
    tpl = "SMTP relay <*> connection reset after <*>"
    assert display_template(tpl, "SMTP relay <ipv4> connection reset after <duration>") == (
        "SMTP relay <ipv4> connection reset after <duration>"
    )
    # a slot made variable by the template step shows as <*>
    assert display_template("tenant <*> failed", "tenant acme failed") == "tenant <*> failed"
    # misaligned: the normalised template is shown
    assert display_template("a <*>", "b <int>") == "a <*>"


_WORDS = st.sampled_from(["job", "failed", "<*>", "acme", "globex", "initech", "retry", "(", ")", ":", "503"])


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.lists(_WORDS, min_size=1, max_size=6).map(" ".join), min_size=1, max_size=40),
    seed=st.integers(0, 1000),
)
def test_templates_do_not_depend_on_order(keys: list[str], seed: int) -> None:
    shuffled = keys[:]
    random.Random(seed).shuffle(shuffled)
    a = dict(zip(keys, merge_templates(keys), strict=True))
    b = dict(zip(shuffled, merge_templates(shuffled), strict=True))
    assert a == b
    # every template is a generalisation of its key: same length, <*> or the same token per slot
    for key, tpl in a.items():
        from edgeinvestigate.analysis._templates import tokens

        k, t = tokens(key), tuple(tpl.split(" "))
        assert len(k) == len(t)
        assert all(x == y or y == "<*>" for x, y in zip(k, t, strict=True))
