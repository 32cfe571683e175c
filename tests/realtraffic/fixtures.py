"""pytest fixtures recording the real-traffic scenarios, once per test run.

Import them into a test module (`from tests.realtraffic.fixtures import recording, ...`);
a conftest.py under tests/realtraffic/ would not reach tests/test_*.py.
Tests are skipped only when a binary is missing; any other problem fails loudly.
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


@pytest.fixture(scope="session")
def realtraffic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("realtraffic")


@pytest.fixture(scope="session")
def record(realtraffic_dir: Path) -> Callable[[str], Recording]:
    """`record(name)` -> that scenario's Recording, recorded on first use in this run."""
    cache: dict[str, Recording] = {}

    def get(name: str) -> Recording:
        require_lab()
        if name not in cache:
            cache[name] = record_scenario(name, realtraffic_dir / name)
        return cache[name]
    return get


@pytest.fixture(scope="session", params=sorted(SCENARIOS))
def recording(request: pytest.FixtureRequest, record: Callable[[str], Recording]) -> Recording:
    """Every scenario in turn (session-scoped: each is recorded once)."""
    return record(request.param)
