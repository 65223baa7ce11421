"""The host's DNS settings: what ``volact host dns`` configures, ``dns.json``'s content.

No I/O: :mod:`volact.host.dns.files` reads and writes the file. Every field is
checked in the constructor, and ``from_json`` turns any wrong field into a clear
:class:`~volact.errors.ConfigurationError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from volact.addresses import check_service_label, normalize_name
from volact.errors import ConfigurationError
from volact.host.dns.names import check_u16, parent_domain, publishable_addresses
from volact.host.dns.servers import ServerAddress

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


@dataclass(frozen=True)
class PublishDomain:
    """One domain the host publishes its SRV record into."""

    domain: str  #: the zone (normalized)
    priority: int = 0  #: SRV priority (lower is tried first)
    weight: int = 0  #: SRV weight among records of the same priority

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", normalize_name(self.domain, "domain"))
        check_u16(self.priority, f"priority for {self.domain}")
        check_u16(self.weight, f"weight for {self.domain}")

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
            object.__setattr__(self, "label", check_service_label(self.label))
        check_u16(self.priority, "priority")
        check_u16(self.weight, "weight")
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
