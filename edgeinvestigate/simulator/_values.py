"""Variable parts of log and error messages, generated in vectorised batches.

A message template is a ``str.format``-style string whose fields name a *kind* of variable part:
``"Upstream {url} returned 503 after {ms}"``. :class:`Template` parses it once; ``render(rng, n)``
draws ``n`` values of every field with numpy and formats ``n`` messages. The true template text
(what clustering should recover) replaces every field by ``<*>``.

Every kind the clustering masks must handle is here: uuids, hex ids, ints, floats, IPv4/IPv6, emails,
URLs, paths, quoted strings, ISO and epoch timestamps, durations, traceparents, Cloudflare ray ids,
base64 blobs, plus product ids (tenants, customers, job ids).
"""

from __future__ import annotations

import base64
import string
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["KINDS", "Template", "gen_values", "hex_ids", "job_ids", "ulids", "uuids"]

Gen = Callable[[np.random.Generator, int], list[str]]

_FIRST = [
    "ana",
    "liam",
    "olivia",
    "noah",
    "emma",
    "mateo",
    "sofia",
    "lucas",
    "mia",
    "leon",
    "yuki",
    "chen",
    "priya",
    "arjun",
    "fatima",
    "omar",
    "hannah",
    "jonas",
    "elena",
    "marco",
    "lea",
    "tom",
    "zoe",
    "ravi",
    "ines",
    "pablo",
    "nina",
    "felix",
    "aiko",
    "sara",
]
_LAST = [
    "smith",
    "garcia",
    "muller",
    "rossi",
    "dubois",
    "kowalski",
    "tanaka",
    "kim",
    "patel",
    "silva",
    "novak",
    "berg",
    "lee",
]
_MAIL_DOMAINS = [
    "example.com",
    "mail.example.org",
    "acme.io",
    "contoso.net",
    "globex.com",
    "initech.co",
    "umbrella.dev",
    "example.co.uk",
    "hooli.xyz",
]
_HOSTS = [
    "images.internal.example.com",
    "api.mailer.example.net",
    "hooks.acme.io",
    "reports.example.com",
    "sync.partner-api.com",
    "billing.globex.com",
    "crm.initech.co",
    "storage.example.org",
    "webhooks.hooli.xyz",
    "api.contoso.net",
]
_WORDS = [
    "welcome",
    "order_shipped",
    "password_reset",
    "invoice_ready",
    "weekly_digest",
    "trial_ending",
    "usage_report",
    "churn_summary",
    "thumbnails",
    "avatars",
    "invoices",
    "ledger",
    "customers",
    "orders",
    "line_items",
    "subscriptions",
    "en-US",
    "de-DE",
    "fr-FR",
    "ja-JP",
    "pt-BR",
    "webp",
    "avif",
    "heic",
    "tiff",
]
_SEGMENTS = [
    "v1",
    "v2",
    "api",
    "jobs",
    "images",
    "reports",
    "hooks",
    "sync",
    "tenants",
    "objects",
    "exports",
    "events",
]
_EXT = ["jpg", "png", "webp", "pdf", "csv", "json"]
_COLOS = [
    "FRA",
    "AMS",
    "LHR",
    "CDG",
    "IAD",
    "SJC",
    "ORD",
    "DFW",
    "NRT",
    "SIN",
    "SYD",
    "GRU",
    "JNB",
    "BOM",
    "MAD",
    "WAW",
]
_B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def hex_ids(rng: np.random.Generator, n: int, k: int) -> list[str]:
    """``n`` random lowercase hex strings of ``k`` characters."""
    nbytes = (k + 1) // 2
    h = rng.bytes(n * nbytes).hex()
    step = nbytes * 2
    return [h[i : i + k] for i in range(0, n * step, step)]


