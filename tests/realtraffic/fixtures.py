"""pytest fixtures recording the real-traffic scenarios, once per test run.

Import them into a test module (`from tests.realtraffic.fixtures import recording, ...`);
a conftest.py under tests/realtraffic/ would not reach tests/test_*.py.
Tests are skipped only when a binary is missing; any other problem fails loudly.

pytest makes one fixture per module that imports it, so a session-scoped fixture imported
by two test modules runs twice. The recordings and their directory are therefore kept at
module level here: every test module that imports these fixtures gets the same recordings,
and each scenario is recorded once per test run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .lab import missing_binaries
from .scenarios import SCENARIOS, Recording, record_scenario


def require_lab() -> None:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"real-traffic lab needs {', '.join(missing)} (install with "
                    "tests.realtraffic.lab.ensure_packages(), i.e. apt-get install -y haproxy "
                    "nginx tcpdump tshark wrk curl)")


# Shared by every importing module (see the module doc): one directory, one recording per scenario.
_DIRECTORY: list[Path] = []
_RECORDINGS: dict[str, Recording] = {}


@pytest.fixture(scope="session")
def realtraffic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _DIRECTORY:
        _DIRECTORY.append(tmp_path_factory.mktemp("realtraffic"))
    return _DIRECTORY[0]


@pytest.fixture(scope="session")
def record(realtraffic_dir: Path) -> Callable[[str], Recording]:
    """`record(name)` -> that scenario's Recording, recorded on first use in this run."""

    def get(name: str) -> Recording:
        require_lab()
        if name not in _RECORDINGS:
            _RECORDINGS[name] = record_scenario(name, realtraffic_dir / name)
        return _RECORDINGS[name]
    return get


@pytest.fixture(scope="session", params=sorted(SCENARIOS))
def recording(request: pytest.FixtureRequest, record: Callable[[str], Recording]) -> Recording:
    """Every scenario in turn (session-scoped: each is recorded once)."""
    return record(request.param)
