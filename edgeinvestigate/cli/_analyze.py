"""``edgeinvestigate analyze``: rank root-cause findings for an evidence bundle."""

from __future__ import annotations

from pathlib import Path

import click

from edgeinvestigate.cli._term import terminal_width

__all__ = ["analyze"]


@click.command(
    "analyze",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n"
        "  edgeinvestigate analyze evidence/INC-123\n\n"
        "  edgeinvestigate analyze evidence/INC-123 --format json --out findings.json\n\n"
        "  edgeinvestigate analyze evidence/INC-123 --format markdown --incident-id INC-123 > summary.md\n\n"
        "  edgeinvestigate analyze evidence/INC-123 --deploy v42@2026-11-27T14:05Z"
    ),
)
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="Print a readable summary, the full findings as JSON, or a ticket-ready Markdown summary "
    "(redacted; --no-redact keeps personal data).",
)
@click.option("--incident-id", default="", help="Your incident id, for the Markdown summary's title line.")
@click.option(
    "--report", "report_path", default="", help="Where the HTML report is, to link from the summary."
)
@click.option("--no-redact", is_flag=True, help="Keep emails and IPs in the Markdown summary.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the full findings as JSON to this file (for reports).",
)
@click.option(
    "--rules",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A TOML or JSON file of cluster merge/split rules.",
)
@click.option(
    "--tenant-field",
    "tenant_fields",
    multiple=True,
    help="Payload field that names a tenant (repeatable; default: tenant, tenantId, customerId, ...).",
)
@click.option(
    "--deploy",
    "deploys",
    multiple=True,
    metavar="VERSION@TIME",
    help=(
        "A deployment the data may not show, e.g. v42@2026-11-27T14:05Z (repeatable; time in ISO-8601 "
        "or epoch, UTC when no offset). Adds a deploy marker of source 'given'."
    ),
)
def analyze(
    bundle: Path,
    fmt: str,
    out: Path | None,
    rules: Path | None,
    tenant_fields: tuple[str, ...],
    deploys: tuple[str, ...],
    incident_id: str,
    report_path: str,
    no_redact: bool,
) -> None:
    """Rank root-cause hypotheses for BUNDLE (a directory written by `collect`)."""
    from edgeinvestigate.analysis.deploys import parse_deployments
    from edgeinvestigate.analysis.rca import TENANT_FIELDS
    from edgeinvestigate.analysis.rca import analyze as run_analysis
    from edgeinvestigate.cli._pipeline import open_clusters
    from edgeinvestigate.cli._progress import Progress
    from edgeinvestigate.errors import ConfigError
    from edgeinvestigate.evidence.bundle import Evidence

    given = parse_deployments(deploys)  # bad values fail before the bundle is read
    progress = Progress()
    ev = Evidence.open(bundle)
    clusters = open_clusters(ev, rules=rules, progress=progress)
    with progress.step("ranking root causes"):
        findings = run_analysis(ev, clusters, tenant_fields=tenant_fields or TENANT_FIELDS, deployments=given)
    text = findings.model_dump_json(indent=2)
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot write findings to {out}: {exc.strerror}", hint="choose another --out"
            ) from exc
    if fmt == "json":
        click.echo(text)
    elif fmt == "markdown":
        from edgeinvestigate.report.summary import markdown_summary

        click.echo(
            markdown_summary(
                findings,
                incident_id=incident_id,
                report=report_path or None,
                bundle=bundle,
                redact=not no_redact,
            ),
            nl=False,
        )
    else:
        width = terminal_width()
        click.echo(findings.to_text(width=max(60, width - 1) if width else None))
    if out is not None and fmt != "json":
        click.echo(f"findings written to {out}", err=True)
