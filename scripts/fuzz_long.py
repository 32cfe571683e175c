#!/usr/bin/env python3
"""Long fuzz run of pcapstats on hostile input (not part of the test suite).

    python scripts/fuzz_long.py --minutes 30                 # whatever engine is there
    python scripts/fuzz_long.py --minutes 30 --target layers  # Decoder/HalfStream/HTTP/TLS
    python scripts/fuzz_long.py --reproduce fuzz-crashes/crash-…   # replay one input

Engines: atheris (coverage-guided libFuzzer; ``pip install atheris``) when it imports,
else hypothesis with many examples (the strategies of ``tests/test_fuzz.py``).
``--engine`` forces one.

Invariant, as in the test suite: ``analyze()`` gives an Analysis or a PcapstatsError,
never another exception; no input takes longer than ``--timeout`` seconds; memory stays
under ``--rss-mb``. Targets: ``analyze`` (the input is a capture file; the corpus starts
from samples/ and shared/captures/), ``layers`` (the input drives one of the layers
directly) or ``all`` (half and half, hypothesis only; atheris runs one target per run).

A failing input is written to ``--crashes`` (default ``fuzz-crashes/``) and the run
exits non-zero; replay it with ``--reproduce FILE [--target ...]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _seed_files() -> list[Path]:
    files = sorted((ROOT / "samples").glob("*.pcap*"))
    shared = ROOT.parent / "shared" / "captures"
    if not shared.is_dir():
        shared = Path("/work/shared/captures")
    if shared.is_dir():
        files += sorted(p for p in shared.glob("*.pcap*") if p.stat().st_size < 256 * 1024)
    return files


# -- one input, checked ----------------------------------------------------------------------

class Checker:
    """Runs one input through the target; raises on a broken invariant."""

    def __init__(self, scratch: Path) -> None:
        import pcapstats
        from pcapstats.errors import PcapstatsError
        self.pcapstats = pcapstats
        self.error = PcapstatsError
        self.path = scratch / "input.pcap"

    def analyze(self, data: bytes) -> None:
        import json
        self.path.write_bytes(data)
        try:
            a = self.pcapstats.analyze(str(self.path))
        except self.error as exc:
            assert "\n" not in str(exc), repr(str(exc))
            return
        json.dumps(a.summary)
        assert a.summary["capture"]["packets"] == sum(f.records for f in a.result.files)
        if zlib.crc32(data) % 8 == 0:       # the DataFrames too, on one input in 8
            a.tables()

    def layers(self, data: bytes) -> None:
        """The first byte picks a layer; the rest drives it (a small op language)."""
        if not data:
            return
        which, rest = data[0] % 4, data[1:]
        if which == 0:
            from pcapstats.ingest.decode import Decoder, tcp_options
            dec = Decoder(max_fragment_sets=8)
            lt = int.from_bytes(rest[:2], "big") % 300
            for chunk in _chunks(rest[2:]):
                dec.decode(lt, chunk, len(chunk), 0)
                tcp_options(chunk[:40])
            dec.finish()
        elif which == 1:
            from pcapstats.tcp.reassembly import HalfStream
            h = HalfStream(True, 1 << 16)
            h.start(1)
            sink = _Sink()
            for chunk in _chunks(rest):
                if len(chunk) < 4:
                    continue
                seq = int.from_bytes(chunk[:3], "big") - (1 << 23) + 1
                if chunk[3] & 1:
                    h.acked(seq & 0xFFFFFFFF, 0, sink)
                else:
                    h.segment(seq & 0xFFFFFFFF, chunk[4:], chunk[3] if chunk[3] % 5 == 0 else 0,
                              0, sink)
                assert sink.n == h.offset
            h.flush(0, sink)
            assert sink.n == h.offset and not h.pending
        elif which == 2:
            from pcapstats.http import HttpStream
            hs = HttpStream(1, max_header_bytes=256 if rest[:1] == b"\0" else 65536)
            n = 0
            for i, chunk in enumerate(_chunks(rest)):
                if chunk[:1] == b"\xff":
                    hs.gap(bool(i & 1), i, int.from_bytes(chunk[1:9], "big") - 8)
                else:
                    hs.feed(bool(chunk[:1] < b"\x80"), i, chunk[1:])
                n += len(hs.take())
            hs.close(0)
            n += len(hs.take())
            assert n == hs.requests, (n, hs.requests)
        else:
            from pcapstats.tls import TlsStream
            t = TlsStream()
            for i, chunk in enumerate(_chunks(rest)):
                if chunk[:1] == b"\xff":
                    t.gap(bool(i & 1), i, int.from_bytes(chunk[1:4], "big"))
                else:
                    t.feed(bool(chunk[:1] < b"\x80"), i, chunk[1:])
            t.close(0)
            t.as_dict()


class _Sink:
    def __init__(self) -> None:
        self.n = 0

    def data(self, from_client: bool, ts: int, data: bytes) -> None:
        self.n += len(data)

    def gap(self, from_client: bool, ts: int, nbytes: int) -> None:
        self.n += nbytes


def _chunks(data: bytes) -> list[bytes]:
    """Split on the separator 0xfe 0xfe (so a mutator can add and remove pieces)."""
    return [c for c in data.split(b"\xfe\xfe") if c]


def _limits(rss_mb: int) -> None:
    try:
        resource.setrlimit(resource.RLIMIT_AS, (rss_mb << 20, rss_mb << 20))
    except (ValueError, OSError):
        pass


# -- engines ---------------------------------------------------------------------------------

def run_atheris(args: argparse.Namespace, scratch: Path) -> int:
    import atheris
    with atheris.instrument_imports(include=["pcapstats"]):
        import pcapstats  # noqa: F401
        import pcapstats.http, pcapstats.ingest, pcapstats.tcp, pcapstats.tls  # noqa: E401,F401
    checker = Checker(scratch)
    target = checker.analyze if args.target == "analyze" else checker.layers
    corpus = Path(args.corpus) if args.corpus else scratch / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    if args.target == "analyze" and not any(corpus.iterdir()):
        import gzip
        for p in _seed_files():
            data = p.read_bytes()
            (corpus / p.name).write_bytes(gzip.decompress(data) if p.suffix == ".gz" else data)
    crashes = Path(args.crashes)
    crashes.mkdir(parents=True, exist_ok=True)
    argv = [sys.argv[0], str(corpus), f"-max_total_time={int(args.minutes * 60)}",
            f"-timeout={args.timeout}", f"-rss_limit_mb={args.rss_mb}",
            f"-artifact_prefix={crashes}/", "-max_len=262144", "-print_final_stats=1"]
    print("atheris:", " ".join(argv[1:]), flush=True)
    atheris.Setup(argv, target)
    atheris.Fuzz()      # exits the process (non-zero on a crash, a timeout or too much memory)
    return 0


def run_hypothesis(args: argparse.Namespace, scratch: Path) -> int:
    import signal
    import traceback

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests import test_fuzz as tf

    checker = Checker(scratch)
    seeds = [p for p in _seed_files()]
    plain = {p: tf._plain(p) for p in seeds}
    crashes = Path(args.crashes)
    deadline = time.monotonic() + args.minutes * 60
    examples = 0

    class TimeUp(Exception):
        pass

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"one input took more than {args.timeout} s")

    def check(kind: str, data: bytes) -> None:
        nonlocal examples
        if time.monotonic() > deadline:
            raise TimeUp
        examples += 1
        signal.signal(signal.SIGALRM, expired)
        signal.alarm(args.timeout)
        try:
            (checker.analyze if kind == "analyze" else checker.layers)(data)
        except Exception:
            crashes.mkdir(parents=True, exist_ok=True)
            name = crashes / f"crash-{kind}-{zlib.crc32(data):08x}"
            name.write_bytes(data)
            print(f"\nFAILED on {name} ({len(data)} bytes):\n{traceback.format_exc()}",
                  flush=True)
            raise
        finally:
            signal.alarm(0)

    common = dict(max_examples=10**9, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))

    @settings(**common)
    @given(src=st.sampled_from(seeds), other=st.sampled_from(seeds),
           ops=st.lists(tf.mutation, min_size=1, max_size=10), gz=st.integers(0, 7))
    def fuzz_analyze(src: Path, other: Path, ops: list, gz: int) -> None:
        import gzip
        data = tf.mutate(plain[src], ops, plain[other])
        if gz == 0:
            data = gzip.compress(data, 1)
        elif gz == 1:
            data = tf.mutate(gzip.compress(data, 1), ops[:2], data)
        check("analyze", data)

    @settings(**common)
    @given(data=st.binary(max_size=4096))
    def fuzz_layers(data: bytes) -> None:
        check("layers", data)

    targets = {"analyze": [fuzz_analyze], "layers": [fuzz_layers],
               "all": [fuzz_analyze, fuzz_layers]}[args.target]
    print(f"hypothesis: {args.target} for {args.minutes} min, failing inputs to {crashes}/",
          flush=True)
    rounds = 0
    while time.monotonic() < deadline:
        for fn in targets:
            try:
                fn()
            except TimeUp:
                pass
            except Exception:
                return 1
        rounds += 1
    print(f"done: {examples} inputs, no failure", flush=True)
    return 0


def reproduce(args: argparse.Namespace, scratch: Path) -> int:
    data = Path(args.reproduce).read_bytes()
    kind = "layers" if args.target == "layers" or "-layers-" in args.reproduce else "analyze"
    t = time.perf_counter()
    getattr(Checker(scratch), kind)(data)
    print(f"{args.reproduce}: {kind} ok in {time.perf_counter() - t:.2f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    ap.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    ap.add_argument("--target", choices=["analyze", "layers", "all"], default="analyze")
    ap.add_argument("--timeout", type=int, default=30, help="seconds one input may take")
    ap.add_argument("--rss-mb", type=int, default=4096, help="memory limit of the run")
    ap.add_argument("--corpus", help="atheris corpus folder (default: one in the temp folder, "
                    "kept between runs)")
    ap.add_argument("--crashes", default="fuzz-crashes", help="where failing inputs go")
    ap.add_argument("--reproduce", metavar="FILE", help="replay one input and exit")
    args = ap.parse_args(argv)
    # one scratch folder per user, reused: atheris ends the process without cleaning up
    # (its default corpus lives there too, so a later run goes on from it)
    scratch = Path(tempfile.gettempdir()) / f"pcapstats-fuzz-{os.getuid()}"
    scratch.mkdir(exist_ok=True)
    try:
        if args.reproduce:
            return reproduce(args, scratch)
        engine = args.engine
        if engine == "auto":
            try:
                import atheris  # noqa: F401
                engine = "atheris" if args.target != "all" else "hypothesis"
            except ImportError:
                engine = "hypothesis"
        if engine == "atheris":
            if args.target == "all":
                ap.error("atheris runs one target at a time: --target analyze or layers")
            return run_atheris(args, scratch)
        _limits(args.rss_mb + 1024)
        return run_hypothesis(args, scratch)
    finally:
        (scratch / "input.pcap").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
