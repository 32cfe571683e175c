"""Build of the optional C helpers; everything else is in pyproject.toml.

``_fastpcap``: the record loop; ``_row``: connection rows that share their keys.
``optional=True``: without a C compiler the install still succeeds; the readers
then use their pure-Python loop (same records, slower) and rows are dicts (same
keys and values, about 1.1 kB more each).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("pcapstats._fastpcap", ["pcapstats/_fastpcap.c"], optional=True),
                   Extension("pcapstats._row", ["pcapstats/_row.c"], optional=True)])
