"""``edgeinvestigate notebooks``: list the investigation notebooks and where they are."""

from __future__ import annotations

import json

import click

__all__ = ["notebooks"]


@click.group("notebooks")
def notebooks() -> None:
    """The investigation notebooks (triage, error-clusters, root-cause, dlq-replay, incident-report).

    Run one on a bundle with `edgeinvestigate report BUNDLE --notebook NAME --out DIR`, or open them
    in JupyterLab: `jupyter lab "$(edgeinvestigate notebooks path)"` (they run on the bundled sample
    incident with their default parameters).
    """


@notebooks.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def list_(as_json: bool) -> None:
    """List every notebook with what it answers and its parameters (name, type, default)."""
    from edgeinvestigate.report.runner import list_notebooks

    items = list_notebooks()
    if as_json:
        payload = [
            {
                "name": nb.name,
                "title": nb.title,
                "summary": nb.summary,
                "path": str(nb.path),
                "parameters": [
                    {"name": n, "type": t, "default": json.loads(d), "description": desc}
                    for n, t, d, desc in nb.parameters
                ],
            }
            for nb in items
        ]
        click.echo(json.dumps(payload, indent=2))
        return
    for nb in items:
        click.secho(f"{nb.name}", bold=True, nl=False)
        click.echo(f"  {nb.summary}")
        for name, typ, default, desc in nb.parameters:
            shown = "" if default == '""' else default
            click.echo(f"    -p {name}={shown}  ({typ}) {desc}")
        click.echo()
    click.echo("run one: edgeinvestigate report BUNDLE --notebook NAME --out DIR [-p NAME=VALUE]...")


@notebooks.command("path")
@click.argument("name", required=False)
def path(name: str | None) -> None:
    """Print the folder of the notebooks, or the file of notebook NAME."""
    from edgeinvestigate.report.runner import notebook_path, notebooks_dir

    click.echo(str(notebook_path(name) if name else notebooks_dir()))
