"""Fetching the vendor's revocation list from the authority.

``GET {authority}/v1/revocations`` answers ``{"sequence": N, "revocation_list":
"<base64>"}`` (or nulls while the vendor has revoked nothing). The list is signed by
the vendor key: what the authority (or anyone on the path) sends is trusted only
after :meth:`volact.client.api.Activation.apply_revocations` has verified it, and a
list older than the one a client holds is never taken (no rollback). This module is
the thin ``httpx`` adapter and the parser; failures to get an answer become
:class:`~volact.errors.TransportError`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from volact.errors import ConfigurationError, TransportError
from volact.exchanges import authority_url

if TYPE_CHECKING:
    import httpx

REVOCATIONS_PATH = "/v1/revocations"
#: An answer larger than this is not a revocation list a client should parse.
MAX_ANSWER_BYTES = 1 << 20


@dataclass(frozen=True)
class RevocationsAnswer:
    """The authority's answer, unverified."""

    sequence: int | None  #: the sequence the authority claims (the signed one decides)
    revocation_list: bytes | None  #: the signed list, or None when there is none


def parse_answer(body: bytes) -> RevocationsAnswer:
    """The answer's fields; a malformed body raises :class:`TransportError`."""
    if len(body) > MAX_ANSWER_BYTES:
        raise TransportError(f"the authority's revocation answer is over {MAX_ANSWER_BYTES} bytes")
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TransportError(f"the authority's revocation answer is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise TransportError("the authority's revocation answer is not a JSON object")
    seq, data = obj.get("sequence"), obj.get("revocation_list")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
        raise TransportError(f"the authority's revocation sequence {seq!r} is not an integer")
    if data is None:
        return RevocationsAnswer(seq, None)
    if not isinstance(data, str):
        raise TransportError("the authority's revocation list is not a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TransportError(f"the authority's revocation list is not base64: {exc}") from exc
    return RevocationsAnswer(seq, raw)


def revocations_url(authority: str) -> str:
    return authority_url(authority).rstrip("/") + REVOCATIONS_PATH


def fetch_revocations(
    authority: str, *, timeout: float = 30.0, client: httpx.Client | None = None
) -> RevocationsAnswer:
    """GET the authority's current revocation list (unverified)."""
    import httpx  # here: importing it costs ~30 ms that `volact client status` need not pay

    url = revocations_url(authority)
    try:
        if client is not None:
            resp = client.get(url, timeout=timeout)
        else:
            with httpx.Client(timeout=timeout) as c:
                resp = c.get(url)
    except (httpx.InvalidURL, UnicodeError) as exc:  # not HTTPErrors: the URL itself is bad
        raise ConfigurationError(f"authority URL {authority!r} is malformed ({exc})") from exc
    except httpx.HTTPError as exc:
        raise TransportError(f"the authority at {authority} did not answer: {exc}") from exc
    if resp.status_code != 200:
        raise TransportError(
            f"the authority at {authority} answered HTTP {resp.status_code} for {REVOCATIONS_PATH}"
        )
    return parse_answer(resp.content)
