"""The real servers tests run (BIND 9, PostgreSQL): re-exported from :mod:`volact.testing.services`,
which the demo and the benchmarks use too."""

from volact.testing.processes import (
    ServiceError,
    ServiceMissing,
    find_program,
    free_port,
    ipv6_loopback_available,
)
from volact.testing.services import Bind9, Postgres

__all__ = [
    "Bind9",
    "Postgres",
    "ServiceError",
    "ServiceMissing",
    "find_program",
    "free_port",
    "ipv6_loopback_available",
]
