"""The key management host's decisions, sans-I/O: counting, thresholds, tickets.

:class:`HostCore` takes a request (a wire frame or an :class:`ActivateRequest`),
the time ``now`` and the client's address, and returns a :class:`Decision`: the
reply to send and the record to persist. It counts with a
:class:`~volact.host.client_index.ClientIndex` (the in-memory count of distinct
machines seen in the last 30 days); the server loads it from the store at start
and the store persists every record, but nothing here knows about either. This
module must not import ``socket``, ``asyncio``, ``sqlite3`` or
``time``: the clock is the ``now`` argument, Unix seconds.

Count semantics (``docs/protocol.md``): one count per host, the number of distinct
CMIDs whose last admissible request (clock within the skew, SKU in the catalog)
came less than 30 days ago, any SKU, with virtual machines left out when the host
counts physical machines only. A request is compared against the threshold of its
SKU's product group, with the requesting machine already counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from volact.catalog import Catalog
from volact.documents import HostLicense, RevocationList, ticket_body, verify_host_license
from volact.errors import ConfigurationError, DecodeError, Revoked
from volact.host.admission import NewMachines, network_of
from volact.host.client_index import COUNT_WINDOW, ClientIndex, Touch
from volact.host.config import HostConfig
from volact.host.rebalance import Rebalance
from volact.signing import SigningKey
from volact.wire import (
    ACTIVATE_VERSIONS,
    DAY,
    HEADER_BYTES,
    MAX_CLOCK_SKEW,
    MAX_REQUEST_FRAME,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_MOVE,
    VALIDITY_SECONDS,
    ActivateReply,
    ActivateRequest,
    GetLicense,
    LicenseReply,
    LicenseState,
    MsgType,
    RawRequest,
    Result,
    decode,
    decode_request,
    encode,
    encode_reply,
)

#: Refusals decided before a machine is counted: such a request does not make it a
#: known client (a request with another protocol version never gets this far).
NOT_COUNTED = frozenset({Result.CLOCK_SKEW, Result.UNKNOWN_SKU, Result.COUNT_REFUSED})
#: At most one ``count_flood`` event per this many seconds.
FLOOD_EVENT_PERIOD = 60
#: Networks named in one ``count_flood`` event (the busiest); the rest are summed.
FLOOD_EVENT_NETWORKS = 5
_MAX_FLOOD_NETWORKS = 1000
VALIDITY = VALIDITY_SECONDS
_NO_HOST_ID = bytes(8)
_OK = int(Result.OK)  # records and frames hold plain ints (SQLite binds them fastest)
_new_tuple = tuple.__new__


class RequestRecord(NamedTuple):
    """What the store keeps of one activation request (a tuple: written in bulk)."""

    time: int  #: host time of the request, Unix seconds
    address: str  #: the client's address as the server saw it
    cmid: bytes  #: the client machine id (16 bytes)
    sku: bytes  #: the SKU id (16 bytes)
    workstation: str  #: the name the client reported
    vm: bool  #: the client says it is a virtual machine
    state: int  #: the client's :class:`LicenseState`
    minutes_left: int  #: minutes left in the client's grace or validity
    client_time: int  #: the client's clock
    result: int  #: the :class:`Result` code sent back
    host_count: int  #: the host's count in the reply
    valid_until: int  #: end of the granted activation (0 unless granted)
    moved: bool = False  #: the grant's ticket asked the client to move (rebalance)

    @property
    def renewal(self) -> bool:
        """A grant to a machine that was already licensed (else a new activation)."""
        return self.result == Result.OK and self.state == LicenseState.LICENSED


class Decision(NamedTuple):
    """The outcome of one exchange: the frame to send and what to persist.

    A tuple (immutable, and one is made per request: cheaper than a dataclass).
    """

    frame: bytes  #: the whole reply frame
    record: RequestRecord | None  #: the request to persist, None for license fetches
    #: what the request changed in the count: give it to :meth:`HostCore.forget`
    #: if the record could not be persisted (None when the count was not touched)
    touched: Touch | None = None

    @property
    def reply(self) -> ActivateReply | LicenseReply:
        """The reply as a value (decoded on demand: the hot path only needs bytes)."""
        msg = decode(self.frame)
        assert isinstance(msg, ActivateReply | LicenseReply)
        return msg

    @property
    def must_commit(self) -> bool:
        """A grant goes out only after its record is durable."""
        return self.record is not None and self.record.result == Result.OK


class HostCore:
    """The host's policy: from a request and ``now``, a reply and a record.

    ``signing_key`` and ``host_license`` are None until the host is activated;
    the license is verified against ``vendor_public_key`` once, here, and must name
    this host's id and public key. ``revocations`` is the vendor's list, if any.

    A count flood (anyone can invent machine ids) is bounded twice: the count
    holds at most ``config.max_machines`` machines, and one IPv4 /24 or IPv6 /64
    may add at most ``config.new_machines_per_hour`` machines new to the count
    (:class:`~volact.host.admission.NewMachines`). A new machine past either is
    answered ``COUNT_REFUSED``, is not counted and leaves no record (a flood must
    not fill the store either); :attr:`refused_new` counts them for metrics and
    :meth:`flood_events` summarizes them in at most one event a minute.
    """

    def __init__(
        self,
        *,
        config: HostConfig,
        catalog: Catalog,
        signing_key: SigningKey | None,
        host_license: bytes | None,
        vendor_public_key: bytes | None,
        revocations: RevocationList | None = None,
        index: ClientIndex | None = None,
        max_skew: int = MAX_CLOCK_SKEW,
        validity: int = VALIDITY,
        rebalance: Rebalance | None = None,
    ) -> None:
        self.config = config  # a property: see its setter
        #: the standing request that a share of clients move (None: nobody is asked);
        #: a server replaces it when the setting changes
        self.rebalance = rebalance
        self.catalog = catalog
        self.index = index if index is not None else ClientIndex()
        self.index.capacity = config.max_machines
        self.new_machines = NewMachines(config.new_machines_per_hour)
        #: machines new to the count refused since start, by reason
        self.refused_new: dict[str, int] = {"full": 0, "rate": 0}
        self._flood: dict[str, int] = {}  # refused by network since the last event
        self._flood_reasons: dict[str, int] = {}
        self._flood_next = 0
        self.max_skew = max_skew
        self.validity = validity
        self.signing_key = signing_key
        self.license: HostLicense | None = None
        self.license_bytes = host_license or b""
        self.revoked = False
        if host_license is not None:
            self.license = check_license(
                host_license, config.host_id, signing_key, vendor_public_key
            )
            if revocations is not None:
                try:
                    revocations.check(self.license)
                except Revoked:
                    self.revoked = True
        self._license_frame = encode(LicenseReply(self.license_bytes))
        self._thresholds = {s.id.bytes: catalog.group(s.group).threshold for s in catalog.skus}
        self._groups = {s.id.bytes: s.group for s in catalog.skus}
        #: the SKUs a grant may be given for if the license has not expired: what
        #: :meth:`status_for` says, without the expiry, computed once
        self._grantable = frozenset(
            sku for sku in self._groups if self._status(sku) is Result.OK
        )
        self._expires_at = self.license.expires_at if self.license is not None else None

    @property
    def config(self) -> HostConfig:
        """The host's settings; a server replaces them on reload (SIGHUP)."""
        return self._config

    @config.setter
    def config(self, config: HostConfig) -> None:
        self._config = config
        # What every grant reads, taken out of the settings once per change.
        self._count_vms = config.count_vms
        self._host_id = config.host_id
        self._intervals = (config.activation_interval, config.renewal_interval)

    # -- the two entry points -------------------------------------------------

    def handle_frame(self, data: bytes, *, now: int, address: str = "") -> bytes:
        """A whole request frame in, a whole reply frame out (DecodeError on garbage).

        The record is kept only in the in-memory count; a server persists it with
        :meth:`decide_frame` instead.
        """
        return self.decide_frame(data, now=now, address=address).frame

    def decide_frame(self, data: bytes, *, now: int, address: str = "") -> Decision:
        """Decode one frame and decide; :class:`DecodeError` when it is not a request."""
        if len(data) >= HEADER_BYTES and data[3] == MsgType.ACTIVATE:
            if data[2] not in ACTIVATE_VERSIONS:
                # Another version's activation request: say so (in version 1, which
                # every client reads) rather than hang up.
                count = self.index.count(now, count_vms=self.config.count_vms)
                return Decision(self._reply(Result.UNSUPPORTED_VERSION, count, 0), None)
            return self._decide(decode_request(data), now, address)
        msg = decode(data, max_frame=MAX_REQUEST_FRAME)
        if isinstance(msg, GetLicense):
            return Decision(self._license_frame, None)
        raise DecodeError(f"a host does not accept {type(msg).__name__} messages")

    def handle(self, req: ActivateRequest, *, now: int, address: str = "") -> Decision:
        """Decide on one activation or renewal request."""
        raw = RawRequest(
            req.sku.bytes, req.cmid.bytes, req.nonce, req.client_time, int(req.state),
            req.minutes_left, req.vm, req.workstation, req.version,
        )  # fmt: skip
        return self._decide(raw, now, address)

    def _decide(self, req: RawRequest, now: int, address: str) -> Decision:
        # The hot path of every exchange: locals, plain tuples, no helper calls that
        # a grant does not need.
        sku, cmid, nonce, client_time, state, minutes_left, vm, workstation, version = req
        required = self._thresholds.get(sku)
        skewed = abs(client_time - now) > self.max_skew
        if skewed or required is None:
            # Refused before counting: the count is the host's without this machine.
            count = self.index.count(now, count_vms=self._count_vms)
            result = Result.CLOCK_SKEW if skewed else Result.UNKNOWN_SKU
            return self._refuse(req, now, address, result, count, required or 0)
        index = self.index
        if cmid not in index:
            reason = (
                "full" if not index.can_add()
                else None if self.new_machines.allow(address, now)
                else "rate"
            )  # fmt: skip
            if reason is not None:
                return self._refuse_new(reason, address, now, required)
        touched = index.touch(cmid, now, vm)
        count = index.count(now, count_vms=self._count_vms)
        expires = self._expires_at
        if sku in self._grantable and (expires is None or now < expires):
            result = Result.OK if count >= required else Result.COUNT_TOO_LOW
        else:
            result = self.status_for(sku, now)
        if result is not Result.OK:
            frame = self._reply(result, count, required, version)
            return Decision(frame, _record(req, now, address, result, count, 0), touched)
        key = self.signing_key
        assert key is not None
        valid_until = now + self.validity
        host_id = self._host_id
        act, ren = self._intervals
        # A version-2 client gets a version-2 ticket, whose signed flags may ask it
        # to move; a version-1 client cannot be asked (it would not read the ticket).
        move: bool | None = None
        if version >= PROTOCOL_VERSION_MOVE:
            rb = self.rebalance
            move = rb is not None and rb.selects(cmid, host_id)
        body = ticket_body(
            cmid, sku, nonce, host_id, now, valid_until, act, ren, count, move,
        )  # fmt: skip
        frame = encode_reply(
            _OK, count, required, act, ren, host_id, body + key.sign(body), version,
        )  # fmt: skip
        # tuple.__new__: the NamedTuple without its Python-level constructor.
        record = _new_tuple(RequestRecord, (
            now, address, cmid, sku, workstation, vm, state, minutes_left, client_time, _OK,
            count, valid_until, bool(move),
        ))  # fmt: skip
        return _new_tuple(Decision, (frame, record, touched))

    def forget(self, touched: Sequence[Touch]) -> None:
        """Take decided requests back out of the count: their records were not persisted.

        The count then matches the store again (a server calls this when a group
        commit fails); ``touched`` are the decisions' :attr:`Decision.touched`, in
        the order they were decided.
        """
        self.index.undo(touched)

    def _refuse_new(self, reason: str, address: str, now: int, required: int) -> Decision:
        self.refused_new[reason] += 1
        self._flood_reasons[reason] = self._flood_reasons.get(reason, 0) + 1
        network = network_of(address)
        if network in self._flood or len(self._flood) < _MAX_FLOOD_NETWORKS:
            self._flood[network] = self._flood.get(network, 0) + 1
        else:
            self._flood["other networks"] = self._flood.get("other networks", 0) + 1
        count = self.index.count(now, count_vms=self.config.count_vms)
        return Decision(self._reply(Result.COUNT_REFUSED, count, required), None)

    def flood_events(self, now: int, *, final: bool = False) -> list[tuple[int, str, str]]:
        """A ``count_flood`` event row for the new machines refused lately, at most once a minute.

        ``final`` (the host is stopping) gives the summary whatever the time. The
        message names the reasons and the busiest networks (text the host formatted
        itself: no client data in it).
        """
        if not self._flood_reasons or (now < self._flood_next and not final):
            return []
        reasons = ", ".join(
            f"{n} {'because the count is full' if r == 'full' else 'over the rate of one network'}"
            for r, n in sorted(self._flood_reasons.items())
        )
        busiest = sorted(self._flood.items(), key=lambda kv: -kv[1])
        named = ", ".join(f"{net} ({n})" for net, n in busiest[:FLOOD_EVENT_NETWORKS])
        rest = sum(n for _, n in busiest[FLOOD_EVENT_NETWORKS:])
        if rest:
            named += f", other networks ({rest})"
        total = sum(self._flood_reasons.values())
        message = (
            f"{total} machine{'s' if total > 1 else ''} new to the count refused ({reasons}; "
            f"count {len(self.index)} of at most {self.index.capacity}); from {named}"
        )
        self._flood, self._flood_reasons = {}, {}
        self._flood_next = now + FLOOD_EVENT_PERIOD
        return [(now, "count_flood", message)]

    # -- helpers ---------------------------------------------------------------

    def status_for(self, sku: bytes, now: int) -> Result:
        """Whether this host may activate ``sku`` at all, ignoring the count."""
        lic = self.license
        expired = lic is not None and lic.expires_at is not None and now >= lic.expires_at
        if expired and self.signing_key is not None and not self.revoked:
            return Result.HOST_LICENSE_EXPIRED
        return self._status(sku)

    def _status(self, sku: bytes) -> Result:
        """:meth:`status_for`, leaving out the license's expiry."""
        lic = self.license
        if lic is None or self.signing_key is None:
            return Result.HOST_NOT_ACTIVATED
        if self.revoked:
            return Result.HOST_REVOKED
        if self._groups[sku] not in lic.groups:
            return Result.SKU_NOT_COVERED
        return Result.OK

    def count(self, now: int) -> int:
        return self.index.count(now, count_vms=self.config.count_vms)

    def thresholds(self) -> dict[str, int]:
        return {g.name: g.threshold for g in self.catalog.groups}

    @property
    def activated(self) -> bool:
        return self.license is not None and self.signing_key is not None

    @property
    def host_public_key(self) -> bytes | None:
        return None if self.signing_key is None else self.signing_key.public_key

    def _reply(
        self, result: Result, count: int, required: int, version: int = PROTOCOL_VERSION
    ) -> bytes:
        cfg = self.config
        return encode_reply(
            result, count, required, cfg.activation_interval, cfg.renewal_interval,
            cfg.host_id if self.license is not None else _NO_HOST_ID, b"", version,
        )  # fmt: skip

    def _refuse(
        self, req: RawRequest, now: int, address: str, result: Result, count: int,
        required: int,
    ) -> Decision:  # fmt: skip
        frame = self._reply(result, count, required, req.version)
        return Decision(frame, _record(req, now, address, result, count, 0))


