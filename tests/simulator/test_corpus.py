"""``corpus()``: a labelled message corpus for the clustering benchmark."""

from __future__ import annotations

import re
from collections import Counter

from _sim_helpers import template_regex

from edgeinvestigate.simulator import corpus, corpus_templates

KIND_PATTERNS = {
    "uuid": r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
    "ipv4": r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b",
    "ipv6": r"2606:4700:[0-9a-f]{4}:",
    "email": r"[a-z]+\.[a-z]+\d+@[a-z.-]+",
    "url": r"https://[a-z.-]+/",
    "path": r"/[a-z0-9]+/t_\d+/[0-9a-f]{16}\.[a-z]+",
    "quoted": r"\"[^\"]+\"",
    "iso": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
    "epoch": r"\b1[78]\d{11}\b",
    "duration": r"\b\d+ms\b|\b\d+\.\d\ds\b",
    "traceparent": r"00-[0-9a-f]{32}-[0-9a-f]{16}-01",
    "ray": r"\b[0-9a-f]{16}-[A-Z]{3}\b",
    "base64": r"[A-Za-z0-9+/]{16,}={0,2}",
    "hex": r"\b[0-9a-f]{64}\b",
    "float": r"\b\d+\.\d{3}\b",
}


def test_size_labels_and_determinism() -> None:
    msgs, ids = corpus(20_000, seed=3)
    assert len(msgs) == len(ids) == 20_000
    assert corpus(20_000, seed=3) == (msgs, ids)
    assert corpus(20_000, seed=4)[0] != msgs
    assert set(ids) <= set(range(200))
    assert len(set(ids)) > 150  # the long tail is there
    top = Counter(ids).most_common(1)[0][1]
    assert top < 0.3 * len(ids)


def test_every_message_matches_its_true_template() -> None:
    templates = corpus_templates(200)
    assert len({t.text for t in templates}) == 200
    regex = [template_regex(t.text) for t in templates]
    msgs, ids = corpus(5_000, seed=1)
    for m, i in zip(msgs, ids, strict=True):
        assert regex[i].match(m), (templates[i].text, m)


def test_every_kind_of_variable_part_occurs() -> None:
    msgs, _ = corpus(20_000, seed=0)
    text = "\n".join(msgs)
    missing = [k for k, p in KIND_PATTERNS.items() if not re.search(p, text)]
    assert missing == []


def test_some_templates_differ_only_in_constant_words() -> None:
    texts = [t.text for t in corpus_templates(200)]
    by_shape = Counter(re.sub(r"[A-Za-z]+", "W", t) for t in texts)
    assert sum(1 for n in by_shape.values() if n > 1) >= 20
    assert "upstream <*> responded 502 Bad Gateway after <*>" in texts
    assert "upstream <*> responded 504 Gateway Timeout after <*>" in texts
    assert any(t.startswith("[billing] ") and t[len("[billing] ") :] in texts for t in texts)


def test_fewer_templates() -> None:
    msgs, ids = corpus(1_000, seed=0, n_templates=20)
    assert set(ids) <= set(range(20))
    assert len(msgs) == 1_000
