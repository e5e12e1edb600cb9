"""Interactive triage inside JupyterLab: searchable tables and a cluster picker that writes a replay plan.

Notebooks stay thin: they call these when they run in JupyterLab (parameter ``interactive``, true
in the notebook text, false when ``edgeinvestigate report`` runs them). Reports are static HTML and
keep using :func:`edgeinvestigate.report.kernel.table`.

- :func:`interactive_table`: a sortable, searchable table (itables, DataTables). Offline: the
  DataTables bundle ships inside the itables package and is put into the notebook, nothing is
  fetched from a CDN. Cell text is escaped (never HTML).
- :class:`ClusterPicker` / :func:`cluster_picker`: pick clusters (pre-selected with
  :func:`edgeinvestigate.replay.default_selection`), name the target queue, write ``plan.json``.
  It calls :func:`edgeinvestigate.replay.plan_replay`, so every check ``replay plan`` makes applies
  (unknown clusters, empty selections, the DLQ as a target, the allow-list, earlier plans). It never
  sends anything: ``edgeinvestigate replay run plan.json`` does, after a review.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinvestigate.errors import EdgeInvestigateError, MissingExtraError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.evidence.bundle import Evidence
    from edgeinvestigate.replay import ReplayPlan

__all__ = ["ClusterPicker", "cluster_picker", "interactive_table"]

_initialised = False


def interactive_table(df: pd.DataFrame, *, caption: str | None = None, max_rows: int = 5_000) -> None:
    """Show ``df`` as a sortable, searchable table (offline DataTables via itables)."""
    global _initialised
    try:
        import itables
    except ImportError as exc:
        raise MissingExtraError("notebooks", "interactive tables (itables)") from exc
    if not _initialised:
        itables.init_notebook_mode(connected=False)  # the bundle goes into the notebook, no CDN
        _initialised = True
    shown = df.head(max_rows).copy()
    for col in shown.columns:  # lists and timestamps read better as text
        if shown[col].dtype == object:
            shown[col] = shown[col].map(
                lambda v: ", ".join(map(str, v)) if isinstance(v, list | tuple) else v
            )
    itables.show(shown, caption=caption, connected=False, allow_html=False, maxBytes=0)


@dataclass
class ClusterPicker:
    """The picker's state and its one action, :meth:`write_plan` (the widget only sets the fields)."""

    evidence: Evidence
    clusters: Clusters
    from_queue: str
    to_queue: str = ""
    selected: list[str] = field(default_factory=list)
    out: str = "plan.json"
    overwrite: bool = False
    bundle: str | None = None

    def options(self) -> list[tuple[str, str]]:
        """``(label, cluster id)`` for every cluster with DLQ messages, largest first."""
        t = self.clusters.table
        rows = t[t["n_dlq_messages"] > 0].sort_values("n_dlq_messages", ascending=False)
        columns = zip(rows["cluster_id"], rows["kind"], rows["n_dlq_messages"], rows["template"], strict=True)
        return [(f"{cid} · {kind} · {n} in DLQ · {str(tpl)[:70]}", str(cid)) for cid, kind, n, tpl in columns]

    def write_plan(self) -> ReplayPlan:
        """Plan the replay of the selected clusters into ``to_queue`` and save it (nothing is sent)."""
        from edgeinvestigate.errors import ConfigError
        from edgeinvestigate.replay import plan_replay

        if not self.to_queue.strip():
            raise ConfigError(
                "no target queue: a replay needs the work queue whose consumer dead-lettered these messages",
                hint="type the queue name in the picker (see runbooks/replay-failed-jobs.md)",
            )
        if not self.selected:
            raise ConfigError("no cluster selected: nothing to plan", hint="select one or more clusters")
        plan = plan_replay(
            self.evidence,
            self.from_queue,
            self.to_queue.strip(),
            clusters=list(self.selected),
            allow_queues=[self.to_queue.strip()],
            bundle=self.bundle,
        )
        plan.save(self.out, overwrite=self.overwrite)
        return plan


def cluster_picker(
    ev: Evidence, clusters: Clusters, *, from_queue: str, to_queue: str = "", out: str = "plan.json",
    bundle: str | None = None, findings: Any = None,
) -> ClusterPicker:  # fmt: skip
    """Show the picker in JupyterLab and return its state (``picker.write_plan()`` works without widgets)."""
    from edgeinvestigate.replay import default_selection

    safe = [s.cluster_id for s in default_selection(ev, clusters=clusters, findings=findings)]
    picker = ClusterPicker(ev, clusters, from_queue, to_queue, safe, out, bundle=bundle)
    try:
        import ipywidgets as w
        from IPython.display import display
    except ImportError as exc:
        raise MissingExtraError("notebooks", "the cluster picker (ipywidgets)") from exc
    options = picker.options()
    known = {cid for _, cid in options}
    choose = w.SelectMultiple(
        options=options, value=tuple(c for c in safe if c in known), rows=min(12, max(3, len(options))),
        description="clusters", layout=w.Layout(width="95%"),
    )  # fmt: skip
    target = w.Text(value=to_queue, description="to queue", placeholder="the work queue to replay into")
    path = w.Text(value=out, description="plan file")
    overwrite = w.Checkbox(value=False, description="overwrite an existing plan file")
    button = w.Button(description="Write replay plan", button_style="primary", icon="save")
    result = w.Output()

    def on_click(_: Any) -> None:
        picker.selected, picker.to_queue = list(choose.value), target.value
        picker.out, picker.overwrite = path.value, overwrite.value
        result.clear_output()
        with result:
            try:
                plan = picker.write_plan()
            except EdgeInvestigateError as exc:
                print(f"not written: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""))
                return
            print(plan.summary(samples=0))
            where = Path(picker.out).resolve()
            print(
                f"\nwritten to {where}; review it, then: edgeinvestigate replay run {picker.out} "
                f"--allow-queue {picker.to_queue.strip()}"
            )

    button.on_click(on_click)
    display(w.VBox([choose, target, path, overwrite, button, result]))
    return picker
