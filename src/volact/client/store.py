"""A client's state on disk: one checksummed state file, written atomically, and an event log.

Home directory layout::

    profile.json    the product profile copied at ``init`` (the CLI's trust root)
    state.json      "volact-client-state 1 <sha256 of the body>\\n" + JSON body
    events.jsonl    one JSON object a line; rotated to events.jsonl.1 past 1 MiB
    .lock           taken (flock) around every read-modify-write

The home is 0700 and every file in it 0600 (the state holds the installed product
key in full, and a MAK is a secret); a file written by an older version with wider
modes is narrowed the next time it is written.

Writes go to a temporary file in the same directory, are fsynced, then renamed over
the old file (and the directory fsynced): a crash leaves the old state or the new,
never a mix. What the bytes of ``state.json`` mean, and why editing them cannot
extend a license, is :mod:`volact.client.state`'s business (its codec and
:func:`~volact.client.state.reverify`, applied on every load). This module does
file I/O only: no licensing decision, no clock.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from volact.client.state import ClientState, decode_state, encode_state, reverify
from volact.errors import ConfigurationError, StoreError
from volact.files import release_lock, take_lock, write_atomic
from volact.profile import ProductProfile

STATE_FILE = "state.json"
PROFILE_FILE = "profile.json"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = ".lock"
#: A home and its files are the owner's only: the state holds the installed key (a
#: MAK is a secret), the log names hosts and the machine's workstation name.
HOME_MODE = 0o700
FILE_MODE = 0o600
#: The event log is rotated (one old generation kept) past this size.
EVENTS_MAX_BYTES = 1 << 20


class ClientStore:
    """The files of one client home."""

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home)

    @property
    def state_path(self) -> Path:
        return self.home / STATE_FILE

    @property
    def profile_path(self) -> Path:
        return self.home / PROFILE_FILE

    @property
    def events_path(self) -> Path:
        return self.home / EVENTS_FILE

    def exists(self) -> bool:
        return self.state_path.exists()

    def create_home(self) -> list[Path]:
        """Make the home (0700) and its missing parents; the folders made, outermost
        first, for :meth:`remove_created` to undo a failed ``init``.

        An existing client home (``init --force``) or empty folder is narrowed to 0700
        too; one that holds other files is left as it is (the home's own files are
        owner-only regardless).
        """
        missing = [p for p in (self.home, *self.home.parents) if not p.exists()][::-1]
        try:
            for folder in missing[:-1]:
                folder.mkdir(exist_ok=True)
            if self.home in missing:
                self.home.mkdir(mode=HOME_MODE, exist_ok=True)
            elif self.exists() or not any(self.home.iterdir()):
                os.chmod(self.home, HOME_MODE)
        except OSError as exc:
            self.remove_created(missing)
            raise ConfigurationError(f"cannot create {self.home}: {exc.strerror}") from exc
        return missing

    def remove_created(self, created: list[Path]) -> None:
        """Undo a failed ``init``: the home's own files, then the folders it made."""
        if self.home in created:
            for name in (STATE_FILE, PROFILE_FILE, EVENTS_FILE, LOCK_FILE):
                with contextlib.suppress(OSError):
                    (self.home / name).unlink()
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: nothing but ours is ever removed

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the home's lock (other processes using this home wait)."""
        try:
            fd = take_lock(self.home / LOCK_FILE, wait=True, mode=FILE_MODE, record_pid=False)
        except FileNotFoundError:
            raise ConfigurationError(
                f"{self.home} is not a client home: run `volact client init --home {self.home}`"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot open the lock in {self.home}: {exc.strerror}") from exc
        try:
            yield
        finally:
            release_lock(fd)

    def read_raw(self) -> ClientState:
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(
                f"{self.home} is not a client home: run `volact client init --home {self.home}`"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot read {self.state_path}: {exc.strerror}") from exc
        return decode_state(data)

    def load(self, profile: ProductProfile) -> ClientState:
        """The state, checked byte for byte and re-verified against ``profile``."""
        return reverify(self.read_raw(), profile)

    def save(self, state: ClientState) -> None:
        write_atomic(self.state_path, encode_state(state), mode=FILE_MODE, error=StoreError)

    def load_profile(self) -> ProductProfile:
        try:
            data = self.profile_path.read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(
                f"{self.home} has no product profile: run `volact client init --home "
                f"{self.home} --profile FILE`"
            ) from None
        except OSError as exc:
            raise ConfigurationError(f"cannot read {self.profile_path}: {exc.strerror}") from exc
        return ProductProfile.loads(data)

    def save_profile(self, profile: ProductProfile) -> None:
        write_atomic(self.profile_path, profile.dumps(), mode=FILE_MODE, error=StoreError)

    def append_event(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, sort_keys=True, default=str) + "\n"
        try:
            with contextlib.suppress(FileNotFoundError):
                if self.events_path.stat().st_size > EVENTS_MAX_BYTES:
                    os.replace(self.events_path, self.events_path.with_name(EVENTS_FILE + ".1"))
            fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            os.fchmod(fd, FILE_MODE)  # a log from an older version may be wider
            with open(fd, "a", encoding="utf-8") as f:
                f.write(line)
        except OSError as exc:
            raise StoreError(f"cannot append to {self.events_path}: {exc.strerror}") from exc

    def events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Logged events, oldest first (the rotated generation included)."""
        out: list[dict[str, Any]] = []
        for path in (self.events_path.with_name(EVENTS_FILE + ".1"), self.events_path):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
            for line in text.splitlines():
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue  # a torn last line after a crash
                if isinstance(obj, dict):
                    out.append(obj)
        return out if limit is None else out[-limit:]
