"""Tests for pcapstats.affinity persistence figures and reuse figures."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcapstats.affinity import (
    BackendLoad,
    BreakRecord,
    Ratio,
    RequestView,
    SessionRecord,
    compute_persistence,
    group_by_client_ip,
    nearest_rank,
    reuse_figures,
)
from pcapstats.affinity.figures import distribution, evenness, median

B1, B2, B3 = "10.0.0.1:80", "10.0.0.2:80", "s3"


def rv(idx: int, ts: int, session: str | None, backend: str | None, client: str, hint: str | None = None) -> RequestView:
    return RequestView(idx=idx, ts=ts, session=session, backend=backend, client_ip=client, cause_hint=hint)


# A: persistent; B: break by a missing cookie; C: break on a new client address and a
# 1-1 tie; D: single request; E: unknown backends; two requests without a session.
SCENARIO = [
    rv(0, 10, "A", B1, "1.1.1.1"),
    rv(1, 20, "A", B1, "1.1.1.1"),
    rv(2, 30, "A", B1, "1.1.1.1"),
    rv(3, 15, "B", B1, "2.2.2.2"),
    rv(4, 25, "B", B2, "2.2.2.2", "cookie-missing"),
    rv(5, 35, "B", B2, "2.2.2.2"),
    rv(6, 40, "C", B2, "3.3.3.3"),
    rv(7, 50, "C", B1, "3.3.3.4"),
    rv(8, 60, "D", B1, "4.4.4.4"),
    rv(9, 70, "E", None, "5.5.5.5"),
    rv(10, 80, "E", B2, "5.5.5.5"),
    rv(11, 90, "E", None, "5.5.5.5"),
    rv(12, 5, None, B3, "9.9.9.9"),
    rv(13, 95, None, None, "9.9.9.9"),
]


def test_scenario_sessions() -> None:
    result = compute_persistence(SCENARIO)
    assert result.sessions == [
        SessionRecord("A", 3, 3, 1, B1, 3, True, 10, 30, 0, 1),
        SessionRecord("B", 3, 3, 2, B2, 2, False, 15, 35, 1, 1),
        SessionRecord("C", 2, 2, 2, B2, 1, False, 40, 50, 1, 2),
        SessionRecord("D", 1, 1, 1, B1, 1, True, 60, 60, 0, 1),
        SessionRecord("E", 3, 1, 1, B2, 1, True, 70, 90, 0, 1),
    ]
    assert [s.eligible for s in result.sessions] == [True, True, True, False, False]


def test_scenario_breaks_and_causes() -> None:
    result = compute_persistence(SCENARIO)
    assert result.breaks == [
        BreakRecord("B", 25, 4, 3, B1, B2, "cookie-missing"),
        BreakRecord("C", 50, 7, 6, B2, B1, "new-client-address"),
    ]
    assert result.break_causes == {"cookie-missing": 1, "new-client-address": 1, "cookie-changed": 0, "unknown": 0}
    assert list(result.break_causes) == ["cookie-missing", "new-client-address", "cookie-changed", "unknown"]


def test_scenario_ratios_and_counts() -> None:
    result = compute_persistence(SCENARIO)
    assert result.persistence_ratio_sessions == Ratio(1, 3)          # A of A, B, C
    assert result.persistence_ratio_requests == Ratio(6, 8)          # 3/3 + 2/3 + 1/2
    assert result.persistence_ratio_requests.value == 0.75
    assert (result.requests, result.requests_without_session, result.requests_unknown_backend) == (14, 2, 3)


def test_scenario_backend_load() -> None:
    result = compute_persistence(SCENARIO)
    assert result.backends == [BackendLoad(B1, 6, 2), BackendLoad(B2, 4, 3), BackendLoad(B3, 1, 0)]
    ev = result.load_evenness
    assert (ev.items, ev.total) == (3, 11)
    assert ev.mean == pytest.approx(11 / 3)
    assert ev.max_to_mean == pytest.approx(18 / 11)
    expected_cv = math.sqrt(((6 - 11 / 3) ** 2 + (4 - 11 / 3) ** 2 + (1 - 11 / 3) ** 2) / 3) / (11 / 3)
    assert ev.cv == pytest.approx(expected_cv)


def test_scenario_by_client_ip() -> None:
    result = compute_persistence(SCENARIO)
    by_ip = result.by_client_ip
    # 7 addresses; eligible: 1.1.1.1 (B1 x3, persistent) and 2.2.2.2 (B1, B2, B2).
    assert (by_ip.key, by_ip.groups, by_ip.eligible_groups) == ("client_ip", 7, 2)
    assert by_ip.sessions_ratio == Ratio(1, 2)
    assert by_ip.requests_ratio == Ratio(5, 6)
    assert group_by_client_ip(SCENARIO) == by_ip


def test_input_order_does_not_matter() -> None:
    shuffled = list(SCENARIO)
    random.Random(7).shuffle(shuffled)
    assert compute_persistence(shuffled) == compute_persistence(SCENARIO)
    assert compute_persistence(iter(SCENARIO)) == compute_persistence(SCENARIO)


def test_to_dict_is_json_ready() -> None:
    data = compute_persistence(SCENARIO).to_dict()
    text = json.dumps(data)
    assert json.loads(text)["persistence_ratio_sessions"] == {"numerator": 1, "denominator": 3, "value": 1 / 3}
    assert data["sessions"][0]["eligible"] is True
    assert data["breaks"][0]["cause"] == "cookie-missing"


def test_primary_tie_goes_to_first_used_backend() -> None:
    reqs = [rv(0, 1, "S", B2, "c"), rv(1, 2, "S", B1, "c"), rv(2, 3, "S", B1, "c"), rv(3, 4, "S", B2, "c")]
    (session,) = compute_persistence(reqs).sessions
    assert (session.primary_backend, session.primary_requests, session.breaks) == (B2, 2, 2)


def test_same_timestamp_ordered_by_index() -> None:
    reqs = [rv(5, 100, "S", B2, "c"), rv(4, 100, "S", B1, "c")]
    result = compute_persistence(reqs)
    assert result.breaks == [BreakRecord("S", 100, 5, 4, B1, B2, "unknown")]
    assert result.sessions[0].primary_backend == B1


def test_break_causes_precedence() -> None:
    reqs = [
        rv(0, 1, "S", B1, "c1"),
        rv(1, 2, "S", B2, "c2", "cookie-missing"),   # hint wins over the address change
        rv(2, 3, "S", B1, "c3", "cookie-changed"),   # address change wins over cookie-changed
        rv(3, 4, "S", B2, "c3", "cookie-changed"),
        rv(4, 5, "S", B1, "c3", "retry"),            # other hints are ignored
        rv(5, 6, "S", B1, "c9", "cookie-missing"),   # same backend: no break whatever the hint
    ]
    result = compute_persistence(reqs)
    assert [b.cause for b in result.breaks] == ["cookie-missing", "new-client-address", "cookie-changed", "unknown"]
    assert result.sessions[0].client_ips == 4


def test_unknown_backends_do_not_reset_the_previous_backend() -> None:
    reqs = [rv(0, 1, "S", B1, "c"), rv(1, 2, "S", None, "c"), rv(2, 3, "S", B2, "c"), rv(3, 4, "S", None, "c")]
    result = compute_persistence(reqs)
    assert result.breaks == [BreakRecord("S", 3, 2, 0, B1, B2, "unknown")]
    assert result.sessions[0].known_requests == 2
    assert result.persistence_ratio_requests == Ratio(1, 2)


def test_sessions_sorted_by_first_ts_then_key() -> None:
    reqs = [rv(0, 5, "b", B1, "c"), rv(1, 5, "a", B1, "c"), rv(2, 1, "z", B1, "c")]
    assert [s.session for s in compute_persistence(reqs).sessions] == ["z", "a", "b"]


def test_only_single_request_or_unknown_sessions_give_none_ratios() -> None:
    reqs = [rv(0, 1, "A", B1, "c1"), rv(1, 2, "B", B2, "c2"), rv(2, 3, "C", None, "c3"), rv(3, 4, "C", None, "c3")]
    result = compute_persistence(reqs)
    assert result.persistence_ratio_sessions == Ratio(0, 0)
    assert result.persistence_ratio_sessions.value is None
    assert result.persistence_ratio_requests.value is None
    assert all(s.persistent for s in result.sessions)


def test_empty_input() -> None:
    result = compute_persistence([])
    assert result.sessions == [] and result.breaks == [] and result.backends == []
    assert result.persistence_ratio_sessions.value is None
    assert result.by_client_ip.sessions_ratio.value is None
    assert result.load_evenness.max_to_mean is None and result.load_evenness.cv is None
    assert result.requests == 0
    json.dumps(result.to_dict())


REQS = st.lists(
    st.builds(
        RequestView,
        idx=st.integers(0, 50),
        ts=st.integers(0, 20),
        session=st.one_of(st.none(), st.sampled_from("abcd")),
        backend=st.one_of(st.none(), st.sampled_from(["x", "y", "z"])),
        client_ip=st.sampled_from(["1", "2", "3"]),
        cause_hint=st.one_of(st.none(), st.sampled_from(["cookie-missing", "cookie-changed", "other"])),
    ),
    max_size=30,
)


@settings(max_examples=200)
@given(REQS)
def test_persistence_invariants(reqs: list[RequestView]) -> None:
    result = compute_persistence(reqs)
    assert sum(s.breaks for s in result.sessions) == len(result.breaks)
    assert sum(result.break_causes.values()) == len(result.breaks)
    assert sum(b.requests for b in result.backends) == result.requests - result.requests_unknown_backend
    assert sum(s.requests for s in result.sessions) == result.requests - result.requests_without_session
    for s in result.sessions:
        assert s.persistent == (s.breaks == 0) == (s.backends <= 1)
        assert s.primary_requests <= s.known_requests <= s.requests
    for ratio in (result.persistence_ratio_sessions, result.persistence_ratio_requests,
                  result.by_client_ip.sessions_ratio, result.by_client_ip.requests_ratio):
        assert 0 <= ratio.numerator <= ratio.denominator
        assert (ratio.value is None) == (ratio.denominator == 0)
    # the client-IP ratios, counted without records, equal those of the full session
    # records with each client IP as the session key
    as_sessions = compute_persistence([r._replace(session=r.client_ip) for r in reqs])
    assert result.by_client_ip.groups == len(as_sessions.sessions)
    assert (result.by_client_ip.sessions_ratio, result.by_client_ip.requests_ratio) == \
        (as_sessions.persistence_ratio_sessions, as_sessions.persistence_ratio_requests)


# --------------------------------------------------------------------------- figures / reuse

def test_reuse_figures_example() -> None:
    f = reuse_figures([1, 3, 0, 4])
    assert f == {
        "connections": 4,
        "connections_with_requests": 3,
        "requests": 8,
        "reused_requests": 5,
        "reuse_ratio": 5 / 8,
        "exchanges_saved": 35,
        "requests_per_connection": {"mean": 8 / 3, "median": 3.0, "p95": 4, "max": 4},
        "reused_connections": 2,
        "reused_share": 2 / 3,
    }


def test_reuse_figures_no_reuse_and_empty() -> None:
    f = reuse_figures([1, 1, 1, 1])
    assert (f["reuse_ratio"], f["exchanges_saved"], f["reused_connections"], f["reused_share"]) == (0.0, 0, 0, 0.0)
    empty = reuse_figures([])
    assert empty["reuse_ratio"] is None and empty["reused_share"] is None
    assert empty["requests_per_connection"] == {"mean": None, "median": None, "p95": None, "max": None}
    zeros = reuse_figures([0, 0])
    assert (zeros["connections"], zeros["connections_with_requests"], zeros["reuse_ratio"]) == (2, 0, None)
    with pytest.raises(ValueError):
        reuse_figures([1, -1])


def test_pipelined_connection_counts_requests_not_packets() -> None:
    f = reuse_figures([40])      # 40 pipelined requests on one connection
    assert (f["reused_requests"], f["exchanges_saved"], f["reuse_ratio"]) == (39, 273, 39 / 40)


def test_nearest_rank_and_median() -> None:
    assert nearest_rank(list(range(1, 21)), 95) == 19      # ceil(0.95 * 20) = 19
    assert nearest_rank(list(range(1, 11)), 95) == 10      # ceil(9.5) = 10
    assert nearest_rank([7], 95) == 7
    assert nearest_rank([3, 1, 2], 50) == 2
    assert nearest_rank([], 95) is None
    with pytest.raises(ValueError):
        nearest_rank([1], 0)
    assert median([4, 1, 3, 2]) == 2.5
    assert median([5, 1, 3]) == 3.0
    assert median([]) is None
    assert distribution([2, 2, 2])["p95"] == 2


def test_evenness() -> None:
    assert evenness([5, 5]).max_to_mean == 1.0 and evenness([5, 5]).cv == 0.0
    assert evenness([10, 0]).max_to_mean == 2.0
    assert evenness([]).mean is None
    assert evenness([0, 0]).max_to_mean is None


@given(st.lists(st.integers(0, 100), max_size=40))
def test_reuse_figures_invariants(counts: list[int]) -> None:
    f = reuse_figures(counts)
    assert f["requests"] == sum(counts)
    assert f["exchanges_saved"] == 7 * f["reused_requests"]
    assert 0 <= f["reused_requests"] < max(f["requests"], 1)
    p95, top = f["requests_per_connection"]["p95"], f["requests_per_connection"]["max"]
    if p95 is not None and top is not None:
        assert p95 <= top and p95 in counts


def test_order_is_by_time_then_index() -> None:
    """_order sorts on the named tuple's positions: the same as sorting on (ts, idx),
    ties (same ts and idx) kept in input order."""
    import random

    from pcapstats.affinity.persistence import _order

    assert RequestView._fields[:2] == ("idx", "ts")
    rng = random.Random(5)
    for _ in range(50):
        views = [RequestView(rng.randrange(30), rng.randrange(10), f"s{k}", None, "")
                 for k in range(rng.randrange(60))]
        assert _order(views) == sorted(views, key=lambda v: (v.ts, v.idx))
