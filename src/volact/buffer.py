"""A cursor over bytes for decoding, and a builder for encoding.

Every binary structure in volact (wire messages, signed documents) is read with
:class:`Reader`, which raises :class:`~volact.errors.DecodeError` (and nothing
else) on short, long or malformed input. No I/O, no clock.
"""

from __future__ import annotations

import struct
import uuid

from volact.errors import DecodeError, UsageError

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")


class Reader:
    """Reads big-endian fields from ``data``, front to back."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, what: str = "data") -> None:
        self._data = bytes(data)
        self._pos = 0
        self._what = what

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise DecodeError(
                f"{self._what} is truncated: needs {end} bytes, has {len(self._data)}"
            )
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def u8(self) -> int:
        return int(_U8.unpack(self._take(1))[0])

    def u16(self) -> int:
        return int(_U16.unpack(self._take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self._take(4))[0])

    def i64(self) -> int:
        return int(_I64.unpack(self._take(8))[0])

    def raw(self, n: int) -> bytes:
        return self._take(n)

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(bytes=self._take(16))

    def short_text(self, max_bytes: int) -> str:
        """A UTF-8 string preceded by its length in one byte."""
        n = self.u8()
        if n > max_bytes:
            raise DecodeError(f"{self._what}: text of {n} bytes exceeds {max_bytes}")
        try:
            return self._take(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{self._what}: text is not UTF-8") from exc

    def rest(self) -> bytes:
        return self._take(self.remaining)

    def end(self) -> None:
        """Require that everything was consumed."""
        if self._pos != len(self._data):
            raise DecodeError(
                f"{self._what} has {len(self._data) - self._pos} unexpected trailing bytes"
            )


class Writer:
    """Builds big-endian fields; the twin of :class:`Reader`."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, v: int) -> Writer:
        self._parts.append(_U8.pack(v))
        return self

    def u16(self, v: int) -> Writer:
        self._parts.append(_U16.pack(v))
        return self

    def u32(self, v: int) -> Writer:
        self._parts.append(_U32.pack(v))
        return self

    def i64(self, v: int) -> Writer:
        self._parts.append(_I64.pack(v))
        return self

    def raw(self, b: bytes) -> Writer:
        self._parts.append(bytes(b))
        return self

    def uuid(self, u: uuid.UUID) -> Writer:
        self._parts.append(u.bytes)
        return self

    def short_text(self, s: str, max_bytes: int) -> Writer:
        b = s.encode("utf-8")
        if len(b) > max_bytes:
            raise UsageError(f"text of {len(b)} bytes exceeds {max_bytes}")
        self._parts.append(_U8.pack(len(b)) + b)
        return self

    def getvalue(self) -> bytes:
        return b"".join(self._parts)
