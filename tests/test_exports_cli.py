"""Exports, column docs, JSON report and CLI conventions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import pcapstats
from pcapstats.cli import main
from pcapstats.frames import TABLES, column_docs
from pcapstats.report.exports import neutralise

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
LB = str(SAMPLES / "lb-both-sides.pcap")


@pytest.fixture(scope="module")
def lb() -> pcapstats.Analysis:
    return pcapstats.analyze(LB)


def test_every_column_of_every_table_is_documented(lb: pcapstats.Analysis) -> None:
    docs = column_docs()
    for name, df in lb.tables().items():
        assert list(df.columns) == [c[0] for c in TABLES[name]]
        for col in df.columns:
            assert len(docs[name][col]) > 10, f"{name}.{col} has no doc"


def test_contract_columns_exist(lb: pcapstats.Analysis) -> None:
    need = {
        "connections": "conn_id client_ip client_port server_ip server_port first_ts last_ts "
                       "packets bytes_client bytes_server syn synack handshake_complete "
                       "handshake_rtt_ns close closed_by conn_state history retransmissions "
                       "missed_bytes requests tls_version sni alpn tls_resumed",
        "requests": "conn_id depth method host uri version status ts_request ts_response "
                    "pipelined cookie set_cookie xff session backend side",
        "sessions": "session key requests backends primary_backend persistent",
    }
    for table, cols in need.items():
        assert set(cols.split()) <= set(lb.tables()[table].columns)


def test_dtypes(lb: pcapstats.Analysis) -> None:
    c = lb.connections
    assert str(c["first_ts"].dtype) == "datetime64[ns, UTC]"
    assert str(c["packets"].dtype) == "Int64"
    assert str(c["client_ip"].dtype) == "category"
    assert str(c["handshake_complete"].dtype) == "boolean"


def test_parquet_round_trips_with_dtypes(lb: pcapstats.Analysis, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["export", LB, "--format", "parquet", "-o", str(tmp_path), "-q"])
    assert res.exit_code == 0, res.output
    for name, df in lb.tables().items():
        back = pd.read_parquet(tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(back, df, check_categorical=False)
        assert list(back.dtypes.astype(str)) == list(df.dtypes.astype(str))


def test_csv_neutralises_formula_cells(tmp_path: Path) -> None:
    assert neutralise("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert neutralise("+1") == "'+1" and neutralise("@SUM(A1)") == "'@SUM(A1)"
    assert neutralise("plain") == "plain" and neutralise(5) == 5
    runner = CliRunner()
    res = runner.invoke(main, ["export", LB, "--format", "csv", "-o", str(tmp_path), "-q"])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "requests.csv").read_text()
    assert "\n=" not in text and ",=" not in text


def test_json_report_is_the_summary(lb: pcapstats.Analysis) -> None:
    res = CliRunner().invoke(main, ["report", LB, "--format", "json", "-q", "--no-files"])
    assert res.exit_code == 0
    res = CliRunner().invoke(main, ["report", LB, "--format", "json", "--no-files"])
    data = json.loads(res.output)
    assert data["schema_version"] == 1
    assert data["tcp"] == lb.summary["tcp"]
    assert data["http"]["requests"] == 26
    assert set(data) >= {"capture", "tcp", "udp", "http", "tls", "affinity", "warnings"}


def test_text_report_fits_80_columns() -> None:
    res = CliRunner().invoke(main, ["report", LB, "--no-files"])
    assert res.exit_code == 0
    assert "HTTP reuse" in res.output and "Persistence and backends" in res.output
    assert max(len(line) for line in res.output.splitlines()) <= 80


def test_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"\x00" * 40)
    res = CliRunner().invoke(main, ["report", str(bad), "--no-files"])
    assert res.exit_code == 3
    assert res.output.count("\n") == 1 and "x.pcap at byte 0" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["report", LB, "--session-key", "nonsense", "--no-files"])
    assert res.exit_code == 2 and "--session-key" in res.output
    res = CliRunner().invoke(main, ["report", str(SAMPLES / "broken-truncated.pcap"),
                                    "--no-files", "--strict", "-q"])
    assert res.exit_code == 1
    res = CliRunner().invoke(main, ["report", str(SAMPLES / "broken-truncated.pcap"),
                                    "--no-files"])
    assert res.exit_code == 0 and "at byte 1381" in res.output


def test_every_command_has_help() -> None:
    for cmd in main.commands:
        res = CliRunner().invoke(main, [cmd, "--help"])
        assert res.exit_code == 0 and len(res.output) > 100
    assert CliRunner().invoke(main, ["--version"]).output.strip().endswith(pcapstats.__version__)


def test_report_writes_json_and_html_under_reports(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["report", LB])
    assert res.exit_code == 0
    assert (tmp_path / "reports" / "lb-both-sides.json").is_file()
    assert (tmp_path / "reports" / "lb-both-sides.html").is_file()
