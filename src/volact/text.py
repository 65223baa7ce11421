"""Text from the network made safe to show: one escaping rule for terminals and logs.

Workstation names arrive in activation requests and host names in DNS answers;
anyone on the LAN chooses them. Printed raw, an ESC sequence repaints or retitles
the administrator's terminal, OSC 52 writes to their clipboard, a newline forges a
line of output, and a bidi override (U+202E) shows ``exe.txt`` as ``txt.exe``.
:func:`printable` escapes every such character as ``\\xNN`` or ``\\uNNNN`` so that
it is seen, never obeyed. The CLI applies it to all its text output and error lines;
``--json`` needs nothing more (JSON escapes these characters itself, ASCII only).

Plain core: no I/O; it changes nothing that is stored, only what is shown.
"""

from __future__ import annotations

import unicodedata

#: Bidirectional formatting characters (Unicode TR #9): marks, embeddings, overrides,
#: isolates. They reorder what follows them on the screen.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)

#: Unicode categories escaped whatever the character: controls (C0, DEL, C1),
#: line and paragraph separators, surrogates (undecodable bytes kept by Python).
_ESCAPED_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})


def _unsafe(ch: str) -> bool:
    return ch in BIDI_CONTROLS or unicodedata.category(ch) in _ESCAPED_CATEGORIES


def _escape(ch: str) -> str:
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control, separator and bidi character escaped.

    ``keep_newlines`` keeps ``\\n`` (for a whole multi-line output whose fields were
    escaped one by one already); a single field escapes it too, so that a name
    cannot start a forged line.
    """
    if text.isascii() and text.isprintable():
        return text  # the usual case, and the fast one
    return "".join(
        _escape(ch) if _unsafe(ch) and not (keep_newlines and ch == "\n") else ch
        for ch in text
    )


def is_printable(text: str) -> bool:
    """True when :func:`printable` would leave ``text`` as it is (newlines excepted)."""
    return not any(_unsafe(ch) for ch in text)


__all__ = ["BIDI_CONTROLS", "is_printable", "printable"]
