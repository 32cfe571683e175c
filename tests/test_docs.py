"""The documentation runs: generated references match the code, every example works.

- docs/columns.md is exactly ``pcapstats columns --format markdown``
  (regenerate: ``pcapstats columns --format markdown > docs/columns.md``);
- every line of a ```sh block in docs/*.md that starts with ``pcapstats``
  runs (click's CliRunner, in a temporary folder) and exits 0, or with the
  status its trailing ``# exits N`` comment gives;
- every ```python block of docs/guide.md runs, in order, in one namespace
  (like a notebook);
- capture names in examples are placeholders (listed at the top of the
  guide) replaced by bundled samples: ``PLACEHOLDERS`` below; an example
  naming any other capture fails, so the convention cannot drift;
- every summary key is defined in docs/figures.md;
- the guide's snaplen claims hold on the samples.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

import pcapstats
from pcapstats.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SAMPLES = ROOT / "samples"
PLACEHOLDERS = {
    "lb.pcap": "lb-both-sides.pcap",
    "web.pcap": "http-keepalive.pcap",
    "before.pcap": "lb-both-sides.pcap",
    "after.pcap": "http-keepalive.pcap",
    "lb.pcap*": "rotated-*.pcap",
    "cut.pcap": "snaplen.pcap",
}
_CAPTURE_WORD = re.compile(r"\.pcap|\.pcapng|\.cap\b")
_EXITS = re.compile(r"#.*\bexits? (\d+)")


def _blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", path.read_text(encoding="utf-8"),
                      re.M | re.S)


def _commands() -> list[tuple[str, str]]:
    out = []
    for md in sorted(DOCS.glob("*.md")):
        for block in _blocks(md, "sh"):
            for line in block.splitlines():
                if line.strip().startswith("pcapstats"):
                    out.append((md.name, line.strip()))
    return out


def _sample(word: str) -> list[str]:
    if word not in PLACEHOLDERS:
        raise AssertionError(f"capture {word!r} in an example is not a placeholder; use one "
                             f"of {sorted(PLACEHOLDERS)} (see the top of docs/guide.md)")
    return sorted(glob.glob(str(SAMPLES / PLACEHOLDERS[word])))


def test_columns_reference_is_generated() -> None:
    res = CliRunner().invoke(main, ["columns", "--format", "markdown"])
    assert res.exit_code == 0
    assert (DOCS / "columns.md").read_text(encoding="utf-8") == res.output, \
        "docs/columns.md is stale: pcapstats columns --format markdown > docs/columns.md"


def test_the_guide_has_examples() -> None:
    cmds = _commands()
    assert len(cmds) >= 10
    assert any("compare" in c for _, c in cmds) and any("--redact" in c for _, c in cmds)
    assert len(_blocks(DOCS / "guide.md", "python")) >= 5


@pytest.mark.parametrize("doc,line", _commands(),
                         ids=[" ".join(shlex.split(c, comments=True)) for _, c in _commands()])
def test_sh_example_runs(doc: str, line: str, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    m = _EXITS.search(line)
    expected = int(m.group(1)) if m else 0
    words = shlex.split(line, comments=True)
    assert words[0] == "pcapstats"
    args: list[str] = []
    for w in words[1:]:
        args += _sample(w) if _CAPTURE_WORD.search(w) else [w]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PCAPSTATS_REDACT_KEY", raising=False)
    res = CliRunner().invoke(main, args)
    assert res.exit_code == expected, f"{doc}: {line}\n{res.output}{res.exception!r}"


def test_python_recipes_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    quoted = re.compile(r"""(["'])([^"'\n]*(?:\.pcap|\.pcapng)[^"'\n]*)\1""")

    def sub(m: re.Match[str]) -> str:
        files = _sample(m.group(2))
        return repr(files[0] if len(files) == 1 else files)

    namespace: dict[str, object] = {"__name__": "guide"}
    for i, block in enumerate(_blocks(DOCS / "guide.md", "python"), 1):
        code = compile(quoted.sub(sub, block), f"<guide recipe {i}>", "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation
    out = capsys.readouterr().out
    assert "cookie-missing" in out                     # recipe 2 found lb's break
    assert (tmp_path / "requests-redacted.csv").exists()


def _keys_documented(summary: dict, text: str) -> list[str]:
    missing = []
    for section, value in summary.items():
        if isinstance(value, dict) and section not in ("tool", "redaction"):
            for key in value:
                if f"`{section}.{key}`" not in text:
                    missing.append(f"{section}.{key}")
        elif f"`{section}`" not in text:
            missing.append(section)
    return missing


def test_every_summary_figure_is_defined() -> None:
    text = (DOCS / "figures.md").read_text(encoding="utf-8")
    for sample in ("lb-both-sides.pcap", "http-keepalive.pcap"):
        a = pcapstats.analyze(str(SAMPLES / sample), redact=True)
        assert _keys_documented(a.summary, text) == []


def test_links_between_docs_resolve() -> None:
    for md in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", md.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (md.parent / target).exists(), f"{md.name} links to missing {target}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/guide.md" in readme.split("## Set-up")[0]


# ----------------------------------------------------------------- snaplen claims

def _cut(src: Path, dst: Path, snaplen: int) -> None:
    """Rewrite a classic little-endian pcap as if captured with ``-s snaplen``."""
    data = src.read_bytes()
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    out = bytearray(data[:24])
    struct.pack_into("<I", out, 16, snaplen)
    off = 24
    while off < len(data):
        sec, frac, incl, orig = struct.unpack_from("<IIII", data, off)
        frame = data[off + 16: off + 16 + incl][:snaplen]
        out += struct.pack("<IIII", sec, frac, len(frame), orig) + frame
        off += 16 + incl
    dst.write_bytes(bytes(out))


def _figures(a: pcapstats.Analysis) -> tuple:
    af, h = a.summary["affinity"], a.summary["http"]
    return (af["session_key"], af["persistence_sessions"], af["persistence_requests"],
            af["breaks"], af["break_causes"], af["requests_without_session"], h["requests"],
            h["reuse"], af["multiplexing_ratio"], h["keepalive_timeout_ms"]["closed_by_server"])


@pytest.mark.parametrize("sample,key", [("lb-both-sides.pcap", "auto"),
                                        ("http-keepalive.pcap", "cookie:session")])
def test_snaplen_512_keeps_every_persistence_figure(sample: str, key: str,
                                                    tmp_path: Path) -> None:
    full = pcapstats.analyze(str(SAMPLES / sample), session_key=key)
    _cut(SAMPLES / sample, tmp_path / "cut.pcap", 512)
    cut = pcapstats.analyze(str(tmp_path / "cut.pcap"), session_key=key)
    assert _figures(cut) == _figures(full)
    assert cut.summary["tcp"]["missed_bytes"] > 0 == full.summary["tcp"]["missed_bytes"]
    assert any("gaps" in w for w in cut.summary["warnings"])


def test_snaplen_256_cuts_cookies_but_keeps_requests(tmp_path: Path) -> None:
    sample = SAMPLES / "http-keepalive.pcap"
    full = pcapstats.analyze(str(sample), session_key="cookie:session")
    _cut(sample, tmp_path / "cut.pcap", 256)
    cut = pcapstats.analyze(str(tmp_path / "cut.pcap"), session_key="cookie:session")
    assert full.summary["affinity"]["persistence_sessions"]["denominator"] == 1
    assert cut.summary["affinity"]["persistence_sessions"]["denominator"] == 0
    assert cut.summary["affinity"]["requests_without_session"] \
        > full.summary["affinity"]["requests_without_session"]
    assert cut.requests["cookie"].isna().all()
    assert cut.summary["http"]["requests"] >= full.summary["http"]["requests"] - 1


def test_placeholders_point_at_shipped_samples() -> None:
    for word in PLACEHOLDERS:
        assert _sample(word), word
    assert os.path.basename(_sample("lb.pcap*")[0]).startswith("rotated-")
