# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Incident report
#
# The postmortem evidence, generated from an evidence bundle by
# `edgeinvestigate report BUNDLE --out DIR -p incident_id=INC-123`. Numbers, times and findings
# come from the data; the sections at the end are for people to fill in.

# %% tags=["parameters"]
bundle = ""  # evidence bundle folder; empty means the bundled sample incident
since = ""  # only data at or after this UTC time
until = ""  # only data before this UTC time
title = "Incident report"  # the report's title
incident_id = ""  # your incident id, e.g. INC-123
replay_plan = ""  # a replay plan.json whose results to include
top_n = 5  # findings and clusters to include
findings_file = ""  # the bundle's findings.json (from investigate): reported instead of analysing again

# %%
import json
from pathlib import Path

import pandas as pd

import edgeinvestigate as ei
from edgeinvestigate.analysis import plots
from edgeinvestigate.analysis.queue_plots import queue_health, queue_health_table
from edgeinvestigate.report import views
from edgeinvestigate.report.kernel import (
    dlq_size,
    emit,
    findings_of,
    note,
    open_bundle,
    pre,
    say,
    show,
    table,
)

ev = open_bundle(bundle, since=since, until=until)
clusters = ei.cluster(ev)  # the clusters stored in the bundle (computed in memory when it has none)
note(clusters.note)
findings = findings_of(ev, clusters, findings_file, since=since, until=until)  # or ei.analyze
inc = findings.incident
heading = title if title != "Incident report" else inc.title
say("<h2>{id}{title}</h2>", id=f"{incident_id}: " if incident_id else "", title=heading)
emit("title", views.page_title("incident-report", incident_id=incident_id, title=heading))

# %% [markdown]
# ## Summary

# %%
named = views.summary_findings(findings)
if not named:
    say("<p><b>What happened:</b> no single cause stands out.</p>")
for h in named:
    say("<p><b>What happened ({conf} confidence):</b> {s}</p>", conf=h.confidence, s=h.sentence)
if inc.trigger and all(inc.trigger != h.sentence for h in named):
    say("<p><b>Trigger:</b> {t}</p>", t=inc.trigger)
say("<p><b>Affected job types:</b> {jt}</p>", jt=", ".join(inc.affected_job_types) or "none")

# %% [markdown]
# ## Impact
# After a peek the bundle holds the head of the dead-letter queue only: its DLQ numbers say so.

# %%
imp = inc.impact
table(
    pd.DataFrame(
        {
            "measure": [
                "invocations",
                "failed invocations",
                "failed rate",
                "error lines",
                "errors of the incident",
                "jobs failed",
                views.dlq_label(findings, "DLQ messages of the incident"),
                "DLQ messages in all",
            ],
            "value": [
                f"{imp.invocations:,}",
                f"{imp.failed_invocations:,}",
                f"{imp.failed_rate:.1%}",
                f"{imp.errors:,}",
                f"{imp.incident_errors:,}",
                "" if imp.jobs_failed is None else f"{imp.jobs_failed:,}",
                f"{imp.dlq_messages:,}",
                dlq_size(ev),
            ],
        }
    )
)

# %% [markdown]
# ## Timeline (UTC)
# First error, detection, peak and last error from the data, with every deploy and the window of
# each finding.

# %%
events = [
    (inc.timeline.first_error, "first error"),
    (inc.timeline.detection, "detection (first bucket above normal)"),
    (inc.timeline.peak, "peak"),
    (inc.timeline.last_error, "last error"),
]
events += [(d.at, f"deploy of {d.script or 'script'} version {d.version}") for d in findings.deploys]
for h in findings.hypotheses[:top_n]:
    if h.window:
        events += [(h.window.start, f"start: {h.title}"), (h.window.end, f"end: {h.title}")]
timeline = pd.DataFrame([(t, what) for t, what in events if t is not None], columns=["time (UTC)", "event"])
table(timeline.sort_values("time (UTC)"))
if findings.failed_rate:
    # stacked bars per job type, each deploy labelled, the top findings' windows shaded
    show(plots.timeline(findings, title="Failed invocations by job type"))

