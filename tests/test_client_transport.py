"""The client transport over real loopback sockets: frames however they arrive, and peers
that are not volact hosts (an HTTP server on the port says so, not "reply too big")."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from volact import wire
from volact.client.srv import HostAddress
from volact.client.transport import exchange, exchange_async
from volact.errors import TransportError
from volact.wire import ActivateReply, Result

REPLY = wire.encode(ActivateReply(Result.COUNT_TOO_LOW, 3, 25, 120, 10080, bytes(8)))
REQUEST = wire.encode(wire.GetLicense())
#: An activation request with a newline byte in it (minutes left: 10), so that an
#: HTTP server reads it as a malformed request line and answers 400 at once.
REQUEST_WITH_NEWLINE = wire.encode(
    wire.ActivateRequest(
        uuid.UUID(int=1), uuid.UUID(int=2), bytes(16), 1_800_000_000,
        wire.LicenseState.GRACE, 10, False, "pc",
    )
)  # fmt: skip


@contextmanager
def one_shot_server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback server that runs ``answer`` on each connection it accepts (bounded)."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(10)
    port = srv.getsockname()[1]

    def loop() -> None:
        for _ in range(2):  # the sync exchange, then the async one
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.recv(256)
                answer(conn)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield port
    finally:
        srv.close()
        t.join(10)


def _both(port: int, request: bytes = REQUEST) -> list[bytes | TransportError]:
    """The sync and async exchange against ``port``: what each returned or raised."""
    address = HostAddress("127.0.0.1", port)
    out: list[bytes | TransportError] = []
    try:
        out.append(exchange(address, request, 5.0))
    except TransportError as exc:
        out.append(exc)
    try:
        out.append(asyncio.run(exchange_async(address, request, 5.0)))
    except TransportError as exc:
        out.append(exc)
    return out


def test_a_reply_in_pieces_is_put_back_together() -> None:
    def dribble(conn: socket.socket) -> None:
        for i in range(len(REPLY)):
            conn.sendall(REPLY[i : i + 1])

    with one_shot_server(dribble) as port:
        assert _both(port) == [REPLY, REPLY]


def test_a_host_that_closes_mid_reply_is_a_transport_error() -> None:
    with one_shot_server(lambda conn: conn.sendall(REPLY[:10])) as port:
        for got in _both(port):
            assert isinstance(got, TransportError) and "after 10 bytes" in str(got)


class _Http(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_http_server_is_reported_as_not_a_volact_host() -> None:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Http)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        results = _both(srv.server_address[1], REQUEST_WITH_NEWLINE)
    finally:
        srv.shutdown()
        srv.server_close()
    for got in results:
        assert isinstance(got, TransportError)
        assert "that is not a volact host" in str(got), got
        assert "exceeds" not in str(got) and "\r" not in str(got)


@pytest.mark.parametrize("answer", [b"SSH-2.0-OpenSSH_9.2\r\n", b"220 smtp.example ESMTP\r\n"])
def test_other_text_protocols_are_not_volact_either(answer: bytes) -> None:
    with one_shot_server(lambda conn: conn.sendall(answer)) as port:
        for got in _both(port):
            assert isinstance(got, TransportError) and "not a volact host" in str(got)
