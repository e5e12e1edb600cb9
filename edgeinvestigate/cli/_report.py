"""``edgeinvestigate report``: run a notebook on a bundle and write the HTML incident report."""

from __future__ import annotations

from pathlib import Path

import click

from edgeinvestigate.errors import ConfigError
from edgeinvestigate.report.runner import NOTEBOOKS

__all__ = ["parse_parameters", "report"]


def parse_parameters(values: tuple[str, ...]) -> dict[str, str]:
    """``("top_n=5", "clusters=a,b")`` -> ``{"top_n": "5", "clusters": "a,b"}`` (types are checked later)."""
    params: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            # The value is not repeated: it might be a secret pasted in the wrong place.
            raise ConfigError(
                f"-p expects NAME=VALUE, got an argument without '=' (name {name[:40]!r})"
                if not sep
                else "-p expects NAME=VALUE, got an empty name",
                hint="edgeinvestigate notebooks list shows each notebook's parameters",
            )
        if name in params:
            raise ConfigError(f"parameter {name!r} given twice", hint="give each -p NAME=VALUE once")
        params[name] = value
    return params


@click.command("report")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    "-o",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for NOTEBOOK.html, NOTEBOOK.ipynb and findings.json (created if missing).",
)
@click.option(
    "--notebook",
    "-n",
    default="incident-report",
    show_default=True,
    type=click.Choice(list(NOTEBOOKS)),
    help="Which notebook to run (see `edgeinvestigate notebooks list`).",
)
@click.option(
    "-p",
    "--parameter",
    "parameters",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a notebook parameter (repeatable). Unknown names and wrong types are refused before "
    "anything runs. Never pass a token: secrets come from the environment.",
)
@click.option(
    "--no-redact",
    is_flag=True,
    help="Keep emails, IPs and auth headers in the report (tokens from the environment are always removed).",
)
@click.option(
    "--show-code", is_flag=True, help="Show the notebook's code cells in the HTML (hidden by default)."
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar while cells execute.  [default: only when stderr is a terminal]",
)
def report(
    bundle: Path,
    out_dir: Path,
    notebook: str,
    parameters: tuple[str, ...],
    no_redact: bool,
    show_code: bool,
    progress: bool | None,
) -> None:
    """Run NOTEBOOK on the evidence BUNDLE and write a self-contained HTML report.

    \b
    Writes into --out:
      NOTEBOOK.html   opens offline (plotly.js inlined), code hidden, PII redacted
      NOTEBOOK.ipynb  the executed notebook (open it in JupyterLab)
      findings.json   the ranked findings, for tickets and tooling
      summary.md      the same as a Markdown summary to paste into a ticket or chat

    Parameters are checked before a kernel starts: names and types, and cluster ids and job types
    against the bundle. A failing cell still writes NOTEBOOK.failed.html and NOTEBOOK.failed.ipynb,
    with a red banner naming the cell and the error, beside (never over) a good report, and the
    command exits non-zero. Example:

    \b
      edgeinvestigate report evidence/INC-123 --out reports/INC-123 -p incident_id=INC-123
    """
    import sys

    from edgeinvestigate.report.runner import write_report

    if progress is None:
        progress = sys.stderr.isatty()
    _note_unstored(bundle)

    run = write_report(
        bundle,
        out_dir,
        notebook=notebook,
        parameters=parse_parameters(parameters),
        redact=not no_redact,
        show_code=show_code,
        progress=progress,
    )
    click.echo(f"report:   {run.html}")
    click.echo(f"notebook: {run.ipynb}")
    if run.findings is not None:
        click.echo(f"findings: {run.findings}")
    if run.summary is not None:
        click.echo(f"summary:  {run.summary}")
    if not no_redact:
        click.echo(f"redacted: {run.redactions} value(s) (emails, IPs, credentials); --no-redact keeps them")
    run.raise_for_error()


def _note_unstored(bundle: Path) -> None:
    """Say so when the notebook will cluster in memory: the bundle stores no clusters."""
    from edgeinvestigate.analysis.clustering import STORED_NAME
    from edgeinvestigate.cli._pipeline import note
    from edgeinvestigate.errors import EdgeInvestigateError
    from edgeinvestigate.evidence.bundle import Evidence

    try:
        stored = Evidence.open(bundle).derived(STORED_NAME)  # reads the manifest, not the frames
    except EdgeInvestigateError:
        return  # write_report says what is wrong with it
    if stored is None:
        note(
            "this bundle holds no stored clusters (an older release wrote it): the notebook clusters "
            "its errors in memory; `edgeinvestigate collect` stores them in new bundles"
        )
