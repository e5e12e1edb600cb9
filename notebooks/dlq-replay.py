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
# Nothing is sent unless `execute=True` **and** the target queue is in the allow-list of the run:
# `allow_queues` (or `EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES` in the environment), never the plan's own
# list. The token comes from `CLOUDFLARE_API_TOKEN` in the environment, never from a parameter.
#
# Replay is at-least-once: each replayed message carries `metadata.replay.id`, an idempotency key
# consumers must dedupe on, and a DLQ message is removed only after its push was confirmed.
# See `runbooks/replay-failed-jobs.md`. The same steps on the command line:
# `edgeinvestigate replay plan BUNDLE --from DLQ --to QUEUE --allow-queue QUEUE --cluster ID --out plan.json`,
# then `edgeinvestigate replay run plan.json --allow-queue QUEUE`.

# %% tags=["parameters"]
bundle = ""  # evidence bundle folder; empty means the bundled sample incident
since = ""  # only DLQ messages dead-lettered at or after this UTC time
until = ""  # only DLQ messages dead-lettered before this UTC time
from_queue = ""  # the DLQ to replay from; empty means the bundle's DLQ
to_queue = ""  # the queue to replay into (the DLQ consumer's work queue); empty means no plan
clusters = []  # cluster ids to replay; empty means the clusters a fix made safe
job_types = []  # job types to replay
allow_queues = []  # queues this run may write to (the run-time allow-list); needed to execute
plan_out = "replay-plan.json"  # where the plan is written
execute = False  # really push messages
rate = 50.0  # messages per second
api_url = ""  # API base URL (e.g. the sandbox); empty means CLOUDFLARE_API_BASE_URL

# %%
import pandas as pd

import edgeinvestigate as ei
from edgeinvestigate.replay import default_selection, run_until_settled, runtime_allow_list
from edgeinvestigate.report import views
from edgeinvestigate.report.kernel import dlq_size, emit, note, open_bundle, pre, say, table

ev = open_bundle(bundle, since=since, until=until)
groups = ei.cluster(ev)  # the clusters stored in the bundle (computed in memory when it has none)
note(groups.note)
findings = ei.analyze(ev, clusters=groups)
dlq = groups.dlq
if dlq.empty:
    raise ei.ReplayError(
        "this bundle holds no DLQ messages", hint="collect them first: edgeinvestigate collect --dlq QUEUE"
    )
source = from_queue or str(dlq["queue"].dropna().mode().iloc[0])
say(
    "Replay from <code>{src}</code> to <code>{dst}</code>; the bundle holds <b>{n}</b> DLQ messages.",
    src=source,
    dst=to_queue or "(no target queue given)",
    n=dlq_size(ev),
)

# %% [markdown]
# ## What is in the DLQ
# Messages per cluster, with the cluster's kind: `transient` clusters are safe to replay once the
# dependency recovered; `permanent` ones only once a fix is deployed (or the payload patched).
# After a peek the bundle holds the head of the queue only: the counts say so.

# %%
if findings.dlq_coverage is not None:
    say("<i>{caveat}</i>", caveat=views.dlq_caveat(findings))
per_cluster = (
    dlq.groupby(dlq["cluster_id"].astype("string").fillna("(none)"))
    .size()
    .rename(views.dlq_label(findings, "messages"))
    .reset_index()
    .merge(
        groups.table[["cluster_id", "kind", "job_types", "last_seen", "template"]],
        on="cluster_id",
        how="left",
    )
    .sort_values(views.dlq_label(findings, "messages"), ascending=False)
)
table(per_cluster)

# %% [markdown]
# ## The selection
# By default, the clusters the findings say a fix made safe: those new after a deploy that a later
# deploy replaced (the revert or the fix is live), and transient ones whose errors stopped (the
# dependency recovered). Review it: replay only what the fix made safe.

# %%
safe = default_selection(ev, clusters=groups, findings=findings)
by_default = not clusters and not job_types
selected = [c.cluster_id for c in safe] if by_default else list(clusters)
if by_default:
    say("Default selection from the findings: {ids}", ids=", ".join(selected) or "(none)")
    if safe:
        table(pd.DataFrame(safe, columns=["cluster_id", "why it is safe now"]))
plan = None
if not to_queue:
    say(
        "No plan yet: a replay needs its target, the work queue whose consumer dead-lettered these "
        "messages, and the bundle does not name it. Rerun with <code>-p to_queue=QUEUE</code>."
    )
elif by_default and not selected:
    say(
        "No plan: no cluster is judged safe to replay. Choose what to replay with "
        "<code>-p clusters=ID,...</code> or <code>-p job_types=TYPE,...</code>."
    )
else:
    plan = ei.plan_replay(
        ev,
        source,
        to_queue,
        clusters=selected,
        types=list(job_types),
        since=since or None,
        until=until or None,
        allow_queues=list(allow_queues) or [to_queue],
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
if plan is not None:
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
if plan is None:
    if execute:
        raise ei.ReplayRefusedError("execute=True needs a plan: nothing was sent", hint="-p to_queue=QUEUE")
elif not execute:
    say(
        "Dry run only. To send: <code>edgeinvestigate replay run {p}</code>, or rerun this notebook with "
        "the same parameters and <code>-p execute=true</code>.",
        p=plan_out,
    )
else:
    # the run's allow-list comes from the operator (this parameter or the environment), never from
    # the plan file: a plan edited to point at another queue is refused before any request
    if plan.target_queue not in runtime_allow_list(allow_queues):
        raise ei.ReplayRefusedError(
            f"execute=True: the target queue {plan.target_queue!r} is not in the allow-list of the run "
            "(the plan's allow_queues is a record, not a permission); nothing was sent",
            hint=f"rerun with -p allow_queues={plan.target_queue} (or set "
            f"EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES={plan.target_queue}) after checking the name",
        )
    client = ei.CloudflareClient.from_env(api_url=api_url or None)
    # "incomplete" means pushed messages whose original is still in the DLQ: running the same plan
    # again settles them from the ledger without pushing anything twice (at most 10 runs)
    result = run_until_settled(
        plan_out,
        client,
        allow_queues=list(allow_queues),
        rate=rate,
        progress=False,
        confirm=lambda _plan: True,
        say=print,
    )
    status = ei.replay_status(plan_out)
    pre(status.render())
    after = ev.with_dlq(ei.load_dlq(client, source, mode="peek"))
    report = ei.verify_replay(plan_out, after)
    pre(report.render())
    emit("replay", {"result": result.to_dict(), "status": status.to_dict(), "verify": report.to_dict()})

# %%
emit("findings", findings)
