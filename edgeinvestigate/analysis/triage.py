"""Transient or permanent: the one place where edgeinvestigate decides what kind of failure an error is.

A *transient* failure is expected to go away if the job is retried later (the dependency recovers,
the rate limit resets); a *permanent* one fails again on every retry (a bug, a bad payload) and
belongs in the DLQ until someone fixes the code or the data. The kind decides what on-call does
next: wait and replay (transient) or fix and then replay (permanent).

The rules are tried in the order of :data:`RULES` on the raw error text; the first rule whose
pattern matches decides. Network-level failures come first (``TypeError: fetch failed`` is a
network error even though it is a ``TypeError``), then HTTP statuses, then error classes and wording:

=================  =========  ===============================================================
rule               kind       matches
=================  =========  ===============================================================
resource-limit     permanent  exceeded the CPU / memory / wall-time limit (exceededCpu, exceededMemory)
network            transient  connection reset/refused/lost, ECONNRESET, ENOTFOUND, socket hang up,
                              fetch failed, network error
timeout            transient  timeout, timed out, ETIMEDOUT, deadline exceeded, "exceeded 430ms",
                              HTTP 408/504
http-429           transient  HTTP 429, too many (sub)requests, rate limit(ed), quota exhausted
http-5xx           transient  HTTP 5xx (a 5xx status next to HTTP/status/responded/returned...),
                              Bad Gateway, Service Unavailable, Internal Server Error
retry-wording      transient  retry, try again, temporarily, unavailable, locked/busy, overloaded,
                              reset because its code was updated, refreshing
type-error         permanent  TypeError, ReferenceError, SyntaxError, RangeError, "is not a function",
                              "Cannot read properties of undefined/null"
validation         permanent  validation, invalid, malformed, schema, required field, must be,
                              unexpected token, not valid JSON, unsupported, signature/verification
http-4xx           permanent  HTTP 4xx other than 408 and 429, not found, forbidden, unauthorized,
                              gone, expired certificate, suppression list, suspended
=================  =========  ===============================================================

Anything else is ``unknown``. A cluster's kind is the kind of most of its example messages; the
rule that decided is kept next to it (``kind_rule``) so the call can be checked and overridden.
To change a rule, edit :data:`RULES` (and this table).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["RULES", "Kind", "TriageRule", "classify", "classify_many", "classify_texts", "vote"]

Kind = Literal["transient", "permanent", "unknown"]

_HTTP_CTX = r"(?:HTTP(?:/[0-9.]+)?|status(?: code)?|code|responded|returned|response|got|with)\W{0,3}"


@dataclass(frozen=True)
class TriageRule:
    """One triage rule: a name, the kind it decides, a pattern (case-insensitive) and a description."""

    name: str
    kind: Kind
    pattern: re.Pattern[str]
    description: str

    def explain(self) -> str:
        return f"{self.name}: {self.description} -> {self.kind}"


def _rule(name: str, kind: Kind, pattern: str, description: str) -> TriageRule:
    return TriageRule(name, kind, re.compile(pattern, re.IGNORECASE), description)


RULES: Final[tuple[TriageRule, ...]] = (
    _rule(
        "resource-limit",
        "permanent",
        r"exceeded (?:the )?(?:CPU|memory|wall)|exceeded its memory|exceededCpu|exceededMemory"
        r"|Memory limit would be exceeded",
        "a Worker limit (CPU, memory, wall time): the same job hits it again on every retry",
    ),
    _rule(
        "network",
        "transient",
        r"connection (?:reset|refused|lost|closed|aborted)|network connection lost|ECONNRESET|ECONNREFUSED"
        r"|ENOTFOUND|EAI_AGAIN|EPIPE|socket hang up|fetch failed|network error|getaddrinfo",
        "network-level failure (connection reset/refused/lost, DNS)",
    ),
    _rule(
        "timeout",
        "transient",
        rf"time[d ]?\s?out|ETIMEDOUT|deadline exceeded|exceededWallTime|exceeded \d+(?:\.\d+)?\s?m?s\b"
        rf"|{_HTTP_CTX}(?:408|504)\b",
        "timeout",
    ),
    _rule(
        "http-429",
        "transient",
        rf"{_HTTP_CTX}429\b|\b429 Too Many|too many (?:requests|subrequests)|rate.?limit|quota exhausted"
        r"|throttl",
        "HTTP 429 / rate limited",
    ),
    _rule(
        "http-5xx",
        "transient",
        rf"{_HTTP_CTX}5[0-9][0-9]\b|bad gateway|service unavailable|internal server error|gateway timeout",
        "HTTP 5xx from a dependency",
    ),
    _rule(
        "retry-wording",
        "transient",
        r"\bretr(?:y|ying|ied)\b|try again|temporar|unavailable|\block(?:ed)?\b|SQLITE_BUSY|busy|overloaded"
        r"|code was updated|lock conflict|refreshing",
        "the message says it may succeed on retry",
    ),
    _rule(
        "type-error",
        "permanent",
        r"\b(?:TypeError|ReferenceError|SyntaxError|RangeError)\b|is not a function|is not defined"
        r"|Cannot read propert(?:y|ies) of (?:undefined|null)",
        "a bug in the code (TypeError and friends)",
    ),
    _rule(
        "validation",
        "permanent",
        r"validat|invalid|malformed|schema|required field|must be|unexpected token|not valid JSON"
        r"|unsupported|ZodError|exceed(?:s|ed)? the limit|references unknown|decode failed|corrupt"
        r"|verification failed|signature",
        "the payload or its data is invalid",
    ),
    _rule(
        "http-4xx",
        "permanent",
        rf"{_HTTP_CTX}4(?:0[0-79]|1[0-9]|2[0-8]|[3-9][0-9])\b|not found|forbidden|unauthori[sz]ed|\bgone\b"
        r"|certificate|suppression list|suspended|rejected|expired",
        "HTTP 4xx or a refusal that a retry will not change",
    ),
)


def classify(text: str | None) -> tuple[Kind, str]:
    """The kind of one error text and the name of the rule that decided (``""`` for unknown)."""
    if not text:
        return "unknown", ""
    for rule in RULES:
        if rule.pattern.search(text):
            return rule.kind, rule.name
    return "unknown", ""


#: texts made only of these characters are classified by RE2 in one vectorised pass: on them RE2 and
#: Python's ``re`` agree (word boundaries, classes, spaces, case folding); other texts go through Python
_PLAIN = re.compile(r"[\x20-\x7e\t\n\r]*")


def classify_texts(texts: Sequence[str | None]) -> list[tuple[Kind, str]]:
    """:func:`classify` of every text, the same answers, vectorised (one RE2 pass per rule over all
    plain-ASCII texts; Python for the others)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: list[tuple[Kind, str]] = [("unknown", "")] * len(texts)
    plain = [i for i, t in enumerate(texts) if t and _PLAIN.fullmatch(t)]
    other = set(range(len(texts))) - set(plain)
    for i in other:
        out[i] = classify(texts[i])
    if not plain:
        return out
    arr = pa.array([texts[i] for i in plain], type=pa.string())
    todo = pa.array(range(len(plain)), type=pa.int64())
    for rule in RULES:
        if not len(todo):
            break
        hit = pc.match_substring_regex(arr.take(todo), rule.pattern.pattern, ignore_case=True)
        matched = todo.filter(hit).to_pylist()
        for j in matched:
            out[plain[j]] = (rule.kind, rule.name)
        todo = todo.filter(pc.invert(hit))
    return out


