"""Helpers that tests, benchmarks and the demo share; never part of a serving product.

- :mod:`volact.testing.hosts`: activated host homes and in-memory hosts signed by
  a throw-away vendor key (no authority needed).
- :mod:`volact.testing.services`: real BIND 9 and PostgreSQL servers on loopback.
- :mod:`volact.testing.processes`: free ports, finding programs, stopping by PID.

Nothing in the product's runtime imports this package (``tests/test_architecture.py``
checks it): only ``tests/``, ``bench/`` and :mod:`volact.demo` do, so an install
can leave it out. Importing this package imports none of its modules.
"""
