"""``edgeinvestigate clusters`` on a collected bundle: ``--explain`` takes a cluster id.

Credentials in its output: test_clusters_credentials.py; fitting the terminal: test_term.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers.cli import run


def test_explain_accepts_a_cluster_id(capsys: pytest.CaptureFixture[str], bundle: Path) -> None:
    code, out, _ = run(capsys, "clusters", str(bundle), "--format", "json")
    top = json.loads(out)["clusters"][0]
    code, out, _ = run(capsys, "clusters", str(bundle), "--explain", top["cluster_id"])
    assert code == 0
    assert out.splitlines()[0].startswith(f"cluster {top['cluster_id']}: explaining its first error row")
    assert f"id:        {top['cluster_id']}" in out
    assert f"cluster:   {top['template']}" in out
