"""Credentials in log and exception text never reach `clusters` output, nor notebook parameters.

The API token's value, bearer tokens and auth headers are masked in every `clusters` output (table,
JSON, CSV, --explain) with or without --redact; --redact additionally masks emails and IPs. A report
parameter that contains the token is refused before anything runs, without echoing the value.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from _helpers.cli import run

from edgeinvestigate.cli import main
from edgeinvestigate.simulator import simulate

TOKEN = "Zq7TfK2mWcX9rVb4Lp0sYh3NdJ8uGe6Aio1Btk5C"  # 40 chars, shaped like a Cloudflare API token
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvbmNhbGwifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
OTHER = "ghp-not-in-env-but-sent-as-bearer-0001"
EMAIL = "alice.oncall@example.com"


def _events(text: str) -> list[dict]:
    """Read wrangler tail --format json output (pretty-printed objects one after another)."""
    dec = json.JSONDecoder()
    out, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inc = tmp_path_factory.mktemp("leaky")
    simulate("default", inc, seed=11, invocations=200, formats=["tail"])
    tail = inc / "tail" / "tail.json"
    events = _events(tail.read_text())
    leaked = 0
    for ev in events:
        if ev.get("logs") and leaked < 6:
            ev["outcome"] = "exception"
            ev["exceptions"] = [
                {
                    "name": "Error",
                    "message": f"upstream 401: token {TOKEN} rejected for {EMAIL}",
                    "timestamp": ev["eventTimestamp"] + 3,
                }
            ]
            ev["logs"].append(
                {
                    "message": [f"fetch failed Authorization: Bearer {OTHER} token={TOKEN}"],
                    "level": "error",
                    "timestamp": ev["eventTimestamp"] + 1,
                }
            )
            ev["logs"].append(
                {
                    "message": [f"retrying with bearer {BEARER}"],
                    "level": "error",
                    "timestamp": ev["eventTimestamp"] + 2,
                }
            )
            leaked += 1
    assert leaked == 6
    tail.write_text("".join(json.dumps(ev, indent=4) + "\n" for ev in events))
    out = tmp_path_factory.mktemp("bundle") / "ev"
    # kept verbatim on purpose: clusters must mask what an older (or --keep-secrets) bundle holds
    main(["collect", str(tail), "--out", str(out), "--keep-secrets"])
    return out


def assert_clean(text: str) -> None:
    assert TOKEN not in text
    assert OTHER not in text
    assert BEARER not in text
    assert TOKEN[:20] not in text  # not even a prefix survives


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)


def test_the_bundle_really_holds_the_credentials(bundle: Path) -> None:
    import pandas as pd

    texts = " ".join(pd.read_parquet(p).astype(str).to_string() for p in bundle.rglob("*.parquet"))
    assert TOKEN in texts
    assert OTHER in texts


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
@pytest.mark.parametrize("with_env", [True, False], ids=["token-in-env", "no-env"])
def test_every_clusters_format_masks_credentials_without_redact(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    bundle: Path,
    fmt: str,
    with_env: bool,
) -> None:
    if with_env:
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    else:
        monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    code, out, err = run(capsys, "clusters", str(bundle), "--format", fmt, "--limit", "500")
    assert code == 0, err
    assert_clean(out + err)
    assert "rejected for" in out  # the leaky cluster is shown, masked
    if fmt != "table":  # examples are printed as logged: without --redact personal data stays
        assert EMAIL in out
    if fmt == "json":
        clusters = json.loads(out)["clusters"]
        assert any("[secret]" in json.dumps(c) or "[token]" in json.dumps(c) for c in clusters)
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert rows
        assert any("rejected for" in " ".join(r.values()) for r in rows)


def test_redact_masks_personal_data_too(
    capsys: pytest.CaptureFixture[str], token_env: None, bundle: Path
) -> None:
    code, out, _ = run(capsys, "clusters", str(bundle), "--format", "json", "--redact")
    assert code == 0
    assert_clean(out)
    assert EMAIL not in out


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_explain_masks_credentials(
    capsys: pytest.CaptureFixture[str], token_env: None, bundle: Path, fmt: str
) -> None:
    code, out, _ = run(capsys, "clusters", str(bundle), "--format", "json", "--limit", "500")
    leaky = [c for c in json.loads(out)["clusters"] if "rejected for" in json.dumps(c)]
    assert leaky
    for c in leaky:
        code, out, err = run(capsys, "clusters", str(bundle), "--explain", c["cluster_id"], "--format", fmt)
        assert code == 0, err
        assert_clean(out + err)
        assert out.strip()


def test_report_refuses_a_parameter_holding_the_token(
    capsys: pytest.CaptureFixture[str], token_env: None, bundle: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "report"
    code, out, err = run(
        capsys, "report", str(bundle), "--out", str(out_dir), "-p", f"incident_id=INC-1 {TOKEN}"
    )
    assert code == 2
    assert_clean(out + err)
    assert "incident_id" in err
    assert "contains the API token" in err
    assert not list(out_dir.glob("*.ipynb"))  # refused before anything ran
    assert not list(out_dir.glob("*.html"))
