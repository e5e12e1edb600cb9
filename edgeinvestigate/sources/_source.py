"""One telemetry source: a file format, its loader and how to recognise it from its content."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from edgeinvestigate.sources.files._context import FileContext

__all__ = ["Loader", "Sniffer", "Source"]

Loader = Callable[[Path, "FileContext"], "dict[str, pa.Table]"]
Sniffer = Callable[[Any], bool]


@dataclass(frozen=True)
class Source:
    """One registered telemetry format."""

    name: str
    loader: Loader
    sniff: Sniffer | None
    description: str
    parallel: bool = False
    """large inputs of this source are worth reading in several processes"""
