"""``volact client doctor``: why this machine is (not) activated, one link at a time.

The walk follows a request: the home and its profile, the installed key, how the
host is found (manual host, or the SRV record in the configured or search domains),
the host's port, whether it answers as a volact host, its license (vendor
signature, expiry, revocation, the SKU's group), the clock, and the count against
the threshold. The last two come from one real activation request, the one the
agent would send next (the host counts this machine, as it would anyway); the
ticket is not kept and the client's state is not changed.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from volact import wire
from volact.client import discovery
from volact.client.srv import HostAddress
from volact.client.state import ClientState, newest_revocations
from volact.client.store import ClientStore
from volact.doctor import Broken, Step
from volact.documents import HostLicense, verify_host_license
from volact.errors import DecodeError, TransportError, VerificationError
from volact.keys import KeyKind
from volact.profile import ProductProfile

#: Seconds each network check may take.
TIMEOUT = 3.0


@dataclass
class _Facts:
    """What earlier checks found, for the later ones."""

    profile: ProductProfile | None = None
    state: ClientState | None = None
    host: HostAddress | None = None
    ips: list[str] = field(default_factory=list)
    license: HostLicense | None = None
    reply: wire.ActivateReply | None = None


def steps(
    home: Path, *, nameservers: Sequence[HostAddress] | None = None, now: int | None = None
) -> list[Step]:
    """The client's checks, in the order a request travels."""
    f = _Facts()
    clock = int(time.time()) if now is None else now

    def home_ok() -> str:
        store = ClientStore(home)
        if not store.exists():
            raise Broken(f"{home} is not a client home",
                         f"volact client init --home {home} --profile FILE --sku NAME")  # fmt: skip
        f.profile = store.load_profile()
        f.state = store.load(f.profile)  # re-verified: validity comes from the ticket
        return f"CMID {f.state.cmid}, profile of {f.profile.vendor}"

    def key_ok() -> str:
        assert f.state is not None and f.profile is not None
        m = f.state.machine
        if f.state.key is None or m.sku is None:
            raise Broken("no product key is installed",
                         f"volact client install-key --home {home} KEY "
                         "(or `volact client init --sku NAME` for the setup key)")  # fmt: skip
        sku = f.profile.catalog.find_sku(m.sku)
        name = sku.name if sku else str(m.sku)
        if m.key_kind is KeyKind.MAK:
            if m.permanent:
                return f"a MAK for {name}: activated permanently by the vendor"
            raise Broken(f"a MAK for {name}, not activated yet",
                         f"volact client activate --home {home} --authority URL "
                         "(MAKs activate with the vendor's authority, not a host)")  # fmt: skip
        return f"setup key (GVLK) for {name}"

    def is_mak() -> bool:
        return f.state is not None and f.state.machine.key_kind is KeyKind.MAK

    def find_host() -> str:
        assert f.state is not None and f.profile is not None
        if is_mak():
            return "not needed (MAK)"
        if f.state.manual_host is not None:
            f.host = f.state.manual_host
            return f"manual host {f.host} (volact client set-host)"
        domains = [f.state.domain] if f.state.domain else discovery.search_domains()
        if not domains:
            raise Broken("no domain to look in: none is set and the machine has no DNS "
                         "search domain",
                         f"volact client set-domain --home {home} corp.example "
                         "(or set-host HOST)")  # fmt: skip
        tried = []
        for domain in domains:
            name = f"{f.profile.dns_label}.{domain}"
            try:
                records = discovery.lookup_srv(name, nameservers=nameservers, timeout=TIMEOUT)
            except TransportError as exc:
                raise Broken(
                    f"the DNS server did not answer for {name}: {exc}",
                    "check the machine's DNS servers (or --nameserver)",
                ) from exc
            if records:
                best = min(records, key=lambda r: (r.priority, -r.weight))
                f.host = HostAddress(best.target, best.port)
                return f"{name}: {len(records)} SRV record(s), first {best.target}:{best.port}"
            tried.append(name)
        raise Broken(f"no SRV record at {', '.join(tried)}",
                     "turn on the host's DNS publishing (`volact host dns --home DIR --enable`, "
                     "then `volact host doctor`), or point this machine at the host with "
                     f"`volact client set-host --home {home} HOST[:PORT]`")  # fmt: skip

    def reachable() -> str:
        if is_mak():
            return "not needed (MAK)"
        assert f.host is not None
        try:
            f.ips = discovery.resolve_host(f.host.host, nameservers=nameservers, timeout=TIMEOUT)
        except TransportError as exc:
            raise Broken(str(exc), f"check that {f.host.host} has an A/AAAA record") from exc
        if not f.ips:
            raise Broken(f"{f.host.host} has no address in DNS",
                         "the host publishes its A/AAAA with its SRV: check `volact host dns "
                         "show` on the host")  # fmt: skip
        errors = []
        for ip in f.ips:
            try:
                with socket.create_connection((ip, f.host.port), timeout=TIMEOUT):
                    return f"{ip} port {f.host.port} accepts connections"
            except OSError as exc:
                errors.append(f"{ip}: {exc.strerror or type(exc).__name__}")
        raise Broken(f"{f.host} does not accept connections ({'; '.join(errors)})",
                     f"is `volact host serve` running there? open TCP {f.host.port} in the "
                     "firewalls between this machine and the host")  # fmt: skip

    def _exchange(msg: wire.Message) -> wire.Message:
        assert f.host is not None
        ip = f.ips[0]
        try:
            with socket.create_connection((ip, f.host.port), timeout=TIMEOUT) as sock:
                sock.settimeout(TIMEOUT)
                sock.sendall(wire.encode(msg))
                data = b""
                while len(data) < wire.MAX_REPLY_FRAME + 1:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        except OSError as exc:
            raise Broken(f"{f.host} stopped answering: {exc.strerror or exc}",
                         "check the host's log (`journalctl -u volact-host`)") from exc  # fmt: skip
        try:
            return wire.decode(data)
        except DecodeError as exc:
            raise Broken(f"{f.host} answers, but not as a volact host ({exc})",
                         "the address or port is another service's: check the SRV record or "
                         "the manual host (volact hosts listen on TCP 1688 by default)") from exc

    def volact_host() -> str:
        if is_mak():
            return "not needed (MAK)"
        reply = _exchange(wire.GetLicense())
        if not isinstance(reply, wire.LicenseReply):
            raise Broken(f"{f.host} answered a license request with {type(reply).__name__}",
                         "this is not a volact host")  # fmt: skip
        if not reply.host_license:
            raise Broken(
                f"{f.host} is a volact host, but it is not activated",
                "on the host: `volact host activate --home DIR --authority URL`",
            )
        f.license = HostLicense.decode(reply.host_license)[0]
        assert f.profile is not None and f.state is not None
        revocations, _ = newest_revocations(f.profile, f.state.revocations)
        try:
            verify_host_license(reply.host_license, f.profile.vendor_public_key, now=clock,
                                revocations=revocations)  # fmt: skip
        except VerificationError as exc:
            raise Broken(f"the host's license is refused: {exc}",
                         "the host must be activated by this product's vendor (a new host "
                         "key, or `volact host activate` again)") from exc  # fmt: skip
        groups = ", ".join(f.license.groups)
        return f"host {f.license.host_id.hex()} licensed by the vendor for {groups}"

    def covers() -> str:
        if is_mak():
            return "not needed (MAK)"
        assert f.profile is not None and f.state is not None and f.license is not None
        sku = f.profile.catalog.find_sku(f.state.machine.sku or uuid.UUID(int=0))
        group = sku.group if sku else "?"
        if group not in f.license.groups:
            raise Broken(f"the host's license covers {', '.join(f.license.groups)}, not {group}",
                         f"use a host activated with a host key for {group} (or one that "
                         "covers it)")  # fmt: skip
        return f"covers {group}"

    def _activation() -> wire.ActivateReply:
        if f.reply is None:
            assert f.state is not None
            m = f.state.machine
            assert m.sku is not None  # checked by key_ok
            licensed = m.valid_until is not None and m.valid_until > clock
            req = wire.ActivateRequest(
                m.sku, f.state.cmid, os.urandom(16), clock,
                wire.LicenseState.LICENSED if licensed else wire.LicenseState.GRACE, 0,
                f.state.vm, f.state.workstation[:63],
            )  # fmt: skip
            reply = _exchange(req)
            if not isinstance(reply, wire.ActivateReply):
                raise Broken("the host did not answer an activation request with a reply",
                             "this is not a volact host")  # fmt: skip
            f.reply = reply
        return f.reply

    def clock_ok() -> str:
        if is_mak():
            return "not needed (MAK)"
        reply = _activation()
        if reply.result is wire.Result.CLOCK_SKEW:
            raise Broken("the host refuses this machine's clock (more than 4 h apart)",
                         "set the clock right on this machine or the host (NTP)")  # fmt: skip
        return "within the host's 4 h"

    def count_ok() -> str:
        if is_mak():
            return "not needed (MAK)"
        reply = _activation()
        if reply.result is wire.Result.COUNT_TOO_LOW:
            raise Broken(f"count too low: the host has counted {reply.count} of the "
                         f"{reply.required} machines this product needs",
                         f"{reply.required - reply.count} more machine(s) must ask the host; "
                         "this machine stays in grace and retries on its own")  # fmt: skip
        if reply.result is not wire.Result.OK:
            raise Broken(f"the host refused: {reply.result.description}",
                         "see `volact host doctor` on the host")  # fmt: skip
        return f"activation granted (count {reply.count}, threshold {reply.required})"

    return [
        Step("home", "client home and product profile", home_ok),
        Step("key", "product key installed", key_ok),
        Step("discovery", "host found (manual host or DNS SRV)", find_host),
        Step("reachable", "host reachable on its port", reachable),
        Step("volact_host", "answers as a volact host with a valid license", volact_host),
        Step("covers_sku", "host license covers this product", covers),
        Step("clock", "clock agrees with the host", clock_ok),
        Step("count", "count against the threshold", count_ok),
    ]


__all__ = ["steps"]
