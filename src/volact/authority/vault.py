"""The authority's home directory: the vendor root key and the vendor's public facts.

Layout of ``HOME``::

    vendor-key.pem    the vendor's Ed25519 private key, mode 0600, optionally encrypted
    authority.json    vendor name, vendor public key, catalog, default database URL
    authority.db      the SQLite store (unless a PostgreSQL URL is configured)
    serve.json        the address a running ``volact authority serve`` listens on
    serve.lock        held (flock) by the one ``serve`` running on this home; its pid

This module reads and writes those files and nothing else; it never overwrites a
vendor key (losing it would orphan every license the vendor ever signed). The
activation rules live in :mod:`volact.authority.rules`, the store in
:mod:`volact.authority.db`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volact.catalog import Catalog
from volact.errors import ConfigurationError
from volact.files import LockHeld, release_lock, take_lock, write_atomic
from volact.keys import ProductKey
from volact.profile import ProductProfile
from volact.signing import SigningKey, key_id

KEY_FILE = "vendor-key.pem"
CONFIG_FILE = "authority.json"
DB_FILE = "authority.db"
SERVE_FILE = "serve.json"
LOCK_FILE = "serve.lock"
#: Files a failed ``init`` may have created (SQLite's side files included).
INIT_FILES = (KEY_FILE, CONFIG_FILE, DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm",
              DB_FILE + "-journal")  # fmt: skip
CONFIG_FORMAT = "volact-authority"
CONFIG_VERSION = 1


@dataclass(frozen=True)
class AuthorityHome:
    """An initialised authority home (its public facts; the private key stays on disk)."""

    path: Path  #: the home directory
    vendor: str  #: the vendor's display name
    vendor_public_key: bytes  #: raw Ed25519 public key
    catalog: Catalog  #: products, SKUs and groups
    encrypted: bool  #: whether the key file needs a passphrase
    database: str | None = None  #: configured database URL; None means SQLite in the home

    @property
    def vendor_key_id(self) -> bytes:
        return key_id(self.vendor_public_key)

    @property
    def database_url(self) -> str:
        return self.database or sqlite_url(self.path)

    def gvlks(self) -> dict[Any, str]:
        """SKU id → the SKU's GVLK text for this vendor."""
        return {
            s.id: ProductKey.derive_gvlk(self.vendor_public_key, s.id.bytes).text
            for s in self.catalog.skus
        }

    def profile(
        self, *, authority_url: str | None = None, revocations: bytes | None = None
    ) -> ProductProfile:
        return ProductProfile(
            vendor=self.vendor,
            vendor_public_key=self.vendor_public_key,
            catalog=self.catalog,
            gvlks=self.gvlks(),
            authority_url=authority_url,
            revocations=revocations,
        )

    def signing_key(self, passphrase: bytes | None = None) -> SigningKey:
        """The vendor key; ``passphrase`` when the key file is encrypted."""
        path = self.path / KEY_FILE
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the vendor key {path}: {exc.strerror}") from exc
        if self.encrypted and not passphrase:
            raise ConfigurationError(
                "the vendor key is passphrase-protected: give --passphrase-file"
            )
        key = SigningKey.from_pem(data, passphrase if self.encrypted else None)
        if key.public_key != self.vendor_public_key:
            raise ConfigurationError(f"{path} does not match the public key in {CONFIG_FILE}")
        return key

    @classmethod
    def init(
        cls,
        path: Path,
        *,
        vendor: str,
        catalog: Catalog,
        passphrase: bytes | None = None,
        database: str | None = None,
    ) -> AuthorityHome:
        """Create a new vendor key and config; refuse if the home already holds one."""
        check_new_home(path, vendor)
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigurationError(f"cannot create {path}: {exc.strerror}") from exc
        key = SigningKey.generate()
        home = cls(path, vendor, key.public_key, catalog, bool(passphrase), database)
        _write_exclusive(path / KEY_FILE, key.to_pem(passphrase), 0o600)
        try:
            # A database URL may carry its password: then the owner alone reads it.
            secret = database is not None and "@" in database.partition("://")[2]
            mode = 0o600 if secret else 0o644
            _write_exclusive(path / CONFIG_FILE, home._config_text().encode(), mode)
        except ConfigurationError:
            (path / KEY_FILE).unlink(missing_ok=True)
            raise
        return home

    def _config_text(self) -> str:
        obj = {
            "format": CONFIG_FORMAT,
            "version": CONFIG_VERSION,
            "vendor": self.vendor,
            "vendor_public_key": base64.b64encode(self.vendor_public_key).decode(),
            "encrypted": self.encrypted,
            "database": self.database,
            "catalog": self.catalog.to_json(),
        }
        return json.dumps(obj, indent=2) + "\n"

    @classmethod
    def open(cls, path: Path) -> AuthorityHome:
        cfg = path / CONFIG_FILE
        try:
            text = cfg.read_text()
        except FileNotFoundError:
            raise ConfigurationError(
                f"{path} is not an authority home (no {CONFIG_FILE}): "
                "run `volact authority init --home DIR` first"
            ) from None
        except OSError as exc:
            raise ConfigurationError(f"cannot read {cfg}: {exc.strerror}") from exc
        try:
            obj = json.loads(text)
            if obj.get("format") != CONFIG_FORMAT or obj.get("version") != CONFIG_VERSION:
                raise ConfigurationError(f"{cfg} is not a volact authority config")
            pub = base64.b64decode(obj["vendor_public_key"], validate=True)
            if len(pub) != 32:
                raise ConfigurationError(f"{cfg} is damaged: vendor_public_key must be 32 bytes")
            return cls(
                path,
                str(obj["vendor"]),
                pub,
                Catalog.from_json(obj["catalog"]),
                bool(obj.get("encrypted", False)),
                obj.get("database") or None,
            )
        except ConfigurationError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise ConfigurationError(f"{cfg} is damaged: {exc}") from exc


