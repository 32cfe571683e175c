"""Real-traffic test bed: load-balanced HTTP on loopback (HAProxy + nginx), recorded by tcpdump,
with HAProxy's own log as truth. See lab.py (the lab), clients.py, scenarios.py (Recording,
record_scenario, SCENARIOS), truth.py (log -> truth), expected.py (figures pcapstats must match).
"""

from .lab import Endpoint, Lab, LabError, LabSpec, ensure_packages, missing_binaries
from .scenarios import SCENARIOS, LabAddresses, Recording, load_recording, record_scenario
from .truth import LogRecord, PersistenceTruth, Truth, compute_truth, parse_haproxy_log

__all__ = [
    "Endpoint", "Lab", "LabAddresses", "LabError", "LabSpec", "LogRecord", "PersistenceTruth",
    "Recording", "SCENARIOS", "Truth", "compute_truth", "ensure_packages", "load_recording",
    "missing_binaries", "parse_haproxy_log", "record_scenario",
]
