"""DNS self-publishing, the sans-I/O part: settings, BIND key files, update plans, backoff.

What lives here is values and decisions: the host's DNS settings (validated, to and
from JSON), the TSIG key parsed from BIND's own key-file text, which records one
RFC 2136 update must delete and add so that a host replaces *only its own* SRV
record, how failures are described, and when each domain is due again (republish
every 24 h, retry with exponential backoff).

It must not do I/O: no sockets, no files, no clock, no dnspython queries. Text and
numbers come in, values come out; ``volact.host.dns`` is the adapter that reads the
files, talks to the DNS server and keeps time. Names are handled as lower-case text
without the trailing dot.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from volact.errors import ConfigurationError

#: The SRV service label published unless the product profile says otherwise.
DEFAULT_LABEL = "_volact._tcp"
#: A different protocol's label: volact never publishes it.
FORBIDDEN_LABEL = "_vlmcs._tcp"
#: Port a DNS server listens on unless ``ADDR:PORT`` says otherwise.
DNS_PORT = 53
#: TTL of the published records, in seconds.
DEFAULT_TTL = 3600
#: Republish after a success this long later (24 h, SPEC §6).
REPUBLISH_INTERVAL = 24 * 3600
#: First retry after a failure; it doubles on each further failure ...
RETRY_INITIAL = 60
#: ... up to this cap.
RETRY_MAX = 3600
#: Bounds on the TTL an administrator may choose (1 s .. 7 days).
TTL_RANGE = (1, 7 * 24 * 3600)
#: A publish list longer than this is a mistake, not a deployment.
MAX_DOMAINS = 64
#: TSIG algorithms BIND and dnspython both know (``tsig-keygen -a``).
TSIG_ALGORITHMS = frozenset(
    {
        "hmac-md5",
        "hmac-md5.sig-alg.reg.int",
        "hmac-sha1",
        "hmac-sha224",
        "hmac-sha256",
        "hmac-sha384",
        "hmac-sha512",
    }
)

_LABEL_RE = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


# --------------------------------------------------------------------------- names


def normalize_name(text: str, what: str = "name") -> str:
    """``text`` as a lower-case DNS name without the trailing dot; raise if it is not one.

    Letters, digits, ``-`` and ``_`` per label (``_`` for service labels), at most 63
    characters a label and 253 in all.
    """
    name = text.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise ConfigurationError(f"{what} is empty")
    if len(name) > 253:
        raise ConfigurationError(f"{what} {text!r} is longer than 253 characters")
    for label in name.split("."):
        if not _LABEL_RE.match(label):
            raise ConfigurationError(
                f"{what} {text!r}: label {label!r} is not a DNS label "
                "(letters, digits, '-', '_'; 1-63 characters; no leading or trailing '-')"
            )
    return name


def in_zone(name: str, zone: str) -> bool:
    """Whether ``name`` is ``zone`` or lies below it (both normalized)."""
    return name == zone or name.endswith("." + zone)


def parent_domain(fqdn: str) -> str | None:
    """The domain a host's FQDN lives in (``host1.corp.example`` → ``corp.example``)."""
    _, _, rest = fqdn.partition(".")
    return rest if "." in rest else None


def check_label(label: str) -> str:
    """A service label like ``_volact._tcp``; never ``_vlmcs._tcp``."""
    value = label.strip().lower().rstrip(".")
    if value == FORBIDDEN_LABEL:
        raise ConfigurationError(
            f"{FORBIDDEN_LABEL} belongs to another protocol; volact never publishes it"
        )
    parts = value.split(".")
    if len(parts) != 2 or not all(p.startswith("_") and len(p) > 1 for p in parts):
        raise ConfigurationError(f"service label {label!r} must look like _service._tcp")
    normalize_name(value, "service label")
    return value


