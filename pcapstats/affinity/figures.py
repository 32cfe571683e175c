"""Small numeric helpers shared by the affinity figures (plain Python, no numpy).

Every ratio pcapstats reports carries the counts it was computed from
(`Ratio`), and is None, never NaN, when its denominator is 0.

Definitions used throughout:

- **mean**: arithmetic mean.
- **median**: middle value of the sorted list; for an even count, the mean
  of the two middle values (so it may be fractional).
- **p95**: nearest-rank percentile: the value at 1-based rank
  ``ceil(0.95 * n)`` of the sorted list.  Always one of the observed values
  (no interpolation), so "p95 = 12 requests" is a real connection.
- **max_to_mean**: largest value / mean; 1.0 is perfectly even, and k means
  the busiest item carries k times its fair share (N when all the load is on
  one of N items).
- **cv** (coefficient of variation): population standard deviation / mean;
  0.0 is perfectly even.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

__all__ = [
    "Distribution",
    "Evenness",
    "Ratio",
    "ReuseFigures",
    "distribution",
    "evenness",
    "median",
    "nearest_rank",
    "reuse_figures",
]

# Packets a connection costs beyond its data: SYN, SYN/ACK, ACK + FIN, ACK, FIN, ACK.
EXCHANGES_PER_CONNECTION = 7


@dataclass(frozen=True, slots=True)
class Ratio:
    """numerator / denominator, kept as counts; `value` is None when denominator is 0."""

    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return None if self.denominator == 0 else self.numerator / self.denominator

    def to_dict(self) -> dict[str, int | float | None]:
        return {"numerator": self.numerator, "denominator": self.denominator, "value": self.value}


def nearest_rank(values: Sequence[int | float], pct: float) -> int | float | None:
    """Nearest-rank percentile ``pct`` (0 < pct <= 100) of ``values``; None if empty.

    The value at 1-based rank ``ceil(pct / 100 * n)`` of the sorted values.
    """
    if not 0 < pct <= 100:
        raise ValueError(f"percentile out of range: {pct}")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[int | float]) -> float | None:
    """Median (mean of the two middle values for an even count); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2


class Distribution(TypedDict):
    """Summary of a list of counts; every field None for an empty list."""

    mean: float | None
    median: float | None
    p95: int | float | None
    max: int | float | None


def distribution(values: Sequence[int | float]) -> Distribution:
    """mean, median, p95 (nearest rank) and max of ``values``."""
    if not values:
        return {"mean": None, "median": None, "p95": None, "max": None}
    return {
        "mean": sum(values) / len(values),
        "median": median(values),
        "p95": nearest_rank(values, 95),
        "max": max(values),
    }


@dataclass(frozen=True, slots=True)
class Evenness:
    """How evenly a load spreads over the items that received some (see module doc)."""

    items: int                  # items with a count (backends seen)
    total: int
    mean: float | None
    max_to_mean: float | None   # 1.0 = even; None without items
    cv: float | None            # population stdev / mean; 0.0 = even; None without items


def evenness(counts: Sequence[int]) -> Evenness:
    """`Evenness` of per-item counts (items with count 0 are included as given)."""
    n = len(counts)
    total = sum(counts)
    if n == 0 or total == 0:
        return Evenness(n, total, None if n == 0 else 0.0, None, None)
    mean = total / n
    variance = sum((c - mean) ** 2 for c in counts) / n
    return Evenness(n, total, mean, max(counts) / mean, math.sqrt(variance) / mean)


class ReuseFigures(TypedDict):
    """Connection reuse figures (DOMAIN.md "reuse ratio", "exchanges saved")."""

    connections: int                # connections given (including those without requests)
    connections_with_requests: int  # carried >= 1 request
    requests: int
    reused_requests: int            # requests - connections_with_requests
    reuse_ratio: float | None       # reused_requests / requests
    exchanges_saved: int            # 7 * reused_requests
    requests_per_connection: Distribution  # over connections_with_requests
    reused_connections: int         # carried >= 2 requests
    reused_share: float | None      # reused_connections / connections_with_requests


def reuse_figures(requests_per_connection: Sequence[int]) -> ReuseFigures:
    """Reuse figures from the number of requests each connection carried.

    Connections that carried no request (health probes, undecoded TLS,
    handshakes only) are counted in ``connections`` but left out of every
    ratio and of the distribution: the baseline is one connection per
    request.  Raises ValueError on a negative count (a caller bug).

    >>> f = reuse_figures([1, 3, 0, 4])
    >>> f["requests"], f["reused_requests"], f["reuse_ratio"], f["exchanges_saved"]
    (8, 5, 0.625, 35)
    """
    counts = list(map(int, requests_per_connection))   # (C-level passes: 500k connections)
    if counts and min(counts) < 0:
        raise ValueError("negative request count")
    carried = list(filter(None, counts))
    requests = sum(carried)
    reused_requests = requests - len(carried)
    reused_connections = len(carried) - carried.count(1)
    return {
        "connections": len(counts),
        "connections_with_requests": len(carried),
        "requests": requests,
        "reused_requests": reused_requests,
        "reuse_ratio": Ratio(reused_requests, requests).value,
        "exchanges_saved": EXCHANGES_PER_CONNECTION * reused_requests,
        "requests_per_connection": distribution(carried),
        "reused_connections": reused_connections,
        "reused_share": Ratio(reused_connections, len(carried)).value,
    }
