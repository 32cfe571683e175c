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
