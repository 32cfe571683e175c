"""Table exports: one file per table, as Parquet, CSV or JSON lines.

CSV cells that a spreadsheet would evaluate as a formula (starting with
``=``, ``+``, ``-``, ``@``, tab or carriage return) are prefixed with a
single quote, the OWASP-recommended neutralisation; Parquet and JSON lines
keep values exactly, with their dtypes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A string cell made inert for spreadsheets; other values unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_tables(analysis: Any, outdir: Path, fmt: str) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in analysis.tables().items():
        if fmt == "parquet":
            path = outdir / f"{name}.parquet"
            df.to_parquet(path, index=False)
        elif fmt == "csv":
            path = outdir / f"{name}.csv"
            safe = df.copy()
            for col in safe.columns:
                if str(safe[col].dtype) in ("string", "category", "object"):
                    safe[col] = safe[col].astype("object").map(neutralise)
            safe.to_csv(path, index=False)
        elif fmt == "jsonl":
            path = outdir / f"{name}.jsonl"
            df.to_json(path, orient="records", lines=True, date_format="iso", date_unit="ns")
        else:
            raise ValueError(fmt)
        written.append(path)
    return written
