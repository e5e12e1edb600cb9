"""``edgeinvestigate investigate``: collect -> clusters -> findings -> incident report (-> draft replay plan).

One command for the first ten minutes of an incident. It takes every option of ``collect`` (the same
inputs, window, ``--rules``, ``--strict``, the DLQ and archive options) and writes into ``--out DIR``:

    DIR/bundle/                       the evidence bundle, with its clusters stored (derived/)
    DIR/findings.json                 the ranked findings (``analyze --format json``)
    DIR/report/incident-report.html   the incident report (+ .ipynb, findings.json, summary.md)
    DIR/plan.json                     with --to QUEUE and DLQ messages: a DRAFT replay plan of the
                                      clusters a fix made safe (written, never run)

Other files in DIR are left alone; the four above are replaced only with ``--overwrite`` (a plan that
was run never is: its ledger is evidence). Exit statuses are those of the other commands.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import click

from edgeinvestigate.cli._collect import collect as _collect
from edgeinvestigate.cli._term import fit_lines, terminal_width
from edgeinvestigate.errors import ConfigError

__all__ = ["investigate"]

#: what investigate writes into --out
OUTPUTS = ("bundle", "report", "findings.json", "plan.json")


@click.command(
    "investigate",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n"
        "\b\n"
        "  edgeinvestigate investigate --workers-logs jobs-consumer --dlq jobs-dlq --since -2h \\\n"
        "      --to jobs --out investigations/INC-123\n"
        "  edgeinvestigate investigate --logpush logpush/20261127/ --since 2026-11-27T14:00Z \\\n"
        "      --until 2026-11-27T16:00Z --no-report --out investigations/INC-124\n\n"
        "Secrets: the API token comes from CLOUDFLARE_API_TOKEN or --token-file, never from an option value."
    ),
)
@click.option(
    "--to",
    "to_queue",
    metavar="QUEUE",
    help="Also write DIR/plan.json: a draft replay into QUEUE of the DLQ messages of the clusters a fix "
    "made safe (edgeinvestigate.replay.default_selection). Written, never run: review it, then "
    "`edgeinvestigate replay run DIR/plan.json`.",
)
@click.option("--no-report", is_flag=True, help="Skip the HTML incident report (the slowest step).")
@click.option("--incident-id", default="", help="Your incident id, for the report's title.")
@click.option("--title", default="", help="The report's title.")
@click.option(
    "--no-redact", is_flag=True, help="Keep emails and IPs in the report (tokens are always removed)."
)
def investigate(
    to_queue: str | None,
    no_report: bool,
    incident_id: str,
    title: str,
    no_redact: bool,
    **opts: Any,
) -> None:
    """Collect the evidence, cluster the errors, rank root causes and write the incident report.

    PATHS and the collect options are those of `edgeinvestigate collect`; --out is the folder of the
    whole investigation (bundle/, findings.json, report/, plan.json). Prints the top findings and the
    paths.
    """
    from edgeinvestigate.cli._collect import gather, report_collected, warn_collected
    from edgeinvestigate.cli._pipeline import (
        cluster_and_store,
        investigate_bundle,
        note,
        open_clusters,
        reopen,
        write_investigation_report,
    )
    from edgeinvestigate.cli._progress import Progress

    out = Path(opts.pop("out"))
    overwrite = bool(opts.pop("overwrite"))
    rules = opts.pop("rules")
    _check_out(out, overwrite)
    if not no_report:
        _require_notebooks()
    progress = Progress()
    got = gather(progress, out=out / "bundle", overwrite=overwrite, **opts)
    if got is None:
        return  # --dry-run
    ev, clusters = cluster_and_store(got.ev, rules=rules, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    with progress.step(f"writing the bundle to {out / 'bundle'}"):
        ev.save(out / "bundle", overwrite=overwrite, inputs=got.inputs)
    got.done()
    report_collected(ev, got.shown)
    # from here on the saved bundle is the evidence: its frames are read on first use and the
    # analysis scans its Parquet files, so the loaded frames need not stay in memory while the
    # findings and the report (another process) are made
    del ev, clusters, got
    ev = reopen(out / "bundle")
    clusters = open_clusters(ev, rules=rules, progress=progress)
    params = {k: v for k, v in (("incident_id", incident_id), ("title", title)) if v}
    result = investigate_bundle(ev, clusters, out, to_queue=to_queue, progress=progress)
    rows, loaded = ev.manifest["rows"], ev.report
    del ev, clusters  # the report is made by another process, which reads the bundle itself
    if not no_report:
        write_investigation_report(result, parameters=params, redact=not no_redact, progress=progress)
    click.echo(
        f"evidence: {rows['invocations']} invocations, {rows['logs']} logs, {rows['exceptions']} exceptions, "
        f"{rows['dlq']} DLQ messages; {result.n_clusters} error clusters"
    )
    width = terminal_width()
    click.echo("")
    click.echo(result.findings.to_text(max_hypotheses=3, width=max(60, width - 1) if width else None))
    for cid, why in result.selected:
        click.echo(fit_lines(f"safe to replay: cluster {cid}: {why}"))
    for text in result.notes:
        note(text)
    click.echo("")
    click.echo(f"bundle:   {result.bundle}")
    click.echo(f"findings: {result.findings_path}")
    if result.report is not None:
        click.echo(f"report:   {result.report}")
        if result.report_run is not None and result.report_run.summary is not None:
            click.echo(f"summary:  {result.report_run.summary}")
    if result.plan is not None:
        click.echo(f"plan:     {result.plan}  (DRAFT, not run: review it, then `edgeinvestigate replay run`)")
    warn_collected(loaded, opts.get("since"), opts.get("until"))
    if result.report_run is not None:
        result.report_run.raise_for_error()


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse to replace an earlier investigation's files without --overwrite, and a plan that ran."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file", hint="give a folder for the investigation")
    present = [name for name in OUTPUTS if (out / name).exists()]
    if present and not overwrite:
        raise ConfigError(
            f"{out} already holds an investigation ({', '.join(present)}); refusing to replace it",
            hint="choose another --out, or pass --overwrite to replace it",
        )
    if (out / "plan.json").exists():
        from edgeinvestigate.cli._replay import _check_not_run

        _check_not_run(out / "plan.json")


def _require_notebooks() -> None:
    """The report needs the notebooks extra: say so before collecting anything."""
    import importlib.util

    from edgeinvestigate.errors import MissingExtraError

    for name in ("papermill", "nbconvert", "jupytext", "plotly"):
        if importlib.util.find_spec(name) is None:
            raise MissingExtraError("notebooks", f"the incident report ({name} missing; or pass --no-report)")


# every option of collect (inputs, window, DLQ, archives, --rules, --strict, --overwrite...), then ours
_HELP = {
    "out": "Folder of the investigation: bundle/, findings.json, report/, plan.json (created if missing).",
    "overwrite": "Replace the bundle, report, findings.json and plan.json of an earlier investigation "
    "in --out.",
}


def _shared(param: click.Parameter) -> click.Parameter:
    if param.name in _HELP and isinstance(param, click.Option):
        own = copy.copy(param)  # collect's option keeps its own help
        own.help = _HELP[param.name]
        return own
    return param


investigate.params[:0] = [_shared(p) for p in _collect.params if p.name != "listen"]
