"""The one exception family of pcapstats.

Library code raises these; the CLI catches them once and prints one line.
A broken *packet* is never raised: it is counted. Only a capture that cannot
be read at all (or a bad option) is an error.
"""

from __future__ import annotations


class PcapstatsError(Exception):
    """Base of every error pcapstats raises on purpose."""

    exit_code = 1


class CaptureFormatError(PcapstatsError):
    """A capture file cannot be read (from `offset` on, or at all)."""

    exit_code = 3

    def __init__(self, path: str, offset: int | None, problem: str) -> None:
        self.path = path
        self.offset = offset
        self.problem = problem
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{path}{where}: {problem}")


class UsageError(PcapstatsError):
    """An option or argument the user gave makes no sense."""

    exit_code = 2
