"""`volact authority`: the vendor's side — root key, catalog, keys, activations, service.

Offline commands work on the home directory and its store (``init``, ``issue-key``,
``show``, ``export-profile``, ``keys``, ``token``, ``revoke``, ``activate-host`` and
``mak-activate`` for answers by file); ``serve`` runs the HTTP API. Each command
is a thin wrapper over :mod:`volact.authority`; no activation rule lives here.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from volact.authority import rules
from volact.authority.activation import (
    Authority,
    hash_token,
    init_authority,
    issue_key,
    new_token,
    serial_of,
)
from volact.authority.db import SCHEMA_VERSION, Store, key_summary, redact_url
from volact.authority.vault import AuthorityHome, write_file
from volact.catalog import Catalog, demo_catalog
from volact.cli.common import (
    add_home,
    add_json,
    http_url,
    output,
    read_bytes,
    read_secret_file,
    wall_clock,
)
from volact.errors import ConfigurationError, UsageError
from volact.exchanges import HostActivationRequest, MakRequest, dumps
from volact.keys import KeyKind


def register(groups: Any) -> None:
    parser: argparse.ArgumentParser = groups.add_parser(
        "authority",
        help="the vendor's authority: root key, catalog, keys, activation service",
        description="The vendor's authority: root key, catalog, product keys, activations.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("init", help="create the vendor root key and catalog in a new home")
    add_home(p, "authority")
    cat = p.add_mutually_exclusive_group(required=True)
    cat.add_argument("--demo-catalog", action="store_true", help="use the built-in catalog")
    cat.add_argument("--catalog", type=Path, metavar="FILE", help="catalog JSON file")
    p.add_argument("--vendor", default="Demo Vendor", help="vendor display name")
    _add_passphrase(p, "encrypt the vendor key with the passphrase in FILE")
    p.add_argument(
        "--database", metavar="URL", help="store URL to record as the default (else SQLite)"
    )
    add_json(p)
    p.set_defaults(func=_init)

    p = sub.add_parser("issue-key", help="issue a new host key or MAK and print it")
    add_home(p, "authority")
    p.add_argument("--kind", required=True, choices=["host", "mak"], help="kind of key")
    p.add_argument("--group", required=True, help="product group the key covers")
    p.add_argument(
        "--activations",
        type=int,
        metavar="N",
        help="hosts (host key, default 6) or machines (MAK, default 100) it may activate",
    )
    p.add_argument(
        "--reactivations", type=int, metavar="N", help="reactivations per host (default 9)"
    )
    _add_database(p)
    add_json(p)
    p.set_defaults(func=_issue_key)

    p = sub.add_parser("show", help="list products, SKUs (with ids) and their GVLKs")
    add_home(p, "authority")
    add_json(p)
    p.set_defaults(func=_show)

    p = sub.add_parser("export-profile", help="write the product profile a product ships")
    add_home(p, "authority")
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="profile file")
    p.add_argument("--authority-url", metavar="URL", help="the authority's URL to embed")
    _add_database(p)
    add_json(p)
    p.set_defaults(func=_export_profile)

    p = sub.add_parser("keys", help="list issued keys, or show one key's activations")
    add_home(p, "authority")
    p.add_argument("key", nargs="?", help="a key to show in detail")
    _add_database(p)
    add_json(p)
    p.set_defaults(func=_keys)

    # The vendor answering by file: the same two options for hosts and for MAKs.
    for name, kind, func in (
        ("activate-host", "host", _activate_host),
        ("mak-activate", "MAK", _mak_activate),
    ):
        p = sub.add_parser(name, help=f"answer a {kind} activation request file")
        add_home(p, "authority")
        p.add_argument("--request", required=True, type=Path, metavar="FILE")
        p.add_argument("--out", required=True, type=Path, metavar="FILE")
        _add_passphrase(p, "passphrase of the vendor key")
        _add_database(p)
        add_json(p)
        p.set_defaults(func=func)

    p = sub.add_parser("revoke", help="revoke a host key or a host; re-sign the revocation list")
    add_home(p, "authority")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--host-key", metavar="KEY", help="a host key to revoke")
    what.add_argument("--host-id", metavar="HEX", help="a host id (16 hex digits) to revoke")
    what.add_argument("--mak", metavar="KEY", help="a MAK to stop activating machines")
    p.add_argument(
        "--with-host-key",
        action="store_true",
        help="with --host-id: also revoke the host key that host was activated with "
        "(otherwise that key can still activate other host ids)",
    )
    _add_passphrase(p, "passphrase of the vendor key")
    _add_database(p)
    add_json(p)
    p.set_defaults(func=_revoke)

    p = sub.add_parser("token", help="admin API bearer tokens")
    tsub = p.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    t = tsub.add_parser("create", help="create a token and print it (once)")
    add_home(t, "authority")
    t.add_argument("--name", default="admin", help="what the token is for")
    _add_database(t)
    add_json(t)
    t.set_defaults(func=_token_create)
    t = tsub.add_parser("revoke", help="revoke tokens by id or name")
    add_home(t, "authority")
    which = t.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=int, help="token id")
    which.add_argument("--name", help="every token with this name")
    _add_database(t)
    add_json(t)
    t.set_defaults(func=_token_revoke)
    t = tsub.add_parser("list", help="list tokens (never their values)")
    add_home(t, "authority")
    _add_database(t)
    add_json(t)
    t.set_defaults(func=_token_list)

    p = sub.add_parser("migrate", help="upgrade the store's schema in place")
    add_home(p, "authority")
    _add_database(p)
    add_json(p)
    p.set_defaults(func=_migrate)

    p = sub.add_parser("serve", help="run the HTTP activation service")
    add_home(p, "authority")
    p.add_argument(
        "--listen",
        default="127.0.0.1:8088",
        metavar="ADDR:PORT",
        help="address to listen on (default 127.0.0.1:8088; [::1]:0 for IPv6, port 0 = any)",
    )
    _add_database(p)
    p.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes")
    _add_passphrase(p, "passphrase of the vendor key")
    p.add_argument(
        "--rate-limit",
        type=float,
        metavar="PER_S",
        help="activation requests per second allowed per key and per client address "
        "(default 50; 0 disables)",
    )
    p.add_argument(
        "--rate-burst", type=int, metavar="N", help="burst size of the rate limit (default 500)"
    )
    p.add_argument(
        "--log-level",
        default="warning",
        choices=LOG_LEVELS,
        help="uvicorn log level (default warning; keys and tokens are masked at every level)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="open connections per worker; past it the oldest idle one is closed (default 1000)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        metavar="S",
        help="seconds a client has to send a request's headers (default 20)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        metavar="S",
        help="seconds a client has to send a request's body (default 20)",
    )
    p.set_defaults(func=_serve)


#: uvicorn's log levels.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _add_passphrase(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--passphrase-file", type=Path, metavar="FILE", help=help_text)


def _add_database(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database",
        metavar="URL",
        help="SQLAlchemy URL of the store (default: the home's, else SQLite in the home)",
    )



def _home(args: argparse.Namespace) -> AuthorityHome:
    return AuthorityHome.open(args.home)


def _store(home: AuthorityHome, args: argparse.Namespace) -> Store:
    store = Store(getattr(args, "database", None) or home.database_url)
    store.migrate()
    return store


def _passphrase(args: argparse.Namespace) -> bytes | None:
    path: Path | None = getattr(args, "passphrase_file", None)
    return None if path is None else read_secret_file(path, "passphrase file")


def _authority(args: argparse.Namespace) -> Authority:
    home = _home(args)
    key = home.signing_key(_passphrase(args))
    return Authority(home, _store(home, args), key)



def _init(args: argparse.Namespace) -> int:
    if args.catalog is not None:
        import json

        try:
            catalog = Catalog.from_json(json.loads(read_bytes(args.catalog, "catalog file")))
        except ValueError as exc:
            raise ConfigurationError(f"{args.catalog} is not valid JSON: {exc}") from exc
    else:
        catalog = demo_catalog()
    passphrase = _passphrase(args)
    if args.passphrase_file is not None and not passphrase:
        raise ConfigurationError(f"{args.passphrase_file} is empty: put a passphrase in it")
    # The store is reached and migrated before the key is written; a failure
    # leaves the home as it was (a directory it created is removed).
    home, _ = init_authority(
        args.home, vendor=args.vendor, catalog=catalog, passphrase=passphrase,
        database=args.database,
    )  # fmt: skip
    obj = {
        "home": str(args.home),
        "vendor": home.vendor,
        "vendor_key_id": home.vendor_key_id.hex(),
        "encrypted": home.encrypted,
        "database": redact_url(home.database_url),
        "schema_version": SCHEMA_VERSION,
    }
    return output(
        args,
        obj,
        f"initialised authority for {home.vendor} in {args.home}\n"
        f"vendor key id {home.vendor_key_id.hex()}"
        f"{' (passphrase-protected)' if home.encrypted else ''}; back up "
        f"{args.home / 'vendor-key.pem'}",
    )


def _issue_key(args: argparse.Namespace) -> int:
    home = _home(args)
    store = _store(home, args)
    try:
        rec = issue_key(
            home, store, KeyKind.from_label(args.kind), args.group,
            activations=args.activations, reactivations=args.reactivations, now=wall_clock(),
        )  # fmt: skip
    finally:
        store.close()
    return output(args, key_summary(rec), rec.text)


def _show(args: argparse.Namespace) -> int:
    home = _home(args)
    gvlks = home.gvlks()
    cat = home.catalog
    obj = {
        "vendor": home.vendor,
        "vendor_key_id": home.vendor_key_id.hex(),
        "products": cat.products,
        "groups": [
            {"name": g.name, "threshold": g.threshold, "covers": list(g.covers)}
            for g in cat.groups
        ],
        "skus": [
            {
                "id": str(s.id),
                "name": s.name,
                "edition": s.edition,
                "product": s.product,
                "group": s.group,
                "gvlk": gvlks[s.id],
            }
            for s in cat.skus
        ],
    }
    lines = [f"vendor {home.vendor} (key id {home.vendor_key_id.hex()})", "groups:"]
    for g in cat.groups:
        covers = f", also activates {', '.join(g.covers)}" if g.covers else ""
        lines.append(f"  {g.name}: threshold {g.threshold}{covers}")
    for product in cat.products:
        lines.append(f"product {product}:")
        for s in cat.skus:
            if s.product == product:
                lines.append(f"  {s.name} [{s.group}] id {s.id} GVLK {gvlks[s.id]}")
    return output(args, obj, "\n".join(lines))


def _export_profile(args: argparse.Namespace) -> int:
    if args.authority_url is not None:
        http_url(args.authority_url, "--authority-url")
    home = _home(args)
    store = _store(home, args)
    try:
        revocations = store.latest_revocation_list()
    finally:
        store.close()
    profile = home.profile(authority_url=args.authority_url, revocations=revocations)
    write_file(args.out, profile.dumps())
    obj = {
        "out": str(args.out),
        "vendor": home.vendor,
        "vendor_key_id": home.vendor_key_id.hex(),
        "authority_url": args.authority_url,
        "skus": len(home.catalog.skus),
        "revocations": revocations is not None,
        "dns_label": profile.dns_label,
    }
    return output(args, obj, f"wrote the product profile to {args.out}")


def _keys(args: argparse.Namespace) -> int:
    home = _home(args)
    store = _store(home, args)
    try:
        if args.key:
            detail = store.key_details(serial_of(args.key))
            lines = [
                f"{detail['key']} {detail['kind']} key, group {detail['group']}: "
                f"{detail['activations_used']} of {detail['activations']} used"
                f"{' (revoked)' if detail['revoked'] else ''}"
            ]
            for h in detail.get("hosts", []):
                lines.append(
                    f"  host {h['host_id']} {h['hostname']}: {h['activations']} activation(s)"
                )
            for m in detail.get("machines", []):
                lines.append(f"  machine {m['cmid']} {m['workstation']} sku {m['sku']}")
            return output(args, detail, "\n".join(lines))
        keys = [key_summary(r) for r in store.list_keys()]
    finally:
        store.close()
    lines = [
        f"{k['key']} {k['kind']:4} {k['group']:10} {k['activations_used']}/{k['activations']}"
        f"{' revoked' if k['revoked'] else ''}"
        for k in keys
    ]
    return output(args, {"keys": keys}, "\n".join(lines) or "no keys issued")


def _activate_host(args: argparse.Namespace) -> int:
    req = HostActivationRequest.from_json(read_bytes(args.request, "host activation request"))
    auth = _authority(args)
    try:
        resp = auth.activate_host(req, now=wall_clock())
    finally:
        auth.store.close()
    write_file(args.out, dumps(resp))
    obj = {"out": str(args.out), "host_id": req.host_id.hex(), "hostname": req.hostname}
    return output(args, obj, f"activated host {req.host_id.hex()}; wrote {args.out}")


def _mak_activate(args: argparse.Namespace) -> int:
    req = MakRequest.from_json(read_bytes(args.request, "MAK activation request"))
    auth = _authority(args)
    try:
        resp = auth.activate_mak(req, now=wall_clock())
    finally:
        auth.store.close()
    write_file(args.out, dumps(resp))
    obj = {"out": str(args.out), "cmid": str(req.cmid), "sku": str(req.sku)}
    return output(args, obj, f"activated machine {req.cmid}; wrote {args.out}")


def _revoke(args: argparse.Namespace) -> int:
    if args.with_host_key and args.host_id is None:
        raise UsageError("--with-host-key goes with --host-id")
    auth = _authority(args)
    try:
        if args.mak:
            serial = rules.parse_key(args.mak, KeyKind.MAK).serial
            rec = auth.store.set_key_revoked(serial)
            done = {"revoked": "mak", "key_id": rec.serial.hex()}
            return output(args, done, f"revoked MAK {rec.serial.hex()}")
        host_id = None
        if args.host_id is not None:
            try:
                host_id = bytes.fromhex(args.host_id)
            except ValueError:
                host_id = b""
            if len(host_id) != 8:
                raise UsageError("--host-id takes 16 hexadecimal digits (the host's id)")
        rl, _ = auth.revoke(
            host_key=args.host_key, host_id=host_id, now=wall_clock(),
            with_host_key=args.with_host_key, known_host=True,
        )  # fmt: skip
        owner = None if host_id is None else auth.store.host_owner(host_id)
    finally:
        auth.store.close()
    obj: dict[str, Any] = {
        "sequence": rl.sequence,
        "host_key_ids": sorted(k.hex() for k in rl.host_key_ids),
        "host_ids": sorted(h.hex() for h in rl.host_ids),
    }
    text = (
        f"revocation list {rl.sequence} signed: {len(rl.host_key_ids)} host key(s), "
        f"{len(rl.host_ids)} host(s); re-export the profile to ship it"
    )
    if owner is not None:
        obj["host_key_id"] = owner.hex()
        obj["host_key_revoked"] = owner in rl.host_key_ids
        if owner not in rl.host_key_ids:
            text += (
                f"\nnote: host key {owner.hex()} that activated this host is still valid "
                "and can activate another host id; add --with-host-key to revoke it too"
            )
    return output(args, obj, text)


def _token_create(args: argparse.Namespace) -> int:
    home = _home(args)
    store = _store(home, args)
    token = new_token()
    try:
        token_id = store.add_token(args.name[:64], hash_token(token), now=wall_clock())
    finally:
        store.close()
    obj = {"id": token_id, "name": args.name[:64], "token": token}
    return output(args, obj, token)


def _token_revoke(args: argparse.Namespace) -> int:
    home = _home(args)
    store = _store(home, args)
    try:
        n = store.revoke_tokens(token_id=args.id, name=args.name, now=wall_clock())
    finally:
        store.close()
    if n == 0:
        raise ConfigurationError("no such active token (see `volact authority token list`)")
    return output(args, {"revoked": n}, f"revoked {n} token(s)")


def _token_list(args: argparse.Namespace) -> int:
    home = _home(args)
    store = _store(home, args)
    try:
        tokens = store.list_tokens()
    finally:
        store.close()
    rows = [
        {"id": t.id, "name": t.name, "created_at": t.created_at, "revoked_at": t.revoked_at}
        for t in tokens
    ]
    lines = [
        f"{t.id:4} {t.name} {'revoked' if t.revoked_at else 'active'}" for t in tokens
    ]
    return output(args, {"tokens": rows}, "\n".join(lines) or "no tokens")


def _migrate(args: argparse.Namespace) -> int:
    home = _home(args)
    store = Store(args.database or home.database_url)
    try:
        before = store.migrate()
    finally:
        store.close()
    obj = {"from": before, "to": SCHEMA_VERSION}
    return output(args, obj, f"schema {before} -> {SCHEMA_VERSION}")


def _serve(args: argparse.Namespace) -> int:
    from volact.authority.service import ServeOptions, serve

    home = _home(args)
    opts = ServeOptions.from_cli(
        home=args.home,
        listen=args.listen,
        database=args.database or home.database_url,
        workers=args.workers,
        passphrase_file=args.passphrase_file,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        log_level=args.log_level,
        max_connections=args.max_connections,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
    )
    return serve(opts)
