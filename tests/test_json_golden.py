"""The JSON report of every sample against its golden file (tests/golden/*.json).

The figures themselves are asserted against the generator's truth in
test_samples_golden.py; these baselines pin the whole report (every key and
value) so that any change to it is seen and reviewed. After an intended change:
    PCAPSTATS_REGEN_GOLDEN=1 python -m pytest tests/test_json_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import pcapstats

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
GOLDEN = Path(__file__).resolve().parent / "golden"
FILES = sorted(p.name for p in SAMPLES.iterdir() if p.suffix in (".pcap", ".pcapng", ".gz"))


def _report(name: str) -> dict:
    cwd = os.getcwd()
    os.chdir(SAMPLES)           # so that file paths in the report are the bare names
    try:
        summary = pcapstats.analyze(name).summary
    finally:
        os.chdir(cwd)
    summary = json.loads(json.dumps(summary))
    summary["tool"].pop("version")
    return summary


@pytest.mark.parametrize("name", FILES)
def test_json_report_equals_golden(name: str) -> None:
    got = _report(name)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("PCAPSTATS_REGEN_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(path.read_text())
