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
# # Triage: what is failing right now
#
# The first five minutes of an incident: which job types fail and how much, how big the
# dead-letter queue is and how fast it grew, which few error clusters explain most failures,
# and which deploys happened. Run it on a fresh bundle
# (`edgeinvestigate collect --workers-logs SCRIPT --dlq DLQ --since -2h --out DIR`), then
# `edgeinvestigate report DIR --notebook triage --out REPORT_DIR`.
# With the default parameters it runs on the bundled sample incident.

# %% tags=["parameters"]
bundle = ""  # evidence bundle folder; empty means the bundled sample incident
since = ""  # only data at or after this UTC time (ISO-8601, epoch, -2h)
until = ""  # only data before this UTC time
top_n = 10  # clusters to show
recent_errors = 20  # latest error lines to list
interactive = True  # JupyterLab: searchable tables and a replay-plan picker (`report` runs it with false)
account_id = ""  # Cloudflare account id for dashboard links; empty: the bundle's, else CLOUDFLARE_ACCOUNT_ID

# %%
import pandas as pd
import plotly.express as px

import edgeinvestigate as ei
from edgeinvestigate.analysis.queue_plots import queue_health, queue_health_table
from edgeinvestigate.report import views
from edgeinvestigate.report.kernel import cluster_views, dlq_size, emit, note, open_bundle, say, show, table

ev = open_bundle(bundle, since=since, until=until)
clusters = ei.cluster(ev)  # the clusters stored in the bundle (computed in memory when it has none)
note(clusters.note)
sql_views = cluster_views(clusters)  # SQL below: `clusters` and `cluster_rows` are these clusters
findings = ei.analyze(ev, clusters=clusters)
account = views.account_for(ev, account_id)  # for links to the dashboard's Workers Logs
impact = findings.incident.impact
say(
    "Window <b>{window}</b>: <b>{inv}</b> invocations, <b>{failed}</b> failed (<b>{rate}</b>), "
    "<b>{errors}</b> error lines, <b>{dlq}</b> messages in the dead-letter queue.",
    window=str(findings.window or "empty"),
    inv=impact.invocations,
    failed=impact.failed_invocations,
    rate=f"{impact.failed_rate:.1%}",
    errors=impact.errors,
    dlq=dlq_size(ev),  # the whole DLQ, "100 of 566" after a peek (impact.dlq_messages: the incident's)
)
if findings.top is not None:
    say("Most likely: <b>{sentence}</b>", sentence=findings.top.sentence)

# %% [markdown]
# ## Queue health
# Backlog, messages moved to the dead-letter queue, consumer concurrency and lag per queue, from
# Cloudflare's GraphQL Analytics (`edgeinvestigate collect --queue-metrics QUEUE --since ...`; the
# token needs Account Analytics Read), with the deploys as dashed lines. A backlog that rises while
# reads stop is a stalled consumer even when nothing errs; DLQ moves without matching error lines are
# retries that ran out silently. The numbers are estimates (adaptive sampling); a bucket without data
# is a gap, not a zero.

# %%
health_fig = queue_health(ev, findings)
if health_fig is None:
    say(
        "This bundle has no queue analytics. Collect them with <b>edgeinvestigate collect "
        "--queue-metrics QUEUE --since ...</b> (the API token needs Account Analytics Read)."
    )
else:
    table(queue_health_table(findings))
    show(health_fig)
    for h in findings.hypotheses:
        if h.kind in ("consumer_stalled", "dead_lettering", "throughput_drop"):
            say("<b>{title}</b>: {sentence}", title=h.title, sentence=h.sentence)

# %% [markdown]
# ## Failure rate by job type
# Invocations that failed per job type, over the whole window and per time bucket: the runtime
# reported a failure (an exception, or an outcome other than `ok`), or the invocation logged an
# error-level line. Warn lines, retries logged at warn included, are not failures (see
# `edgeinvestigate.analysis.rca`). One job type on fire points to its code or its dependency;
# all of them at once points to the platform or a shared dependency. The cuts below are SQL
# (`ev.sql`, DuckDB): over a large bundle they scan the Parquet files instead of loading them.

# %%
rates = pd.DataFrame([r.model_dump() for r in findings.failed_rate])
if rates.empty:
    say("No invocations in this window.")
else:
    by_type = ev.sql(
        """SELECT job_type, sum(invocations) AS invocations, sum(failed) AS failed,
                  round(sum(failed) / sum(invocations), 3) AS failed_rate
           FROM rates GROUP BY job_type ORDER BY failed DESC, job_type""",
        rates=rates,
    ).df()
    table(by_type)
    # per-minute rates of a few invocations jump between 0 and 100%: plot 5-minute (or wider) steps
    seconds = max(300, findings.bucket_seconds)
    coarse = ev.sql(
        f"""SELECT time_bucket(INTERVAL '{seconds} seconds', bucket::TIMESTAMPTZ) AS bucket, job_type,
                   sum(invocations) AS invocations, sum(failed) AS failed,
                   sum(failed) / sum(invocations) AS failed_rate
            FROM rates GROUP BY ALL ORDER BY bucket, job_type""",
        rates=rates,
    ).df()
    minutes = seconds // 60
    fig = px.line(
        coarse,
        x="bucket",
        y="failed_rate",
        color="job_type",
        title=f"Failed rate by job type ({minutes} min steps)",
        labels={"bucket": "time (UTC)", "failed_rate": "failed rate", "job_type": "job type"},
    )
    fig.update_yaxes(tickformat=".0%")
    show(fig)

