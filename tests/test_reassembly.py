"""TCP reassembly: any segmentation, reordering or duplication gives the same bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pcapstats.tcp.reassembly import HalfStream


class Sink:
    def __init__(self) -> None:
        self.out = bytearray()
        self.gaps: list[tuple[int, int]] = []   # (offset, length)

    def data(self, from_client: bool, ts: int, data: bytes) -> None:
        self.out += data

    def gap(self, from_client: bool, ts: int, nbytes: int) -> None:
        self.gaps.append((len(self.out), nbytes))
        self.out += b"\0" * nbytes


ISN = 0xFFFFFF00   # close to the wrap, so every test also crosses 2^32


def _segments(data: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [((ISN + 1 + a) & 0xFFFFFFFF, data[a:b]) for a, b in zip(points, points[1:]) if b > a]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=1, max_size=3000),
       cuts=st.lists(st.integers(0, 3000), max_size=30),
       order=st.randoms(use_true_random=False),
       dups=st.lists(st.integers(0, 100), max_size=10))
def test_any_segmentation_order_and_duplication_reassembles(data, cuts, order, dups):
    segs = _segments(data, cuts)
    for d in dups:                      # duplicates (retransmissions) of some segments
        segs.append(segs[d % len(segs)])
    order.shuffle(segs)
    h = HalfStream(True, max_pending=1 << 30)
    h.start(ISN + 1)
    sink = Sink()
    for seq, payload in segs:
        h.segment(seq, payload, 0, 0, sink)
    h.flush(0, sink)
    assert bytes(sink.out) == data
    assert sink.gaps == []
    assert h.offset == len(data)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=10, max_size=2000),
       cuts=st.lists(st.integers(0, 2000), min_size=2, max_size=20),
       lost=st.integers(0, 100), order=st.randoms(use_true_random=False))
def test_a_lost_segment_becomes_a_gap_at_its_offset(data, cuts, lost, order):
    segs = _segments(data, cuts)
    if len(segs) < 3:
        return
    k = 1 + lost % (len(segs) - 2)          # never the first or last segment
    seq_lost, missing = segs.pop(k)
    start = (seq_lost - ISN - 1) & 0xFFFFFFFF
    order.shuffle(segs)
    h = HalfStream(True, max_pending=1 << 30)
    h.start(ISN + 1)
    sink = Sink()
    for seq, payload in segs:
        h.segment(seq, payload, 0, 0, sink)
    h.flush(0, sink)
    assert sink.gaps == [(start, len(missing))]
    assert bytes(sink.out[:start]) == data[:start]
    assert bytes(sink.out[start + len(missing):]) == data[start + len(missing):]
    assert h.missed == len(missing)


def test_first_write_wins_and_conflicts_are_counted():
    h = HalfStream(True, max_pending=1 << 20)
    h.start(1001)
    sink = Sink()
    h.segment(1005, b"EFGH", 0, 0, sink)        # out of order: held
    h.segment(1005, b"XXXX", 0, 0, sink)        # conflicting copy of held bytes
    h.segment(1001, b"ABCD", 0, 0, sink)
    assert bytes(sink.out) == b"ABCDEFGH"
    assert h.conflicts == 1
    assert h.retrans == 1


def test_ack_beyond_a_hole_declares_the_gap():
    h = HalfStream(True, max_pending=1 << 20)
    h.start(1)
    sink = Sink()
    h.segment(1, b"abc", 0, 0, sink)
    h.acked(10, 0, sink)                         # the peer got 6 bytes we never saw
    assert sink.gaps == [(3, 6)]
    h.segment(10, b"xyz", 0, 0, sink)
    assert bytes(sink.out) == b"abc" + b"\0" * 6 + b"xyz"


def test_snaplen_cut_bytes_are_missed_not_waited_for():
    h = HalfStream(True, max_pending=1 << 20)
    h.start(1)
    sink = Sink()
    h.segment(1, b"GET / HT", 100, 0, sink)       # 108 bytes sent, 8 captured
    h.segment(109, b"next", 0, 0, sink)
    assert sink.gaps == [(8, 100)]
    assert sink.out.endswith(b"next")
    assert h.missed == 100


def test_keepalive_probe_is_not_a_retransmission():
    h = HalfStream(True, max_pending=1 << 20)
    h.start(1)
    sink = Sink()
    h.segment(1, b"abc", 0, 0, sink)
    h.segment(3, b"c", 0, 0, sink)               # one byte at next-1: a keep-alive probe
    assert h.retrans == 0
    h.segment(1, b"abc", 0, 0, sink)
    assert h.retrans == 1


def test_pending_limit_gives_up_on_the_hole():
    h = HalfStream(True, max_pending=100)
    h.start(1)
    sink = Sink()
    h.segment(1, b"a", 0, 0, sink)
    h.segment(50, b"x" * 150, 0, 0, sink)        # exceeds the limit: the hole becomes a gap
    assert sink.gaps == [(1, 48)]
    assert h.pending_bytes == 0
