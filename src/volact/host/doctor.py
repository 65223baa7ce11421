"""``volact host doctor``: what stops this host from activating its clients.

The walk: the home and its file modes, the host key and the vendor's license,
the store's health, free disk, a serving process, the port answering as this very
host at every address it publishes, then DNS (the TSIG key, update rights by a dry
run, the SRV answer) when publishing is on, and last the count against each
licensed group's threshold.

The DNS dry run sends a signed RFC 2136 update whose prerequisite cannot hold (a
random name must exist): the server checks the key and the zone's update rights,
then refuses the prerequisite (NXDOMAIN) and changes nothing. NOTAUTH or REFUSED
mean the key or the rights are wrong.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update

from volact import wire
from volact.doctor import Broken, Step
from volact.documents import verify_host_license
from volact.errors import DecodeError, VerificationError
from volact.host import admin
from volact.host.activation import installed_key, load_license, load_profile
from volact.host.config import PRODUCT_KEY_FILE, SIGNING_KEY_FILE, check_publishable, parse_listen
from volact.host.dns import files as host_dns
from volact.host.dns.names import parent_domain
from volact.host.dns.settings import DnsSettings
from volact.host.home import load_config
from volact.host.policy import COUNT_WINDOW
from volact.host.store import HostStore

#: Seconds each network check may take.
TIMEOUT = 3.0
#: Below this much free space the store may fail a commit (and the host answers BUSY).
MIN_FREE_BYTES = 100 * 1024 * 1024


@dataclass
class _Facts:
    dns: DnsSettings | None = None
    license: bytes | None = None


def steps(home: Path, *, now: int | None = None) -> list[Step]:
    """The host's checks, in order."""
    f = _Facts()
    clock = int(time.time()) if now is None else now

    def home_ok() -> str:
        cfg = load_config(home)
        loose = [
            name for name in (SIGNING_KEY_FILE, PRODUCT_KEY_FILE)
            if (home / name).exists() and stat.S_IMODE((home / name).stat().st_mode) & 0o077
        ]  # fmt: skip
        if loose:
            raise Broken(f"secrets readable by others: {', '.join(loose)}",
                         f"chmod 600 {' '.join(str(home / n) for n in loose)}")  # fmt: skip
        return f"host {cfg.host_id.hex()} ({cfg.fqdn}, port {cfg.port})"

    def license_ok() -> str:
        f.license = load_license(home)
        if f.license is None:
            first = ""
            if not (home / PRODUCT_KEY_FILE).exists() or installed_key(home) is None:
                first = f"volact host install-key --home {home} KEY, then "
            raise Broken("the host is not activated: clients are refused",
                         f"{first}volact host activate --home {home} --authority URL "
                         "(or --offline-request FILE)")  # fmt: skip
        profile = load_profile(home)
        try:
            lic = verify_host_license(f.license, profile.vendor_public_key, now=clock,
                                      revocations=profile.revocation_list())  # fmt: skip
        except VerificationError as exc:
            raise Broken(f"the host license is refused: {exc}",
                         "activate again with a valid host key "
                         f"(`volact host activate --home {home} ...`)") from exc  # fmt: skip
        return f"licensed for {', '.join(lic.groups)}"

    def store_ok() -> str:
        with HostStore.open(home, create=False) as store:
            result = store.quick_check()
        if result != "ok":
            raise Broken(f"the store is damaged: {result}",
                         "stop the host, restore store.sqlite from a backup "
                         "(docs/operations.md § Backup)")  # fmt: skip
        return "store.sqlite passes SQLite's quick_check"

    def disk_ok() -> str:
        free = shutil.disk_usage(home).free
        if free < MIN_FREE_BYTES:
            raise Broken(f"only {free // 2**20} MiB free on the store's disk",
                         "free some space: a full disk makes the host answer busy")  # fmt: skip
        return f"{free // 2**20} MiB free"

    def serving_ok() -> str:
        info = admin.serving(home)
        if info is None:
            raise Broken("no `volact host serve` process runs on this home",
                         "systemctl start volact-host (or `volact host serve --home "
                         f"{home}`)")  # fmt: skip
        return f"pid {info.get('pid')} on {', '.join(info.get('addresses', []))}"

    def _published_addresses() -> list[tuple[str, int]]:
        info = admin.serving(home) or {}
        ports = info.get("ports") or [load_config(home).port]
        settings = host_dns.load_settings(home)
        if settings.addresses:
            return [(a, int(ports[0])) for a in settings.addresses]
        out = []
        for a in info.get("addresses", []):
            host, port = parse_listen(a, int(ports[0]))
            if host in ("0.0.0.0", "::"):
                host = "127.0.0.1" if host == "0.0.0.0" else "::1"
            out.append((host, port))
        return out

    def port_ok() -> str:
        checked = []
        for host, port in _published_addresses():
            try:
                with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
                    sock.settimeout(TIMEOUT)
                    sock.sendall(wire.encode(wire.GetLicense()))
                    data = b""
                    while chunk := sock.recv(4096):
                        data += chunk
                        if len(data) > wire.MAX_REPLY_FRAME:
                            break
                reply = wire.decode(data)
            except OSError as exc:
                raise Broken(f"{host} port {port} does not answer: {exc.strerror or exc}",
                             f"open TCP {port} in the firewall; check the listen addresses "
                             "(`volact host set --listen`, /etc/volact/host.env)") from exc
            except DecodeError as exc:
                raise Broken(f"{host} port {port} answers, but not as a volact host ({exc})",
                             "another service holds the published address and port") from exc
            if not isinstance(reply, wire.LicenseReply) or reply.host_license != (f.license or b""):
                raise Broken(f"{host} port {port} is another volact host",
                             "the published address belongs to a different host: fix the "
                             "addresses (`volact host dns --address`)")  # fmt: skip
            checked.append(f"{host}:{port}")
        if not checked:
            raise Broken("this host publishes no address",
                         "set one with `volact host dns --address ADDR`")  # fmt: skip
        return f"answers as this host at {', '.join(checked)}"

    def _dns_enabled() -> DnsSettings | None:
        settings = host_dns.load_settings(home)
        return settings if settings.enabled else None

    def _zone_and_name() -> tuple[list[str], str]:
        settings = f.dns
        assert settings is not None
        fqdn = settings.fqdn or load_config(home).fqdn
        return [t.domain for t in settings.targets(fqdn)], fqdn

    def dns_rights() -> str:
        f.dns = _dns_enabled()
        if f.dns is None:
            return "publishing is off (nothing to check)"
        if not f.dns.servers:
            raise Broken("publishing is on, but no DNS server is set",
                         "volact host dns --home DIR --server ADDR[:PORT]")  # fmt: skip
        domains, fqdn = _zone_and_name()
        check_publishable(fqdn)
        keyring = None
        if f.dns.tsig_key_file:
            key = host_dns.read_key_file(f.dns.tsig_key_file)
            keyring = dns.tsig.Key(key.name, key.secret, key.algorithm)
        server = f.dns.servers[0]
        label = host_dns.service_label(home, f.dns)
        for zone in domains or [parent_domain(fqdn) or fqdn]:
            # The kind of change publishing makes (an SRV rdata at the service name), so
            # the zone's update policy is checked as for a real publish; the
            # prerequisite (a random name exists) cannot hold, so nothing changes.
            update = dns.update.UpdateMessage(zone, keyring=keyring)
            update.present(f"volact-doctor-{secrets.token_hex(6)}.{zone}")
            update.delete(f"{label}.{zone}", "SRV", "0 0 1 volact-doctor-probe.invalid.")
            try:
                answer = dns.query.tcp(update, server.host, port=server.port, timeout=TIMEOUT)
            except dns.tsig.PeerError as exc:  # BADKEY, BADSIG, BADTIME: the key itself
                raise Broken(
                    f"{server} refuses the TSIG key for {zone} (NOTAUTH: {exc})",
                    "use the key the DNS server has for this zone (`volact host dns "
                    "--tsig-key-file FILE`) and allow it to update the zone (BIND: "
                    "update-policy { grant KEY zonesub ANY; };); check both clocks",
                ) from exc
            except (dns.exception.DNSException, OSError) as exc:
                raise Broken(f"the DNS server {server} does not answer: {exc}",
                             "check the server address and that TCP 53 is open to it") from exc
            rcode = answer.rcode()
            if rcode != dns.rcode.NXDOMAIN:
                raise Broken(f"{server} refuses updates to {zone}: {dns.rcode.to_text(rcode)}",
                             "allow this TSIG key to update the zone (BIND: update-policy "
                             "{ grant KEY zonesub ANY; };), see docs/operations.md § DNS")
        return f"{server} accepts signed updates to {', '.join(domains)} (dry run)"

    def srv_ok() -> str:
        if f.dns is None:
            return "publishing is off (nothing to check)"
        domains, fqdn = _zone_and_name()
        label = host_dns.service_label(home, f.dns)
        server = f.dns.servers[0]
        missing = []
        for zone in domains:
            query = dns.message.make_query(f"{label}.{zone}", dns.rdatatype.SRV)
            try:
                answer = dns.query.tcp(query, server.host, port=server.port, timeout=TIMEOUT)
            except (dns.exception.DNSException, OSError) as exc:
                raise Broken(f"the DNS server {server} does not answer: {exc}",
                             "check the server address") from exc  # fmt: skip
            targets = [rr.target.to_text(omit_final_dot=True).lower()
                       for rrset in answer.answer for rr in rrset
                       if rrset.rdtype == dns.rdatatype.SRV]  # fmt: skip
            if fqdn.rstrip(".").lower() not in targets:
                missing.append(f"{label}.{zone}")
        if missing:
            raise Broken(f"this host is not in the SRV answer of {', '.join(missing)}",
                         f"volact host dns publish --home {home} (and see its error)")  # fmt: skip
        return f"{label} SRV names {fqdn} in {', '.join(domains)}"

    def count_ok() -> str:
        st = admin.status(home, now=clock)
        # The groups that matter are those whose machines have asked lately: a site
        # with only servers never needs the desktop threshold.
        profile = load_profile(home)
        with HostStore.open(home, create=False) as store:
            skus = store.skus_seen_since(clock - COUNT_WINDOW)
        found = (profile.catalog.find_sku(uuid.UUID(bytes=sku)) for sku in skus)
        asked = {s.group for s in found if s is not None}
        wanted = asked or set(st["licensed_groups"])
        short = [
            f"{g} needs {t} (has {st['count']})"
            for g, t in st["thresholds"].items()
            if g in st["licensed_groups"] and g in wanted and st["count"] < t
        ]
        if short:
            raise Broken("count below threshold: " + "; ".join(short),
                         "more distinct machines must ask this host within 30 days; "
                         "their clients stay in grace and retry on their own "
                         "(one host per site under about 100 machines)")  # fmt: skip
        return f"count {st['count']} meets the threshold of {', '.join(sorted(wanted))}"

    return [
        Step("home", "host home and file modes", home_ok),
        Step("license", "host key and vendor license", license_ok),
        Step("store", "store health", store_ok),
        Step("disk", "free disk space", disk_ok),
        Step("serving", "a serving process", serving_ok),
        Step("port", "port reachable at its published addresses", port_ok),
        Step("dns_rights", "DNS update rights (dry run)", dns_rights),
        Step("srv_answer", "DNS SRV answer names this host", srv_ok),
        Step("count", "count against the thresholds", count_ok),
    ]


__all__ = ["steps"]
