"""A run raises the cyclic collector's thresholds (pipeline.few_collections) and gives
the caller's back afterwards, also when the analysis fails."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

import pcapstats
from pcapstats.errors import PcapstatsError
from pcapstats.pipeline import few_collections

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "http-keepalive.pcap"


def test_raised_inside_restored_after() -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with few_collections():
            assert gc.get_threshold() == (500_000, 20, 100)
            with few_collections():         # nested: still raised, never lowered
                assert gc.get_threshold() == (500_000, 20, 100)
            assert gc.get_threshold() == (500_000, 20, 100)
        assert gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(800_000, 5, 500)   # a caller's higher value is kept
        with few_collections():
            assert gc.get_threshold() == (800_000, 20, 500)
        assert gc.get_threshold() == (800_000, 5, 500)
    finally:
        gc.set_threshold(*saved)


def test_analyze_gives_them_back(tmp_path: Path) -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        a = pcapstats.analyze(str(SAMPLE))
        assert a.summary["http"]["requests"] > 0
        assert gc.get_threshold() == (700, 10, 10)
        bad = tmp_path / "bad.pcap"
        bad.write_bytes(b"not a capture at all")
        with pytest.raises(PcapstatsError):
            pcapstats.analyze(str(bad))
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*saved)


def test_kept_objects_leave_the_young_generations() -> None:
    """On the way out, what the run kept is moved to the oldest generation (so the
    restored thresholds do not rescan it), with nothing left frozen; objects a caller
    froze itself stay frozen, and then nothing is moved."""
    class Row:
        pass

    gc.collect()
    with few_collections():
        kept = [Row() for _ in range(1000)]
        assert all(gc.is_tracked(r) for r in kept)
    assert gc.get_freeze_count() == 0
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(r) in oldest for r in kept)
    try:
        gc.freeze()
        frozen = gc.get_freeze_count()
        with few_collections():
            more = [Row() for _ in range(1000)]
        assert gc.get_freeze_count() == frozen
        oldest = {id(o) for o in gc.get_objects(generation=2)}
        assert not any(id(r) in oldest for r in more)
    finally:
        gc.unfreeze()


def test_command_freezes_on_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``pcapstats`` command (cli.entry) freezes what is left when main ends, so the
    collection at interpreter shutdown does not scan it."""
    from pcapstats import cli
    frozen = []
    monkeypatch.setattr(cli.gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setattr(cli.sys, "argv", ["pcapstats", "--version"])
    with pytest.raises(SystemExit):
        cli.entry()
    assert frozen == [True]


def test_cli_writes_its_reports_and_exports_with_them_raised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reports' and exports' passes over the rows run with the raised thresholds
    too: at the defaults they set off full collections scanning every row kept."""
    from click.testing import CliRunner

    from pcapstats.cli import main
    from pcapstats.report import exports, render
    seen: dict[str, tuple[int, int, int]] = {}
    for mod, name in ((render, "write_files"), (render, "render"), (exports, "write_tables")):
        real = getattr(mod, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            seen[_name] = gc.get_threshold()
            return _real(*args, **kwargs)
        monkeypatch.setattr(mod, name, spy)
    saved = gc.get_threshold()
    monkeypatch.chdir(tmp_path)
    try:
        gc.set_threshold(700, 10, 10)
        r = CliRunner().invoke(main, ["report", str(SAMPLE)])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(main, ["export", str(SAMPLE), "--format", "csv"])
        assert r.exit_code == 0, r.output
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*saved)
    assert seen == dict.fromkeys(("write_files", "render", "write_tables"), (500_000, 20, 100))


def test_paused_inside_and_the_callers_state_given_back() -> None:
    assert gc.isenabled()
    with few_collections():
        with few_collections(pause=True):
            assert not gc.isenabled()
            assert gc.get_threshold()[0] >= 500_000
        assert gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with few_collections(pause=True):
            assert not gc.isenabled()
        assert not gc.isenabled()       # the caller had turned it off: still off
    finally:
        gc.enable()


def test_runs_and_parts_run_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The packet loop and the end of a run (serial, and a parallel part) run with the
    collector off, and it is on again afterwards, also when the run fails."""
    from pcapstats import pipeline
    from pcapstats.parallel import plan, run_part
    seen: list[tuple[str, bool]] = []
    for name in ("consume", "finish"):
        real = getattr(pipeline.RunContext, name)

        def spy(self, *args, _real=real, _name=name):
            seen.append((_name, gc.isenabled()))
            return _real(self, *args)
        monkeypatch.setattr(pipeline.RunContext, name, spy)
    pipeline.run([str(SAMPLE)], pipeline.Options())     # (not inside analyze's pause)
    assert seen == [("consume", False), ("finish", False)] and gc.isenabled()
    seen.clear()
    layout = plan([str(SAMPLE)], 2)
    assert layout is not None
    run_part(0, layout, pipeline.Options())
    assert seen and all(not on for _, on in seen) and gc.isenabled()

    def fails(self, *args):
        raise RuntimeError("consume failed")
    monkeypatch.setattr(pipeline.RunContext, "consume", fails)
    with pytest.raises(RuntimeError):
        pcapstats.analyze(str(SAMPLE))
    assert gc.isenabled()


def test_a_run_leaves_almost_no_cycles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes pausing the collector safe: an analysis leaves a constant few
    reference cycles (its closures), not some per connection or per packet; the
    connections lingering at the end are let go with their rows, not kept by the
    table's queue. The affinity work and the summary run paused too."""
    import sys

    from pcapstats import summary as summary_mod
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from bench import generate
    path = tmp_path / "b.pcap"
    generate(path, 30_000, seed=3)
    seen = []
    real = summary_mod.build_summary

    def spy(*args):
        seen.append(gc.isenabled())
        return real(*args)
    monkeypatch.setattr(summary_mod, "build_summary", spy)
    assert gc.isenabled()
    pcapstats.analyze(str(path))
    assert seen == [False] and gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        a = pcapstats.analyze(str(path))
        found = gc.collect()
    finally:
        gc.enable()
    assert a.summary["tcp"]["connections"] > 400
    assert found < 100, found
