"""Settings reach a running host without a restart: the one reload mechanism.

Commands that change what a serving host does (``host set``, ``host dns`` and
``host rebalance``) save their file as before, then call :func:`notify`, which
sends :data:`RELOAD_SIGNAL` (SIGHUP, also systemd's ``ExecReload``) to the process
named in ``serve.json`` and says what it did, so the command can tell the
administrator plainly: applied now, restart needed, or no host running.

The serving process owns a :class:`Reloader`. On the signal it runs every hook
registered with :meth:`Reloader.add`, in order; each hook re-reads its own file
and applies it, and returns a short description of what it did. A hook that
raises a volact error is recorded as a ``reload_failed`` event and the host keeps
its previous settings for that part; the other hooks still run.

To hook a new setting (e.g. ``host rebalance``): save it in ``host.json`` (a
:class:`HostConfig` field, then it is applied by the ``settings`` hook) or in a
file of its own, register ``reloader.add("rebalance", hook)`` in
``host/server.py:serve_async`` next to the others, and call ``notify(home,
changed=[...])`` from the command. Settings that cannot change under a bound
socket (``port``, ``listen``) are in :data:`RESTART_SETTINGS`; ``notify`` reports
them as needing a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from volact.errors import ConfigurationError, VolactError
from volact.host.config import SERVE_FILE

#: The signal a serving host reloads its settings on (``systemctl reload``).
RELOAD_SIGNAL = signal.SIGHUP

#: Settings a running host takes only at a restart: its sockets are bound, and the
#: connection slots and the count's caps are sized when it starts.
RESTART_SETTINGS = frozenset({
    "port", "listen", "max_connections", "max_connections_per_address",
    "max_connections_per_network", "max_machines", "new_machines_per_hour",
})  # fmt: skip


@dataclass(frozen=True)
class Notice:
    """What :func:`notify` did, for the command's output."""

    pid: int | None  #: the serving process signalled (None: no host is running)
    restart_needed: tuple[str, ...]  #: changed settings that wait for a restart

    def to_json(self) -> dict[str, object]:
        return {
            "running_pid": self.pid,
            "reloaded": self.pid is not None,
            "restart_needed": bool(self.pid is not None and self.restart_needed),
            "restart_needed_for": list(self.restart_needed) if self.pid is not None else [],
        }

    def text(self) -> str:
        """One sentence for a person."""
        if self.pid is None:
            return "no host is serving on this home: it applies at the next start"
        if self.restart_needed:
            return (
                f"the running host (pid {self.pid}) reloaded its settings, but "
                f"{', '.join(self.restart_needed)} apply only after a restart "
                "(systemctl restart volact-host, or stop and start `volact host serve`)"
            )
        return f"applied to the running host (pid {self.pid}) without a restart"


def _serving_pid(home: Path) -> int | None:
    try:
        pid = int(json.loads((home / SERVE_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:
        return pid  # alive, another user's: the signal below says what to do
    except OSError:
        return None
    return pid


def notify(home: Path, changed: Iterable[str] = ()) -> Notice:
    """Ask the host serving ``home`` (if any) to reload; say what applies when."""
    pid = _serving_pid(home)
    restart = tuple(sorted(set(changed) & RESTART_SETTINGS))
    if pid is None:
        return Notice(None, restart)
    try:
        os.kill(pid, RELOAD_SIGNAL)
    except PermissionError:
        raise ConfigurationError(
            f"the settings are saved, but the running host (pid {pid}) belongs to another "
            f"user: reload it as that user or root (`systemctl reload volact-host` or "
            f"`kill -HUP {pid}`)"
        ) from None
    except ProcessLookupError:
        return Notice(None, restart)
    return Notice(pid, restart)


class Reloader:
    """The serving side: runs the registered hooks when :data:`RELOAD_SIGNAL` arrives."""

    def __init__(self, record_event: Callable[[str, str], None]) -> None:
        self._hooks: list[tuple[str, Callable[[], str]]] = []
        self._record = record_event

    def add(self, name: str, hook: Callable[[], str]) -> None:
        """Run ``hook`` on every reload; it returns what it applied, in a few words."""
        self._hooks.append((name, hook))

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Handle the signal in ``loop`` (a no-op where signals cannot be handled)."""
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(RELOAD_SIGNAL, self.reload)

    def reload(self) -> None:
        """Run every hook; record one event per outcome. Never raises."""
        done = []
        for name, hook in self._hooks:
            try:
                done.append(f"{name}: {hook()}")
            except VolactError as exc:
                self._record("reload_failed", f"{name}: {exc} (previous settings kept)")
        if done:
            self._record("reload", "; ".join(done))


__all__ = ["RELOAD_SIGNAL", "RESTART_SETTINGS", "Notice", "Reloader", "notify"]
