"""--redact: no cookie value, session key or query string of the capture survives in any
output, the figures do not change, and tokens are stable under one key."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import pcapstats
from pcapstats.affinity.cookies import parse_cookie_header, parse_set_cookies
from pcapstats.cli import main
from pcapstats.redact import Redactor, redact

import crafted_lb

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
TOKEN = r"[0-9a-f]{16}"


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crafted")
    for variant in ("before", "after"):
        crafted_lb.build(variant, folder / f"{variant}.pcap")
    return folder


def _capture(name: str, crafted: Path) -> Path:
    return crafted / name if name in ("before.pcap", "after.pcap") else SAMPLES / name


# (capture, extra options): the crafted captures are keyed by JSESSIONID (32 hex digits;
# after.pcap has breaks, so sessions in top_breaks), http-keepalive by its cookie
# "session", lb-both-sides by client address
CASES = [("lb-both-sides.pcap", []), ("http-keepalive.pcap", []),
         ("http-keepalive.pcap", ["--session-key", "cookie:session"]), ("before.pcap", []),
         ("after.pcap", [])]


def _secrets(a: pcapstats.Analysis) -> tuple[set[tuple[str, str]], set[str], set[str]]:
    """(cookie name/value pairs, query strings, cookie-derived session values) of a capture."""
    pairs: set[tuple[str, str]] = set()
    for header in a.requests["cookie"].dropna():
        pairs |= set(parse_cookie_header(header))
    for joined in a.requests["set_cookie"].dropna():
        pairs |= {(n, v) for n, v, _ in parse_set_cookies(joined)}
    queries = {u.split("?", 1)[1] for u in a.requests["uri"].dropna() if "?" in u}
    sessions: set[str] = set()
    if a.summary["affinity"]["session_key"].startswith("cookie:"):
        sessions = set(a.sessions["session"].dropna())
    return {(n, v) for n, v in pairs if v}, queries, sessions


def _variants(s: str) -> set[str]:
    """The ways a string can be written in our outputs (raw, JSON, HTML)."""
    return {s, json.dumps(s)[1:-1], html.escape(s), json.dumps(s)[1:-1].replace("/", "\\/")}


def _assert_clean(text: str, secrets: tuple, where: str) -> None:
    pairs, queries, sessions = secrets
    for name, value in pairs:
        for v in _variants(f"{name}={value}"):
            assert v not in text, f"{where}: cookie {name}={value} leaked"
        if len(value) >= 4:          # shorter ones ("en", "3") occur anywhere by chance
            for v in _variants(value):
                assert v not in text, f"{where}: cookie value {value!r} leaked"
        elif where.endswith((".json", ".jsonl")):    # but never as a JSON string value
            assert not re.search(re.escape(json.dumps(value)) + r"(?!\s*:)", text), \
                f"{where}: cookie value {value!r} leaked"
    for q in queries:
        for v in _variants(q):
            assert v not in text, f"{where}: query string {q!r} leaked"
    for s in sessions:
        for v in _variants(s):
            assert v not in text, f"{where}: session {s!r} leaked"


@pytest.mark.parametrize("name,extra", CASES)
def test_no_secret_in_any_output(name: str, extra: list[str], crafted: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cap = str(_capture(name, crafted))
    plain = pcapstats.analyze(cap, session_key=extra[1] if extra else "auto")
    secrets = _secrets(plain)
    assert secrets[0], "the capture should carry cookies"
    monkeypatch.chdir(tmp_path)
    run = CliRunner()
    texts: dict[str, str] = {}
    res = run.invoke(main, ["report", cap, "--redact", *extra])          # + reports/*.{json,html}
    assert res.exit_code == 0, res.output
    texts["terminal report"] = res.output
    for fmt in ("json", "html"):
        out = tmp_path / f"report.{fmt}"
        res = run.invoke(main, ["report", cap, "--redact", "--format", fmt, "-o", str(out),
                                *extra])
        assert res.exit_code == 0, res.output
    for fmt in ("csv", "parquet", "jsonl"):
        res = run.invoke(main, ["export", cap, "--redact", "--format", fmt, "-o",
                                str(tmp_path / fmt), "-q", *extra])
        assert res.exit_code == 0, res.output
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 2 + 2 + 3 * 5
    for p in files:
        texts[str(p.relative_to(tmp_path))] = p.read_bytes().decode("latin-1")
        if p.suffix == ".parquet":      # compressed: also check the values read back
            texts[f"{p.name} (read back)"] = pd.read_parquet(p).astype(str).to_csv()
    for where, text in texts.items():
        _assert_clean(text, secrets, where)
    js = json.loads((tmp_path / "report.json").read_text())
    assert js["redaction"]["cookie_values"] and not js["redaction"]["addresses"]
    if secrets[1]:
        assert re.search(rf"\?q-{TOKEN}", texts["csv/requests.csv"])


@pytest.mark.parametrize("name,extra", CASES)
def test_figures_unchanged(name: str, extra: list[str], crafted: Path) -> None:
    key = extra[1] if extra else "auto"
    cap = str(_capture(name, crafted))
    plain = pcapstats.analyze(cap, session_key=key)
    red = pcapstats.analyze(cap, session_key=key, redact=True)
    s1, s2 = json.loads(json.dumps(plain.summary)), json.loads(json.dumps(red.summary))
    assert s2.pop("redaction")["key"] in ("random", "given")
    for s in (s1, s2):
        for tb in s.get("affinity", {}).get("top_breaks", []):
            tb.pop("session")
    assert s2 == s1                               # every figure, every count, every label
    for table, df in plain.tables().items():
        other = red.tables()[table]
        assert other.shape == df.shape
        keep = [c for c in df.columns if c not in ("uri", "cookie", "set_cookie", "session",
                                                   "tls_session")]
        pd.testing.assert_frame_equal(other[keep], df[keep])
    # tokens stay comparable: the same session in every table
    assert set(red.requests["session"].dropna()) == set(red.sessions["session"].dropna())
    assert set(red.breaks["session"]) <= set(red.sessions["session"])
    assert red.sessions["requests"].tolist() == plain.sessions["requests"].tolist()


def test_addresses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = str(SAMPLES / "lb-both-sides.pcap")
    plain = pcapstats.analyze(cap)
    addrs = set(plain.connections["client_ip"]) | set(plain.connections["server_ip"])
    addrs |= {h.strip() for x in plain.requests["xff"].dropna() for h in x.split(",")}
    monkeypatch.chdir(tmp_path)
    run = CliRunner()
    res = run.invoke(main, ["report", cap, "--redact-addresses", "--format", "json", "-o", "r.json"])
    assert res.exit_code == 0
    res2 = run.invoke(main, ["export", cap, "--redact-addresses", "--format", "csv", "-o", "t", "-q"])
    assert res2.exit_code == 0
    res3 = run.invoke(main, ["report", cap, "--redact-addresses", "--no-files"])
    texts = [Path("r.json").read_text(), res3.output] + [p.read_text() for p in Path("t").iterdir()]
    for text in texts:
        for ip in addrs:
            assert ip not in text
        _assert_clean(text, _secrets(plain), "addresses")
    red = pcapstats.analyze(cap, redact_addresses=True)
    af, paf = red.summary["affinity"], plain.summary["affinity"]
    for k in ("persistence_sessions", "persistence_requests", "breaks", "break_causes",
              "multiplexing_ratio", "sides"):
        assert af[k] == paf[k]
    assert [b["requests"] for b in af["backends"]] == [b["requests"] for b in paf["backends"]]
    assert all(re.fullmatch(rf"ip-{TOKEN}:8080", b["backend"]) for b in af["backends"])
    # one address, one token, wherever it appears
    tok = Redactor(None, True)
    again = tok.apply(plain)
    c = again.connections
    s = again.sessions["session"].tolist()
    assert set(s) <= set(c["client_ip"])
    assert set(again.backends["backend"]) == {f"{ip}:8080" for ip in c.loc[c.side == "backend",
                                                                            "server_ip"]}


def test_keys() -> None:
    a = pcapstats.analyze(str(SAMPLES / "http-keepalive.pcap"), session_key="cookie:session")
    one = redact(a, key="k1")
    assert one.sessions["session"].tolist() == redact(a, key=b"k1").sessions["session"].tolist()
    assert one.sessions["session"].tolist() != redact(a, key="k2").sessions["session"].tolist()
    assert redact(a).sessions["session"].tolist() != redact(a).sessions["session"].tolist()
    assert a.sessions["session"].tolist() == ["9f2c4e71b8a04d3c"]          # original untouched
    assert a.result.exchanges and not one.result.exchanges


def test_env_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PCAPSTATS_REDACT_KEY", "from-env")
    r = Redactor()
    assert not r.random_key and r.value("abc") == Redactor("from-env").value("abc")
    cap = str(SAMPLES / "http-keepalive.pcap")
    run = CliRunner()
    for out in ("a", "b"):
        assert run.invoke(main, ["export", cap, "--redact", "--format", "jsonl", "-q",
                                 "-o", str(tmp_path / out)]).exit_code == 0
    assert run.invoke(main, ["export", cap, "--redact", "--redact-key", "other", "-q",
                             "--format", "jsonl", "-o", str(tmp_path / "c")]).exit_code == 0
    same = (tmp_path / "a" / "requests.jsonl").read_text()
    assert same == (tmp_path / "b" / "requests.jsonl").read_text()
    assert same != (tmp_path / "c" / "requests.jsonl").read_text()
    assert Redactor("from-env").value("9f2c4e71b8a04d3c") in same


def test_field_formats() -> None:
    r = Redactor("k")
    v = r.value
    assert r.cookie('a=1; b="x y"; flag; c=') == f"a={v('1')}; b={v('x y')}; {v('flag')}; c="
    assert r.cookie("JSESSIONID=s1~abc123") == f"JSESSIONID=s1~{v('abc123')}"
    assert r.set_cookie("SID=abc; Path=/; HttpOnly\nlang=en; Max-Age=60") == \
        f"SID={v('abc')}; Path=/; HttpOnly\nlang={v('en')}; Max-Age=60"
    q = lambda s: r.token("query", s)  # noqa: E731
    assert r.uri("/p?x=1&y=2") == f"/p?{q('x=1&y=2')}"
    assert r.uri("/app;jsessionid=ABC?x=1") == f"/app;{q('jsessionid=ABC')}?{q('x=1')}"
    assert r.uri("http://user:pw@h.example/x?y") == f"http://{q('user:pw')}@h.example/x?{q('y')}"
    assert r.uri("/plain") == "/plain" and r.uri("/p?") == "/p?"
    assert re.fullmatch(rf"v-{TOKEN}", v("x")) and v("") == "" and v(None) is None
    assert r.text("10.0.0.1") == "10.0.0.1"                    # addresses off
    ra = Redactor("k", addresses=True)
    assert ra.text("from 10.0.0.1:80 and [2001:db8::1]:443 at 14:05:20.5") == \
        (f"from {ra.token('address', '10.0.0.1')}:80 and [{ra.token('address', '2001:db8::1')}]"
         f":443 at 14:05:20.5")
    assert ra.text("::ffff:10.0.0.1") == ra.token("address", "::ffff:a00:1")


def test_compare_with_redaction_is_consistent() -> None:
    r = Redactor(None, addresses=True)
    cap = str(SAMPLES / "lb-both-sides.pcap")
    from pcapstats.compare import compare
    c = compare(pcapstats.analyze(cap, redact=r), pcapstats.analyze(cap, redact=r))
    assert c["significant"] == []
    assert all(b["backend"].startswith("ip-") for b in c["backends"])
