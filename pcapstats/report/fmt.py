"""Number formatting shared by the terminal and HTML reports."""

from __future__ import annotations

from typing import Any


def pct(v: float | None) -> str:
    """A share as a percentage with one decimal; "n/a" when undefined."""
    return "n/a" if v is None else f"{100 * v:.1f}%"


def num(v: Any, digits: int = 2) -> str:
    """A count with thousands separators, or a float with ``digits`` decimals."""
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"
