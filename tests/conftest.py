"""Shared pytest fixtures: real BIND 9 and PostgreSQL servers, one of each per session.

A missing server program skips the tests that need it, with an install hint; under
``CI=true`` it fails them instead, so CI cannot pass by skipping. Tests that use a
fixture here get its marker (``bind``, ``postgres``) so ``-m "not bind"`` works.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from services import Bind9, Postgres, ServiceMissing

_FIXTURE_MARKERS = {"bind9": "bind", "postgres": "postgres"}

#: Session servers, restarted before each test if a previous test left one stopped.
_session_services: list[Bind9 | Postgres] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _missing(exc: ServiceMissing) -> None:
    if _in_ci():
        pytest.fail(f"{exc} (CI=true: the CI host must provide it; run `make deps`)")
    pytest.skip(f"{exc} (or run `make deps` as root)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in _FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for service in _session_services:
        service.start()  # no-op when running; same port and data when not


@pytest.fixture(scope="session")
def bind9() -> Iterator[Bind9]:
    """A real ``named`` on 127.0.0.1/::1 serving ``corp.example.`` and ``branch.example.``.

    One server per session, shared: add records under names of your own. A test may
    stop it; it is started again (same port, same data) before the next test.
    """
    try:
        server = Bind9()
    except ServiceMissing as exc:
        _missing(exc)
        raise  # unreachable: _missing always raises
    try:
        server.start()
        _session_services.append(server)
        yield server
    finally:
        if server in _session_services:
            _session_services.remove(server)
        server.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL with an empty database; ``postgres.url`` is for SQLAlchemy.

    One server per session, shared; ``postgres.create_database(name)`` gives a test a
    database of its own. A stopped server is started again before the next test.
    """
    try:
        server = Postgres()
    except ServiceMissing as exc:
        _missing(exc)
        raise
    try:
        server.start()
        _session_services.append(server)
        yield server
    finally:
        if server in _session_services:
            _session_services.remove(server)
        server.close()
