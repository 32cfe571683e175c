"""--session-key tls: TLS sessions as the session key, and resumptions refused elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

import pcapstats
from pcapstats.affinity.attribute import _tls_views

SHARED = Path(__file__).resolve().parents[2] / "shared" / "captures"


def _conn(cid: int, ts: int, side: str, cip: str, sip: str, sess: str, resumed: bool) -> dict:
    return {"conn_id": cid, "first_ts": ts, "side": side, "client_ip": cip, "client_port": 40000 + cid,
            "server_ip": sip, "server_port": 443, "app": "tls", "tls_session": sess,
            "sni": "shop.example", "tls_resumed": resumed}


def test_passthrough_roundrobin_refuses_resumption_on_another_backend() -> None:
    # a client resumes one session three times through a TCP-mode proxy (10.0.0.10);
    # the proxy forwards each connection to the next backend; only the first backend knows it
    conns = []
    backends = ["10.0.2.1", "10.0.2.2", "10.0.2.1", "10.0.2.3"]
    resumed = [False, False, True, False]
    for i, (b, r) in enumerate(zip(backends, resumed)):
        conns.append(_conn(2 * i, 1000 * i, "client", "10.0.1.5", "10.0.0.10", "sid:ab", r))
        conns.append(_conn(2 * i + 1, 1000 * i + 5, "backend", "10.0.0.10", b, "sid:ab", r))
    views, fig = _tls_views(conns)
    assert [v.backend for v in views] == [f"{b}:443" for b in backends]
    assert fig == {"connections": 4, "resumptions_offered_again": 3,
                   "resumption_failed_other_backend": 2, "resumption_failed_same_backend": 0}


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared captures folder {SHARED} is absent")
def test_tls_key_on_a_public_capture() -> None:
    a = pcapstats.analyze(str(SHARED / "sv-tls12-session-id-resumption.pcap"), session_key="tls")
    aff = a.summary["affinity"]
    assert aff["session_key"] == "tls"
    assert aff["sessions"] == 4 and len(a.sessions) == 4
    assert aff["persistence_sessions"] == {"numerator": 1, "denominator": 1, "value": 1.0}
    assert aff["tls"]["resumptions_offered_again"] == 1
    assert aff["tls"]["resumption_failed_other_backend"] == 0