def uuids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` random version-4 UUID strings."""
    out = []
    for h in hex_ids(rng, n, 32):
        out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}")
    return out


def job_ids(rng: np.random.Generator, n: int, base_ms: np.ndarray | None = None) -> list[str]:
    """``n`` ULID-like job ids (``job_01J...``): 10 time characters then 16 random ones."""
    return ["job_" + u for u in ulids(rng, n, base_ms)]


def ulids(rng: np.random.Generator, n: int, base_ms: np.ndarray | None = None) -> list[str]:
    """``n`` ULIDs (Crockford base32: 10 time characters then 16 random ones)."""
    ms = np.zeros(n, dtype=np.int64) if base_ms is None else np.asarray(base_ms, dtype=np.int64)
    rand = rng.integers(0, 32, size=(n, 16))
    tchars = np.empty((n, 10), dtype=np.int64)
    t = ms.copy()
    for i in range(9, -1, -1):
        tchars[:, i] = t % 32
        t //= 32
    codes = np.concatenate([tchars, rand], axis=1)
    table = np.frombuffer(_B32.encode(), dtype=np.uint8)
    raw = table[codes].tobytes().decode()
    return [raw[i : i + 26] for i in range(0, n * 26, 26)]


def _pick(words: list[str]) -> Gen:
    arr = np.array(words, dtype=object)

    def gen(rng: np.random.Generator, n: int) -> list[str]:
        return list(arr[rng.integers(0, len(arr), n)])

    return gen


def _ints(lo: int, hi: int) -> Gen:
    def gen(rng: np.random.Generator, n: int) -> list[str]:
        return [str(v) for v in rng.integers(lo, hi, n).tolist()]

    return gen


def _ms(rng: np.random.Generator, n: int) -> list[str]:
    return [f"{v}ms" for v in np.round(rng.lognormal(6.5, 1.0, n)).astype(np.int64).tolist()]


def _secs(rng: np.random.Generator, n: int) -> list[str]:
    return [f"{v:.2f}s" for v in rng.lognormal(1.0, 0.8, n).tolist()]


def _float(rng: np.random.Generator, n: int) -> list[str]:
    return [f"{v:.3f}" for v in rng.lognormal(0.0, 1.5, n).tolist()]


def _ip4(rng: np.random.Generator, n: int) -> list[str]:
    a = rng.integers(1, 255, size=(n, 4)).tolist()
    return [f"{x[0]}.{x[1]}.{x[2]}.{x[3]}" for x in a]


def _ip6(rng: np.random.Generator, n: int) -> list[str]:
    h = hex_ids(rng, n, 16)
    return [f"2606:4700:{x[0:4]}:{x[4:8]}::{x[8:12]}:{x[12:16]}" for x in h]


def _email(rng: np.random.Generator, n: int) -> list[str]:
    f = rng.integers(0, len(_FIRST), n).tolist()
    la = rng.integers(0, len(_LAST), n).tolist()
    d = rng.integers(0, len(_MAIL_DOMAINS), n).tolist()
    num = rng.integers(1, 999, n).tolist()
    return [f"{_FIRST[a]}.{_LAST[b]}{c}@{_MAIL_DOMAINS[e]}" for a, b, c, e in zip(f, la, num, d, strict=True)]


def _host(rng: np.random.Generator, n: int) -> list[str]:
    return _pick(_HOSTS)(rng, n)


def _url(rng: np.random.Generator, n: int) -> list[str]:
    hosts = _host(rng, n)
    seg = rng.integers(0, len(_SEGMENTS), size=(n, 2)).tolist()
    ids = hex_ids(rng, n, 12)
    q = rng.integers(1000, 99999, n).tolist()
    return [
        f"https://{h}/{_SEGMENTS[s[0]]}/{_SEGMENTS[s[1]]}/{i}?tenant=t_{k}"
        for h, s, i, k in zip(hosts, seg, ids, q, strict=True)
    ]


def _path(rng: np.random.Generator, n: int) -> list[str]:
    seg = rng.integers(0, len(_SEGMENTS), n).tolist()
    ten = rng.integers(100, 9999, n).tolist()
    ids = hex_ids(rng, n, 16)
    ext = rng.integers(0, len(_EXT), n).tolist()
    return [f"/{_SEGMENTS[s]}/t_{t}/{i}.{_EXT[e]}" for s, t, i, e in zip(seg, ten, ids, ext, strict=True)]


def _quoted(rng: np.random.Generator, n: int) -> list[str]:
    return [f'"{w}"' for w in _pick(_WORDS)(rng, n)]


def _squoted(rng: np.random.Generator, n: int) -> list[str]:
    return [f"'{w}'" for w in _pick(_WORDS)(rng, n)]


_EPOCH0 = 1_795_780_800_000  # 2026-11-27T08:00:00Z


def _epoch(rng: np.random.Generator, n: int) -> list[str]:
    return [str(v) for v in (_EPOCH0 + rng.integers(0, 86_400_000, n)).tolist()]


def _iso(rng: np.random.Generator, n: int) -> list[str]:
    ms = _EPOCH0 + rng.integers(0, 86_400_000, n)
    arr = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms")
    return [f"{s}Z" for s in arr.tolist()]


def _traceparent(rng: np.random.Generator, n: int) -> list[str]:
    a = hex_ids(rng, n, 32)
    b = hex_ids(rng, n, 16)
    return [f"00-{x}-{y}-01" for x, y in zip(a, b, strict=True)]


def _ray(rng: np.random.Generator, n: int) -> list[str]:
    h = hex_ids(rng, n, 16)
    c = rng.integers(0, len(_COLOS), n).tolist()
    return [f"{x}-{_COLOS[k]}" for x, k in zip(h, c, strict=True)]


def _b64(rng: np.random.Generator, n: int) -> list[str]:
    lens = rng.integers(12, 48, n).tolist()
    raw = rng.bytes(int(sum(lens)))
    out = []
    pos = 0
    for k in lens:
        out.append(base64.b64encode(raw[pos : pos + k]).decode())
        pos += k
    return out


def _tenant(rng: np.random.Generator, n: int) -> list[str]:
    return [f"t_{v}" for v in rng.integers(100, 9999, n).tolist()]


def _customer(rng: np.random.Generator, n: int) -> list[str]:
    return ["cus_" + h for h in hex_ids(rng, n, 14)]


def _job(rng: np.random.Generator, n: int) -> list[str]:
    return job_ids(rng, n, _EPOCH0 + rng.integers(0, 86_400_000, n))


def _port(rng: np.random.Generator, n: int) -> list[str]:
    return _pick(["443", "587", "5432", "6379", "8443", "25", "465", "9092"])(rng, n)


#: kind -> generator of ``n`` string values
KINDS: dict[str, Gen] = {
    "uuid": uuids,
    "hex8": lambda rng, n: hex_ids(rng, n, 8),
    "hex16": lambda rng, n: hex_ids(rng, n, 16),
    "hex32": lambda rng, n: hex_ids(rng, n, 32),
    "hex40": lambda rng, n: hex_ids(rng, n, 40),
    "hex64": lambda rng, n: hex_ids(rng, n, 64),
    "int": _ints(1, 5000),
    "small": _ints(2, 64),
    "big": _ints(100_000, 99_999_999),
    "status": _pick(["500", "502", "503", "504"]),
    "float": _float,
    "ms": _ms,
    "secs": _secs,
    "ip4": _ip4,
    "ip6": _ip6,
    "port": _port,
    "email": _email,
    "host": _host,
    "url": _url,
    "path": _path,
    "quoted": _quoted,
    "squoted": _squoted,
    "iso": _iso,
    "epoch": _epoch,
    "traceparent": _traceparent,
    "ray": _ray,
    "b64": _b64,
    "tenant": _tenant,
    "customer": _customer,
    "job": _job,
    # context fields: filled from the failing job when the engine knows them, random otherwise
    "imgformat": _pick(['"tiff"', '"bmp"', '"jxl"', '"psd"', '"raw"', '"eps"']),
    "template": _quoted,
    "bad": _quoted,
    "type": _pick(
        ["IMAGE_PROCESSING", "EMAIL_DELIVERY", "REPORT_GENERATION", "DATA_SYNC", "WEBHOOK_PROCESSING"]
    ),
}


def gen_values(kind: str, rng: np.random.Generator, n: int) -> list[str]:
    """``n`` values of one kind of variable part."""
    return KINDS[kind](rng, n)


@dataclass(frozen=True)
class Template:
    """A message template: constant text with typed variable fields.

    ``Template("E042", "connect ECONNREFUSED {ip4}:{port}")``; ``text`` is the true template with
    ``<*>`` in place of every field, ``render(rng, n)`` formats ``n`` random instances.
    """

    id: str
    spec: str
    kind: str = "unknown"  # transient | permanent | benign | unknown
    name: str = "Error"  # the JS error class when raised as an exception

    def __post_init__(self) -> None:
        unknown = [f for f in self.fields if f not in KINDS]
        if unknown:
            raise ValueError(
                f"template {self.id} ({self.spec!r}) uses unknown variable kinds {unknown}; "
                f"known kinds: {', '.join(sorted(KINDS))}"
            )

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.spec) if f is not None)

    @property
    def text(self) -> str:
        out = []
        for lit, f, _, _ in string.Formatter().parse(self.spec):
            out.append(lit)
            if f is not None:
                out.append("<*>")
        return "".join(out)

    @property
    def _positional(self) -> str:
        out = []
        for lit, f, _, _ in string.Formatter().parse(self.spec):
            out.append(lit.replace("{", "{{").replace("}", "}}"))
            if f is not None:
                out.append("{}")
        return "".join(out)

    def render(
        self, rng: np.random.Generator, n: int, context: dict[str, list[str]] | None = None
    ) -> list[str]:
        """``n`` instances; fields found in ``context`` (name -> ``n`` values) are taken from it,
        the others are drawn at random."""
        if n <= 0:
            return []
        fields = self.fields
        fmt = self._positional
        if not fields:
            return [fmt.format()] * n
        ctx = context or {}
        cols = [ctx[f] if f in ctx else gen_values(f, rng, n) for f in fields]
        return [fmt.format(*vals) for vals in zip(*cols, strict=True)]
