"""Differential tests: pcapstats against tshark on real public captures.

The captures are read in place from ../shared/captures (never copied into the
repository). Where tshark is known to count differently, the expectation is
written down here with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import pcapstats
from tests import tsharkref

pytestmark = tsharkref.MARKS

# Files that are broken on purpose: tshark and pcapstats both stop at the fault.
UNREADABLE = {"zeek-empty-header-only.pcap"}


def _ours(path: Path) -> pcapstats.Analysis:
    return pcapstats.analyze(str(path))


def _key(s: tsharkref.StreamFigures) -> tuple:
    close = "rst" if s.rst else "fin" if s.fin else "open"
    return (s.complete, close)


@pytest.mark.parametrize("path", tsharkref.CAPTURES, ids=lambda p: p.name)
def test_packets_connections_handshakes_and_closes_equal_tshark(path: Path) -> None:
    a = _ours(path)
    ref = tsharkref.streams(str(path))
    assert a.summary["capture"]["packets"] == tsharkref.packet_count(str(path))
    conns = a.connections
    assert len(conns) == len(ref), "TCP connections"
    assert int(conns["handshake_complete"].sum()) == sum(s.complete for s in ref.values()), \
        "complete handshakes"
    ours_close = conns["close"].astype(str).value_counts().to_dict()
    theirs: dict[str, int] = {}
    for s in ref.values():
        k = _key(s)[1]
        theirs[k] = theirs.get(k, 0) + 1
    assert {k: v for k, v in ours_close.items() if v} == theirs, "closes by kind"
    # per connection, in order of first packet: the packet counts agree
    assert list(conns["packets"]) == [ref[k].packets for k in sorted(ref)]
