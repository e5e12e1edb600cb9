"""``edgeinvestigate clusters``: group the errors of an evidence bundle into stable templates."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click

from edgeinvestigate.cli._term import terminal_width

__all__ = ["clusters"]


@click.command(
    "clusters",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n"
        "  edgeinvestigate clusters evidence/INC-123\n\n"
        "  edgeinvestigate clusters evidence/INC-123 --format json --rules cluster-rules.toml\n\n"
        "  edgeinvestigate clusters evidence/INC-123 --explain c5d223ee57c54   # cluster or DLQ message id"
    ),
)
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format: a readable table, JSON (one object per cluster) or CSV.",
)
@click.option(
    "--rules",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A TOML or JSON file of merge/split rules (see edgeinvestigate.analysis.rules).",
)
@click.option(
    "--explain",
    "explain",
    metavar="ID",
    help="Explain how a cluster (by cluster id), a DLQ message (by id), an error row (by number) or "
    "an error text is grouped: masking steps, template and rule.",
)
@click.option(
    "--redact",
    is_flag=True,
    help="Mask the example messages (values become <uuid>, <email>...) and emails/IPs everywhere. "
    "Credentials (the CLOUDFLARE_API_TOKEN value, bearer tokens, auth headers) are always masked.",
)
@click.option("--limit", type=int, default=50, show_default=True, help="Rows shown by --format table.")
def clusters(
    bundle: Path, fmt: str, rules: Path | None, explain: str | None, redact: bool, limit: int
) -> None:
    """Group the errors of BUNDLE (a directory written by `collect`) into clusters with stable ids.

    Every output masks credentials found in log and exception text (the value of CLOUDFLARE_API_TOKEN
    and other secret environment variables, bearer tokens, auth headers), with or without --redact.
    """
    from edgeinvestigate.cli._pipeline import open_clusters
    from edgeinvestigate.cli._progress import Progress
    from edgeinvestigate.evidence.bundle import Evidence
    from edgeinvestigate.report.redact import Redactor

    mask = Redactor(pii=redact, credentials=True)

    ev = Evidence.open(bundle)
    result = open_clusters(ev, rules=rules, progress=Progress(), redact=redact)
    if explain is not None:
        is_message_id = bool(len(result.dlq)) and bool(
            (result.dlq["message_id"].astype(object) == explain).any()
        )
        target: str | int = int(explain) if explain.isdigit() and not is_message_id else explain
        note = ""
        if not is_message_id and isinstance(target, str):
            # A cluster id (as printed by the table): explain its first example row.
            rows = (result.assign["cluster_id"].astype(object) == explain).to_numpy().nonzero()[0]
            if len(rows):
                target = int(rows[0])
                note = f"cluster {explain}: explaining its first error row ({target}) of {len(rows)}"
        exp = result.explain(target)
        if fmt == "json":
            click.echo(json.dumps(mask.value(exp.to_dict()), indent=2))
        else:
            if note:
                click.echo(mask.text(note))
            click.echo(mask.text(str(exp)))
        return
    if fmt == "json":
        click.echo(json.dumps(mask.value(json.loads(result.to_json())), indent=2))
    elif fmt == "csv":
        buf = io.StringIO()
        records = mask.value(result.records())
        writer = csv.DictWriter(buf, fieldnames=list(records[0]) if records else ["cluster_id"])
        writer.writeheader()
        for rec in records:
            writer.writerow({k: _csv_cell(v) for k, v in rec.items()})
        click.echo(buf.getvalue(), nl=False)
    else:
        click.echo(_table(mask.value(result.records()), limit))
        from edgeinvestigate.analysis.dlq_coverage import dlq_coverage

        coverage = dlq_coverage(ev.manifest)
        if coverage is not None and len(result.dlq):
            click.echo(f"note: the dlq counts are {coverage.label} ({coverage.reason})")
    if rules is not None and result.rules is not None and result.rules.unused():
        click.echo(f"note: rules that matched nothing: {', '.join(result.rules.unused())}", err=True)


def _csv_cell(value: object) -> object:
    """Lists of texts joined with " | "; lists of objects (``example_events``) as JSON."""
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return " | ".join(value)
        return json.dumps(value, separators=(",", ":"))
    return value


def _table(records: list[dict[str, object]], limit: int) -> str:
    if not records:
        return "No errors in this bundle."
    # Fit a terminal; piped output and --format json/csv keep whole templates.
    width = terminal_width()
    room = max(30, width - 1 - 46) if width else None
    lines = [f"{'cluster_id':<14} {'count':>7} {'share':>6} {'dlq':>5} {'kind':<10} template"]
    for rec in records[:limit]:
        share = float(rec["share"])  # type: ignore[arg-type]
        template = str(rec["template"])
        if room is not None and len(template) > room:
            template = template[: room - 3] + "..."
        lines.append(
            f"{rec['cluster_id']!s:<14} {rec['count']!s:>7} {share:>6.1%} {rec['n_dlq_messages']!s:>5} "
            f"{rec['kind']!s:<10} {template}"
        )
    if len(records) > limit:
        lines.append(f"... {len(records) - limit} more clusters (use --limit or --format json)")
    return "\n".join(lines)
