from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from .._version import __version__
from ..errors import EdgeInvestigateError

# name -> "module:attribute" (relative to edgeinvestigate.cli); one module per command.
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("._collect", "collect"),
    "clusters": ("._clusters", "clusters"),
    "analyze": ("._analyze", "analyze"),
    "report": ("._report", "report"),
    "replay": ("._replay", "replay"),
    "sandbox": ("._sandbox", "sandbox"),
    "simulate": ("._simulate", "simulate"),
    "tail": ("._tail", "tail"),
    "demo": ("._demo", "demo"),
    "notebooks": ("._notebooks", "notebooks"),
    "lab": ("._lab", "lab"),
}

HELP: dict[str, str] = {
    "collect": "Load telemetry files and API sources into an evidence bundle.",
    "clusters": "Group the errors of a bundle into stable templates.",
    "analyze": "Rank root-cause findings for a bundle.",
    "report": "Run a notebook on a bundle and write an HTML incident report.",
    "replay": "Plan, run, watch and verify a DLQ replay.",
    "sandbox": "Run the local Cloudflare API sandbox.",
    "simulate": "Simulate an incident and write every telemetry format.",
    "tail": "Capture a live tail of a Worker to NDJSON.",
    "demo": "Run the whole pipeline on the bundled sample incident.",
    "notebooks": "List the investigation notebooks.",
    "lab": "Helpers for the real-runtime lab (lab/).",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module_name, attr = spec
        try:
            module = importlib.import_module(module_name, __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("edgeinvestigate.cli."):
                return None  # command not built yet
            raise
        command: click.Command = getattr(module, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help without importing every command module.
        rows = [(name, HELP.get(name, "")) for name in self.list_commands(ctx) if self._available(name)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def _available(self, name: str) -> bool:
        module_name, _ = COMMANDS[name]
        spec = importlib.util.find_spec(module_name, __package__)
        return spec is not None


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="edgeinvestigate")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Investigate and repair Cloudflare Queues + Workers incidents.

    Start with runbooks/README.md: it maps a symptom to a runbook, a notebook and a command.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    _install_warning_handler(quiet=bool(verbose))
    if verbose:
        import logging

        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        # httpx logs request lines at INFO; they never contain the token, but keep them at DEBUG.
        logging.getLogger("httpx").setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


class _EchoWarnings:
    """Marker base for the CLI's handler of library warnings (so a second run replaces it)."""


def _install_warning_handler(*, quiet: bool) -> None:
    """Show the library's warnings once, as ``warning: ...`` lines on stderr.

    Without a handler, Python's last-resort handler prints them bare, and commands that echo the
    same warning themselves printed it twice. Commands leave warnings to this handler. With -v the
    logging configuration of ``cli`` shows them (with a timestamp) instead.
    """
    import logging

    class EchoHandler(_EchoWarnings, logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                click.echo(f"warning: {record.getMessage()}", err=True)  # the current stderr, always
            except Exception:  # logging must never break a command
                self.handleError(record)

    logger = logging.getLogger("edgeinvestigate")
    for handler in list(logger.handlers):
        if isinstance(handler, _EchoWarnings):
            logger.removeHandler(handler)
    if not quiet:
        logger.addHandler(EchoHandler(logging.WARNING))


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, turning library errors into one-line messages."""
    try:
        rv = cli.main(args=argv, prog_name="edgeinvestigate", standalone_mode=False)
    except EdgeInvestigateError as exc:
        click.secho(f"error: {exc.message}", fg="red", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        # One line like library errors (not click's three-line usage block), and a hint.
        command = exc.ctx.command_path if exc.ctx is not None else "edgeinvestigate"
        message = " ".join(exc.format_message().split())
        click.secho(f"error: {message}", fg="red", err=True)
        click.echo(f"hint: `{command} --help` lists the arguments and options", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    if isinstance(rv, int) and rv != 0:
        sys.exit(rv)
    return rv
