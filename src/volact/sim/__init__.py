"""The fleet simulator and capacity planner (``volact simulate``, ``volact plan``).

It runs volact's own sans-I/O cores (the host's counting and decisions, the
client's state machine and attempt planner) in simulated time: see
:mod:`volact.sim.engine`. Nothing in ``volact.host`` or ``volact.client`` imports
this package.
"""

from __future__ import annotations

from volact.sim.engine import SimResult, Simulation, StandInKey
from volact.sim.scenario import (
    Action,
    HostSpec,
    Population,
    Scenario,
    Unreachable,
    case_study,
    load_scenario,
    parse_scenario,
    simple_fleet,
)

__all__ = [
    "Action",
    "HostSpec",
    "Population",
    "Scenario",
    "SimResult",
    "Simulation",
    "StandInKey",
    "Unreachable",
    "case_study",
    "load_scenario",
    "parse_scenario",
    "simple_fleet",
]