def _check_u16(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigurationError(f"{what} must be an integer 0..65535, not {value!r}")
    return value


def is_unicast(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``ip`` names one host: not a wildcard, broadcast, multicast or reserved.

    Loopback counts (a host may publish ``127.0.0.1`` for machines on itself);
    an IPv4-mapped IPv6 address is judged by its IPv4 address.
    """
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return True
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return False  # IPv4 reserved is 240.0.0.0/4 with 255.255.255.255; IPv6 ::/8 ...
    return not (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK)


_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")


def publishable_addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    """The IP literals worth an A/AAAA record: wildcards (0.0.0.0, ::) and junk dropped."""
    out: list[str] = []
    for text in addresses:
        host = text.strip()
        if host.startswith("[") and "]" in host:  # "[::1]:1688" from a listen address
            host = host[1 : host.index("]")]
        elif host.count(":") == 1:  # "127.0.0.1:1688"
            host = host.split(":")[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            continue
        if not is_unicast(ip):
            continue
        if str(ip) not in out:
            out.append(str(ip))
    return tuple(out)


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class ServerAddress:
    """A DNS server that takes the updates."""

    host: str  #: IP literal or name (IPv6 without brackets)
    port: int = DNS_PORT  #: TCP port

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigurationError("DNS server address is empty")
        if not 1 <= self.port <= 65535:
            raise ConfigurationError(f"DNS server port must be 1..65535, not {self.port}")

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> ServerAddress:
        """``ADDR``, ``ADDR:PORT``, ``[V6]``, ``[V6]:PORT`` or a bare IPv6 literal."""
        s = text.strip()
        host, port_text = s, ""
        if s.startswith("["):
            end = s.find("]")
            if end < 0:
                raise ConfigurationError(f"DNS server {text!r}: unclosed '['")
            host, rest = s[1:end], s[end + 1 :]
            if rest and not rest.startswith(":"):
                raise ConfigurationError(f"DNS server {text!r}: expected ':PORT' after ']'")
            port_text = rest[1:]
        elif s.count(":") == 1:
            host, port_text = s.split(":")
        if not host:
            raise ConfigurationError(f"DNS server {text!r}: no address")
        if ":" in host or s.startswith("["):
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ConfigurationError(f"DNS server {text!r}: not an IPv6 address") from None
        else:
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                try:
                    normalize_name(host)
                except ConfigurationError:
                    raise ConfigurationError(
                        f"DNS server {text!r}: not an IP address or a host name "
                        "(expected ADDR, ADDR:PORT or [IPV6]:PORT)"
                    ) from None
        port = DNS_PORT
        if port_text:
            digits = port_text.isascii() and port_text.isdigit()
            if not digits or not 1 <= int(port_text) <= 65535:
                raise ConfigurationError(f"DNS server {text!r}: port must be 1..65535")
            port = int(port_text)
        return cls(host, port)


# --------------------------------------------------------------------------- TSIG key


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key as BIND writes it; the secret never appears in ``repr``."""

    name: str  #: key name (a DNS name, normalized)
    algorithm: str  #: e.g. ``hmac-sha256``
    secret: bytes = field(repr=False)  #: the shared secret (decoded)

    def secret_b64(self) -> str:
        return base64.b64encode(self.secret).decode("ascii")


# One left-to-right scan, so that comment markers inside a quoted secret (base64 may
# contain "//") stay part of the string: whitespace, the three comment forms BIND
# accepts, a quoted string, punctuation, or a bare word.
_TOKEN_RE = re.compile(
    r'\s+|/\*.*?\*/|//[^\n]*|#[^\n]*|"(?:[^"\\]|\\.)*"|[{};]|(?:[^\s{};"#/]|/(?![/*]))+',
    re.S,
)


def _tokens(text: str) -> list[tuple[str, int]]:
    """The tokens of ``text``, each with its 1-based line number."""
    out: list[tuple[str, int]] = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ConfigurationError(
                f"TSIG key file line {line}: unterminated quoted string or comment"
            )
        tok = m.group(0)
        pos = m.end()
        if not (tok.isspace() or tok.startswith(("/*", "//", "#"))):
            out.append((tok, line))
        line += tok.count("\n")
    return out


def _unquote(tok: str) -> str:
    return tok[1:-1] if len(tok) >= 2 and tok[0] == tok[-1] == '"' else tok


def parse_bind_key(text: str) -> TsigKey:
    """The one ``key "name" { algorithm ...; secret "..."; };`` in ``text`` (tsig-keygen's format).

    Error messages say what was expected and on which line, and never quote any
    token of the file: a malformed file may hold the secret anywhere (or be just the
    secret), and these messages end up in status output, state files and events.
    """
    toks = _tokens(text)
    end_line = text.count("\n") + 1

    def fail(at: int, what: str) -> ConfigurationError:
        line = toks[at][1] if at < len(toks) else end_line
        return ConfigurationError(f"TSIG key file line {line}: {what}")

    keys: list[TsigKey] = []
    i = 0
    while i < len(toks):
        if toks[i][0].lower() != "key":
            raise fail(i, "expected 'key \"NAME\" {' (tsig-keygen's output)")
        start = i
        if i + 2 >= len(toks) or toks[i + 2][0] != "{":
            raise fail(min(i + 2, len(toks)), "expected 'key \"NAME\" {'")
        try:
            name = normalize_name(_unquote(toks[i + 1][0]), "TSIG key name")
        except ConfigurationError:
            raise fail(i + 1, "the key name is not a DNS name") from None
        i += 3
        algorithm: str | None = None
        secret: bytes | None = None
        while True:
            if i >= len(toks):
                raise fail(start, "this key is not closed with '};'")
            if toks[i][0] == "}":
                i += 1
                if i < len(toks) and toks[i][0] == ";":
                    i += 1
                break
            if i + 2 >= len(toks) or toks[i + 2][0] != ";":
                raise fail(i, "expected 'algorithm NAME;', 'secret \"BASE64\";' or '};'")
            stmt, value = toks[i][0].lower(), _unquote(toks[i + 1][0])
            if stmt == "algorithm":
                algorithm = value.lower().rstrip(".")
                if algorithm not in TSIG_ALGORITHMS:
                    raise fail(
                        i + 1,
                        f"unknown algorithm (one of {', '.join(sorted(TSIG_ALGORITHMS))})",
                    )
            elif stmt == "secret":
                try:
                    secret = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    raise fail(i + 1, "the secret is not valid base64") from None
                if not secret:
                    raise fail(i + 1, "the secret is empty")
            else:
                raise fail(i, "unknown statement (expected 'algorithm' or 'secret')")
            i += 3
        if algorithm is None:
            raise fail(start, "the key has no 'algorithm' statement")
        if secret is None:
            raise fail(start, "the key has no 'secret' statement")
        keys.append(TsigKey(name, algorithm, secret))
    if not keys:
        raise ConfigurationError("TSIG key file holds no key (expected tsig-keygen's output)")
    if len(keys) > 1:
        raise ConfigurationError(
            f"TSIG key file holds {len(keys)} keys; put the host's one key in a file of its own"
        )
    return keys[0]


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class PublishDomain:
    """One domain the host publishes its SRV record into."""

    domain: str  #: the zone (normalized)
    priority: int = 0  #: SRV priority (lower is tried first)
    weight: int = 0  #: SRV weight among records of the same priority

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", normalize_name(self.domain, "domain"))
        _check_u16(self.priority, f"priority for {self.domain}")
        _check_u16(self.weight, f"weight for {self.domain}")

    @classmethod
    def parse(cls, text: str) -> PublishDomain:
        """``DOMAIN`` or ``DOMAIN,PRIORITY,WEIGHT`` (as ``--publish-domain`` takes it)."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) == 1:
            return cls(parts[0])
        if len(parts) != 3:
            raise ConfigurationError(
                f"{text!r}: expected DOMAIN or DOMAIN,PRIORITY,WEIGHT (e.g. corp.example,10,20)"
            )
        nums: list[int] = []
        for what, part in zip(("priority", "weight"), parts[1:], strict=True):
            if not (part.isascii() and part.isdigit()):
                raise ConfigurationError(f"{text!r}: {what} must be an integer 0..65535")
            nums.append(int(part))
        return cls(parts[0], nums[0], nums[1])

    def to_json(self) -> dict[str, Any]:
        return {"domain": self.domain, "priority": self.priority, "weight": self.weight}


@dataclass(frozen=True)
class DnsSettings:
    """What ``volact host dns`` configures; stored as ``dns.json`` in the host home."""

    enabled: bool = False  #: publishing on/off
    servers: tuple[ServerAddress, ...] = ()  #: where updates go, tried in order
    tsig_key_file: str | None = None  #: path of a BIND key file; None sends unsigned updates
    domain: str | None = None  #: the host's own domain; None means the FQDN's parent
    priority: int = 0  #: SRV priority in the host's own domain
    weight: int = 0  #: SRV weight in the host's own domain
    publish: tuple[PublishDomain, ...] = ()  #: further domains, each with priority/weight
    ttl: int = DEFAULT_TTL  #: TTL of the published records, seconds
    fqdn: str | None = None  #: overrides the host configuration's FQDN when set
    addresses: tuple[str, ...] = ()  #: A/AAAA to publish; empty means the listen addresses
    label: str | None = None  #: SRV service label; None = the profile's ``dns_label``
    retry_initial: int = RETRY_INITIAL  #: first retry after a failure, seconds
    retry_max: int = RETRY_MAX  #: cap on the retry delay, seconds
    republish_interval: int = REPUBLISH_INTERVAL  #: republish after success, seconds

    def __post_init__(self) -> None:
        if self.domain is not None:
            object.__setattr__(self, "domain", normalize_name(self.domain, "domain"))
        if self.fqdn is not None:
            object.__setattr__(self, "fqdn", normalize_name(self.fqdn, "FQDN"))
        if self.label is not None:
            object.__setattr__(self, "label", check_label(self.label))
        _check_u16(self.priority, "priority")
        _check_u16(self.weight, "weight")
        if not TTL_RANGE[0] <= self.ttl <= TTL_RANGE[1]:
            raise ConfigurationError(f"TTL must be {TTL_RANGE[0]}..{TTL_RANGE[1]} seconds")
        if len(self.publish) > MAX_DOMAINS:
            raise ConfigurationError(f"at most {MAX_DOMAINS} publish domains")
        seen: set[str] = set()
        for d in self.publish:
            if d.domain in seen:
                raise ConfigurationError(f"domain {d.domain} is in the publish list twice")
            seen.add(d.domain)
        for a in self.addresses:
            if publishable_addresses([a]) != (a,):
                raise ConfigurationError(
                    f"address {a!r} is not a unicast IP address in canonical form"
                )
        if not 1 <= self.retry_initial <= self.retry_max:
            raise ConfigurationError("retry delays must satisfy 1 <= initial <= max")
        if not 1 <= self.republish_interval <= 30 * 24 * 3600:
            raise ConfigurationError("republish interval must be 1 s .. 30 days")

    @property
    def configured(self) -> bool:
        """Whether there is somewhere to send updates."""
        return bool(self.servers)

    def targets(self, fqdn: str) -> tuple[PublishDomain, ...]:
        """The own domain (first) and the publish list, each once; a publish-list entry
        for the own domain sets its priority/weight."""
        out: dict[str, PublishDomain] = {}
        own = self.domain or parent_domain(normalize_name(fqdn, "FQDN"))
        if own is not None:
            out[own] = PublishDomain(own, self.priority, self.weight)
        for d in self.publish:
            out[d.domain] = d
        return tuple(out.values())

    def with_publish(self, domains: Sequence[PublishDomain]) -> DnsSettings:
        """These settings with ``domains`` added to (or updated in) the publish list."""
        merged = {d.domain: d for d in self.publish}
        for d in domains:
            merged[d.domain] = d
        return replace(self, publish=tuple(merged.values()))

    def without_publish(self, domains: Iterable[str]) -> DnsSettings:
        names = {normalize_name(d, "domain") for d in domains}
        missing = names - {d.domain for d in self.publish}
        if missing:
            raise ConfigurationError(f"not in the publish list: {', '.join(sorted(missing))}")
        return replace(self, publish=tuple(d for d in self.publish if d.domain not in names))

    def to_json(self) -> dict[str, Any]:
        """Everything but the secret (which lives only in the key file)."""
        return {
            "enabled": self.enabled,
            "servers": [str(s) for s in self.servers],
            "tsig_key_file": self.tsig_key_file,
            "domain": self.domain,
            "priority": self.priority,
            "weight": self.weight,
            "publish": [d.to_json() for d in self.publish],
            "ttl": self.ttl,
            "fqdn": self.fqdn,
            "addresses": list(self.addresses),
            "label": self.label,
            "retry_initial": self.retry_initial,
            "retry_max": self.retry_max,
            "republish_interval": self.republish_interval,
        }

    @classmethod
    def from_json(cls, obj: object) -> DnsSettings:
        """Settings from ``dns.json``'s parsed content; any wrong field is a clear error."""
        if not isinstance(obj, Mapping):
            raise ConfigurationError("dns settings: expected a JSON object")
        known = set(cls().to_json())
        unknown = set(obj) - known
        if unknown:
            raise ConfigurationError(f"dns settings: unknown fields {sorted(unknown)}")

        def get(name: str, kind: type, default: Any) -> Any:
            value = obj.get(name, default)
            if value is None:
                return None
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ConfigurationError(f"dns settings: {name!r} has the wrong type")
            return value

        publish_raw = get("publish", list, [])
        publish: list[PublishDomain] = []
        for item in publish_raw:
            if not isinstance(item, Mapping) or not isinstance(item.get("domain"), str):
                raise ConfigurationError("dns settings: each publish entry needs a 'domain'")
            pr, wt = item.get("priority", 0), item.get("weight", 0)
            publish.append(PublishDomain(item["domain"], pr, wt))
        servers_raw = get("servers", list, [])
        addresses_raw = get("addresses", list, [])
        if not all(isinstance(s, str) for s in [*servers_raw, *addresses_raw]):
            raise ConfigurationError("dns settings: servers and addresses must be strings")
        defaults = cls()
        return cls(
            enabled=bool(get("enabled", bool, False)),
            servers=tuple(ServerAddress.parse(s) for s in servers_raw),
            tsig_key_file=get("tsig_key_file", str, None),
            domain=get("domain", str, None),
            priority=get("priority", int, 0),
            weight=get("weight", int, 0),
            publish=tuple(publish),
            ttl=get("ttl", int, DEFAULT_TTL),
            fqdn=get("fqdn", str, None),
            addresses=tuple(addresses_raw),
            label=get("label", str, None),
            retry_initial=get("retry_initial", int, defaults.retry_initial),
            retry_max=get("retry_max", int, defaults.retry_max),
            republish_interval=get("republish_interval", int, defaults.republish_interval),
        )


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class SrvValue:
    """One SRV rdata as found in (or meant for) the zone."""

    priority: int  #: SRV priority
    weight: int  #: SRV weight
    port: int  #: target port
    target: str  #: target name, normalized

    def rdata(self) -> str:
        return f"{self.priority} {self.weight} {self.port} {self.target}."


@dataclass(frozen=True)
class Change:
    """One rdata an update deletes or adds; never a whole RRset, which others may share."""

    name: str  #: owner name, absolute without the trailing dot
    rdtype: str  #: "SRV", "A" or "AAAA"
    rdata: str  #: presentation form
    ttl: int = 0  #: for additions

    def __str__(self) -> str:
        return f"{self.name} {self.rdtype} {self.rdata}"


@dataclass(frozen=True)
class UpdatePlan:
    """One RFC 2136 update for one zone: deletions first, then additions.

    ``cleanup`` goes in a second update, sent after the first succeeds: old records
    under names the first does not touch (a previous FQDN or label). A
    least-privilege ``update-policy`` may no longer grant those names, and a refusal
    of them must not stop the host publishing under its current name.
    """

    zone: str  #: the zone the update goes to
    deletes: tuple[Change, ...]  #: removed first (only this host's own records)
    adds: tuple[Change, ...]  #: then added
    cleanup: tuple[Change, ...] = ()  #: removed by a second update (old names)

    def summary(self) -> str:
        """What a person reads in the event log, e.g. ``SRV 0 0 1688 host1.corp.example``."""
        parts = [f"{c.rdtype} {c.rdata}".rstrip(".") for c in self.adds]
        if not parts:
            parts = [f"removed {c.rdtype} {c.rdata}".rstrip(". ") for c in self.deletes]
        return ", ".join(parts) if parts else "nothing to change"


def own_records(existing: Iterable[SrvValue], fqdn: str) -> tuple[SrvValue, ...]:
    """The SRV rdatas that are this host's: those whose target is its FQDN (any port)."""
    return tuple(v for v in existing if v.target == fqdn)


def _record_from_json(obj: object, zone: str) -> Change | None:
    """One recorded rdata, canonical, or None if it is not one this host could have added."""
    if not isinstance(obj, Mapping):
        return None
    name, rdtype, rdata = obj.get("name"), obj.get("type"), obj.get("rdata")
    if not (isinstance(name, str) and isinstance(rdtype, str) and isinstance(rdata, str)):
        return None
    try:
        name = normalize_name(name)
        if not in_zone(name, zone):
            return None
        if rdtype == "SRV":
            label = ".".join(name.split(".")[:2])
            if name != f"{check_label(label)}.{zone}":
                return None
            parts = rdata.split()
            if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts[:3]):
                return None
            pr, wt, port = (_check_u16(int(p), "SRV field") for p in parts[:3])
            value = SrvValue(pr, wt, port, normalize_name(parts[3]))
            return Change(name, "SRV", value.rdata())
        if rdtype in ("A", "AAAA"):
            ip = ipaddress.ip_address(rdata)
            if (ip.version == 4) != (rdtype == "A"):
                return None
            return Change(name, rdtype, str(ip))
    except (ConfigurationError, ValueError):
        return None
    return None


@dataclass(frozen=True)
class Published:
    """What this host last put into one zone: the exact rdatas, kept in ``dns-state.json``.

    Publishing and unpublishing delete exactly these (never a whole RRset), so
    records an administrator maintains at the same names are never touched.
    """

    fqdn: str | None  #: the name they were published under; None if unknown
    records: tuple[Change, ...] = ()  #: the SRV, A and AAAA rdatas added (``ttl`` unused)

    def to_json(self) -> dict[str, Any]:
        return {
            "fqdn": self.fqdn,
            "records": [{"name": c.name, "type": c.rdtype, "rdata": c.rdata} for c in self.records],
        }

    @classmethod
    def from_state(cls, entry: Mapping[str, Any], *, zone: str, fqdn: str | None) -> Published:
        """What one domain's ``dns-state.json`` entry says was published into ``zone``.

        Entries that could not be this host's (another zone, a malformed rdata) are
        dropped. An entry written before rdatas were recorded has only ``addresses``
        (and the file's top-level ``fqdn``, passed as ``fqdn``): its A/AAAA are
        rebuilt from them, and its SRV is found by target (see :func:`plan_publish`).
        """
        raw = entry.get("records")
        records: list[Change] = []
        if isinstance(raw, list):
            name = entry.get("fqdn")
            for item in raw[:MAX_RECORDS_KEPT]:
                rec = _record_from_json(item, zone)
                if rec is not None and rec not in records:
                    records.append(rec)
        elif entry.get("published") is True:  # written before rdatas were recorded
            name = fqdn
            addresses = entry.get("addresses")
            if not isinstance(addresses, list):
                addresses = []
            texts = [a for a in addresses if isinstance(a, str)]
            for a in publishable_addresses(texts[:MAX_RECORDS_KEPT]):
                kind = "AAAA" if ":" in a else "A"
                rec = _record_from_json({"name": fqdn, "type": kind, "rdata": a}, zone)
                if rec is not None:
                    records.append(rec)
        else:
            return cls(None, ())
        try:
            name = normalize_name(name) if isinstance(name, str) else None
        except ConfigurationError:
            name = None
        return cls(name, tuple(records))


#: Most recorded rdatas read back from ``dns-state.json`` per domain.
MAX_RECORDS_KEPT = 256


def _previous_deletes(
    previous: Published | None, fqdn: str, existing_srv: Sequence[SrvValue], owner: str
) -> list[Change]:
    """Deletions for what this host published before: the recorded rdatas exactly.

    A record from before rdatas were kept names its SRV only by the old FQDN: then
    the SRV rdatas targeting that name are this host's previous ones.
    """
    if previous is None:
        return []
    out = [Change(c.name, c.rdtype, c.rdata) for c in previous.records]
    has_srv = any(c.rdtype == "SRV" for c in previous.records)
    if not has_srv and previous.fqdn is not None and previous.fqdn != fqdn:
        out += [Change(owner, "SRV", v.rdata()) for v in own_records(existing_srv, previous.fqdn)]
    return out


def _split(
    zone: str, deletes: Iterable[Change], adds: Sequence[Change], names: set[str]
) -> UpdatePlan:
    """The plan: deletions at ``names`` go with the additions, the rest to ``cleanup``."""
    main: list[Change] = []
    later: list[Change] = []
    for c in deletes:
        part = main if c.name in names else later
        if c not in part:
            part.append(c)
    return UpdatePlan(zone, tuple(main), tuple(adds), tuple(later))


def plan_publish(
    *,
    zone: str,
    label: str,
    fqdn: str,
    port: int,
    priority: int,
    weight: int,
    ttl: int,
    addresses: Sequence[str],
    existing_srv: Iterable[SrvValue],
    previous: Published | None = None,
) -> UpdatePlan:
    """Replace this host's SRV record in ``zone`` (and its A/AAAA if its name is in ``zone``).

    Deleted: the SRV rdatas targeting ``fqdn`` (whatever their port, so a port change
    replaces the old record and another host's record is never touched), and exactly
    the rdatas ``previous`` says this host published before, under whatever FQDN (so
    a renamed host leaves nothing behind; those under another name go in
    ``cleanup``). Never a whole RRset: A/AAAA records an administrator keeps at the
    same name stay. Added: the SRV, and an A/AAAA per publishable address when
    ``fqdn`` lies in ``zone``.
    """
    if not 1 <= port <= 65535:
        raise ConfigurationError(f"port must be 1..65535, not {port}")
    owner = f"{label}.{zone}"
    existing = tuple(existing_srv)
    new = SrvValue(priority, weight, port, fqdn)
    deletes = [Change(owner, "SRV", v.rdata()) for v in own_records(existing, fqdn)]
    deletes += _previous_deletes(previous, fqdn, existing, owner)
    adds = [Change(owner, "SRV", new.rdata(), ttl)]
    if in_zone(fqdn, zone):
        for a in publishable_addresses(addresses):
            adds.append(Change(fqdn, "AAAA" if ":" in a else "A", a, ttl))
    return _split(zone, deletes, adds, {owner, fqdn})


def plan_unpublish(
    *,
    zone: str,
    label: str,
    fqdn: str,
    existing_srv: Iterable[SrvValue],
    previous: Published | None = None,
) -> UpdatePlan:
    """Remove this host's SRV rdatas targeting ``fqdn`` and exactly what ``previous`` holds.

    A/AAAA are removed only as recorded rdatas: a host that never recorded an
    address removes none, whatever the name holds.
    """
    owner = f"{label}.{zone}"
    existing = tuple(existing_srv)
    deletes = [Change(owner, "SRV", v.rdata()) for v in own_records(existing, fqdn)]
    deletes += _previous_deletes(previous, fqdn, existing, owner)
    return _split(zone, deletes, (), {owner, fqdn})


# --------------------------------------------------------------------------- outcomes


class FailureKind(Enum):
    """Why an update did not go through, as the event log and status name it."""

    REFUSED = "refused"  #: the server answered REFUSED (policy or unsigned update)
    NOTAUTH = "notauth"  #: NOTAUTH: not authoritative, or TSIG failed
    BADKEY = "badkey"  #: the server does not know the key (name or algorithm)
    BADSIG = "badsig"  #: the server knows the key name, the signature is wrong
    BADTIME = "badtime"  #: clocks differ by more than the TSIG fudge
    RCODE = "rcode"  #: another DNS error code (SERVFAIL, NOTZONE, ...)
    TIMEOUT = "timeout"  #: no answer in time
    UNREACHABLE = "unreachable"  #: connection refused / network down
    CONFIG = "config"  #: our own settings or key file are wrong
    ERROR = "error"  #: anything else (a malformed reply, ...)


@dataclass(frozen=True)
class Outcome:
    """The result of publishing into (or unpublishing from) one domain."""

    domain: str  #: the zone
    ok: bool  #: whether the server accepted the update
    detail: str  #: the records (on success) or the reason (on failure)
    kind: FailureKind | None = None  #: why it failed; None on success
    server: str | None = None  #: the server that answered last
    #: on success, the rdatas this host now has in the zone (what ``dns-state.json`` keeps)
    records: tuple[Change, ...] = ()

    def message(self) -> str:
        """The host event's message: ``corp.example: <detail>``."""
        where = f" (server {self.server})" if self.server else ""
        return f"{self.domain}: {self.detail}{where}"


# --------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class Backoff:
    """When to try again: republish after success, exponential backoff after failure."""

    initial: int = RETRY_INITIAL  #: first retry delay, seconds
    cap: int = RETRY_MAX  #: longest retry delay, seconds
    republish: int = REPUBLISH_INTERVAL  #: delay after a success, seconds

    def delay(self, failures: int) -> int:
        """Seconds until the next attempt after ``failures`` consecutive failures (0 = ok)."""
        if failures <= 0:
            return self.republish
        # Shift bounded so a long outage cannot build a huge integer.
        return min(self.cap, self.initial << min(failures - 1, 40))

    @classmethod
    def of(cls, settings: DnsSettings) -> Backoff:
        return cls(settings.retry_initial, settings.retry_max, settings.republish_interval)


@dataclass(frozen=True)
class DomainState:
    """What the publisher knows about one domain."""

    domain: str  #: the zone
    next_attempt: int  #: Unix seconds when it is due
    failures: int = 0  #: consecutive failures since the last success
    last_attempt: int | None = None  #: Unix seconds of the last try
    last_ok: int | None = None  #: Unix seconds of the last success
    last_error: str | None = None  #: reason of the last failure, cleared on success

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "next_attempt": self.next_attempt,
            "failures": self.failures,
            "last_attempt": self.last_attempt,
            "last_ok": self.last_ok,
            "last_error": self.last_error,
        }


