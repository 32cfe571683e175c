"""The heads of finished exchanges wait in a file, not in memory (pcapstats/heads.py):
the text read back is the text sent, on every path (C and Python, serial, parallel,
pickled), and a run keeps no head as text once its exchanges are finished."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest

from capbuild import http_conversation, pcap
from pcapstats import analyze, heads
from pcapstats.heads import HeadStore
from pcapstats.http import parser
from pcapstats.pipeline import Options, run
from pcapstats.records import REQUEST_HEAD, RESPONSE_HEAD, STORE, HttpExchange

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench import generate  # noqa: E402


def _request(i: int) -> bytes:
    return (f"GET /item/{i}?q={'x' * i} HTTP/1.1\r\nHost: shop.example\r\n"
            f"Cookie: SID=s{i}; theme=\xe9t\xe9\r\nX-Pad: {'p' * (40 * i)}\r\n\r\n").encode("latin-1")


def _response(i: int) -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Length: {i}\r\nSet-Cookie: n={i}\r\n\r\n"
            ).encode() + b"b" * i


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    frames: list[bytes] = []
    for i in range(30):
        frames += http_conversation(_request(i), _response(i), sport=40000 + i)
    path = tmp_path / "heads.pcap"
    path.write_bytes(pcap(frames))
    return path


def _heads_sent(i: int) -> tuple[str, str]:
    response = _response(i).decode("latin-1")
    return _request(i).decode("latin-1"), response[:response.index("\r\n\r\n") + 4]


def _read_back(exchanges: list[HttpExchange]) -> list[tuple[str, str]]:
    return [(e.request_head, e.response_head) for e in exchanges]


SENT = [_heads_sent(i) for i in range(30)]      # what the capture fixture's clients sent


@pytest.mark.parametrize("c_http", [True, False])
def test_heads_read_back_are_the_heads_sent_and_none_stays_in_memory(
        capture: Path, c_http: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heads, "CHUNK", 700)        # several appends to the file
    parser.use_c_http(c_http)
    try:
        res = run([str(capture)], Options())
    finally:
        parser.use_c_http(True)
    assert len(res.exchanges) == 30
    for i, e in enumerate(res.exchanges):
        assert (e.request_head, e.response_head) == _heads_sent(i)
        assert e.headers["x-pad"] == "p" * (40 * i)
        assert e.response_headers["set-cookie"] == f"n={i}"
        # in the store: the slots hold handles, not text
        assert type(REQUEST_HEAD.__get__(e)) is int and type(RESPONSE_HEAD.__get__(e)) is int
    store = STORE.__get__(res.exchanges[0])
    assert isinstance(store, HeadStore) and all(STORE.__get__(e) is store for e in res.exchanges)
    assert store._base > 0 and len(store._buf) < 700       # written out, not held
    assert len(store) == sum(len(h) for i in range(30) for h in _heads_sent(i))


def test_a_pickled_result_carries_one_copy_of_its_heads(capture: Path) -> None:
    res = run([str(capture)], Options())
    blob = pickle.dumps(res)
    text = sum(len(h) for i in range(30) for h in _heads_sent(i))
    assert blob.count(b"X-Pad: " + b"p" * 40 * 29) == 1
    assert len(blob) < 2 * text      # (the rest is about 13 kB)
    back = pickle.loads(blob)
    assert [repr(e) for e in back.exchanges] == [repr(e) for e in res.exchanges]
    assert STORE.__get__(back.exchanges[0]) is not STORE.__get__(res.exchanges[0])
    one = pickle.loads(pickle.dumps(res.exchanges[5]))
    assert one == res.exchanges[5] and one.request_head == _heads_sent(5)[0]


def test_heads_after_a_parallel_run_equal_the_serial_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pcapstats.parallel as par
    path = tmp_path / "bench.pcap"
    generate(path, 20_000, seed=3)
    loaded = []
    real_load = par._load_part
    monkeypatch.setattr(par, "_load_part", lambda p: loaded.append(p) or real_load(p))
    serial, parallel = analyze(str(path)), analyze(str(path), jobs=2, parts=3)
    assert len(loaded) == 2         # parts 1 and 2 came from the workers, pickled
    a, b = serial.result.exchanges, parallel.result.exchanges
    assert len(a) == len(b) > 1000
    assert _read_back(a) == _read_back(b)
    assert all(type(REQUEST_HEAD.__get__(e)) is int for e in b)


def test_without_a_temporary_directory_the_store_keeps_the_bytes(
        monkeypatch: pytest.MonkeyPatch, capture: Path) -> None:
    def refuse() -> None:
        raise OSError("read-only file system")
    monkeypatch.setattr(heads.tempfile, "TemporaryFile", refuse)
    monkeypatch.setattr(heads, "CHUNK", 100)
    res = run([str(capture)], Options())
    store = STORE.__get__(res.exchanges[0])
    assert store._file is None and store._base == 0 and len(store._buf) == len(store)
    assert _read_back(res.exchanges) == SENT


def test_store_round_trip_and_what_stays_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heads, "CHUNK", 10)
    store = HeadStore()
    texts = ["", "abc", "\xff\x00\r\n", "x" * 25, "é"]
    handles = store.put_many(texts)
    assert [store.get(h) for h in handles] == texts
    assert store.getvalue() == "".join(texts).encode("latin-1")
    assert [pickle.loads(pickle.dumps(store)).get(h) for h in handles] == texts
    # a user's exchange: text outside latin-1 stays text, on both paths
    for c_http in (True, False):
        parser.use_c_http(c_http)
        try:
            ex = [HttpExchange(0, 1, "GET", "/", "HTTP/1.1", request_head="GET € HTTP/1.1\r\n\r\n",
                               response_head="HTTP/1.1 200 OK\r\n\r\n")]
            heads.spill(ex, store)
        finally:
            parser.use_c_http(True)
        assert REQUEST_HEAD.__get__(ex[0]) == "GET € HTTP/1.1\r\n\r\n"
        assert type(RESPONSE_HEAD.__get__(ex[0])) is int
        assert ex[0].response_head == "HTTP/1.1 200 OK\r\n\r\n"
        heads.spill(ex, HeadStore())        # in a store already: left alone
        assert STORE.__get__(ex[0]) is store


def test_a_local_worker_hands_its_heads_over_as_a_file(capture: Path, tmp_path: Path) -> None:
    res = run([str(capture)], Options())
    spool = tmp_path / "spool"
    spool.mkdir()
    with heads.handover(str(spool)):
        blob = pickle.dumps(res)
    assert b"X-Pad: p" not in blob                  # the heads are not in the pickle,
    [copy] = spool.iterdir()                        # but in one file beside it
    assert copy.stat().st_size == len(STORE.__get__(res.exchanges[0]))
    back = pickle.loads(blob)
    assert list(spool.iterdir()) == []              # adopted: unlinked, held open
    assert _read_back(back.exchanges) == SENT
    assert b"X-Pad: p" in pickle.dumps(back)        # outside handover(): by value again


def test_two_sided_matching_leaves_no_parsed_heads_behind() -> None:
    """Matching both sides of a balancer reads every response's header fields; those
    go when the matching is done, not stay on each exchange as long as it lives."""
    a = analyze(str(ROOT / "samples" / "lb-both-sides.pcap"))
    ex = a.result.exchanges
    assert len(ex) == 26 and set(a.rows("requests").column("side")) == {"client", "backend"}
    assert all(e._response_headers is None and e._headers is None for e in ex)
    assert all(type(RESPONSE_HEAD.__get__(e)) is int for e in ex if e.response_head)


def test_a_full_temporary_directory_keeps_the_rest_in_memory(
        capture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills after the first append: the run goes on, the heads written before
    are read from the file and the rest from memory; a worker's hand-over then sends
    them by value."""
    import pcapstats.pipeline
    monkeypatch.setattr(pcapstats.pipeline, "SPILL_EVERY", 5)   # six batches,
    monkeypatch.setattr(heads, "CHUNK", 2000)                   # each one written out
    real, calls = heads.os.pwrite, []

    def fills(fd: int, data: bytes, at: int) -> int:
        calls.append(at)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real(fd, data, at)
    monkeypatch.setattr(heads.os, "pwrite", fills)
    res = run([str(capture)], Options())
    store = STORE.__get__(res.exchanges[0])
    assert store._full and 0 < store._base < len(store) and len(calls) == 2
    assert _read_back(res.exchanges) == SENT
    with heads.handover(str(capture.parent)):
        back = pickle.loads(pickle.dumps(res))
    assert _read_back(back.exchanges) == SENT


def test_a_hand_over_the_store_cannot_complete_fails_loudly(
        capture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Heads still in memory that cannot reach the store's file: the hand-over raises
    (the worker then sends its result by value) rather than hand over a file without
    them; and a handle past what a store holds is an error, not an empty head."""
    res = run([str(capture)], Options())
    store = STORE.__get__(res.exchanges[0])
    assert store._base == 0 and len(store._buf) > 0         # all still in memory

    def full(fd: int, data: bytes, at: int) -> int:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(heads.os, "pwrite", full)
    with heads.handover(str(tmp_path)), pytest.raises(OSError, match="not all in it"):
        pickle.dumps(res)
    back = pickle.loads(pickle.dumps(res))                  # by value: complete
    assert _read_back(back.exchanges) == SENT
    with pytest.raises(OSError, match="no 10 bytes"):
        store.get(len(store) << heads.LEN_BITS | 10)
