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
# # Root cause
#
# The ranked hypotheses of `edgeinvestigate analyze`, each with the numbers behind it, and the
# figures to check them: the error timeline against deploys, each cluster before and after each
# deploy, the blast radius, retry storms and platform limit hits. A hypothesis is a lead, not a
# verdict: check its evidence before you act on it.

# %% tags=["parameters"]
bundle = ""  # evidence bundle folder; empty means the bundled sample incident
since = ""  # only data at or after this UTC time
until = ""  # only data before this UTC time
top_n = 5  # hypotheses shown in detail

# %%
import pandas as pd
import plotly.express as px

import edgeinvestigate as ei
from edgeinvestigate.analysis import plots
from edgeinvestigate.report import views
from edgeinvestigate.report.kernel import emit, note, open_bundle, say, show, table

ev = open_bundle(bundle, since=since, until=until)
clusters = ei.cluster(ev)  # the clusters stored in the bundle (computed in memory when it has none)
note(clusters.note)
findings = ei.analyze(ev, clusters=clusters)
say(
    "Window <b>{w}</b>, buckets of {b} s. <b>{n}</b> hypotheses.",
    w=str(findings.window or "empty"),
    b=findings.bucket_seconds,
    n=len(findings.hypotheses),
)
for text in findings.notes:  # what the data cannot tell (no deploy data, a DLQ seen in part...)
    say("<i>Note: {note}</i>", note=text)

# %% [markdown]
# ## Ranked hypotheses

# %%
if not findings.hypotheses:
    say("No hypothesis stands out: the errors look like the usual background.")
for h in findings.hypotheses[:top_n]:
    say(
        "<h3>{rank}. {title}</h3><p>{sentence}</p><p><i>{kind}, confidence {conf}, score {score}</i></p>",
        rank=h.rank,
        title=h.title,
        sentence=h.sentence,
        kind=h.kind,
        conf=h.confidence,
        score=round(h.score, 2),
    )
    facts = {
        "clusters": ", ".join(h.cluster_ids),
        "job types": ", ".join(h.job_types),
        "window": str(h.window or ""),
        "deploy": h.deploy.version if h.deploy else "",
    }
    facts.update({k: v if not isinstance(v, list) else ", ".join(map(str, v)) for k, v in h.evidence.items()})
    if isinstance(h.evidence.get("dlq_messages"), int):  # "64", or "64 (of the first 100 only)"
        facts["dlq_messages"] = findings.dlq_count(int(h.evidence["dlq_messages"]))
    table(pd.DataFrame({"evidence": list(facts), "value": [str(v) for v in facts.values()]}))

# %% [markdown]
# ## Timeline with deploy markers
# Failed invocations per bucket and job type; each dashed line is the first invocation of a new
# script version.

# %%
if findings.failed_rate:
    # stacked bars per job type, each deploy labelled, the top findings' windows shaded
    show(plots.timeline(findings, title="Failed invocations by job type"))

# %% [markdown]
# ## Before and after each deploy
# Error rate per minute of each cluster before and after each deploy. A cluster with zero before
# and many after is new with that deploy.

# %%
shifts = pd.DataFrame([s.model_dump() for s in findings.cluster_shifts])
if shifts.empty:
    say("No deploy inside the window, so no before/after comparison.")
else:
    shifts["short_version"] = shifts["version"].str[:8]
    shifts = shifts.round({"rate_before_per_min": 2, "rate_after_per_min": 2})
    shifts["first seen vs deploy"] = shifts["minutes_after_deploy"].map(views.deploy_lag)
    table(
        shifts.sort_values("after", ascending=False)[
            [
                "cluster_id",
                "short_version",
                "before",
                "after",
                "rate_before_per_min",
                "rate_after_per_min",
                "first seen vs deploy",
                "new_after_deploy",
                "template",
            ]
        ].head(15)
    )
    top = shifts.sort_values("after", ascending=False).head(8)
    long = top.melt(
        id_vars=["cluster_id", "short_version"],
        value_vars=["rate_before_per_min", "rate_after_per_min"],
        var_name="when",
        value_name="errors per minute",
    )
    long["cluster @ deploy"] = long["cluster_id"] + " @ " + long["short_version"]
    show(
        px.bar(
            long,
            x="cluster @ deploy",
            y="errors per minute",
            color="when",
            barmode="group",
            title="Cluster error rate before vs after each deploy",
        )
    )

# %% [markdown]
# ## Blast radius
# Who is affected: errors by job type, queue, script, version and tenant-like payload fields.

# %%
blast = pd.DataFrame([b.model_dump() for b in findings.blast_radius]).round({"share": 3})
if len(blast):
    table(blast.sort_values(["dimension", "errors"], ascending=[True, False]).groupby("dimension").head(5))
    by_type = blast[blast["dimension"] == "job_type"]
    if len(by_type):
        show(px.bar(by_type, x="value", y="errors", title="Errors by job type", labels={"value": "job type"}))
dlq_by_cluster = pd.DataFrame([d.model_dump() for d in findings.dlq_by_cluster])
if len(dlq_by_cluster):
    say("Jobs waiting in the DLQ, by cluster:")
    table(
        dlq_by_cluster[["cluster_id", "messages", "template"]].rename(
            columns={"messages": views.dlq_label(findings, "messages")}
        )
    )
    if findings.dlq_coverage is not None:
        say("<i>{caveat}</i>", caveat=views.dlq_caveat(findings))

# %% [markdown]
# ## Retry storms and limit hits

# %%
attempts = pd.DataFrame([a.model_dump() for a in findings.attempts])
if len(attempts):
    fig = px.bar(attempts, x="attempts", y="deliveries", title="Deliveries by attempt number")
    fig.update_xaxes(dtick=1)  # attempts are whole numbers
    show(fig)
for storm in findings.retry_storms:
    say("Retry storm: {s}", s=storm.sentence)
for hit in findings.limit_hits:
    say("Limit hit: {s}", s=hit.sentence)
if not findings.retry_storms and not findings.limit_hits:
    say("No retry storm and no CPU, memory or wall-time limit hit.")
limits = findings.limits.model_dump()
table(
    pd.DataFrame(
        {
            "measure": list(limits),
            "value": [
                "-" if v is None else f"{v:,.0f}" if isinstance(v, float) else f"{v:,}"
                for v in limits.values()
            ],
        }
    )
)

# %%
emit("findings", findings)