class PublishSchedule:
    """Which domains are due, and when the next one is: one state per domain.

    Every domain is due at ``now`` when the schedule is made (publish when the
    service starts). Feed each :class:`Outcome` back with :meth:`record`.
    """

    def __init__(self, domains: Iterable[str], backoff: Backoff, now: int) -> None:
        self.backoff = backoff
        self.states: dict[str, DomainState] = {d: DomainState(d, now) for d in domains}

    def due(self, now: int) -> list[str]:
        return [d for d, s in self.states.items() if s.next_attempt <= now]

    def next_wakeup(self) -> int | None:
        """Unix seconds of the earliest due domain, None when there are none."""
        return min((s.next_attempt for s in self.states.values()), default=None)

    def record(self, outcome: Outcome, now: int) -> DomainState:
        old = self.states.get(outcome.domain) or DomainState(outcome.domain, now)
        if outcome.ok:
            new = replace(
                old,
                failures=0,
                last_attempt=now,
                last_ok=now,
                last_error=None,
                next_attempt=now + self.backoff.delay(0),
            )
        else:
            failures = old.failures + 1
            new = replace(
                old,
                failures=failures,
                last_attempt=now,
                last_error=outcome.detail,
                next_attempt=now + self.backoff.delay(failures),
            )
        self.states[outcome.domain] = new
        return new
