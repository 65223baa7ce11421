"""The client's network adapters: one frame out, one frame back, over TCP.

:func:`exchange` (blocking) and :func:`exchange_async` (asyncio) connect to a host
(a name is resolved through :mod:`volact.client.discovery`, IPv6 first as it
returns them; IP literals, v4 or v6, are used as they are), send one request frame,
read one reply frame of at most :data:`~volact.wire.MAX_REPLY_FRAME` bytes (cut
out of the stream by :class:`~volact.wire.FrameReader`, as the host does) and
close. A peer that answers in another protocol (an HTTP server on the port) is
reported as "not a volact host". Every step is bounded by the timeout, and
every ``OSError`` becomes a :class:`~volact.errors.TransportError`. No policy
lives here: what to send, to whom, and what the answer means is the planner's
business.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Sequence

from volact.addresses import ip_literal
from volact.client import discovery
from volact.client.srv import HostAddress
from volact.errors import DecodeError, NotVolactError, TransportError
from volact.wire import MAX_REPLY_FRAME, FrameReader


def _addresses(
    address: HostAddress, nameservers: Sequence[HostAddress] | None, timeout: float
) -> list[str]:
    if ip_literal(address.host) is not None:
        return [address.host]
    if nameservers is None and address.host.lower() in ("localhost", "localhost."):
        return ["::1", "127.0.0.1"]
    found = discovery.resolve_host(address.host, nameservers=nameservers, timeout=timeout)
    if not found:
        raise TransportError(f"{address.host} has no address in DNS")
    return list(found)[:8]


class _Closed(TransportError):
    """The host closed the connection before a whole reply."""


def _reader() -> FrameReader:
    return FrameReader(MAX_REPLY_FRAME, peer="host")


def _feed(frames: FrameReader, data: bytes, ip: str, port: int) -> bytes | None:
    """The reply once ``data`` completes it; a TransportError when the bytes are not volact."""
    if not data:
        raise _Closed(
            f"the host at {ip} port {port} closed the connection after {frames.buffered} bytes"
        )
    try:
        got = frames.feed(data)
    except NotVolactError as exc:
        raise TransportError(f"{ip} port {port}: {exc}") from exc
    except DecodeError as exc:
        raise TransportError(f"bad reply framing from {ip} port {port}: {exc}") from exc
    return got[0] if got else None


def _recv_frame(sock: socket.socket, deadline: float, ip: str, port: int) -> bytes:
    frames = _reader()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out reading the reply")
        sock.settimeout(left)
        reply = _feed(frames, sock.recv(MAX_REPLY_FRAME), ip, port)
        if reply is not None:
            return reply


def exchange(
    address: HostAddress,
    frame: bytes,
    timeout: float,
    *,
    nameservers: Sequence[HostAddress] | None = None,
) -> bytes:
    """Send ``frame`` to ``address`` and return the one frame it answers with."""
    deadline = time.monotonic() + timeout
    errors: list[str] = []
    for ip in _addresses(address, nameservers, timeout):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            with socket.create_connection((ip, address.port), timeout=left) as sock:
                sock.sendall(frame)
                return _recv_frame(sock, deadline, ip, address.port)
        except TransportError:
            raise
        except OSError as exc:  # refused, reset, unreachable, timeout
            errors.append(f"{ip}: {exc.strerror or exc.__class__.__name__}")
    detail = "; ".join(errors) or "out of time"
    raise TransportError(f"{address} did not answer ({detail})")


async def exchange_async(
    address: HostAddress,
    frame: bytes,
    timeout: float,
    *,
    nameservers: Sequence[HostAddress] | None = None,
) -> bytes:
    """The asyncio twin of :func:`exchange`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    if ip_literal(address.host) is not None:
        ips = [address.host]
    elif nameservers is None and address.host.lower() in ("localhost", "localhost."):
        ips = ["::1", "127.0.0.1"]
    else:
        ips = list(
            await discovery.resolve_host_async(
                address.host, nameservers=nameservers, timeout=timeout
            )
        )[:8]
        if not ips:
            raise TransportError(f"{address.host} has no address in DNS")
    errors: list[str] = []
    for ip in ips:
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            async with asyncio.timeout(left):
                reader, writer = await asyncio.open_connection(ip, address.port)
                try:
                    writer.write(frame)
                    await writer.drain()
                    frames = _reader()
                    while True:
                        data = await reader.read(MAX_REPLY_FRAME)
                        reply = _feed(frames, data, ip, address.port)
                        if reply is not None:
                            return reply
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except _Closed as exc:
            errors.append(f"{ip}: {exc}")
        except TransportError:
            raise
        except (OSError, TimeoutError) as exc:
            errors.append(f"{ip}: {getattr(exc, 'strerror', None) or exc.__class__.__name__}")
    detail = "; ".join(errors) or "out of time"
    raise TransportError(f"{address} did not answer ({detail})")
