from __future__ import annotations

import errno
import importlib
import importlib.util
import logging
import os
import sys
from typing import Any

import click

from edgeinvestigate._version import __version__
from edgeinvestigate.errors import EdgeInvestigateError

# name -> "module:attribute" (relative to edgeinvestigate.cli); one module per command.
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("._collect", "collect"),
    "investigate": ("._investigate", "investigate"),
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
    "investigate": "Collect, cluster, rank root causes and write the incident report in one go.",
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
    global _VERBOSITY
    _VERBOSITY = verbose
    _install_warning_handler(quiet=bool(verbose))
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        # httpx logs request lines at INFO; they never contain the token, but keep them at DEBUG.
        logging.getLogger("httpx").setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


# The -v count of the running command, for the error boundary in main() (set by ``cli``).
_VERBOSITY = 0
DEBUG_ENV = "EDGEINVESTIGATE_DEBUG"

_OS_HINTS: dict[int, str] = {
    errno.ENOTDIR: "a part of the path is a file, not a directory: choose another path",
    errno.EEXIST: "a file of that name is in the way: choose another path or move the file away",
    errno.ENOENT: "check the path: its directory must exist (or be creatable)",
    errno.EACCES: "no permission there: choose a path you can write, e.g. under your home directory",
    errno.EPERM: "not permitted there: choose a path you can write, e.g. under your home directory",
    errno.EISDIR: "the path is a directory: name a file instead",
    errno.EROFS: "that file system is read-only: choose another path",
    errno.ENOSPC: "the disk is full: free some space or choose another path",
    errno.EDQUOT: "the disk quota is exhausted: free some space or choose another path",
    errno.ENAMETOOLONG: "the path is too long: choose a shorter one",
}


def _os_error_lines(exc: OSError) -> tuple[str, str]:
    """The one-line error and hint for an ``OSError`` that escaped a command."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno or -1, "check the path and its parent directory, or choose another one")
    if exc.filename is not None:
        path = os.fsdecode(exc.filename) if isinstance(exc.filename, bytes) else str(exc.filename)
        where = path
        if exc.filename2 is not None:
            where = f"{path} -> {exc.filename2}"
        return f"cannot read or write {where}: {reason}", hint
    return (
        f"operating system error: {reason}",
        f"rerun with -vv (or {DEBUG_ENV}=1) to see where it happened",
    )


def _debugging() -> bool:
    return _VERBOSITY > 1 or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


class _NoteHandler(logging.Handler):
    """Shows the library's notes (logger ``edgeinvestigate.note``) as ``note: ...`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(f"note: {record.getMessage()}", err=True)
        except Exception:  # logging must never break a command
            self.handleError(record)


class _EchoHandler(logging.Handler):
    """Shows the library's warnings as ``warning: ...`` lines on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(f"warning: {record.getMessage()}", err=True)
        except Exception:  # logging must never break a command
            self.handleError(record)


def _install_warning_handler(*, quiet: bool) -> None:
    """Show the library's warnings once, as ``warning: ...`` lines on stderr.

    Without a handler, Python's last-resort handler prints them bare, and commands that echo the
    same warning themselves printed it twice. Commands leave warnings to this handler. With -v the
    logging configuration of ``cli`` shows them (with a timestamp) instead.
    """
    logger = logging.getLogger("edgeinvestigate")
    for handler in [h for h in logger.handlers if isinstance(h, _EchoHandler)]:
        logger.removeHandler(handler)  # a second run in one process replaces it
    if not quiet:
        logger.addHandler(_EchoHandler(logging.WARNING))
    notes = logging.getLogger("edgeinvestigate.note")  # "note: ..." lines (clusters computed in memory...)
    for note_handler in [h for h in notes.handlers if isinstance(h, _NoteHandler)]:
        notes.removeHandler(note_handler)
    notes.addHandler(_NoteHandler(logging.INFO))
    notes.setLevel(logging.INFO)
    notes.propagate = False


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
    except OSError as exc:
        # An output path that cannot be created, a file that vanished, a full disk: one line, no
        # traceback (-vv or EDGEINVESTIGATE_DEBUG=1 shows it). Network errors are library errors.
        if _debugging():
            import traceback

            traceback.print_exc()
        message, hint = _os_error_lines(exc)
        click.secho(f"error: {message}", fg="red", err=True)
        click.echo(f"hint: {hint}", err=True)
        sys.exit(2)
    if isinstance(rv, int) and rv != 0:
        sys.exit(rv)
    return rv