def vote(results: Iterable[tuple[Kind, str]], weights: Iterable[int] | None = None) -> tuple[Kind, str]:
    """The kind of a group from the kinds of its texts (see :func:`classify_many`)."""
    votes: Counter[Kind] = Counter()
    rules: Counter[tuple[Kind, str]] = Counter()
    ws = list(weights) if weights is not None else None
    for i, (kind, rule) in enumerate(results):
        w = ws[i] if ws is not None else 1
        votes[kind] += w
        rules[(kind, rule)] += w
    if not votes:
        return "unknown", ""
    order: dict[Kind, int] = {"transient": 0, "permanent": 1, "unknown": 2}
    kind = min(votes, key=lambda k: (-votes[k], order[k]))
    rule = max((r for r in rules if r[0] == kind), key=lambda r: (rules[r], r[1]))[1]
    return kind, rule


def classify_many(texts: Iterable[str | None], weights: Iterable[int] | None = None) -> tuple[Kind, str]:
    """The kind of a group of texts (a cluster): the kind most of them have, and the rule most often
    behind it. Ties prefer transient over permanent over unknown (retrying is the safer default)."""
    return vote((classify(t) for t in texts), weights)


def rule_description(name: str) -> str:
    """The table row of one rule, for explanations (``""`` for an unknown name)."""
    for rule in RULES:
        if rule.name == name:
            return rule.explain()
    return ""
