"""What keeps the authority's HTTP service up against big bodies, slow clients and its own logs.

* :class:`BodyLimit` — ASGI middleware: a body over :attr:`Limits.max_body` bytes
  is answered ``413`` (problem+json, code ``too_large``) before the app sees it,
  and a body that takes longer than :attr:`Limits.body_timeout` seconds to
  arrive is answered ``408`` (``timeout``). Every route reads its whole body
  anyway, so the middleware reads it once and replays it to the app.
* :class:`GuardedH11Protocol` — uvicorn's h11 protocol with a deadline for the
  request headers (from the connection's start, or from the end of the previous
  response on a kept-alive connection) and a cap on open connections: when the
  cap is reached, a new connection closes the oldest one that has no request in
  progress (a slow-header client or an idle keep-alive), so connections that
  dribble headers cannot crowd out clients that send a whole request at once.
* :class:`RedactFilter` — a logging filter for uvicorn's handlers: product keys,
  ``/v1/keys/…`` paths and bearer tokens never reach a log, at any level.

Limits travel to the worker processes in one environment variable
(:data:`ENV_LIMITS`), like the rest of the service's settings.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import weakref
from dataclasses import asdict, dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

ENV_LIMITS = "VOLACT_AUTHORITY_LIMITS"

#: The largest request body (bytes). A full proxy batch of 1000 MAK requests is
#: about 320 kB; anything larger is refused without being read.
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Limits:
    """How much the HTTP service accepts from one client, and for how long."""

    max_body: int = MAX_BODY  #: bytes of request body
    header_timeout: float = 20.0  #: seconds to send the request line and headers
    body_timeout: float = 20.0  #: seconds to send the body once the headers are in
    max_connections: int = 1000  #: open connections per worker (oldest idle evicted)
    keep_alive: float = 5.0  #: seconds an idle kept-alive connection stays open

    def __post_init__(self) -> None:
        if self.max_body < 1024 or self.max_connections < 2:
            raise ValueError("limits need max_body >= 1024 and max_connections >= 2")
        if min(self.header_timeout, self.body_timeout, self.keep_alive) <= 0:
            raise ValueError("timeouts must be positive")

    def environ(self) -> dict[str, str]:
        return {ENV_LIMITS: json.dumps(asdict(self))}

    @classmethod
    def from_environ(cls) -> Limits:
        return _limits_from(os.environ.get(ENV_LIMITS, ""))


@functools.lru_cache(maxsize=4)
def _limits_from(text: str) -> Limits:
    # Read once per worker, not once per connection.
    return Limits(**json.loads(text)) if text else Limits()


# --------------------------------------------------------------------------- body


def _problem(status: int, code: str, title: str, detail: str) -> bytes:
    body = {
        "type": f"https://volact.example/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    return json.dumps(body).encode()


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_body`` (413) or too slow to arrive (408)."""

    def __init__(self, app: Any, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_body
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(send, 413, "too_large", "Request too large",
                               f"the body is larger than {limit} bytes")  # fmt: skip
            return
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.body_timeout
        more = True
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                await self._refuse(send, 408, "timeout", "Request timeout",
                                   f"the body did not arrive within "
                                   f"{self.limits.body_timeout:g} s")  # fmt: skip
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(send, 413, "too_large", "Request too large",
                                   f"the body is larger than {limit} bytes")  # fmt: skip
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(send: Any, status: int, code: str, title: str, detail: str) -> None:
        body = _problem(status, code, title, detail)
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is not read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- connections

#: Per server: its connections with no request in progress, oldest first.
_IDLE: weakref.WeakKeyDictionary[ServerState, dict[GuardedH11Protocol, None]] = (
    weakref.WeakKeyDictionary()
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a connection cap (see module)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = Limits.from_environ()
        self._timer: asyncio.TimerHandle | None = None
        self._busy = False
        self._idle = _IDLE.setdefault(server_state, {})

    # A connection is "idle" from its start, or from the end of a response, until
    # the next request's headers are complete; only idle connections are evicted.
    # The header deadline runs from the connection's start, and on a kept-alive
    # connection from the first byte of the next request (before that byte,
    # uvicorn's keep-alive timeout closes a silent connection).

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._set_idle()
        self._arm()
        if len(self.connections) > self.limits.max_connections:
            victim = next((c for c in self._idle if c is not self), self)
            victim._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._idle.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._busy and self._timer is None:
            self._arm()
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete and not self._busy:
            # The headers are complete: the body's own deadline is BodyLimit's.
            self._busy = True
            self._idle.pop(self, None)
            self._disarm()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._set_idle()
        super().on_response_complete()  # may start a pipelined request (handle_events)

    def _set_idle(self) -> None:
        self._busy = False
        self._idle.pop(self, None)
        self._idle[self] = None
        self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._timer = self.loop.call_later(self.limits.header_timeout, self._close)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close(self) -> None:
        self._disarm()
        self._idle.pop(self, None)
        # Out of the count now, not when the loop reports the close, so the cap
        # counts only live connections.
        self.connections.discard(self)
        if not self.transport.is_closing():
            self.transport.close()


# --------------------------------------------------------------------------- logs

_KEY = re.compile(r"(?i)\b[0-9A-Z]{5}(?:(?:-|%2D)[0-9A-Z]{5}){4}\b|\b[0-9A-Z]{25}\b")
_KEY_PATH = re.compile(r"(/v1/keys/)[^\s'\"?,)]+")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+|vat_[A-Za-z0-9_-]+")


def redact_log_text(text: str) -> str:
    """``text`` with product keys, key paths and bearer tokens masked."""
    text = _KEY_PATH.sub(r"\1***", text)
    text = _KEY.sub("XXXXX-XXXXX-XXXXX-XXXXX-XXXXX", text)
    return _BEARER.sub(lambda m: (m.group(1) or "") + "***", text)


class RedactFilter(logging.Filter):
    """Masks keys, key paths and tokens in every record a handler writes.

    The message and each argument are masked in place (numbers stay numbers), so
    formatters that read ``record.args`` (uvicorn's access log) still work.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_log_text(record.msg)
        else:
            record.msg = redact_log_text(str(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(_masked(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _masked(v) for k, v in record.args.items()}
        return True


def _masked(arg: object) -> object:
    if arg is None or isinstance(arg, (bool, int, float)):
        return arg
    return redact_log_text(str(arg))


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with :class:`RedactFilter` on every handler."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg.setdefault("filters", {})["redact"] = {"()": f"{__name__}.RedactFilter"}
    for handler in cfg["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), "redact"]
    return cfg
