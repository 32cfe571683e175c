"""Parallel runs (``jobs``, ``parts``) equal the serial run exactly.

Each test checks that the parallel path was really taken (a plan was made and the
merge accepted the parts) before comparing, so that a silent fall-back to the
serial run cannot make it pass.
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd
from click.testing import CliRunner
import pytest

from pcapstats import analyze
from pcapstats.cli import main as cli_main
from pcapstats.ingest.split import boundary_after
from pcapstats.parallel import Declined, merge, plan, run_part
from pcapstats.pipeline import Options, run

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared" / "captures"
sys.path.insert(0, str(ROOT / "scripts"))
from bench import generate  # noqa: E402


def _same(a, b) -> None:
    """Two RunResults are equal in everything they report."""
    assert a.connections == b.connections
    assert [repr(e) for e in a.exchanges] == [repr(e) for e in b.exchanges]
    for f in ("packets", "tcp_packets", "udp_packets", "wire_bytes", "captured_bytes",
              "first_ts", "last_ts", "udp_flows", "udp_flows_by_port", "decode",
              "linktypes", "evicted", "files", "problems"):
        assert getattr(a, f) == getattr(b, f), f


def _parallel(paths: list[str], parts: int):
    """The parallel result, asserting that it was made in parts and stitched."""
    layout = plan(paths, parts)
    assert layout is not None and len(layout) > 1, "no plan"
    results = [run_part(i, layout, Options()) for i in range(len(layout))]
    return merge(results, paths), layout


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("par") / "bench.pcap"
    generate(path, 30_000, seed=7)
    return path


@pytest.mark.parametrize("parts", [2, 3, 5, 8])
def test_generated_capture_in_parts_equals_serial(big: Path, parts: int) -> None:
    merged, layout = _parallel([str(big)], parts)
    assert len(layout) == parts
    _same(run([str(big)], Options()), merged)


def test_merge_does_not_rely_on_the_parts_lists_being_in_order(big: Path) -> None:
    """The merge skips its sorts when the parts' rows and exchanges already come in
    order (they do: a part's connections are numbered as they begin); given them in
    reverse order it sorts, and still equals the serial run."""
    layout = plan([str(big)], 3)
    assert layout is not None and len(layout) == 3
    results = [run_part(i, layout, Options()) for i in range(len(layout))]
    for r in results:
        r.result.connections.reverse()
        r.result.exchanges.reverse()
    _same(run([str(big)], Options()), merge(results, [str(big)]))

@pytest.mark.parametrize("linktype, tags, ipv6", [(276, 0, False), (113, 1, False),
                                                  (1, 0, True), (276, 0, True)])
def test_other_link_layers_in_parts_equal_serial(big: Path, tmp_path: Path, linktype: int,
                                                 tags: int, ipv6: bool) -> None:
    """``tcpdump -i any`` writes Linux cooked frames, and traffic may be IPv6: the parts'
    follow mode filters those (by their addresses where it can read them), and the
    stitched result is the serial one."""
    from test_fastpcap import _relinked
    shutil.copy(big, tmp_path / "b.pcap")
    path = _relinked(str(tmp_path / "b.pcap"), linktype, tags, ipv6)
    merged, layout = _parallel([path], 3)
    serial = run([path], Options())
    _same(serial, merged)
    assert serial.linktypes == {linktype: serial.packets}


SPLITTABLE = sorted(p.name for p in SAMPLES.glob("*.pcap*")
                    if not p.name.endswith(".gz") and p.stat().st_size > 1400
                    and not p.name.startswith("broken"))


DECLINES = {"ipv4-frags.pcap": "an IP fragment set is open where the part ends",
            "multi-if.pcapng": "simple packet blocks take the previous timestamp"}


@pytest.mark.parametrize("name", SPLITTABLE)
def test_samples_in_parts_equal_serial(name: str) -> None:
    path = str(SAMPLES / name)
    layout = plan([path], 3)
    if layout is None:
        pytest.skip(f"{name}: no record boundary found away from the start")
    results = [run_part(i, layout, Options()) for i in range(len(layout))]
    serial = run([path], Options())
    try:
        merged = merge(results, [path])
    except Declined as exc:
        # only where the design says so; the public API then runs serially
        assert DECLINES[name] in str(exc)
        assert analyze(path, parts=3).summary == analyze(path).summary
        return
    assert name not in DECLINES
    _same(serial, merged)


def test_analysis_with_jobs_equals_serial(big: Path) -> None:
    a = analyze(str(big))
    b = analyze(str(big), jobs=2, parts=4)
    assert a.summary == b.summary
    for name, frame in a.tables().items():
        pd.testing.assert_frame_equal(frame, b.tables()[name], obj=name)


def test_workers_results_pass_through_files_that_are_removed(
        big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Local workers hand their result over in a file: the run equals the serial one,
    and no file is left behind, also when a worker fails."""
    import tempfile

    import pcapstats.parallel as par
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    loaded = []
    real_load = par._load_part
    monkeypatch.setattr(par, "_load_part", lambda p: loaded.append(p) or real_load(p))
    a, b = analyze(str(big)), analyze(str(big), jobs=2, parts=3)
    assert a.summary == b.summary
    assert len(loaded) == 2 and all(Path(p).parent.parent == spool for p in loaded)
    assert list(spool.iterdir()) == []

    real_run = par.run_part

    def fails_in_part_1(index, parts, opts):
        if index == 1:
            raise RuntimeError("part 1 failed")
        return real_run(index, parts, opts)
    monkeypatch.setattr(par, "run_part", fails_in_part_1)   # (the forked workers see it)
    with pytest.raises(RuntimeError, match="part 1 failed"):
        analyze(str(big), jobs=2, parts=3)
    assert list(spool.iterdir()) == []


def test_workers_results_come_by_the_pipe_without_a_spool(
        big: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No temporary directory, or a worker that cannot write its file (a full disk):
    the results come through the pool's pipe, and the run still equals the serial one."""
    import errno
    import tempfile

    import pcapstats.parallel as par
    serial = analyze(str(big)).summary
    got = []
    real_load = par._load_part
    monkeypatch.setattr(par, "_load_part", lambda g: got.append(type(g)) or real_load(g))

    def no_dir(*args, **kwargs):
        raise PermissionError(errno.EACCES, "read-only file system")
    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkdtemp", no_dir)
        assert analyze(str(big), jobs=2, parts=3).summary == serial
    assert got == [par.PartResult, par.PartResult]

    def disk_full(obj, f, protocol=None):   # the disk fills up in the middle of the file
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "no space left on device")
    got.clear()
    import pickle
    monkeypatch.setattr(pickle, "dump", disk_full)  # (the forked workers see it; the pipe
    #                                                 pickles with its own Pickler)
    b = analyze(str(big), jobs=2, parts=3)
    assert b.summary == serial and len(b.result.exchanges) == serial["http"]["requests"]
    assert got == [par.PartResult, par.PartResult]


def test_cli_jobs_gives_the_same_json(big: Path, tmp_path: Path) -> None:
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"{jobs}.json"
        r = CliRunner().invoke(cli_main, ["report", str(big), "--format", "json", "-o",
                                          str(out), "--no-files", "--jobs", jobs])
        assert r.exit_code == 0, r.output
        outs.append(json.loads(out.read_text()))
    assert outs[0] == outs[1]


def _write_records(path: Path, header: bytes, records: list[bytes]) -> None:
    with open(path, "wb") as f:
        f.write(header)
        for r in records:
            f.write(r)


def _pcap_records(path: Path) -> tuple[bytes, list[bytes]]:
    data = path.read_bytes()
    out, pos = [], 24
    while pos < len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        out.append(data[pos:pos + 16 + incl])
        pos += 16 + incl
    return data[:24], out


def test_rotated_files_given_out_of_order(big: Path, tmp_path: Path) -> None:
    header, recs = _pcap_records(big)
    third = len(recs) // 3
    files = []
    for i, chunk in enumerate((recs[:third], recs[third:2 * third], recs[2 * third:])):
        f = tmp_path / f"rot-{i}.pcap"
        _write_records(f, header, chunk)
        files.append(str(f))
    given = [files[2], files[0], files[1]]
    merged, layout = _parallel(given, 4)
    assert {s.path for p in layout for s in p} == set(files)
    _same(run(given, Options()), merged)
    gz = tmp_path / "rot-1.pcap.gz"         # a compressed file is one part, whole
    gz.write_bytes(gzip.compress(Path(files[1]).read_bytes()))
    mixed = [files[0], str(gz), files[2]]
    merged, layout = _parallel(mixed, 5)
    assert all(s.start is None and s.stop is None for p in layout for s in p
               if s.path == str(gz))
    _same(run(mixed, Options()), merged)


def test_overlapping_files_decline_and_fall_back(big: Path, tmp_path: Path) -> None:
    header, recs = _pcap_records(big)
    a, b = tmp_path / "even.pcap", tmp_path / "odd.pcap"
    _write_records(a, header, recs[0::2])
    _write_records(b, header, recs[1::2])
    paths = [str(a), str(b)]
    layout = plan(paths, 2)
    assert layout is not None
    with pytest.raises(Declined, match="overlap in time"):
        merge([run_part(i, layout, Options()) for i in range(len(layout))], paths)
    x, y = analyze(paths), analyze(paths, jobs=2, parts=2)
    assert x.summary == y.summary


def test_files_that_overlap_a_little_decline(big: Path, tmp_path: Path) -> None:
    """Rotated files where the first one's last packets come after the second one's first
    (the C loop does those packets in a part: their times still count)."""
    header, recs = _pcap_records(big)
    half = len(recs) // 2
    later = struct.unpack_from("<I", recs[half])[0] + 1    # a second after b's first
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    _write_records(a, header, recs[:half - 50] + [struct.pack("<I", later) + r[4:]
                                                  for r in recs[half - 50:half]])
    _write_records(b, header, recs[half:])
    paths = [str(a), str(b)]
    layout = plan(paths, 2)
    assert layout is not None
    with pytest.raises(Declined, match="overlap in time"):
        merge([run_part(i, layout, Options()) for i in range(len(layout))], paths)


def test_truncated_capture_in_parts(big: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    data = big.read_bytes()
    cut.write_bytes(data[:len(data) - 700])       # the last record loses its end
    merged, _ = _parallel([str(cut)], 3)
    serial = run([str(cut)], Options())
    assert serial.problems and serial.files[0].stopped_at is not None
    _same(serial, merged)


def test_fault_inside_a_part_declines(big: Path, tmp_path: Path) -> None:
    data = bytearray(big.read_bytes())
    mid = boundary_after(str(big), len(data) // 4)
    assert mid is not None
    struct.pack_into("<I", data, mid + 8, 1 << 30)     # a lying record length
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(bytes(data))
    layout = plan([str(bad)], 2)
    assert layout is not None
    results = [run_part(i, layout, Options()) for i in range(len(layout))]
    assert results[0].refuse and "fault" in results[0].refuse
    with pytest.raises(Declined, match="fault"):
        merge(results, [str(bad)])
    assert analyze(str(bad), jobs=2, parts=2).summary == analyze(str(bad)).summary


def test_pcapng_in_parts(big: Path, tmp_path: Path) -> None:
    if shutil.which("editcap") is None:
        pytest.skip("editcap (wireshark-common) is not installed")
    ng = tmp_path / "bench.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(big), str(ng)], check=True)
    merged, layout = _parallel([str(ng)], 3)
    assert len(layout) == 3
    serial = run([str(ng)], Options())
    _same(serial, merged)


def test_boundaries_are_real_records(big: Path) -> None:
    header, recs = _pcap_records(big)
    starts, pos = set(), 24
    for r in recs:
        starts.add(pos)
        pos += len(r)
    size = big.stat().st_size
    for k in range(1, 40):
        b = boundary_after(str(big), size * k // 40)
        assert b in starts and b >= size * k // 40


def _shared() -> list[Path]:
    if not SHARED.is_dir():
        return []
    return sorted(p for p in SHARED.iterdir() if p.is_file() and ".pcap" in p.name)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared captures folder {SHARED} is absent")
def test_shared_captures_in_parts_equal_serial() -> None:
    stitched = declined = 0
    for path in _shared():
        p = str(path)
        layout = plan([p], 3)
        if layout is None:
            continue
        try:
            serial = run([p], Options())
        except Exception:   # noqa: BLE001 - unreadable captures are other tests' business
            continue
        results = [run_part(i, layout, Options()) for i in range(len(layout))]
        try:
            merged = merge(results, [p])
        except Declined:
            declined += 1
            continue
        _same(serial, merged)
        stitched += 1
    assert stitched >= 20, (stitched, declined)


def test_follow_mode_keys_follow_the_open_connections() -> None:
    """The keys follow mode filters by are always those of the connections still
    tracked, as it updates them (removing only the keys of the ones gone, keeping a
    key another tracked connection shares), and a new set at each change."""
    import random
    from types import SimpleNamespace

    from pcapstats.parallel import _Watched

    def conn(i: int, port: int | None = None) -> SimpleNamespace:
        return SimpleNamespace(client_ip=bytes([10, 1, i >> 8, i & 255]),
                               server_ip=b"\x0a\x00\x00\x50",
                               client_port=port or 1024 + i, server_port=80)

    def fresh(open_: dict) -> set[bytes]:
        return _Watched(SimpleNamespace(open=dict(open_))).keys

    rng = random.Random(3)
    open_ = {i: conn(i) for i in range(300)}
    open_[300] = conn(7)                        # the same addresses as connection 7
    table = SimpleNamespace(open=open_)
    w = _Watched(table)
    assert len(w.keys) == 600 and w.keys == fresh(open_)
    added = False
    while open_:
        before = w.keys
        for cid in rng.sample(sorted(open_), min(len(open_), rng.randint(1, 40))):
            del open_[cid]
        w.update()
        assert w.keys == fresh(open_) and w.count == len(open_)
        assert w.keys is not before
        assert (conn(7).client_ip + conn(7).server_ip + struct.pack("!HH", 1031, 80)
                in w.keys) == (7 in open_ or 300 in open_)
        if len(open_) < 150 and not added:
            added = True
            open_[999] = conn(999)              # one added: the keys are made again
            w.update()
            assert w.keys == fresh(open_)
    assert w.keys == set()


def _hand_part(index: int, rows: list[tuple[int, tuple, int, int]],
               handoffs: dict[int, int] | None = None):
    """A part's result made by hand: rows (conn_id, (client ip, port, server ip, port),
    first position, last position), each with one exchange."""
    from types import SimpleNamespace

    from pcapstats.parallel import PART_SHIFT, PartResult
    from pcapstats.pipeline import RunResult
    base = index << PART_SHIFT
    conns = [{"conn_id": cid, "client_ip": k[0], "client_port": k[1], "server_ip": k[2],
              "server_port": k[3]} for cid, k, _, _ in rows]
    exchanges = [SimpleNamespace(conn_id=cid, depth=1) for cid, _, _, _ in rows]
    positions = {cid: (base + first, (last if last >> PART_SHIFT else base + last))
                 for cid, _, first, last in rows}
    return PartResult(index, RunResult([], [], conns, exchanges), {}, positions,
                      handoffs or {})


def test_merge_renumbers_and_drops_copies_of_followed_connections() -> None:
    """Part 0 follows connection A into part 1, which also saw it (from its middle):
    that copy is dropped with its exchange, and part 1's others are numbered on."""
    from pcapstats.parallel import PART_SHIFT
    a, b, c = ("10.0.0.1", 1000, "10.0.0.9", 80), ("10.0.0.2", 1001, "10.0.0.9", 80), \
        ("10.0.0.3", 1002, "10.0.0.9", 80)
    p0 = _hand_part(0, [(0, a, 1, (1 << PART_SHIFT) + 4), (1, b, 2, 3)])
    p1 = _hand_part(1, [(0, a, 2, 4), (1, c, 5, 6)])
    out = merge([p1, p0], ["x.pcap"])
    assert [(r["conn_id"], r["client_port"]) for r in out.connections] == \
        [(0, 1000), (1, 1001), (2, 1002)]
    assert [e.conn_id for e in out.exchanges] == [0, 1, 2]


def test_a_declined_merge_leaves_the_parts_as_they_were() -> None:
    """A hand-over that finds no connection beginning where it should is found after the
    parts were read; nothing was renumbered by then (the run is repeated serially from
    the same parts' files, but a caller may keep them)."""
    from pcapstats.parallel import PART_SHIFT
    a, b = ("10.0.0.1", 1000, "10.0.0.9", 80), ("10.0.0.2", 1001, "10.0.0.9", 80)
    p0 = _hand_part(3, [(5, a, 1, 2)], handoffs={5: (4 << PART_SHIFT) + 7})
    p1 = _hand_part(4, [(0, b, 7, 8)])
    with pytest.raises(Declined, match="begins where the followed one ended"):
        merge([p0, p1], ["x.pcap"])
    assert [r["conn_id"] for r in p0.result.connections + p1.result.connections] == [5, 0]
    assert [e.conn_id for e in p0.result.exchanges + p1.result.exchanges] == [5, 0]
