"""The ``edgeinvestigate`` command line: a thin shell over the library.

Each subcommand lives in its own private module and is imported only when it runs, so
``edgeinvestigate --help`` stays fast and an optional extra that is missing only affects the
command that needs it. :func:`main` is the one boundary where library errors
(:class:`~edgeinvestigate.errors.EdgeInvestigateError`) become one-line CLI errors with a hint and
a non-zero exit status.
"""

from __future__ import annotations

from edgeinvestigate.cli._main import cli, main

__all__ = ["cli", "main"]