def _record(
    req: RawRequest, now: int, address: str, result: Result, count: int, valid_until: int,
    moved: bool = False,
) -> RequestRecord:  # fmt: skip
    return RequestRecord(
        now, address, req.cmid, req.sku, req.workstation, req.vm, req.state,
        req.minutes_left, req.client_time, int(result), count, valid_until, moved,
    )  # fmt: skip


def check_license(
    data: bytes,
    host_id: bytes,
    signing_key: SigningKey | None,
    vendor_public_key: bytes | None,
    *,
    now: int | None = None,
) -> HostLicense:
    """The host license, if the vendor signed it for this host id and signing key.

    With ``now`` (installing a license), a license that has already expired is
    refused. Without it (loading the installed license to serve), expiry is not
    checked: an expired host answers with its own result code.
    """
    if vendor_public_key is None:
        raise ConfigurationError("a host license needs the vendor key to check it")
    lic, _, _ = HostLicense.decode(data)
    verify_host_license(data, vendor_public_key, now=lic.issued_at)
    if lic.host_id != host_id:
        raise ConfigurationError(
            f"the host license is for host {lic.host_id.hex()}, not this host ({host_id.hex()})"
        )
    if signing_key is None or lic.host_public_key != signing_key.public_key:
        raise ConfigurationError("the host license names another host signing key")
    if now is not None and lic.expires_at is not None and now >= lic.expires_at:
        raise ConfigurationError(
            f"the host license expired {_ago(now - lic.expires_at)} ago (at Unix time "
            f"{lic.expires_at}); ask the vendor for a new one and activate again"
        )
    return lic


def _ago(seconds: int) -> str:
    if seconds >= 2 * DAY:
        return f"{seconds // DAY} days"
    if seconds >= 7200:
        return f"{seconds // 3600} hours"
    return f"{seconds} seconds"


__all__ = [
    "COUNT_WINDOW",
    "MAX_CLOCK_SKEW",
    "NOT_COUNTED",
    "VALIDITY",
    "Decision",
    "HostCore",
    "RequestRecord",
    "check_license",
]
