"""pcapstats compare: exact output on crafted captures whose truth is known by construction.

- samples/lb-both-sides.pcap against itself: every change is "=", nothing matters;
- tests/crafted_lb.py ``before`` against ``after`` (an F5 pool where a third member
  joined and persistence broke for every third session, half the clients stopped
  keep-alive, the keep-alive timeout went from 5 s to 15 s): the deltas below are
  the generator's, e.g. persistent sessions 24/24 -> 16/24;
- samples/lb-both-sides.pcap against samples/http-keepalive.pcap: different sites,
  small counts: only backends appearing/disappearing and the keep-alive timeout
  (3 closes each) matter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import crafted_lb
import pcapstats
from pcapstats.cli import main
from pcapstats.compare import _judge, compare, format_text

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
LB = str(SAMPLES / "lb-both-sides.pcap")
KA = str(SAMPLES / "http-keepalive.pcap")
RULE_TEXT = """\
Rule (docs/figures.md): a ratio moving 5 pts or more with 20 or more in each
  denominator; a mean moving 20% or more with 20 or more counted on each side;
  the keep-alive timeout moving 1 s and 20% or more (3 or more closes on each
  side); a backend appearing, disappearing, or its share moving 5 pts or more.
"""

LB_VS_LB = """\
Comparison
before lb-both-sides.pcap (124 packets, 4.2 s)
after  lb-both-sides.pcap (124 packets, 4.2 s)

  figure              before               after                change
  requests            26                   26                   =
  persistent sessions 66.7% (2/3)          66.7% (2/3)          =
  requests on primary 81.8% (9/11)         81.8% (9/11)         =
  breaks per request  8.3% (1/12)          8.3% (1/12)          =
  reuse ratio         57.7% (15/26)        57.7% (15/26)        =
  reuse, client side  50.0% (6/12)         50.0% (6/12)         =
  reuse, backend side 75.0% (9/12)         75.0% (9/12)         =
  requests/connection 2.36 (n=11)          2.36 (n=11)          =
  multiplexing        2.00 (n=3)           2.00 (n=3)           =
  exchanges/request   1.92 (n=26)          1.92 (n=26)          =
  exchanges saved     105                  105                  =
  closed by client    36.4% (4/11)         36.4% (4/11)         =
  closed by server    27.3% (3/11)         27.3% (3/11)         =
  still open          36.4% (4/11)         36.4% (4/11)         =
  keep-alive timeout  1,069 ms (n=3)       1,069 ms (n=3)       =
  TLS resumption      n/a                  n/a                  -

  backend                   before            after             share change
  10.0.2.1:8080             6 (50.0%)         6 (50.0%)         =
  10.0.2.2:8080             6 (50.0%)         6 (50.0%)         =

No change that matters.
""" + RULE_TEXT

BEFORE_VS_AFTER = """\
Comparison
before before.pcap (360 packets, 10.3 s)
after  after.pcap (504 packets, 20.1 s)

  figure              before               after                change
  requests            72                   72                   =
! persistent sessions 100.0% (24/24)       66.7% (16/24)        -33.3 pts
! requests on primary 100.0% (72/72)       88.9% (64/72)        -11.1 pts
! breaks per request  0.0% (0/72)          11.1% (8/72)         +11.1 pts
! reuse ratio         66.7% (48/72)        33.3% (24/72)        -33.3 pts
! requests/connection 3.00 (n=24)          1.50 (n=48)          -1.50 (-50%)
! exchanges/request   2.00 (n=72)          4.00 (n=72)          +2.00 (+100%)
  exchanges saved     336                  168                  -168
  closed by client    0.0% (0/24)          0.0% (0/48)          =
  closed by server    100.0% (24/24)       100.0% (48/48)       =
  still open          0.0% (0/24)          0.0% (0/48)          =
! keep-alive timeout  5,000 ms (n=24)      15,000 ms (n=48)     +10,000 ms
  TLS resumption      n/a                  n/a                  -

  backend                   before            after             share change
! 10.1.0.1:80               36 (50.0%)        32 (44.4%)        -5.6 pts
! 10.1.0.2:80               36 (50.0%)        32 (44.4%)        -5.6 pts
! 10.1.0.3:80               -                 8 (11.1%)         appeared