def sqlite_url(path: Path) -> str:
    """The URL of the default store: SQLite in the home."""
    return f"sqlite:///{(path / DB_FILE).resolve()}"


def check_new_home(path: Path, vendor: str) -> None:
    """Refuse a bad vendor name, or a home that already holds a key or config."""
    if not vendor.strip() or len(vendor) > 200:
        raise ConfigurationError("the vendor name must be 1..200 characters")
    for name in (KEY_FILE, CONFIG_FILE):
        if (path / name).exists():
            raise ConfigurationError(
                f"{path / name} already exists: this home is initialised; "
                "refusing to replace a vendor key (use another --home)"
            )


@contextmanager
def new_home(path: Path) -> Iterator[None]:
    """Create ``path`` (and its missing parents) for ``init``; undo it all on failure.

    If the body raises, the home's files that did not exist before (:data:`INIT_FILES`)
    are removed, then the directories this created, so a failed ``init`` leaves
    nothing behind and can simply be run again. Files that were there before are
    never touched.
    """
    path = Path(os.path.abspath(path))
    created: list[Path] = []
    d = path
    while not d.exists() and d != d.parent:
        created.append(d)
        d = d.parent
    before = {name for name in INIT_FILES if (path / name).exists()}
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        _remove_dirs(created)
        raise ConfigurationError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        yield
    except BaseException:
        for name in INIT_FILES:
            if name not in before:
                with suppress(OSError):
                    (path / name).unlink(missing_ok=True)
        _remove_dirs(created)
        raise


def _remove_dirs(created: list[Path]) -> None:
    for d in created:  # deepest first; a directory someone filled meanwhile stays
        try:
            d.rmdir()
        except OSError:
            break


def _write_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the first byte; fail if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigurationError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(path, mode)  # the umask may have narrowed it; never widened past mode
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror}") from exc


def lock_serving(path: Path) -> int:
    """Take the home's serving lock (``serve.lock``); refuse if another serve holds it.

    One ``serve`` per home: a second one would overwrite ``serve.json`` and, when
    stopped, delete it under the first. The lock is an ``flock`` on an open file,
    so it goes away with the process however it ends. Returns the descriptor to
    pass to :func:`unlock_serving`.
    """
    lock = path / LOCK_FILE
    try:
        return take_lock(lock)
    except LockHeld as held:
        raise ConfigurationError(
            f"another `volact authority serve` (pid {held.holder}) is running on {path}; "
            "stop it first, or give each serve a home of its own"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot open {lock}: {exc.strerror}; serve needs a writable home"
        ) from exc


def unlock_serving(fd: int) -> None:
    release_lock(fd)


def remove_serve_file(path: Path, pid: int) -> None:
    """Remove ``serve.json`` if it is the one process ``pid`` wrote, never another's."""
    serve_file = path / SERVE_FILE
    try:
        info = json.loads(serve_file.read_text())
    except (OSError, ValueError):
        return
    if isinstance(info, dict) and info.get("pid") == pid:
        serve_file.unlink(missing_ok=True)


def write_file(path: Path, text: str) -> None:
    """Write an output file atomically (a reader never sees half of it)."""
    write_atomic(path, text)
