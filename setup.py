"""Build of the optional C record loop; everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and the
readers use their pure-Python loop (same records, slower).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("pcapstats._fastpcap", ["pcapstats/_fastpcap.c"], optional=True)])
