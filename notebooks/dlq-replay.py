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
# # DLQ replay
#
# Choose the failed jobs a fix made safe to retry, build the replay plan and review its dry run.
# Nothing is sent unless `execute=True` **and** the target queue is in the allow-list; the token
# comes from `CLOUDFLARE_API_TOKEN` in the environment, never from a parameter.
#
# Replay is at-least-once: each replayed message carries `metadata.replay.id`, an idempotency key
# consumers must dedupe on, and a DLQ message is removed only after its push was confirmed.
# See `runbooks/replay-failed-jobs.md`. The same steps on the command line:
# `edgeinvestigate replay plan BUNDLE --from DLQ --to QUEUE --allow-queue QUEUE --cluster ID --out plan.json`,
# then `edgeinvestigate replay run plan.json`.

# %% tags=["parameters"]
bundle = ""  # evidence bundle folder; empty means the bundled sample incident
since = ""  # only DLQ messages dead-lettered at or after this UTC time
until = ""  # only DLQ messages dead-lettered before this UTC time
from_queue = ""  # the DLQ to replay from; empty means the bundle's DLQ
to_queue = ""  # the queue to replay into; empty means guessed (dry run only)
clusters = []  # cluster ids to replay; empty means the clusters of the top findings
job_types = []  # job types to replay
allow_queues = []  # queues a replay may write to; empty means only to_queue
plan_out = "replay-plan.json"  # where the plan is written
execute = False  # really push messages
rate = 50.0  # messages per second
api_url = ""  # API base URL (e.g. the sandbox); empty means CLOUDFLARE_API_BASE_URL

# %%
import pandas as pd

import edgeinvestigate as ei
from edgeinvestigate.report.kernel import dlq_size, emit, open_bundle, pre, say, table

ev = open_bundle(bundle, since=since, until=until)
groups = ei.cluster(ev)
findings = ei.analyze(ev, clusters=groups)
dlq = groups.dlq
if dlq.empty:
    raise ei.ReplayError(
        "this bundle holds no DLQ messages", hint="collect them first: edgeinvestigate collect --dlq QUEUE"
    )
source = from_queue or str(dlq["queue"].dropna().mode().iloc[0])
truth_queues = (ev.manifest.get("ground_truth") or {}).get("queues") or {}
guessed = ""
if not to_queue:
    guessed = (truth_queues.get("immediate") or {}).get("name") or source.removesuffix("-dlq").removesuffix(
        "_dlq"
    )
target = to_queue or guessed
say(
    "Replay from <code>{src}</code> to <code>{dst}</code>{note}; the bundle holds <b>{n}</b> DLQ messages.",
    src=source,
    dst=target,
    n=dlq_size(ev),
    note=" (guessed: give -p to_queue=... to run it)" if guessed else "",
)

# %% [markdown]
# ## What is in the DLQ
# Messages per cluster, with the cluster's kind: `transient` clusters are safe to replay once the
# dependency recovered; `permanent` ones only once a fix is deployed (or the payload patched).

# %%
per_cluster = (
    dlq.groupby(dlq["cluster_id"].astype("string").fillna("(none)"))
    .size()
    .rename("messages")
    .reset_index()
    .merge(
        groups.table[["cluster_id", "kind", "job_types", "last_seen", "template"]],
        on="cluster_id",
        how="left",
    )
    .sort_values("messages", ascending=False)
)
table(per_cluster)

# %% [markdown]
# ## The selection
# By default, the clusters named by the top findings (the bad deploy that was reverted, the
# outage that ended). Review it: replay only what the fix made safe.

# %%
selected = list(clusters)
if not selected and not job_types:
    for h in findings.hypotheses:
        if h.kind in ("bad_deploy", "dependency_outage"):
            selected += [c for c in h.cluster_ids if c in set(dlq["cluster_id"].dropna())]
    selected = list(dict.fromkeys(selected))
    say("Default selection from the findings: {ids}", ids=", ".join(selected) or "(none)")
plan = ei.plan_replay(
    ev,
    source,
    target,
    clusters=selected,
    types=list(job_types),
    since=since or None,
    until=until or None,
    allow_queues=list(allow_queues) or [target],
    rate=rate,
    bundle=bundle or None,
)
plan.save(plan_out, overwrite=True)
say(
    "Plan <code>{pid}</code> written to <code>{path}</code>: <b>{n}</b> messages in {b} batches, "
    "{x} excluded, {k} not selected (they stay in the DLQ).",
    pid=plan.plan_id,
    path=plan_out,
    n=len(plan.messages),
    b=len(plan.batches),
    x=len(plan.excluded),
    k=plan.not_selected,
)

# %% [markdown]
# ## Dry run
# Exactly what `replay run` would do: counts by cluster and job type, what is excluded and why,
# the estimated API requests and duration, and sample bodies as they will be pushed.

# %%
pre(plan.summary(samples=3))
if plan.excluded:
    table(
        pd.DataFrame([e.model_dump() for e in plan.excluded])
        .groupby("reason")
        .size()
        .rename("messages")
        .reset_index()
    )

# %% [markdown]
# ## Run (only with `execute=True`)

# %%
if not execute:
    say(
        "Dry run only. To send: <code>edgeinvestigate replay run {p}</code>, or rerun this notebook with "
        "<code>-p execute=true -p to_queue={q}</code>.",
        p=plan_out,
        q=target,
    )
else:
    if guessed:
        raise ei.ReplayRefusedError("execute=True needs an explicit to_queue", hint="-p to_queue=QUEUE")
    client = ei.CloudflareClient.from_env(api_url=api_url or None)
    # "incomplete" means pushed messages whose original is still in the DLQ: running the same
    # plan again settles them from the ledger without pushing anything twice.
    for _ in range(10):
        result = ei.run_replay(
            plan_out, client, rate=rate, progress=False, confirm=lambda _plan: True, say=print
        )
        if result.outcome != "incomplete":
            break
    status = ei.replay_status(plan_out)
    pre(status.render())
    after = ev.with_dlq(ei.load_dlq(client, source, mode="peek"))
    report = ei.verify_replay(plan_out, after)
    pre(report.render())
    emit("replay", {"result": result.to_dict(), "status": status.to_dict(), "verify": report.to_dict()})

# %%
emit("findings", findings)
