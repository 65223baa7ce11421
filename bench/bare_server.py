"""The floor for the host benchmark: a bare uvloop server that does only the unavoidable.

Per connection: accept, read one request frame (2-byte length prefix), Ed25519-sign
86 bytes (a ticket body holding the request's CMID and nonce), write a 179-byte
reply shaped like volact's OK reply (so the load generator counts it as valid), close.
No decoding beyond the length, no policy, no store, no logging. ``bench/versus_bare.py``
runs it next to the real host; the ratio of their CPU per exchange is what issue 16
tracks.

    .venv/bin/python bench/bare_server.py [--port 0] [--no-sign]

Prints ``listening on 127.0.0.1:PORT`` once it accepts; runs until SIGTERM/SIGINT.
Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import struct
import sys

import uvloop
from nacl.bindings import crypto_sign, crypto_sign_seed_keypair

_HEAD = struct.pack(">HBBB", 177, 1, 2, 0)  # length, version, ACTIVATE_REPLY, Result.OK
_COUNTERS_AND_ID = bytes(16) + b"bare-id!"
_FILLER = bytes(86 - 32 - 2)  # ticket body: CMID 16 + nonce 16 + the rest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--no-sign", action="store_true", help="skip the signature (64 zero bytes)")
    args = ap.parse_args(argv)
    _, sk = crypto_sign_seed_keypair(os.urandom(32))
    sign = not args.no_sign
    zero_sig = bytes(64)

    class Bare(asyncio.Protocol):
        __slots__ = ("buf", "transport")

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            buf = self.buf + data
            if len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
                self.buf = buf
                return
            body = buf[20:52] + b"\x00\x00" + _FILLER  # CMID + nonce, 86 bytes
            sig = crypto_sign(body, sk)[:64] if sign else zero_sig
            t = self.transport
            t.write(_HEAD + _COUNTERS_AND_ID + body + sig)  # type: ignore[attr-defined]
            t.close()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(Bare, "127.0.0.1", args.port, backlog=4096,
                                       reuse_address=True)  # fmt: skip
        stop = loop.create_future()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, stop.set_result, None)
        port = srv.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await stop
        srv.close()

    uvloop.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
