"""The HTML report works on the row dicts (``Analysis.rows``): it imports no pandas,
builds no DataFrame, and its plots and tables match what the samples are known to hold
(``samples/truth.json``, written by the generator, not read back by a tool)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import pcapstats
from pcapstats.report.html import render_html
from pcapstats.report.svg import CLOSE_STYLE

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
TRUTH = json.loads((SAMPLES / "truth.json").read_text())["files"]
CONN_TIP = re.compile(r"<title>connection (\d+): [^<]*?; (\d+) request\(s\); "
                      r"([\d,.]+) s to [^<]*</title>")


def _truth_requests(name: str) -> list[dict[str, Any]]:
    return [r for c in TRUTH[name]["connections"] for r in c["requests"]]


def _hosts_table(page: str) -> list[tuple[str, int]]:
    """(host, requests) rows of the "Requests by Host" table."""
    table = page[page.index("<h3>Requests by Host"):]
    table = table[:table.index("</table>")]
    return [(host, int(n.replace(",", ""))) for host, n in re.findall(
        r'<tr><td><code>([^<]*)</code></td><td class="n">([\d,]+)</td>', table)]


def test_no_pandas_import() -> None:
    code = (
        "import sys, pcapstats\n"
        "from pcapstats.report.html import render_html\n"
        f"for kw in ({{}}, {{'redact': 'k', 'redact_addresses': True}}):\n"
        f"    a = pcapstats.analyze({str(SAMPLES / 'lb-both-sides.pcap')!r}, **kw)\n"
        "    page = render_html(a)\n"
        "    assert 'Persistence breaks (all)' in page and '<title>session ' in page\n"
        "    assert not a._frames, list(a._frames)\n"
        "bad = sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules)\n"
        "assert not bad, bad\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("name", ["http-keepalive.pcap", "lb-both-sides.pcap", "port-reuse.pcap"])
def test_connection_lanes_and_hosts(name: str) -> None:
    truth = TRUTH[name]
    a = pcapstats.analyze(str(SAMPLES / name))
    page = render_html(a)
    tips = CONN_TIP.findall(page)
    # one lane per connection (fewer than 200 here), each with its requests
    assert len(tips) == truth["tcp_connections"] == len(a.rows("connections"))
    assert {int(cid): int(n) for cid, n, _ in tips} == dict(
        enumerate(truth["http_requests_per_connection"]))
    # rows sorted by start time
    starts = [float(t.replace(",", "")) for _, _, t in tips]
    assert starts == sorted(starts)
    first = truth["first_ts_ns"]
    assert starts == sorted(round((c["first_ts_ns"] - first) / 1e9, 3)
                            for c in truth["connections"])
    # who closed each connection, as its lane says
    for cid, kind in enumerate(truth["closed_by"]):
        tip = re.search(rf"<title>connection {cid}: [^<]*</title>", page)
        assert tip and CLOSE_STYLE[kind][2] in tip.group(0), (cid, kind)
    # the Host table: every host with its exact count, busiest first
    counts = Counter(r["host"] or "(no Host header)" for r in _truth_requests(name))
    assert _hosts_table(page) == counts.most_common()


def test_sessions_and_breaks() -> None:
    a = pcapstats.analyze(str(SAMPLES / "lb-both-sides.pcap"))
    page = render_html(a)
    aff = a.summary["affinity"]
    lanes = re.findall(r"<title>session ([^ <]+) \(client-ip\): (\d+) request\(s\)", page)
    assert len(lanes) == aff["sessions"] == len(a.rows("sessions")) == 4
    # sessions with breaks first, then by requests
    assert lanes[0] == ("10.0.1.13", "5")
    assert [int(n) for _, n in lanes[1:]] == sorted((int(n) for _, n in lanes[1:]),
                                                    reverse=True)
    (brk,) = a.rows("breaks")
    secs = (brk["ts"] - a.summary["capture"]["first_ts"]) / 1e9
    assert (f"<title>persistence break at {secs:,.3f} s: {brk['from_backend']} → "
            f"{brk['to_backend']} ({brk['cause']})</title>") in page
    req = a.rows("requests")[brk["request_index"]]
    assert (f'<td class="n">{secs:,.3f}</td><td><code>{brk["session"]}</code></td>'
            f"<td>{brk['from_backend']} → {brk['to_backend']}</td><td>{brk['cause']}</td>"
            f"<td>{req['method']} {req['host']} {req['uri']}</td>") in page


def test_rows_accessor() -> None:
    a = pcapstats.analyze(str(SAMPLES / "lb-both-sides.pcap"))
    assert a.rows("connections") is a._conn_rows and a.rows("requests") is a._request_rows
    for name in ("sessions", "backends", "breaks"):
        assert a.rows(name) is getattr(a._affinity, name[:-1] + "_rows")
    with pytest.raises(KeyError):
        a.rows("packets")
    a._affinity = None
    assert a.rows("sessions") == a.rows("backends") == a.rows("breaks") == []


def test_redacted_rows_reach_the_page() -> None:
    path = str(SAMPLES / "http-keepalive.pcap")
    cookie = "9f2c4e71b8a04d3c"           # the value of the "session" cookie
    plain = pcapstats.analyze(path, session_key="cookie:session")
    assert cookie in render_html(plain)
    red = pcapstats.analyze(path, session_key="cookie:session", redact="k",
                            redact_addresses=True)
    page = render_html(red)
    assert cookie not in page
    (sess,) = red.rows("sessions")
    assert re.fullmatch(r"v-[0-9a-f]{16}", sess["session"])
    assert f"<title>session {sess['session']} (cookie:session)" in page
    assert all(cookie not in (r["cookie"] or "") for r in red.rows("requests"))
    # no raw address in any lane, table or tooltip
    for c in plain.rows("connections"):
        assert c["client_ip"] not in page and c["server_ip"] not in page
    assert _hosts_table(page) == _hosts_table(render_html(plain))
