"""MAK activation: building the request, checking the answer, and the authority's HTTP API.

A machine with a multiple-activation key is activated by the vendor's authority,
not by a host: it sends its installation id (``documents.installation_id``) and
receives a vendor-signed :class:`~volact.documents.MakConfirmation`, which makes it
licensed for good. Online, that is ``POST {authority}/v1/mak/activate`` with a
:class:`~volact.exchanges.MakRequest` body; offline, the same documents travel as
files. The pure functions here build and check documents; :func:`post_mak` is a thin
``httpx`` adapter (imported when first called) whose failures become
:class:`~volact.errors.TransportError` (no answer) or
:class:`~volact.errors.VerificationError` (the authority refused).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from volact.client.state import ClientState
from volact.documents import installation_id, verify_mak_confirmation
from volact.errors import ConfigurationError, TransportError, UsageError, VerificationError
from volact.exchanges import MakRequest, MakResponse, authority_url
from volact.keys import KeyKind
from volact.profile import ProductProfile

if TYPE_CHECKING:
    import httpx

MAK_PATH = "/v1/mak/activate"


class MakRefused(VerificationError):
    """The authority refused the MAK activation (exhausted, unknown or blocked key...)."""

    code = "mak_refused"


def build_request(state: ClientState) -> MakRequest:
    """The request for this machine and its installed MAK."""
    m = state.machine
    if state.key is None or m.sku is None or m.key_kind is not KeyKind.MAK:
        raise UsageError("no MAK is installed: run `volact client install-key` with a MAK first")
    return MakRequest(
        mak=state.key,
        cmid=state.cmid,
        sku=m.sku,
        installation_id=installation_id(state.cmid, m.sku),
        workstation=state.workstation,
    )


def check_response(state: ClientState, profile: ProductProfile, response: MakResponse) -> bytes:
    """The confirmation in ``response`` if it is the vendor's for this machine; else raise."""
    m = state.machine
    if m.sku is None or m.key_kind is not KeyKind.MAK:
        raise UsageError("no MAK is installed on this machine")
    if response.cmid != state.cmid:
        raise VerificationError(f"the response is for machine {response.cmid}, not {state.cmid}")
    if response.confirmation is None:
        raise MakRefused(
            f"the authority refused: {response.error_detail or 'no detail'} "
            f"({response.error_code or 'error'})"
        )
    verify_mak_confirmation(
        response.confirmation, profile.vendor_public_key, cmid=state.cmid, sku=m.sku
    )
    return response.confirmation


def _url(authority: str) -> str:
    return authority_url(authority).rstrip("/") + MAK_PATH


def _parse(resp: httpx.Response, cmid: Any) -> MakResponse:
    if resp.status_code == 200:
        try:
            return MakResponse.from_json(resp.content)
        except ConfigurationError as exc:
            raise TransportError(f"the authority's answer is malformed: {exc}") from exc
    try:
        problem = json.loads(resp.content)
    except ValueError:
        problem = None
    if isinstance(problem, dict):
        detail = problem.get("detail") or problem.get("title") or "refused"
        code = problem.get("code") or f"http_{resp.status_code}"
        return MakResponse(cmid, None, str(code), str(detail))
    raise TransportError(f"the authority answered HTTP {resp.status_code} without a problem body")


def post_mak(
    authority: str,
    request: MakRequest,
    *,
    timeout: float = 30.0,
    client: httpx.Client | None = None,
) -> MakResponse:
    """POST the request to the authority; its answer (a confirmation or an error)."""
    import httpx  # only a machine that activates a MAK online needs the HTTP client

    url = _url(authority)
    try:
        if client is not None:
            resp = client.post(url, json=request.to_json(), timeout=timeout)
        else:
            with httpx.Client(timeout=timeout) as c:
                resp = c.post(url, json=request.to_json())
    except (httpx.InvalidURL, UnicodeError) as exc:  # not HTTPErrors: the URL itself is bad
        raise ConfigurationError(f"authority URL {authority!r} is malformed ({exc})") from exc
    except httpx.HTTPError as exc:
        raise TransportError(f"the authority at {authority} did not answer: {exc}") from exc
    return _parse(resp, request.cmid)
