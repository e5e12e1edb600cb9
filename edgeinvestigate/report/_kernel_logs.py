"""Keep a notebook run's kernel traffic out of the log in clear text.

At DEBUG level (``edgeinvestigate -vv``) papermill logs every message the kernel sends, cell outputs
included (``content: {'data': {'text/html': ...}}``): DLQ payloads, e-mail addresses, tokens. While a
notebook runs, :func:`redacted_kernel_logs` puts a filter on papermill's and the Jupyter client's
loggers: cell output contents are replaced by a placeholder, and every other record from them is
redacted with the report's own rules, before any handler sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from edgeinvestigate.report.redact import Redactor

__all__ = ["KERNEL_LOGGERS", "redacted_kernel_logs"]

# the loggers that see kernel messages (papermill's engine, nbclient/jupyter_client via traitlets)
KERNEL_LOGGERS = ("papermill", "traitlets", "nbclient", "jupyter_client")
OUTPUT_PLACEHOLDER = "content: [cell output not logged]"


class _KernelLogFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: log its template only
            message = str(record.msg)
        if message.startswith("content:") and "execution_state" not in message:
            message = OUTPUT_PLACEHOLDER
        record.msg = self.redactor.text(message)
        record.args = ()
        return True


def _logger_names() -> list[str]:
    known = [n for n in logging.Logger.manager.loggerDict if n.split(".")[0] in KERNEL_LOGGERS]
    return sorted(set(KERNEL_LOGGERS) | set(known))


@contextmanager
def redacted_kernel_logs(redactor: Redactor) -> Iterator[None]:
    """While the block runs, the kernel loggers' records carry no cell output and are redacted."""
    flt = _KernelLogFilter(redactor)
    loggers = [logging.getLogger(name) for name in _logger_names()]
    for logger in loggers:
        logger.addFilter(flt)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(flt)