Changes that matter:
! persistent sessions: -33.3 pts (n = 24 before, 24 after)
! requests on primary: -11.1 pts (n = 72 before, 72 after)
! breaks per request: +11.1 pts (n = 72 before, 72 after)
! reuse ratio: -33.3 pts (n = 72 before, 72 after)
! requests/connection: -50% (n = 24 before, 48 after)
! exchanges/request: +100% (n = 72 before, 72 after)
! keep-alive timeout: +10,000 ms (+200%; n = 24 before, 48 after)
! backend 10.1.0.1:80: share -5.6 pts (of 72 before, 72 after)
! backend 10.1.0.2:80: share -5.6 pts (of 72 before, 72 after)
! backend 10.1.0.3:80: appeared (8 requests after, none before)
""" + RULE_TEXT


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pcapstats.Analysis]:
    folder = tmp_path_factory.mktemp("compare")
    out = {}
    for variant in ("before", "after"):
        crafted_lb.build(variant, folder / f"{variant}.pcap")
        out[variant] = pcapstats.analyze(str(folder / f"{variant}.pcap"))
    return out


@pytest.fixture(scope="module")
def lb() -> pcapstats.Analysis:
    return pcapstats.analyze(LB)


def _fits(text: str) -> None:
    assert max(len(line) for line in text.splitlines()) <= 80


def test_capture_against_itself_changes_nothing(lb: pcapstats.Analysis) -> None:
    c = compare(lb, lb)
    assert c["significant"] == [] and c["notes"] == []
    for f in c["figures"]:
        assert f["before"] == f["after"] and not f["significant"] and f["reason"] is None
        assert f["delta"] in (0, None)
    assert [b["delta_share"] for b in c["backends"]] == [0.0, 0.0]
    text = format_text(c)
    assert text == LB_VS_LB
    _fits(text)


def test_crafted_before_after_exact_deltas(crafted: dict[str, pcapstats.Analysis]) -> None:
    c = compare(crafted["before"], crafted["after"])
    fig = {f["name"]: f for f in c["figures"]}
    ratios = {   # name: (before num/den, after num/den)
        "persistence_sessions": ((24, 24), (16, 24)),
        "persistence_requests": ((72, 72), (64, 72)),
        "breaks": ((0, 72), (8, 72)),
        "reuse": ((48, 72), (24, 72)),
        "closed_by_server": ((24, 24), (48, 48)),
        "closed_by_client": ((0, 24), (0, 48)),
        "still_open": ((0, 24), (0, 48)),
        "tls_resumption": ((0, 0), (0, 0)),
    }
    for name, (b, a) in ratios.items():
        f = fig[name]
        assert (f["before"]["numerator"], f["before"]["denominator"]) == b, name
        assert (f["after"]["numerator"], f["after"]["denominator"]) == a, name
        if b[1] and a[1]:
            assert f["delta"] == pytest.approx(a[0] / a[1] - b[0] / b[1], abs=1e-12), name
        else:
            assert f["delta"] is None
    means = {"requests_per_connection": ((3.0, 24), (1.5, 48)),
             "exchanges_per_request": ((2.0, 72), (4.0, 72)),
             "keepalive_timeout": ((5000.0, 24), (15000.0, 48))}
    for name, (b, a) in means.items():
        f = fig[name]
        assert (f["before"]["value"], f["before"]["count"]) == b
        assert (f["after"]["value"], f["after"]["count"]) == a
        assert f["delta"] == a[0] - b[0]
    assert (fig["requests"]["delta"], fig["exchanges_saved"]["delta"]) == (0, -168)
    assert c["significant"] == [
        "persistence_sessions", "persistence_requests", "breaks", "reuse",
        "requests_per_connection", "exchanges_per_request", "keepalive_timeout",
        "backend:10.1.0.1:80", "backend:10.1.0.2:80", "backend:10.1.0.3:80"]
    assert [(b["backend"], b["before"], b["after"]) for b in c["backends"]] == [
        ("10.1.0.1:80", {"requests": 36, "share": 0.5}, {"requests": 32, "share": 32 / 72}),
        ("10.1.0.2:80", {"requests": 36, "share": 0.5}, {"requests": 32, "share": 32 / 72}),
        ("10.1.0.3:80", None, {"requests": 8, "share": 8 / 72})]
    assert c["backends"][2]["reason"] == "appeared (8 requests after, none before)"
    text = format_text(c)
    assert text == BEFORE_VS_AFTER
    _fits(text)
    # and the other way round: the new member disappears, persistence recovers
    back = compare(crafted["after"], crafted["before"])
    assert {f["name"]: f["delta"] for f in back["figures"]}["persistence_sessions"] \
        == pytest.approx(1 / 3, abs=1e-12)
    assert back["backends"][2]["reason"] == "disappeared (8 requests before, none after)"


def test_different_sites_small_counts(lb: pcapstats.Analysis) -> None:
    c = compare(lb, pcapstats.analyze(KA))
    assert c["significant"] == ["keepalive_timeout", "backend:10.0.2.1:8080",
                                "backend:10.0.2.2:8080", "backend:203.0.113.80:80"]
    fig = {f["name"]: f for f in c["figures"]}
    # persistence moved +33.3 points, but on 3 sessions each side: shown, not flagged
    assert fig["persistence_sessions"]["delta"] == pytest.approx(1 / 3, abs=1e-12)
    assert not fig["persistence_sessions"]["significant"]
    assert fig["reuse"]["delta"] == pytest.approx(7 / 13 - 15 / 26, abs=1e-12)
    assert fig["reuse_client_side"]["after"] is None and fig["multiplexing"]["after"] is None
    assert fig["keepalive_timeout"]["before"] == {"value": 1068.538, "count": 3}
    assert fig["keepalive_timeout"]["after"] == {"value": 5028.06, "count": 3}
    _fits(format_text(c))


def test_cli(tmp_path: Path, lb: pcapstats.Analysis) -> None:
    run = CliRunner()
    res = run.invoke(main, ["compare", LB, LB])
    assert res.exit_code == 0 and res.output == LB_VS_LB
    res = run.invoke(main, ["compare", LB, KA, "--format", "json"])
    assert res.exit_code == 0
    assert json.loads(res.output) == json.loads(json.dumps(compare(lb, pcapstats.analyze(KA))))
    res = run.invoke(main, ["compare", LB, KA, "--session-key", "cookie:session"])
    assert res.exit_code == 0 and "note: the session key differs" not in res.output
    res = run.invoke(main, ["compare", LB, str(tmp_path / "missing.pcap")])
    assert res.exit_code != 0
    assert run.invoke(main, ["compare", LB]).exit_code == 2


def test_session_key_difference_is_noted(lb: pcapstats.Analysis) -> None:
    other = pcapstats.analyze(KA, session_key="cookie:session")
    c = compare(lb, other)
    assert c["notes"] == ["the session key differs (client-ip before, cookie:session "
                          "after): persistence figures count different things; give both "
                          "--session-key"]
    assert format_text(c).endswith("give both --session-key\n")


def _r(num: int, den: int) -> dict:
    return {"numerator": num, "denominator": den, "value": num / den if den else None}


@pytest.mark.parametrize("b,a,significant", [
    (_r(10, 20), _r(11, 20), True),        # exactly 5 points, 20 in each denominator
    (_r(100, 200), _r(109, 200), False),   # 4.5 points
    (_r(10, 19), _r(15, 19), False),       # a denominator under 20
    (_r(0, 0), _r(5, 20), True),           # measured after only, n = 20
    (_r(0, 0), _r(5, 19), False),
    (_r(5, 20), _r(0, 0), True),           # no longer measured
])
def test_ratio_rule(b: dict, a: dict, significant: bool) -> None:
    assert _judge("ratio", b, a)[1] is significant


@pytest.mark.parametrize("kind,b,a,significant", [
    ("mean", {"value": 2.0, "count": 20}, {"value": 2.4, "count": 20}, True),    # +20 %
    ("mean", {"value": 2.0, "count": 20}, {"value": 2.39, "count": 20}, False),
    ("mean", {"value": 2.0, "count": 19}, {"value": 4.0, "count": 20}, False),
    ("time", {"value": 5000.0, "count": 3}, {"value": 6000.0, "count": 3}, True),
    ("time", {"value": 5000.0, "count": 3}, {"value": 5999.0, "count": 3}, False),   # < 1 s
    ("time", {"value": 60000.0, "count": 3}, {"value": 65000.0, "count": 3}, False),  # < 20 %
    ("time", {"value": 5000.0, "count": 2}, {"value": 15000.0, "count": 3}, False),
    ("time", {"value": None, "count": 0}, {"value": 15000.0, "count": 3}, True),
    ("count", {"value": 1}, {"value": 1000}, False),
])
def test_mean_time_count_rules(kind: str, b: dict, a: dict, significant: bool) -> None:
    assert _judge(kind, b, a)[1] is significant
