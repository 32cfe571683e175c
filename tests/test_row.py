"""Connection rows as pcapstats._row.Row: dict-like, a third of a dict's size, and the
same rows as the dicts the pure-Python path makes."""

from __future__ import annotations

import gc
import json
import pickle
import subprocess
import sys
import weakref
from collections.abc import MutableMapping
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcapstats import pipeline
from pcapstats.pipeline import _ROW, Options, run

_row = pytest.importorskip("pcapstats._row", reason="the C helper is not built")
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SAMPLE = str(SAMPLES / "http-keepalive.pcap")
KEYS = list(_ROW)


def test_run_rows_are_rows_and_small() -> None:
    rows = run([SAMPLE], Options()).connections
    assert rows and all(type(r) is _row.Row for r in rows)
    assert all(isinstance(r, MutableMapping) for r in rows)
    # 52 values and a header, against 1,584 bytes for a dict of the 52 keys
    assert sys.getsizeof(rows[0]) <= 500 < sys.getsizeof(dict(rows[0]))
    assert sys.getsizeof(dict(rows[0])) > 1500


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.pcap*")))
def test_rows_equal_the_dict_rows(sample: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On every sample, the rows of a run equal, key for key and in order, the dicts
    made without the helper; and dict(row) gives json.dumps the same text."""
    path = [str(SAMPLES / sample)]
    rows = run(path, Options()).connections
    monkeypatch.setattr(pipeline, "_new_row", _ROW.copy)
    dicts = run(path, Options()).connections
    assert all(type(d) is dict for d in dicts) and len(rows) == len(dicts)
    assert rows == dicts and dicts == rows
    assert [list(r.items()) for r in rows] == [list(d.items()) for d in dicts]
    assert json.dumps([dict(r) for r in rows]) == json.dumps(dicts)
    if rows:
        assert rows[0] != {**dicts[0], "packets": -1}


def test_row_pickles_with_its_keys() -> None:
    r = _row.new()
    r.update(conn_id=7, client_ip="10.0.0.1", history="ShADad")
    del r["mss"]
    r["note"] = "beyond the layout"
    back = pickle.loads(pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(back) is _row.Row and back == r and list(back) == list(r)
    assert "mss" not in back and back["note"] == "beyond the layout"
    # rows of another layout (another version) come back as plain dicts of their keys
    assert _row.restore(("a", "b"), (1, 2), (1,), {"c": 3}) == {"a": 1, "c": 3}
    # the layout (rows read their values by position in it) cannot change its keys
    with pytest.raises(ValueError, match="other keys"):
        _row.layout(("a", "b"), (1, 2))
    _row.layout(tuple(_ROW), tuple(_ROW.values()))      # (the same again: allowed)
    assert _row.new() == _ROW


def test_rows_unpickle_in_a_process_without_the_layout(tmp_path: Path) -> None:
    """A process that never imported the pipeline (a Dask worker, say) reads rows back
    as rows of the keys they were pickled with."""
    rows = run([SAMPLE], Options()).connections
    path = tmp_path / "rows.pickle"
    path.write_bytes(pickle.dumps(rows))
    # the helper alone, under an empty stand-in for the package (which would import the
    # pipeline, and so set the layout)
    code = ("import importlib.util, json, pickle, sys, types\n"
            "sys.modules['pcapstats'] = types.ModuleType('pcapstats')\n"
            "spec = importlib.util.spec_from_file_location('pcapstats._row', sys.argv[2])\n"
            "mod = sys.modules['pcapstats._row'] = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(mod)\n"
            "rows = pickle.load(open(sys.argv[1], 'rb'))\n"
            "assert 'pcapstats.pipeline' not in sys.modules\n"
            "print(type(rows[0]).__name__, json.dumps([dict(r) for r in rows]))\n")
    out = subprocess.run([sys.executable, "-c", code, str(path), _row.__file__],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    name, _, dumped = out.stdout.partition(" ")
    assert name == "Row" and json.loads(dumped) == json.loads(json.dumps([dict(r) for r in rows]))


def test_row_is_tracked_only_holding_containers() -> None:
    r = _row.new()
    assert not gc.is_tracked(r)
    r["history"] = "Sh"
    assert not gc.is_tracked(r)

    class Probe:
        pass

    probe = Probe()
    gone = weakref.ref(probe)
    r["sni"] = [r, probe]               # a cycle through the row
    assert gc.is_tracked(r)
    del r, probe
    gc.collect()
    assert gone() is None


# the keys the property test uses: some of the layout's, and two beyond it
_SOME = st.sampled_from(KEYS[:6] + ["side", "extra", 7])
_VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.booleans())
_OPS = st.lists(st.one_of(
    st.tuples(st.just("set"), _SOME, _VALUES),
    st.tuples(st.just("del"), _SOME),
    st.tuples(st.just("pop"), _SOME, _VALUES),
    st.tuples(st.just("setdefault"), _SOME, _VALUES),
    st.tuples(st.just("get"), _SOME),
    st.tuples(st.just("update_dict"), st.dictionaries(_SOME, _VALUES, max_size=3)),
    st.tuples(st.just("update_pairs"), st.lists(st.tuples(_SOME, _VALUES), max_size=3)),
    st.tuples(st.just("update_mapping"), st.dictionaries(_SOME, _VALUES, max_size=3)),
    st.tuples(st.just("copy"),),
    st.tuples(st.just("or"), st.dictionaries(_SOME, _VALUES, max_size=3)),
    st.tuples(st.just("ior"), st.dictionaries(_SOME, _VALUES, max_size=3)),
    st.tuples(st.just("reversed"),),
    st.tuples(st.just("popitem"),),
    st.tuples(st.just("clear"),),
), max_size=25)


def _apply(m, op):
    kind, *args = op
    try:
        if kind == "set":
            m[args[0]] = args[1]
        elif kind == "del":
            del m[args[0]]
        elif kind == "pop":
            return m.pop(args[0], args[1]), m.pop(args[0], None)
        elif kind == "setdefault":
            return m.setdefault(args[0], args[1])
        elif kind == "get":
            return m.get(args[0]), args[0] in m
        elif kind == "update_dict":
            m.update(args[0])
        elif kind == "update_pairs":
            m.update(args[0])
        elif kind == "update_mapping":     # a mapping that is not a dict: its keys()
            m.update(MappingProxyType(args[0]))
        elif kind == "copy":
            return m.copy() == m
        elif kind == "or":                 # a new dict either way round
            return m | args[0], args[0] | m, type(m | args[0]), type(args[0] | m)
        elif kind == "ior":
            m |= args[0]
        elif kind == "reversed":           # (the order itself is compared at the end)
            return list(reversed(m)) == list(m)[::-1]
        elif kind == "popitem":            # the last pair in each one's own order
            last = list(m.items())[-1] if m else None
            return m.popitem() == last
        elif kind == "clear":
            m.clear()
        return None
    except KeyError as exc:
        return ("KeyError", exc.args)


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_row_behaves_as_a_dict(ops) -> None:
    row, d = _row.new(), _ROW.copy()
    for op in ops:
        if op[0] == "popitem" and list(row) != list(d):
            continue    # a layout key deleted and set again is back in its place in a row,
            #             last in a dict: the last pair then differs, by design
        assert _apply(row, op) == _apply(d, op), op
        assert row == d and len(row) == len(d) and set(row) == set(d)
        assert dict(row) == d and sorted(map(repr, row.items())) == sorted(map(repr, d.items()))
    # the keys of the layout keep the layout's order; keys beyond it follow, as added
    assert [k for k in row if k in _ROW] == [k for k in KEYS if k in d]
