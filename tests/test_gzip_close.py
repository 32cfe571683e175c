"""Reading a gzip capture closes the file under the decompressor too: GzipFile does not
close a file object it was given, which left one descriptor per file to the garbage
collector (a ResourceWarning; with many rotated files, open descriptors pile up)."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

from pcapstats import analyze

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "gzip.pcap.gz"


def test_gzip_capture_leaves_no_file_open() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        a = analyze([str(SAMPLE), str(SAMPLE)])
        gc.collect()
    assert a.result.files[0].compressed and a.result.packets > 0
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
