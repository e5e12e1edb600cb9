"""Interactive triage in JupyterLab: offline searchable tables and a picker that plans with every check."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.errors import ConfigError, EdgeInvestigateError
from edgeinvestigate.report import interactive
from edgeinvestigate.report.interactive import ClusterPicker


@pytest.fixture(scope="module")
def sample() -> tuple[Any, Any]:
    ev = ei.sample_bundle()
    return ev, ei.cluster(ev)


def test_interactive_table_is_offline_and_escapes_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown: list[str] = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, *a, **k: shown.append(str(obj.data)))
    monkeypatch.setattr(interactive, "_initialised", False)
    df = pd.DataFrame({"template": ["<script>alert(1)</script>", "ok"], "job_types": [["A", "B"], ["C"]]})
    interactive.interactive_table(df, caption="clusters")
    page = "\n".join(shown)
    assert "DataTable" in page or "ITable" in page or "itables" in page
    loads = re.findall(r"""(?:src\s*=\s*|from\s*|url\(|<link[^>]*href\s*=\s*)["']?(?:https?:)?//""", page)
    assert loads == [], "the table must not load anything from the network (no CDN)"
    assert "<script>alert(1)</script>" not in page.split("</script>", 1)[-1] or "&lt;script&gt;" in page


def test_picker_writes_a_plan_of_the_selected_clusters(sample: tuple[Any, Any], tmp_path: Path) -> None:
    ev, clusters = sample
    options = ClusterPicker(ev, clusters, "jobs-dlq").options()
    assert options, "the sample's DLQ holds clustered messages"
    chosen = options[0][1]
    out = tmp_path / "plan.json"
    picker = ClusterPicker(ev, clusters, "jobs-dlq", to_queue="jobs", selected=[chosen], out=str(out))
    plan = picker.write_plan()
    assert out.is_file()
    saved = json.loads(out.read_text())
    assert saved["plan_id"] == plan.plan_id
    in_cluster = set(clusters.dlq.loc[clusters.dlq["cluster_id"] == chosen, "message_id"])
    assert {m.message_id for m in plan.messages} <= in_cluster
    assert len(plan.messages) > 0
    # an existing plan file is not overwritten unless asked
    with pytest.raises(EdgeInvestigateError):
        picker.write_plan()
    picker.overwrite = True
    picker.write_plan()


@pytest.mark.parametrize(
    ("to_queue", "selected", "expected"),
    [
        ("", ["x"], "no target queue"),
        ("jobs", [], "no cluster selected"),
        ("jobs", ["cNOPE000000"], "cNOPE000000"),  # replay plan's own check of unknown clusters
        ("jobs-dlq", None, "jobs-dlq"),  # the DLQ itself is never a target
    ],
)
def test_picker_refuses_what_replay_plan_refuses(
    sample: tuple[Any, Any], tmp_path: Path, to_queue: str, selected: list[str] | None, expected: str
) -> None:
    ev, clusters = sample
    if selected is None:
        selected = [ClusterPicker(ev, clusters, "jobs-dlq").options()[0][1]]
    picker = ClusterPicker(
        ev, clusters, "jobs-dlq", to_queue=to_queue, selected=selected, out=str(tmp_path / "p.json")
    )
    with pytest.raises((ConfigError, EdgeInvestigateError)) as info:
        picker.write_plan()
    assert expected in info.value.message
    assert not (tmp_path / "p.json").exists()


@pytest.mark.e2e
def test_triage_runs_interactive_in_a_kernel(tmp_path: Path) -> None:
    """What JupyterLab runs (interactive=True): the tables and the picker display without an error."""
    from edgeinvestigate.report.runner import run_notebook

    run = run_notebook("triage", tmp_path / "out", {"interactive": True}, progress=False)
    assert run.ok, run.error
    text = run.ipynb.read_text()
    assert "application/vnd.jupyter.widget-view+json" in text, "the replay picker widget was displayed"
    assert "DLQ messages" in text
