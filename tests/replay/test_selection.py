"""Selecting DLQ messages: by cluster, job type, time, id and --where; unknown ids and clusters named;
the cluster of each message shown."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from replay_messages import T0_MS, iso, message_id
from replay_scenario import bundle_of, cli_main, job_frame, plan_jobs

from edgeinvestigate.cli import cli
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.replay import ReplayPlan, plan_replay

NOW = "2026-11-28T03:00:00.000Z"
ALLOW = ["--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]


def plan(frame: pd.DataFrame, **kw: object) -> ReplayPlan:
    kw.setdefault("allow_queues", ["jobs"])
    kw.setdefault("now", NOW)
    return plan_replay(frame, "jobs-dlq", "jobs", **kw)  # type: ignore[arg-type]


def test_selection_by_type_id_time_where_and_cluster(dlq_frame: pd.DataFrame) -> None:
    p = plan(dlq_frame, types=["DATA_SYNC"])
    assert {m.job_type for m in p.messages} == {"DATA_SYNC"}
    assert len(p.messages) == 60
    assert p.not_selected == 240
    assert p.by_type == {"DATA_SYNC": 60}

    ids = [message_id(3), message_id(4), "ffffffffffffffffffffffffffffffff"]
    p = plan(dlq_frame, ids=ids)
    assert sorted(m.message_id for m in p.messages) == sorted(ids[:2])
    assert [(e.message_id, e.reason) for e in p.excluded] == [(ids[2], "not_found")]

    p = plan(dlq_frame, since=iso(T0_MS + 100_000), until=iso(T0_MS + 110_000))
    assert sorted(int(m.message_id[:8], 16) for m in p.messages) == list(range(100, 110))

    p = plan(dlq_frame, where="job_type == 'EMAIL_DELIVERY' and attempts >= 1")
    assert len(p.messages) == 60
    assert p.selection["where"]

    framed = dlq_frame.assign(cluster_id=["c-smtp" if i % 2 else "c-null-url" for i in range(len(dlq_frame))])
    p = plan(framed, clusters=["c-smtp"])
    assert len(p.messages) == 150
    assert p.by_cluster == {"c-smtp": 150}


def test_bad_where_names_the_expression_and_columns(dlq_frame: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"--where 'no_such_column > 3' failed") as err:
        plan(dlq_frame, where="no_such_column > 3")
    assert "job_type" in err.value.hint


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("where", "returned"),
    [("attempts", "a Series of dtype int"), ("1 + 1", " '2'"), ("job_type", "a Series of dtype")],
)
def test_a_where_that_is_not_a_condition_is_refused(where: str, returned: str) -> None:
    frame = job_frame()
    with pytest.raises(ConfigError, match="is not a condition") as exc:
        plan_jobs(frame, where=where)
    assert f"--where {where!r}" in exc.value.message
    assert returned in exc.value.message
    assert "attempts >= 3" in exc.value.hint  # how to write one
    # a real condition still selects by value, not by index label
    frame = frame.assign(attempts=[0, 5, 0, 5, 5, 0])
    chosen = plan_jobs(frame, where="attempts >= 3")
    assert [m.message_id for m in chosen.messages] == [message_id(i) for i in (1, 3, 4)]


def test_cluster_selection_without_cluster_ids_is_a_clear_error(dlq_frame: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="cluster_id"):
        plan(dlq_frame, clusters=["c1"])


@pytest.mark.timeout(240)
def test_unknown_ids_and_clusters_are_named_and_never_make_an_empty_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = job_frame().assign(cluster_id=["c-smtp", "c-null-url"] * 3)
    with pytest.raises(ConfigError, match="refusing to write an empty plan") as exc:
        plan_jobs(frame, clusters=["c-smpt"])
    assert "unknown --cluster c-smpt (did you mean c-smtp?)" in exc.value.message
    typo = message_id(2)[:-1] + "x"
    with pytest.raises(ConfigError, match="refusing to write an empty plan") as exc:
        plan_jobs(frame, ids=["nosuch", typo])
    assert f"unknown --id {typo} (did you mean {message_id(2)}" in exc.value.message
    assert "--id nosuch (no close match)" in exc.value.message
    # another selector matched: the plan is made, and says what was unknown
    mixed = plan_jobs(frame, ids=[message_id(1), "nosuch"])
    assert [m.message_id for m in mixed.messages] == [message_id(1)]
    assert any("unknown --id nosuch" in w for w in mixed.warnings), mixed.warnings
    # the CLI: non-zero, the id named, no plan written
    out = tmp_path / "plan.json"
    code, text = cli_main(
        ["replay", "plan", str(bundle_of(tmp_path, frame)), *ALLOW, "--id", "nosuch", "--out", str(out)],
        capsys,
    )
    assert code != 0
    assert "unknown --id nosuch" in text
    assert not out.exists()


def test_a_selection_that_matches_nothing_names_the_selector_and_the_data_time_range(
    dlq_frame: pd.DataFrame,
) -> None:
    # the data is of 2026-11-29 14:00-14:05 UTC; the window asked for is the day before
    with pytest.raises(ConfigError) as err:
        plan(dlq_frame, types=["EMAIL_DELIVERY"], since="2026-11-28T14:00Z", until="2026-11-28T16:00Z")
    text = err.value.message
    assert err.value.exit_code == 2
    assert "no DLQ message of 'jobs-dlq' in this bundle matches the selection" in text
    assert "refusing to write an empty plan" in text
    assert (
        "The bundle holds 300 messages of 'jobs-dlq' (dead-lettered from 2026-11-29T14:00:00Z to "
        "2026-11-29T14:04:59Z); --type EMAIL_DELIVERY leaves 60, then --since 2026-11-28T14:00:00Z "
        "--until 2026-11-28T16:00:00Z leaves 0"
    ) in text
    assert "--since/--until compare with the time each message was dead-lettered" in err.value.hint
    # the first selector that empties it is named, and the rest are not tried
    with pytest.raises(ConfigError) as err:
        plan(dlq_frame, types=["NO_SUCH_TYPE"], where="attempts >= 0")
    assert err.value.message.endswith("; --type NO_SUCH_TYPE leaves 0")
    with pytest.raises(ConfigError, match=r"--where 'attempts > 99' leaves 0"):
        plan(dlq_frame, where="attempts > 99")


def test_an_empty_selection_writes_no_file_and_does_not_block_the_corrected_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = bundle_of(tmp_path, job_frame())
    out = tmp_path / "plan.json"
    wrong = ["--since", "2026-11-27T14:00Z", "--until", "2026-11-27T16:00Z"]
    code, text = cli_main(["replay", "plan", str(bundle), *ALLOW, *wrong, "--out", str(out)], capsys)
    assert code == 2
    assert text.startswith("error: no DLQ message of 'jobs-dlq' in this bundle matches the selection")
    assert "--since 2026-11-27T14:00:00Z --until 2026-11-27T16:00:00Z leaves 0" in " ".join(text.split())
    assert "dead-lettered from 2026-11-29T14:00:00Z" in " ".join(text.split())
    assert not out.exists()
    right = ["--since", "2026-11-29T14:00Z", "--until", "2026-11-29T16:00Z"]
    res = CliRunner().invoke(cli, ["replay", "plan", str(bundle), *ALLOW, *right, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(ReplayPlan.load(out).messages) == 6


def test_unknown_source_queue_lists_what_the_bundle_has(dlq_frame: pd.DataFrame) -> None:
    with pytest.raises(Exception, match=r"no DLQ messages from 'emails-dlq' \(it has: jobs-dlq\)"):
        plan_replay(dlq_frame, "emails-dlq", "emails", allow_queues=["emails"])


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_clusters_are_shown_without_cluster_selector(tmp_path: Path) -> None:
    import edgeinvestigate as ei

    ev = ei.sample_bundle()
    bundle = ev.save(tmp_path / "INC-1")
    expected = ei.cluster(ev).dlq.set_index("message_id")["cluster_id"].astype(str).to_dict()
    job_type = str(ev.dlq["job_type"].dropna().iloc[0])
    out = tmp_path / "plan.json"
    res = CliRunner().invoke(
        cli, ["replay", "plan", str(bundle), *ALLOW, "--type", job_type, "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    plan = ReplayPlan.load(out)
    assert plan.messages
    assert all(m.cluster_id == expected[m.message_id] for m in plan.messages)
    assert "(none)" not in plan.by_cluster
    by_cluster = res.output.split("by cluster (messages, triage):")[1].split("by job type:")[0]
    assert "(none)" not in by_cluster
    assert sum(plan.by_cluster.values()) == len(plan.messages)


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_plan_by_cluster_on_an_evidence_bundle(tmp_path: Path) -> None:
    import edgeinvestigate as ei

    ev = ei.sample_bundle()
    bundle = ev.save(tmp_path / "INC-1")
    counts = ei.cluster(ev).dlq["cluster_id"].value_counts()
    top, n = str(counts.index[0]), int(counts.iloc[0])
    out = tmp_path / "plan.json"
    args = ["replay", "plan", str(bundle), "--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]
    res = CliRunner().invoke(cli, [*args, "--cluster", top, "--out", str(out)])
    assert res.exit_code == 0, res.output
    plan = ReplayPlan.load(out)
    assert plan.by_cluster == {top: len(plan.messages)}
    assert len(plan.messages) + len(plan.excluded) == n
    assert plan.bundle == str(bundle.resolve())