# %% [markdown]
# ## Queue health
# Backlog, messages moved to the dead-letter queue, consumer concurrency and lag per queue (Cloudflare
# GraphQL Analytics, collected with `--queue-metrics`), deploys as dashed lines. These numbers are
# estimates (adaptive sampling); a bucket without data is a gap, not a zero.

# %%
health_fig = queue_health(ev, findings)
if health_fig is None:
    say("No queue analytics in this bundle (collect them with <b>--queue-metrics QUEUE</b>).")
else:
    table(queue_health_table(findings))
    show(health_fig)

# %% [markdown]
# ## Findings
# Ranked by `edgeinvestigate analyze`; each with the numbers behind it.

# %%
for h in findings.hypotheses[:top_n]:
    say(
        "<p><b>{rank}. {title}</b> ({kind}, {conf} confidence)<br>{sentence}</p>",
        rank=h.rank,
        title=h.title,
        kind=h.kind,
        conf=h.confidence,
        sentence=h.sentence,
    )
if not findings.hypotheses:
    say("No hypothesis stands out.")

# %% [markdown]
# ## Error clusters
# The clusters the findings name, by their share of the incident's errors; background clusters
# (errors that also occur when nothing is wrong) come after them and are marked.

# %%
ranked = views.incident_clusters(clusters, findings, top_n=top_n)
shown = ranked.assign(share=ranked["share"].map(lambda x: "" if pd.isna(x) else f"{x:.0%}"))
table(
    shown[["label", "role", "share", "kind", "count", "n_dlq_messages", "first_seen", "last_seen",
           "job_types", "cluster_id"]].rename(
        columns={"label": "cluster", "share": "share of incident", "count": "errors",
                 "n_dlq_messages": views.dlq_label(findings), "first_seen": "first seen",
                 "last_seen": "last seen", "job_types": "job types", "cluster_id": "cluster id"}
    )
)  # fmt: skip
if findings.dlq_coverage is not None:
    say("<i>{caveat}</i>", caveat=views.dlq_caveat(findings))
if len(ranked):
    show(plots.cluster_bars(clusters, table=ranked, top=top_n, title="Error clusters of the incident"))

# %% [markdown]
# ## Replay

# %%
if replay_plan and Path(replay_plan).is_file():
    plan = ei.ReplayPlan.load(replay_plan)
    pre(plan.summary(samples=0))
    try:
        pre(ei.replay_status(replay_plan).render())
    except ei.EdgeInvestigateError as exc:
        say("No replay run recorded for this plan yet ({e}).", e=exc.message)
else:
    say(
        "No replay recorded in this report. Plan one with "
        "<code>edgeinvestigate replay plan BUNDLE --from DLQ --to QUEUE --allow-queue QUEUE --out plan.json</code> "
        "and pass <code>-p replay_plan=plan.json</code>."
    )

# %% [markdown]
# ## Data manifest
# What this report was built from: every source file with its sha256 and size, the time window,
# row counts, what was skipped while loading, and the tool version.

# %%
m = ev.manifest
window = m.get("window") or {}
say(
    "Built by edgeinvestigate {v} from a bundle of format {f}, window {since} to {until}.",
    v=ei.__version__,
    f=m.get("format", "?"),
    since=window.get("since") or "(open)",
    until=window.get("until") or "(open)",
)
sources = pd.DataFrame(m.get("sources") or [])
for col in ("size", "bytes", "records"):  # whole numbers, blank where unknown (not 17602.0)
    if col in sources.columns:
        sources[col] = pd.to_numeric(sources[col], errors="coerce").astype("Int64")
if len(sources):
    table(
        sources[[c for c in ("path", "source", "sha256", "size", "bytes", "records") if c in sources.columns]]
    )
table(pd.DataFrame({"frame": list(m.get("rows", {})), "rows": list(m.get("rows", {}).values())}))
pre(ev.report.summary())

# %% [markdown]
# ## Detection
# - How was this detected (alert, customer report, dashboard)? How long after the first error?
# - Which signal would have caught it sooner?
#
# ## Where we got lucky
# - ...
#
# ## Action items
# | Action | Owner | Ticket | Due |
# |---|---|---|---|
# | Fix or guard the root cause | | | |
# | Alert on the signal that would have caught it sooner | | | |
# | Replay or repair the jobs still in the DLQ (`runbooks/replay-failed-jobs.md`) | | | |

# %%
emit("findings", findings)
