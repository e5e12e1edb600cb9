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
# # Error clusters
#
# Thousands of error texts grouped into a handful of named problems. Variable parts (ids,
# numbers, emails, URLs, durations...) are masked, what remains is the template, and the
# template's hash is the cluster id: the same problem has the same id in every bundle.
# Pick one with `-p cluster_id=...` to drill into it; by default the largest cluster is shown.

# %% tags=["parameters"]
bundle = ""  # evidence bundle folder; empty means the bundled sample incident
since = ""  # only data at or after this UTC time
until = ""  # only data before this UTC time
cluster_id = ""  # the cluster to drill into; empty means the largest
top_n = 20  # clusters in the table
n_examples = 5  # raw examples of the chosen cluster
account_id = ""  # Cloudflare account id for dashboard links; empty: the bundle's, else CLOUDFLARE_ACCOUNT_ID

# %%
import pandas as pd
import plotly.express as px

import edgeinvestigate as ei
from edgeinvestigate.analysis import plots
from edgeinvestigate.report import views
from edgeinvestigate.report.kernel import dlq_size, emit, note, open_bundle, pre, say, show, table

ev = open_bundle(bundle, since=since, until=until)
clusters = ei.cluster(ev)  # the clusters stored in the bundle (computed in memory when it has none)
note(clusters.note)
findings = ei.analyze(ev, clusters=clusters)
account = views.account_for(ev, account_id)  # for links to the dashboard's Workers Logs
say(
    "<b>{n}</b> clusters from <b>{rows}</b> error rows and <b>{dlq}</b> DLQ messages.",
    n=len(clusters),
    rows=len(clusters.assign),
    dlq=dlq_size(ev),  # "100 of 566 (peek sees the head only)" after a peek
)
if findings.dlq_coverage is not None:
    say("<i>{caveat}</i>", caveat=views.dlq_caveat(findings))

# %% [markdown]
# ## The cluster table
# Most frequent first. `kind`: can a retry help (`transient`) or not (`permanent`);
# `n_dlq_messages`: jobs of this cluster waiting in the dead-letter queue; `event id`: the request or
# ray id of an example event (when its source has one: Workers Logs for every trigger, Logpush and
# tail for fetch); `Cloudflare`: opens that event in the dashboard's Workers Logs.

# %%
cols = [
    "cluster_id",
    "kind",
    "count",
    "share",
    "n_dlq_messages",
    "first_seen",
    "last_seen",
    "job_types",
    "script_versions",
    "template",
]
shown = clusters.table[cols].head(top_n).copy()
shown["script_versions"] = shown["script_versions"].map(lambda vs: ", ".join(str(v)[:8] for v in vs))
shown["share"] = shown["share"].map(lambda x: f"{x:.1%}")
shown = views.with_cluster_links(shown, clusters, account)
table(shown.rename(columns={"n_dlq_messages": views.dlq_label(findings, "n_dlq_messages")}),
      links={"Cloudflare": "dashboard_url"})  # fmt: skip
show(
    plots.cluster_bars(clusters, top=top_n, title=f"Top {min(top_n, len(clusters))} clusters by error count")
)

# %% [markdown]
# ## One cluster in depth

# %%
chosen = cluster_id or (clusters.ids[0] if clusters.ids else "")
if not chosen:
    say("No errors in this bundle: nothing to drill into.")
else:
    info = clusters.get(chosen)  # names the known ids if the parameter is wrong
    rows = clusters.assign[clusters.assign["cluster_id"] == chosen].sort_values("ts")
    say(
        "Cluster <code>{cid}</code> ({kind}, rule <i>{rule}</i>): <b>{count}</b> errors, "
        "first seen {first}, last seen {last}.",
        cid=chosen,
        kind=info["kind"],
        rule=info["kind_rule"],
        count=int(info["count"]),
        first=info["first_seen"],
        last=info["last_seen"],
    )
    pre(str(info["template"]))

# %% [markdown]
# ### Examples and stacks
# The cluster's example events with the request or ray id their source carries and a link that
# opens each in the dashboard's Workers Logs, the raw texts (newest first) and the distinct stack
# traces of the cluster.

# %%
if chosen:
    events = views.example_events(clusters, chosen, account)
    table(events, max_chars=300, links={"Cloudflare": "dashboard_url"})
    if account is None and (events["request_id"].notna() | events["ray_id"].notna()).any():
        say("No dashboard links: pass <code>-p account_id=ACCOUNT_ID</code> or set CLOUDFLARE_ACCOUNT_ID.")
    table(
        rows.sort_values("ts", ascending=False).head(n_examples)[
            ["ts", "source", "job_type", "job_id", "text"]
        ],
        max_chars=600,
    )
    stacks = rows["stack"].dropna().astype(str)
    stacks = stacks[stacks.str.len() > 0].drop_duplicates().head(3)
    for stack in stacks:
        pre(stack)
    if stacks.empty:
        say("No stack traces: these errors were logged, not thrown.")

# %% [markdown]
# ### Timeline, job types and versions

# %%
if chosen and len(rows):
    fig = px.histogram(
        rows,
        x="ts",
        color="job_type",
        nbins=60,
        title=f"Errors of cluster {chosen} over time (UTC)",
        labels={"ts": "time (UTC)", "job_type": "job type", "count": "errors"},
    )
    fig.update_yaxes(title_text="errors")
    show(fig)
    spread = (
        rows.assign(
            job_type=rows["job_type"].astype("string").fillna("(unknown)"),
            script_version=rows["script_version"].astype("string").fillna("(unknown)"),
        )
        .groupby(["job_type", "script_version"])
        .size()
        .rename("errors")
        .reset_index()
        .sort_values("errors", ascending=False)
    )
    table(spread)

# %% [markdown]
# ### Its jobs in the dead-letter queue
# How each DLQ message was tied to this cluster (`cluster_join`: by the envelope's error text,
# by job id through the logs, or by job type and time).

# %%
if chosen:
    dlq = clusters.dlq[clusters.dlq["cluster_id"] == chosen]
    say("<b>{n}</b> DLQ messages belong to this cluster.", n=findings.dlq_count(len(dlq)))
    if len(dlq):
        table(dlq.groupby(dlq["cluster_join"].astype("string")).size().rename("messages").reset_index())
        table(
            dlq[["message_id", "enqueued_at", "job_type", "job_id", "envelope", "payload"]].head(n_examples),
            max_chars=160,
        )

# %% [markdown]
# ### Why these messages grouped
# The masking and template steps applied to the first example.

# %%
if chosen and len(rows):
    pre(str(clusters.explain(str(rows["text"].iloc[-1]))))

# %%
emit("findings", findings)
