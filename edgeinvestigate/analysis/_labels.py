"""Short, readable labels for clusters on chart axes and in tables."""

from __future__ import annotations

__all__ = ["short_label"]


def short_label(template: object, width: int = 48) -> str:
    """A template cut at ``width`` characters (on a word boundary when one is near), for chart axes."""
    text = " ".join(str(template or "").split())
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    space = cut.rfind(" ")
    if space >= width // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"