# %% [markdown]
# ## Dead-letter queue: size and growth
# Messages land in the DLQ after `max_retries` failed deliveries (raw body) or when the consumer
# sends `{original, error}` for a permanent error. A steep curve for one job type is the incident.
# After a peek the bundle holds the head of the queue only: the counts say so.

# %%
if not len(ev.dlq):
    say("The bundle holds no DLQ messages (collect them with <code>--dlq QUEUE</code>).")
else:
    if findings.dlq_coverage is not None:
        say("<i>{caveat}</i>", caveat=views.dlq_caveat(findings))
    messages = views.dlq_label(findings, "messages")
    counts = ev.sql(
        """SELECT coalesce(job_type, '(unknown)') AS job_type, count(*) AS messages
           FROM dlq GROUP BY ALL ORDER BY messages DESC, job_type"""
    ).df()
    table(counts.rename(columns={"messages": messages}))
    growth = ev.sql(
        """SELECT enqueued_at, coalesce(job_type, '(unknown)') AS job_type,
                  row_number() OVER (PARTITION BY coalesce(job_type, '(unknown)')
                                     ORDER BY enqueued_at) AS "messages in DLQ"
           FROM dlq WHERE enqueued_at IS NOT NULL ORDER BY enqueued_at"""
    ).df()
    fig = px.line(
        growth,
        x="enqueued_at",
        y="messages in DLQ",
        color="job_type",
        line_shape="hv",
        title="DLQ arrivals (cumulative) by job type",
        labels={"enqueued_at": "time (UTC)", "job_type": "job type"},
    )
    show(fig)

# %% [markdown]
# ## Top error clusters
# Error texts grouped into templates (variable parts masked). `kind` says whether retrying can
# help (`transient`) or not (`permanent`), and `kind_rule` which rule decided. `event id` is the
# request or ray id of an example event (when its source has one: Workers Logs for every trigger,
# Logpush and tail for fetch); `Cloudflare` opens it in the dashboard's Workers Logs.

# %%
cols = ["cluster_id", "kind", "count", "n_dlq_messages", "first_seen", "last_seen", "job_types", "template"]
top = views.with_cluster_links(clusters.table[cols].head(top_n), clusters, account)
table(top.rename(columns={"n_dlq_messages": views.dlq_label(findings, "n_dlq_messages")}),
      links={"Cloudflare": "dashboard_url"})  # fmt: skip
if findings.dlq_coverage is not None:
    say("<i>{caveat}</i>", caveat=views.dlq_caveat(findings))
# errors per time bucket of those clusters, straight from the error rows
seconds = max(300, findings.bucket_seconds)
per_bucket = ev.sql(
    f"""SELECT time_bucket(INTERVAL '{seconds} seconds', r.ts) AS bucket, r.cluster_id, count(*) AS errors
        FROM cluster_rows r JOIN (SELECT cluster_id FROM clusters
                                  ORDER BY count DESC, n_dlq_messages DESC, cluster_id LIMIT {int(top_n)}) t
          USING (cluster_id)
        WHERE r.source <> 'dlq' GROUP BY ALL ORDER BY bucket, r.cluster_id""",
    **sql_views,
).df()
if len(per_bucket):
    fig = px.bar(
        per_bucket,
        x="bucket",
        y="errors",
        color="cluster_id",
        title=f"Errors of the top clusters ({seconds // 60} min steps)",
        labels={"bucket": "time (UTC)", "cluster_id": "cluster"},
    )
    show(fig)

# %% [markdown]
# ## Deploys
# Every new script version seen in the window; clusters first seen within minutes after a deploy
# are the usual suspects.

# %%
deploys = pd.DataFrame([d.model_dump() for d in findings.deploys])
if deploys.empty:
    say("No deploy in this window.")
else:
    table(deploys[["at", "script", "version", "previous_version", "invocations_after"]])
for shift in findings.new_after_deploy:
    say(
        "Cluster <code>{cid}</code> is <b>new after deploy {version}</b>: {after} errors after, {before} before. "
        "Template: <code>{template}</code>",
        cid=shift.cluster_id,
        version=shift.version,
        after=shift.after,
        before=shift.before,
        template=shift.template,
    )

# %% [markdown]
# ## Latest error lines
# The raw text, newest first (redacted in the HTML report unless `--no-redact`).

# %%
latest = ev.sql(
    f"""SELECT ts, source, level, job_type, cluster_id, text FROM cluster_rows
        ORDER BY ts DESC NULLS LAST LIMIT {int(recent_errors)}""",
    **sql_views,
).df()
table(latest, max_chars=400)

# %% [markdown]
# ## Explore and pick what to replay (JupyterLab only)
# Sortable, searchable tables of the clusters, findings and DLQ messages, and a picker that writes a
# replay plan from the clusters you select, with every check `edgeinvestigate replay plan` makes.
# Nothing is sent: review the plan, then `edgeinvestigate replay run plan.json`.

# %%
if interactive:
    from edgeinvestigate.report.interactive import cluster_picker, interactive_table

    interactive_table(clusters.table.drop(columns=["example_events"]), caption="error clusters")
    interactive_table(pd.DataFrame([h.model_dump() for h in findings.hypotheses]), caption="findings")
    if len(ev.dlq):
        interactive_table(ev.dlq.drop(columns=["body_raw"], errors="ignore"), caption="DLQ messages")
        picker = cluster_picker(
            ev, clusters, from_queue=str(ev.dlq["queue"].iloc[0]), findings=findings, bundle=bundle or None
        )

# %%
emit("findings", findings)
