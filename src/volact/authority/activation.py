"""The authority in one object: home + vendor key + store + rules, for any front end.

The HTTP API (:mod:`volact.authority.api`) and the file commands (``volact
authority activate-host`` / ``mak-activate``) both call :class:`Authority`, so an
answer by file and an answer over HTTP follow the same rules and consume the
same activations. It signs only after the store committed the activation: a
license or confirmation that went out is always on record. The clock is passed
in; no HTTP here.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from volact.authority import rules
from volact.authority.db import Store, cmid_of
from volact.authority.vault import AuthorityHome, check_new_home, new_home, sqlite_url
from volact.catalog import Catalog
from volact.documents import RevocationList
from volact.errors import ConfigurationError, StoreError, VolactError
from volact.exchanges import (
    HostActivationRequest,
    HostActivationResponse,
    MakRequest,
    MakResponse,
)
from volact.keys import KeyKind, ProductKey
from volact.signing import SigningKey


def hash_token(token: str) -> str:
    """How admin tokens are stored: only their SHA-256 (hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "vat_" + secrets.token_urlsafe(32)


class Authority:
    """Activations, keys, tokens and revocations for one vendor."""

    def __init__(self, home: AuthorityHome, store: Store, vendor_key: SigningKey) -> None:
        if vendor_key.public_key != home.vendor_public_key:
            raise ConfigurationError("the vendor key does not match the authority home")
        self.home = home
        self.store = store
        self.vendor_key = vendor_key

    # ------------------------------------------------------------------ keys

    def issue_key(
        self,
        kind: KeyKind,
        group: str,
        *,
        activations: int | None,
        reactivations: int | None,
        now: int,
    ) -> rules.KeyRecord:
        return issue_key(
            self.home, self.store, kind, group,
            activations=activations, reactivations=reactivations, now=now,
        )  # fmt: skip

    # ------------------------------------------------------------------ activations

    def activate_host(
        self, req: HostActivationRequest, *, now: int, key: ProductKey | None = None
    ) -> HostActivationResponse:
        """A license, or raise the :class:`Refusal` / key error that says why not.

        ``key`` is the request's host key already parsed, if the caller parsed it.
        """
        if key is None:
            key = rules.parse_key(req.host_key, KeyKind.HOST)
        else:
            rules.expect_kind(key, KeyKind.HOST)
        rec, _ = self.store.activate_host(req, key, now=now)
        lic = rules.host_license(self.home.vendor_key_id, rec, req, self.home.catalog, now)
        return HostActivationResponse(lic.sign(self.vendor_key))

    def activate_mak(
        self, req: MakRequest, *, now: int, key: ProductKey | None = None
    ) -> MakResponse:
        """A confirmation, or raise the :class:`Refusal` / key error that says why not."""
        key = rules.check_mak_request(req, self.home.catalog, key)
        rec, _ = self.store.activate_mak(req, key, self.home.catalog, now=now)
        conf = rules.mak_confirmation(self.home.vendor_key_id, rec, req, now)
        return MakResponse(req.cmid, conf.sign(self.vendor_key))

    def activate_mak_batch(
        self, items: Sequence[Any], *, now: int, keys: rules.KeyParser | None = None
    ) -> list[MakResponse]:
        """One answer per item, in order: a confirmation or a precise error.

        Items that pass the store-free checks are applied in one transaction, so a
        proxy batch costs one commit, not one per machine. ``keys`` is the parser
        the caller already used on the batch's keys (each key is parsed once).
        """
        if len(items) > rules.BATCH_LIMIT:
            raise rules.TooLarge(f"a batch carries at most {rules.BATCH_LIMIT} requests; split it")
        parser = rules.KeyParser() if keys is None else keys
        out: list[MakResponse | None] = [None] * len(items)
        todo: list[tuple[int, MakRequest, ProductKey]] = []
        for i, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise rules.MalformedRequest("each batch item must be a MAK request object")
                req = MakRequest.from_json(item)
                parsed = parser.parse(req.mak)
                if isinstance(parsed, VolactError):  # shared by every item with this text
                    out[i] = _error(item, parsed.code, str(parsed))
                    continue
                todo.append((i, req, rules.check_mak_request(req, self.home.catalog, parsed)))
            except ConfigurationError as exc:
                out[i] = _error(item, rules.MalformedRequest.code, str(exc))
            except VolactError as exc:
                out[i] = _error(item, exc.code, str(exc))
        applied = self.store.activate_mak_many(
            [(req, key) for _, req, key in todo], self.home.catalog, now=now
        )
        for (i, req, _), result in zip(todo, applied, strict=True):
            if isinstance(result, VolactError):
                out[i] = MakResponse(req.cmid, None, result.code, str(result))
            else:
                conf = rules.mak_confirmation(self.home.vendor_key_id, result[0], req, now)
                out[i] = MakResponse(req.cmid, conf.sign(self.vendor_key))
        return [r for r in out if r is not None]

    # ------------------------------------------------------------------ revocation

    def revoke(
        self,
        *,
        host_key: str | None = None,
        host_id: bytes | None = None,
        now: int,
        with_host_key: bool = False,
        known_host: bool = False,
    ) -> tuple[RevocationList, bytes]:
        """Revoke a host key, a host, or a host and its host key; sign the next list.

        Revoking a host id alone leaves its host key usable for other host ids:
        ``with_host_key`` revokes both in one list (see :meth:`Store.revoke`).
        """
        serial = None
        if host_key is not None:
            serial = rules.parse_key(host_key, KeyKind.HOST).serial
        return self.store.revoke(
            host_key=serial,
            host_id=host_id,
            vendor_key_id=self.home.vendor_key_id,
            sign=lambda rl: rl.sign(self.vendor_key),
            now=now,
            with_host_key=with_host_key,
            known_host=known_host,
        )


def init_authority(
    path: Path,
    *,
    vendor: str,
    catalog: Catalog,
    passphrase: bytes | None = None,
    database: str | None = None,
) -> tuple[AuthorityHome, int]:
    """Create a new authority home: store first, then the vendor key and config.

    The store is connected to and migrated before the key is generated, so a bad
    or unreachable database fails before anything is written; any later failure
    removes what this created (:func:`vault.new_home`). Returns the home and the
    store's schema version before migration.
    """
    check_new_home(path, vendor)
    with new_home(path):
        store = Store(database or sqlite_url(path))
        try:
            before = store.migrate()
        except StoreError as exc:
            raise StoreError(
                f"{exc}; check --database (nothing was written to {path})"
            ) from exc
        finally:
            store.close()
        home = AuthorityHome.init(
            path, vendor=vendor, catalog=catalog, passphrase=passphrase, database=database
        )
    return home, before


def issue_key(
    home: AuthorityHome,
    store: Store,
    kind: KeyKind,
    group: str,
    *,
    activations: int | None,
    reactivations: int | None,
    now: int,
) -> rules.KeyRecord:
    """Issue a new host key or MAK (needs no private key, only the store)."""
    home.catalog.group(group)  # refuses an unknown group, naming the known ones
    if kind is KeyKind.HOST:
        acts = rules.DEFAULT_HOST_ACTIVATIONS if activations is None else activations
        reacts = rules.DEFAULT_HOST_REACTIVATIONS if reactivations is None else reactivations
    elif kind is KeyKind.MAK:
        acts = rules.DEFAULT_MAK_ACTIVATIONS if activations is None else activations
        if reactivations:
            raise rules.MalformedRequest("reactivations apply to host keys only")
        reacts = 0
    else:
        raise rules.MalformedRequest("GVLKs are derived per SKU (see `show`), not issued")
    key = ProductKey.generate(kind, secrets.token_bytes(12))
    return store.add_key(key, group, activations=acts, reactivations=reacts, now=now)


def serial_of(text: str) -> bytes:
    """The serial of a typed key (host key or MAK); raises on a mistyped key."""
    key = ProductKey.parse(text)
    if key.kind is KeyKind.GVLK:
        raise rules.WrongKeyKind("this is a GVLK (public setup key); the authority keeps no record")
    return key.serial


def _error(item: Any, code: str, detail: str) -> MakResponse:
    return MakResponse(cmid_of(item), None, code, detail)
