"""The host's settings and the layout of its home directory.

A host home holds ``host.json`` (these settings), ``profile.json`` (the vendor's
product profile), ``host-key.pem`` (the host's Ed25519 signing key, mode 0600),
``host-license.bin`` (the vendor-signed host license, once activated),
``product-key.txt`` (the installed host key, mode 0600), ``store.sqlite`` (the
durable store) and, while serving, ``serve.json`` (pid and bound addresses).

This module validates the settings and names the files; it holds no policy (that
is :mod:`volact.host.policy`) and does no I/O (reading and writing ``host.json``
is :mod:`volact.host.home`'s), so the sans-I/O core can import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from volact.addresses import LISTEN, parse_hostport
from volact.documents import HOST_ID_BYTES
from volact.errors import AddressError, ConfigurationError
from volact.wire import (
    DEFAULT_ACTIVATION_INTERVAL,
    DEFAULT_PORT,
    DEFAULT_RENEWAL_INTERVAL,
    MAX_INTERVAL,
    MIN_INTERVAL,
)

CONFIG_FILE = "host.json"
PROFILE_FILE = "profile.json"
SIGNING_KEY_FILE = "host-key.pem"
LICENSE_FILE = "host-license.bin"
PRODUCT_KEY_FILE = "product-key.txt"
STORE_FILE = "store.sqlite"
SERVE_FILE = "serve.json"
LOCK_FILE = "serve.lock"

CONFIG_FORMAT = "volact-host-config"
CONFIG_VERSION = 1

DEFAULT_MAX_CONNECTIONS = 1024
#: A quarter of the slots: one address cannot starve the others, and ``volact
#: bench`` (64 exchanges in flight from one loopback address) still fits.
DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 256
#: Half the slots: one IPv4 /24 or IPv6 /64 (one LAN attacker, whatever number of
#: addresses it takes) cannot hold them all.
DEFAULT_MAX_CONNECTIONS_PER_NETWORK = 512
DEFAULT_READ_TIMEOUT = 5.0
#: The count's own cap: about 220 bytes of memory each, so ~440 MB at most.
DEFAULT_MAX_MACHINES = 2_000_000
#: Machines new to the count that one IPv4 /24 or IPv6 /64 may add per hour (a
#: burst of as many): a real network adds machines far more slowly than a script
#: inventing machine ids, and a refused machine simply retries later.
DEFAULT_NEW_MACHINES_PER_HOUR = 1000
#: The most machines a host can count (the index names them with 24 bits, and keeps
#: some room for entries that a failed commit leaves behind).
MAX_MACHINES_LIMIT = 16_000_000


def check_interval(minutes: int, what: str) -> int:
    """``minutes`` if it lies within 15 minutes .. 30 days, else a clear error."""
    if not MIN_INTERVAL <= minutes <= MAX_INTERVAL:
        raise ConfigurationError(
            f"{what} must be between {MIN_INTERVAL} and {MAX_INTERVAL} minutes "
            f"(15 minutes to 30 days), not {minutes}"
        )
    return minutes


def check_publishable(fqdn: str) -> str:
    """``fqdn`` if clients elsewhere could reach the host by it, else a clear error.

    ``localhost`` (and any name without a dot) resolves to each client itself: a
    host must never publish it in DNS.
    """
    name = fqdn.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost") or "." not in name:
        raise ConfigurationError(
            f"the host's name {fqdn!r} is not a fully qualified domain name that clients "
            "can reach: publishing it would send every client to itself; set the real "
            "name with `volact host set --home DIR --fqdn NAME` (or `volact host dns --fqdn`)"
        )
    return fqdn


@dataclass(frozen=True)
class HostConfig:
    """Everything an administrator can set on a host (``volact host set``)."""

    host_id: bytes  #: 8 random bytes chosen at init; names this host in licenses and tickets
    fqdn: str = "localhost"  #: the name the host publishes in DNS and sends to the authority
    port: int = DEFAULT_PORT  #: TCP port used for listen addresses that give none
    listen: tuple[str, ...] = ()  #: ``ADDR[:PORT]`` to listen on; empty means all interfaces
    activation_interval: int = DEFAULT_ACTIVATION_INTERVAL  #: minutes between client retries
    renewal_interval: int = DEFAULT_RENEWAL_INTERVAL  #: minutes between client renewals
    count_vms: bool = True  #: whether virtual machines count toward thresholds
    max_connections: int = DEFAULT_MAX_CONNECTIONS  #: concurrent connections served at once
    #: concurrent connections from one client address (0: no per-address cap)
    max_connections_per_address: int = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
    #: concurrent connections from one IPv4 /24 or IPv6 /64 (0: no per-network cap)
    max_connections_per_network: int = DEFAULT_MAX_CONNECTIONS_PER_NETWORK
    read_timeout: float = DEFAULT_READ_TIMEOUT  #: seconds a client has to send its request
    max_machines: int = DEFAULT_MAX_MACHINES  #: machines the count may hold; more are refused
    #: machines new to the count one /24 or /64 may add per hour (0: no limit; loopback: none)
    new_machines_per_hour: int = DEFAULT_NEW_MACHINES_PER_HOUR
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  #: unknown keys, kept

    def __post_init__(self) -> None:
        if len(self.host_id) != HOST_ID_BYTES:
            raise ConfigurationError(f"host id must be {HOST_ID_BYTES} bytes")
        if not isinstance(self.count_vms, bool):
            raise ConfigurationError(f"count_vms must be True or False, not {self.count_vms!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"port must be 0..65535, not {self.port}")
        check_interval(self.activation_interval, "the activation interval")
        check_interval(self.renewal_interval, "the renewal interval")
        if not 1 <= self.max_connections <= 1_000_000:
            raise ConfigurationError("max_connections must be 1..1000000")
        if not 0 <= self.max_connections_per_address <= 1_000_000:
            raise ConfigurationError(
                "max_connections_per_address must be 0..1000000 (0: no per-address cap)"
            )
        if not 0 <= self.max_connections_per_network <= 1_000_000:
            raise ConfigurationError(
                "max_connections_per_network must be 0..1000000 (0: no per-network cap)"
            )
        if not 1 <= self.max_machines <= MAX_MACHINES_LIMIT:
            raise ConfigurationError(f"max_machines must be 1..{MAX_MACHINES_LIMIT}")
        if not 0 <= self.new_machines_per_hour <= 10_000_000:
            raise ConfigurationError("new_machines_per_hour must be 0..10000000 (0: no limit)")
        if not 0.1 <= self.read_timeout <= 600:
            raise ConfigurationError("read_timeout must be 0.1..600 seconds")
        if not self.fqdn or len(self.fqdn) > 253:
            raise ConfigurationError("the host FQDN must be 1..253 characters")

    def with_changes(self, **changes: Any) -> HostConfig:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        obj = asdict(self)
        extra = obj.pop("extra")
        obj["host_id"] = self.host_id.hex()
        obj["listen"] = list(self.listen)
        return {**extra, "format": CONFIG_FORMAT, "version": CONFIG_VERSION, **obj}

    @classmethod
    def from_json(cls, obj: Any) -> HostConfig:
        if not isinstance(obj, dict) or obj.get("format") != CONFIG_FORMAT:
            raise ConfigurationError(f"{CONFIG_FILE} is not a volact host configuration")
        if obj.get("version") != CONFIG_VERSION:
            raise ConfigurationError(f"host configuration version {obj.get('version')!r}")
        known = {
            "host_id", "fqdn", "port", "listen", "activation_interval",
            "renewal_interval", "count_vms", "max_connections", "max_connections_per_address",
            "read_timeout", "max_connections_per_network", "max_machines",
            "new_machines_per_hour",
        }  # fmt: skip
        extra = {k: v for k, v in obj.items() if k not in known | {"format", "version"}}
        count_vms = obj.get("count_vms", True)
        if not isinstance(count_vms, bool):
            raise ConfigurationError(
                f"{CONFIG_FILE}: count_vms must be true or false (a JSON boolean), "
                f"not {count_vms!r}"
            )
        try:
            return cls(
                host_id=bytes.fromhex(str(obj["host_id"])),
                fqdn=str(obj.get("fqdn", "localhost")),
                port=int(obj.get("port", DEFAULT_PORT)),
                listen=tuple(str(a) for a in obj.get("listen", [])),
                activation_interval=int(
                    obj.get("activation_interval", DEFAULT_ACTIVATION_INTERVAL)
                ),
                renewal_interval=int(obj.get("renewal_interval", DEFAULT_RENEWAL_INTERVAL)),
                count_vms=count_vms,
                max_connections=int(obj.get("max_connections", DEFAULT_MAX_CONNECTIONS)),
                max_connections_per_address=int(
                    obj.get("max_connections_per_address", DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)
                ),
                max_connections_per_network=int(
                    obj.get("max_connections_per_network", DEFAULT_MAX_CONNECTIONS_PER_NETWORK)
                ),
                read_timeout=float(obj.get("read_timeout", DEFAULT_READ_TIMEOUT)),
                max_machines=int(obj.get("max_machines", DEFAULT_MAX_MACHINES)),
                new_machines_per_hour=int(
                    obj.get("new_machines_per_hour", DEFAULT_NEW_MACHINES_PER_HOUR)
                ),
                extra=extra,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"{CONFIG_FILE} is malformed: {exc}") from exc


def parse_listen(addr: str, default_port: int) -> tuple[str, int]:
    """``ADDR[:PORT]`` → (host, port); IPv6 literals go in brackets: ``[::1]:1688``.

    ``:PORT`` or ``*:PORT`` (no address) gives the host ``""``: all interfaces, IPv4
    and IPv6, like listening with no address at all. Port 0 lets the system choose.
    """
    if not addr.strip():
        raise AddressError("an empty listen address")
    return parse_hostport(
        addr, default_port=default_port, ports=LISTEN, what="listen address", any_host=True
    )
