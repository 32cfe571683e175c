"""Tests for pcapstats.affinity cookie parsing, BIG-IP decoding and cookie recognition."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pcapstats.affinity import (
    CookieInfo,
    choose_session_cookie,
    classify_cookie,
    classify_cookies,
    cookie_kind,
    decode_bigip,
    decode_bigip_member,
    encode_bigip_ipv4,
    is_session_cookie_name,
    observe_cookies,
    parse_cookie_header,
    parse_set_cookie,
    parse_set_cookies,
    request_backend_cookie,
    split_set_cookie,
)
from pcapstats.affinity.bigip import BigipMember, is_encrypted_bigip

# --------------------------------------------------------------------------- BIG-IP

# Published examples: F5 K6917 (first four and the 20480 variant), a public
# decode walk-through (2064452106...) and an F5 DevCentral article (1701187756...).
PUBLISHED = [
    ("1677787402.36895.0000", "10.1.1.100:8080"),
    ("1677787402.20480.0000", "10.1.1.100:80"),
    ("rd5o00000000000000000000ffffc0000201o80", "192.0.2.1:80"),
    ("vi20010112000000000000000000000030.20480", "[2001:112::30]:80"),
    ("rd3o20010112000000000000000000000030o80", "[2001:112::30]:80"),
    ("2064452106.47873.0000", "10.10.13.123:443"),
    ("1701187756.20480.0000", "172.16.102.101:80"),
]


@pytest.mark.parametrize(("value", "expected"), PUBLISHED)
def test_decode_bigip_published_examples(value: str, expected: str) -> None:
    assert decode_bigip(value) == expected


def test_decode_bigip_member_details() -> None:
    assert decode_bigip_member("rd5o00000000000000000000ffffc0000201o80") == BigipMember(
        "192.0.2.1", 80, 5, "ipv4-rd"
    )
    assert decode_bigip_member("rd3o20010112000000000000000000000030o80") == BigipMember(
        "2001:112::30", 80, 3, "ipv6-rd"
    )
    assert decode_bigip_member("vi20010112000000000000000000000030.20480") == BigipMember(
        "2001:112::30", 80, None, "ipv6"
    )
    assert decode_bigip_member("1677787402.36895.0000") == BigipMember("10.1.1.100", 8080, None, "ipv4")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"1677787402.36895.0000"', "10.1.1.100:8080"),          # quoted
        (" 1677787402.36895.0000 ", "10.1.1.100:8080"),          # blanks
        ("1677787402.36895", "10.1.1.100:8080"),                 # no reserved field
        ("0.0.0000", "0.0.0.0:0"),
        ("4294967295.65535.0000", "255.255.255.255:65535"),
        ("RD5O00000000000000000000FFFFC0000201O80", None),       # "rd"/"o" are lower-case
        ("rd5o00000000000000000000FFFFC0000201o80", "192.0.2.1:80"),  # hex in either case
        ("vi00000000000000000000ffffc0000201.20480", "192.0.2.1:80"),
    ],
)
def test_decode_bigip_edge_cases(value: str, expected: str | None) -> None:
    assert decode_bigip(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "abc",
        "!Ln7S2Ygaj3ujyX1Ft4Lmz9vN3EgGnzCiAbYhPKuzkCmh4x4Ri8iKgVUe3UcYOx9Ao4aRXvOyIs0GrPc=",
        "4294967296.20480.0000",                     # address over 32 bits
        "1677787402.65536.0000",                     # port over 16 bits
        "1677787402.36895.0000x",                    # trailing junk
        "1677787402..0000",
        "-1677787402.36895.0000",
        "\u0661\u0666\u0667\u0667.36895.0000",       # non-ASCII digits
        "rd5o00000000000000000000ffffc0000201o70000",  # port over 16 bits
        "rd5o00000000000000000000ffffc00002o80",      # 30 hex digits
        "rdo00000000000000000000ffffc0000201o80",     # no route domain number
        "vi2001011200000000000000000000003.20480",    # 31 hex digits
        "vi20010112000000000000000000000030.99999",
        "vi2001011200000000000000000000003g.20480",
        "1" * 5000 + ".1.0000",                        # long digit run: no int() limit error
    ],
)
def test_decode_bigip_bad_values_give_none(value: str) -> None:
    assert decode_bigip(value) is None


def test_encrypted_bigip_is_opaque() -> None:
    value = "!Ln7S2Ygaj3ujyX1Ft4Lmz9vN3EgGnzCiAbYhPKuzkCmh4x4Ri8iKgVUe3UcYOx9Ao4aRXvOyIs0GrPc="
    assert is_encrypted_bigip(value)
    assert not is_encrypted_bigip("1677787402.36895.0000")
    info = classify_cookie("BIGipServerweb_pool", value)
    assert info == CookieInfo("BIGipServerweb_pool", "bigip", None, value)
    assert info is not None and info.backend_label == value


def test_encode_bigip_ipv4_matches_published_example() -> None:
    assert encode_bigip_ipv4("10.1.1.100", 8080) == "1677787402.36895.0000"
    assert encode_bigip_ipv4("10.1.1.100", 80) == "1677787402.20480.0000"
    with pytest.raises(ValueError):
        encode_bigip_ipv4("10.1.1.100", 70000)


@given(st.integers(0, 2**32 - 1), st.integers(0, 65535))
def test_bigip_ipv4_round_trip(addr: int, port: int) -> None:
    ip = str(ipaddress.IPv4Address(addr))
    assert decode_bigip(encode_bigip_ipv4(ip, port)) == f"{ip}:{port}"


@given(st.text())
def test_decode_bigip_never_raises(value: str) -> None:
    result = decode_bigip(value)
    assert result is None or ":" in result


@given(st.from_regex(r"(rd[0-9]{1,3}o[0-9a-f]{32}o[0-9]{1,6}|vi[0-9a-f]{32}\.[0-9]{1,6}|[0-9]{1,11}\.[0-9]{1,6}\.0000)", fullmatch=True))
def test_decode_bigip_near_valid_never_raises(value: str) -> None:
    decode_bigip(value)


# --------------------------------------------------------------------------- Cookie header

@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("a=1; b=2", [("a", "1"), ("b", "2")]),
        ("a=1;b=2;", [("a", "1"), ("b", "2")]),
        (' a = "x y" ; b=""', [("a", "x y"), ("b", "")]),
        ("flag; a=1", [("", "flag"), ("a", "1")]),
        ("a=1; a=2; a=1", [("a", "1"), ("a", "2"), ("a", "1")]),
        ("a=b=c", [("a", "b=c")]),
        ("=x", [("", "x")]),
        ("a=", [("a", "")]),
        ("", []),
        (" ; ;; ", []),
        ('a="unterminated; b=2', [("a", '"unterminated'), ("b", "2")]),
        ("JSESSIONID=s1~abc; SERVERID=s2", [("JSESSIONID", "s1~abc"), ("SERVERID", "s2")]),
    ],
)
def test_parse_cookie_header(header: str, expected: list[tuple[str, str]]) -> None:
    assert parse_cookie_header(header) == expected


def test_parse_cookie_header_non_string() -> None:
    assert parse_cookie_header(None) == []  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Set-Cookie

def test_parse_set_cookie_attributes() -> None:
    assert parse_set_cookie(
        "BIGipServerpool=1677787402.36895.0000; path=/; Expires=Wed, 21 Oct 2015 07:28:00 GMT; HttpOnly; Secure"
    ) == (
        "BIGipServerpool",
        "1677787402.36895.0000",
        {"path": "/", "expires": "Wed, 21 Oct 2015 07:28:00 GMT", "httponly": "", "secure": ""},
    )


def test_parse_set_cookie_edge_cases() -> None:
    assert parse_set_cookie('SID="a b"; MAX-AGE=10; Max-Age=20') == ("SID", "a b", {"max-age": "20"})
    assert parse_set_cookie("token") == ("", "token", {})
    assert parse_set_cookie("SERVERID=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; ; =x") == (
        "SERVERID", "", {"expires": "Thu, 01-Jan-1970 00:00:01 GMT"},
    )
    assert parse_set_cookie("") == ("", "", {})
    assert parse_set_cookie(None) == ("", "", {})  # type: ignore[arg-type]


def test_split_set_cookie_newlines_and_commas() -> None:
    joined = "SERVERID=s1; path=/\r\n\nJSESSIONID=abc; Expires=Wed, 21 Oct 2015 07:28:00 GMT; HttpOnly\n"
    assert split_set_cookie(joined) == [
        "SERVERID=s1; path=/",
        "JSESSIONID=abc; Expires=Wed, 21 Oct 2015 07:28:00 GMT; HttpOnly",
    ]
    comma_joined = "a=1; Expires=Wed, 21-Oct-2015 07:28:00 GMT, b=2; Path=/, c=3"
    assert split_set_cookie(comma_joined) == [comma_joined]
    assert split_set_cookie(comma_joined, commas=True) == [
        "a=1; Expires=Wed, 21-Oct-2015 07:28:00 GMT", "b=2; Path=/", "c=3",
    ]
    assert [c[:2] for c in parse_set_cookies(joined)] == [("SERVERID", "s1"), ("JSESSIONID", "abc")]
    assert split_set_cookie("") == []


# --------------------------------------------------------------------------- recognition

@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SERVERID", "s1", CookieInfo("SERVERID", "haproxy-insert", "s1", "s1")),
        ("SRVID", "web2", CookieInfo("SRVID", "haproxy-insert", "web2", "web2")),
        ("srv", '"app3"', CookieInfo("srv", "haproxy-insert", "app3", "app3")),
        ("SERVERID", "s1|Wqbj5|Wqbj5", CookieInfo("SERVERID", "haproxy-insert", "s1", "s1|Wqbj5|Wqbj5")),
        ("SERVERID", "", CookieInfo("SERVERID", "haproxy-insert", None, "")),
        ("JSESSIONID", "s1~abc", CookieInfo("JSESSIONID", "haproxy-prefix", "s1", "abc")),
        ("PHPSESSID", "web-2~9f8e7d", CookieInfo("PHPSESSID", "haproxy-prefix", "web-2", "9f8e7d")),
        ("JSESSIONID", "ABC123DEF", CookieInfo("JSESSIONID", "app", None, "ABC123DEF")),
        ("JSESSIONID", "~abc", CookieInfo("JSESSIONID", "app", None, "~abc")),
        ("BIGipServerweb_pool", "1677787402.36895.0000",
         CookieInfo("BIGipServerweb_pool", "bigip", "10.1.1.100:8080", "1677787402.36895.0000")),
        ("BIGipServer~Common~pool", "rd5o00000000000000000000ffffc0000201o80",
         CookieInfo("BIGipServer~Common~pool", "bigip", "192.0.2.1:80", "rd5o00000000000000000000ffffc0000201o80")),
        ("AWSALB", "Xyz/abc+123==", CookieInfo("AWSALB", "aws", None, "Xyz/abc+123==")),
        ("AWSALBCORS", "Xyz", CookieInfo("AWSALBCORS", "aws", None, "Xyz")),
        ("AWSALBTG", "Q1", CookieInfo("AWSALBTG", "aws", None, "Q1")),
        ("AWSALBAPP-0", "_remove_", CookieInfo("AWSALBAPP-0", "aws", None, "_remove_")),
        ("route", "4ce4d7c9ab8e1b2d0c5b6f7e8a9d0c1b",
         CookieInfo("route", "nginx-sticky", "4ce4d7c9ab8e1b2d0c5b6f7e8a9d0c1b", "4ce4d7c9ab8e1b2d0c5b6f7e8a9d0c1b")),
        ("srv_id", "a6e1b0b9", CookieInfo("srv_id", "nginx-sticky", "a6e1b0b9", "a6e1b0b9")),
        ("_TRAEFIK_BACKEND", "http://10.0.0.5:8080",
         CookieInfo("_TRAEFIK_BACKEND", "traefik", "10.0.0.5:8080", "http://10.0.0.5:8080")),
        ("_TRAEFIK_BACKEND", "https://[2001:db8::1]",
         CookieInfo("_TRAEFIK_BACKEND", "traefik", "[2001:db8::1]:443", "https://[2001:db8::1]")),
        ("_ded76", "http://myBackend:1234",
         CookieInfo("_ded76", "traefik", "mybackend:1234", "http://myBackend:1234")),
        ("PHPSESSID", "abc", CookieInfo("PHPSESSID", "app", None, "abc")),
        ("ASP.NET_SessionId", "x1", CookieInfo("ASP.NET_SessionId", "app", None, "x1")),
        ("ASPSESSIONIDQQGGQRAD", "x1", CookieInfo("ASPSESSIONIDQQGGQRAD", "app", None, "x1")),
        ("CFID", "1", CookieInfo("CFID", "app", None, "1")),
        ("CFTOKEN", "2", CookieInfo("CFTOKEN", "app", None, "2")),
        ("connect.sid", "s%3Aabc", CookieInfo("connect.sid", "app", None, "s%3Aabc")),
        ("laravel_session", "eyJ", CookieInfo("laravel_session", "app", None, "eyJ")),
        ("_session_id", "a", CookieInfo("_session_id", "app", None, "a")),
        ("sessionid", "a", CookieInfo("sessionid", "app", None, "a")),
        ("MYAPPSESSID", "a", CookieInfo("MYAPPSESSID", "app", None, "a")),
        ("SESS0123456789abcdef0123456789abcdef", "a",
         CookieInfo("SESS0123456789abcdef0123456789abcdef", "app", None, "a")),
    ],
)
def test_classify_cookie_recognised(name: str, value: str, expected: CookieInfo) -> None:
    assert classify_cookie(name, value) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("_ga", "GA1.2.3.4"),
        ("session", "eyJhbGciOi"),              # client-side store: changes on every write
        ("_myapp_session", "abc--def"),
        ("theme", "dark"),
        ("route", "a b; c"),                    # not a server label
        ("_ded76", "notaurl"),
        ("_ded76", "ftp://10.0.0.1:21"),
        ("_TRAEFIK", "http://10.0.0.5:80"),
        ("", "flag"),
        ("sessionid_hash", "x"),
    ],
)
def test_classify_cookie_unrecognised(name: str, value: str) -> None:
    assert classify_cookie(name, value) is None


def test_backend_label_and_is_balancer() -> None:
    aws = classify_cookie("AWSALB", "opaque")
    app = classify_cookie("JSESSIONID", "abc")
    insert = classify_cookie("SERVERID", "s1")
    assert aws is not None and app is not None and insert is not None
    assert (aws.is_balancer, aws.backend, aws.backend_label) == (True, None, "opaque")
    assert (app.is_balancer, app.backend_label) == (False, None)
    assert insert.backend_label == "s1"
    empty_aws = classify_cookie("AWSALB", "")
    assert empty_aws is not None and empty_aws.backend_label is None


def test_cookie_kind_by_name() -> None:
    assert cookie_kind("BIGipServerpool") == "bigip"
    assert cookie_kind("SERVERID") == "haproxy-insert"
    assert cookie_kind("AWSALBAPP-3") == "aws"
    assert cookie_kind("awsalb") is None
    assert cookie_kind("route") == "nginx-sticky"
    assert cookie_kind("JSESSIONID") == "app"
    assert cookie_kind("_ded76") is None
    assert cookie_kind("theme") is None
    assert is_session_cookie_name("PHPSESSID") and not is_session_cookie_name("session")


def test_classify_cookies_and_request_backend_cookie() -> None:
    pairs = parse_cookie_header("theme=dark; AWSALB=opaque; JSESSIONID=abc; SERVERID=s2")
    assert [c.kind for c in classify_cookies(pairs)] == ["aws", "app", "haproxy-insert"]
    chosen = request_backend_cookie(pairs)
    assert chosen is not None and chosen.name == "SERVERID"       # decoded beats opaque
    only_aws = request_backend_cookie(parse_cookie_header("AWSALB=opaque; JSESSIONID=abc"))
    assert only_aws is not None and only_aws.backend_label == "opaque"
    assert request_backend_cookie(parse_cookie_header("JSESSIONID=abc")) is None


# --------------------------------------------------------------------------- --session-key auto

def test_observe_cookies_counts_requests_and_values() -> None:
    headers = [
        "JSESSIONID=a; SERVERID=s1",
        "JSESSIONID=a; SERVERID=s1; JSESSIONID=a",   # repeated name counts once
        None,
        "",
        "JSESSIONID=b; SERVERID=s2",
    ]
    assert observe_cookies(headers) == {"JSESSIONID": (3, 2), "SERVERID": (3, 2)}
    # keys_only: the names choose_session_cookie reads, the same counts
    headers += ["_ga=1; JSESSIONID=b; theme=dark", "_ga=2; PHPSESSID=x; route=r1"]
    every, keys = observe_cookies(headers), observe_cookies(headers, keys_only=True)
    assert every == {"JSESSIONID": (4, 2), "SERVERID": (3, 2), "_ga": (2, 2),
                     "theme": (1, 1), "PHPSESSID": (1, 1), "route": (1, 1)}
    assert keys == {k: v for k, v in every.items() if k not in ("_ga", "theme")}
    assert choose_session_cookie(keys) == choose_session_cookie(every)


def test_choose_prefers_application_cookie() -> None:
    name, reason = choose_session_cookie(
        {"SERVERID": (100, 2), "JSESSIONID": (90, 12), "PHPSESSID": (5, 1), "AWSALB": (100, 40), "theme": (100, 1)}
    )
    assert name == "JSESSIONID"
    assert reason.startswith("application session cookie JSESSIONID (90 requests, 12 values)")
    assert "PHPSESSID (5 requests, 1 values)" in reason
    assert "SERVERID names a backend" in reason


def test_choose_skips_cookie_whose_value_never_repeats() -> None:
    name, reason = choose_session_cookie({"laravel_session": (50, 50), "AWSALB": (50, 10)})
    assert name == "AWSALB"
    assert reason.startswith("per-client balancer cookie AWSALB")
    assert "laravel_session (50 requests, 50 values) never repeats a value" in reason


def test_choose_ties_broken_by_values_then_name() -> None:
    assert choose_session_cookie({"CFTOKEN": (10, 3), "CFID": (10, 3)})[0] == "CFID"
    assert choose_session_cookie({"CFTOKEN": (10, 4), "CFID": (10, 3)})[0] == "CFTOKEN"


def test_choose_nothing_falls_back_to_client_address() -> None:
    name, reason = choose_session_cookie({"SERVERID": (10, 2), "BIGipServerp": (10, 3), "JSESSIONID": (1, 1)})
    assert name is None
    assert reason.startswith("no session cookie found, use the client address")
    assert choose_session_cookie({}) == (None, "no session cookie found, use the client address")
    assert choose_session_cookie({"JSESSIONID": "bad"})[0] is None  # type: ignore[dict-item]


# --------------------------------------------------------------------------- never raise

COOKIE_TEXT = st.text(alphabet=st.sampled_from(list('ab=;~ "|.:!\t\r\n,/0123456789SERVID')), max_size=60)


@settings(max_examples=300)
@given(st.one_of(st.text(), COOKIE_TEXT))
def test_parsers_never_raise(text: str) -> None:
    for name, value in parse_cookie_header(text):
        assert ";" not in name and ";" not in value
    name, value, attrs = parse_set_cookie(text)
    assert all(k == k.lower() for k in attrs)
    for item in split_set_cookie(text, commas=True):
        parse_set_cookie(item)
    observe_cookies([text])


@settings(max_examples=300)
@given(
    st.one_of(st.text(max_size=30), st.sampled_from(
        ["SERVERID", "JSESSIONID", "BIGipServerp", "AWSALB", "route", "srv_id", "_TRAEFIK_BACKEND", "_ded76"]
    )),
    st.one_of(st.text(), COOKIE_TEXT, st.from_regex(r"https?://[^/]{0,20}", fullmatch=True)),
)
def test_classify_never_raises(name: str, value: str) -> None:
    info = classify_cookie(name, value)
    assert info is None or info.kind in (
        "haproxy-insert", "haproxy-prefix", "bigip", "aws", "nginx-sticky", "traefik", "app"
    )
    choose_session_cookie({name: (3, 1)})


# --------------------------------------------------------------------------- fast paths

def _reference_pairs(value: str) -> tuple[tuple[str, str], ...]:
    """The plain reading of the rules of parse_cookie_header, one call per pair."""
    def unquote(t: str) -> str:
        t = t.strip()
        return t[1:-1] if len(t) >= 2 and t[0] == '"' and t[-1] == '"' else t
    out = []
    for piece in value.split(";"):
        if not piece.strip():
            continue
        name, sep, val = piece.partition("=")
        out.append((name.strip(), unquote(val)) if sep else ("", unquote(name)))
    return tuple(out)


_NAMES = ["SERVERID", "srv", "Server", "JSESSIONID", "PHPSESSID", "BIGipServerpool",
          "AWSALB", "AWSALBAPP-1", "route", "srv_id", "_TRAEFIK_BACKEND", "_ded76", "_ga", ""]
_VALUES = st.one_of(COOKIE_TEXT, st.sampled_from(
    ["s1", "s1~abc", '"s2~x"', "http://10.0.0.5:8080", "1677787402.36895.0000", "!enc",
     "a|b|c", " spaced ", '""', "é\xa0", "\x85x\x1c"]))
_HEADERS = st.lists(st.tuples(st.sampled_from(_NAMES), st.sampled_from(["=", " = ", "", "=="]),
                              _VALUES), max_size=8).map(
    lambda items: ";".join(f"{n}{sep}{v}" for n, sep, v in items))


@settings(max_examples=500)
@given(st.one_of(_HEADERS, COOKIE_TEXT, st.text(max_size=80)))
@example("_ga=1; JSESSIONID=s1~abc")               # each balancer kind, among others
@example('PHPSESSID="s2~x"; a=b')
@example("a=1; _ded76=http://10.0.0.5:8080")
@example("BIGipServerpool=1677787402.36895.0000")
@example("x=1;SERVERID=s1|a|b")
@example("srv=s3; AWSALBAPP-1=opaque")
@example("route=r1; srv_id=s9; _TRAEFIK_BACKEND=http://10.0.0.7:80")
@example("JSESSIONID=a; JSESSIONID=b; flag; =v")
@example('xJSESSIONID=1; a=JSESSIONID=2; JSESSIONIDx=3; JSESSIONID; JSESSIONID \t= "4" ')
def test_fast_cookie_readings_equal_the_plain_ones(header: str) -> None:
    """The inlined pair split, the balancer pre-check of header_backend_cookie and the
    early-exit value lookup give what the plain readings give."""
    from pcapstats.affinity.attribute import _first_value
    from pcapstats.affinity.cookies import _cookie_pairs, header_backend_cookie
    pairs = _reference_pairs(header)
    assert _cookie_pairs(header) == pairs
    assert header_backend_cookie(header) == request_backend_cookie(pairs)
    for name in {*_NAMES, *(n for n, _ in pairs)}:
        assert _first_value(header, name) == next((v for n, v in pairs if n == name), None)
