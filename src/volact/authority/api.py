"""The authority's HTTP API (FastAPI), versioned under ``/v1``.

A thin adapter: it turns JSON bodies into :mod:`volact.exchanges` objects, calls
:class:`~volact.authority.activation.Authority`, and turns every refusal into an
``application/problem+json`` body with a stable ``code``. Bad input of any kind is
a 4xx problem, never a 500. No activation rule lives here; the OpenAPI schema
(``/v1/openapi.json``) documents every route, body and problem.
"""

from __future__ import annotations

import base64
import json
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from volact import __version__
from volact.authority import rules
from volact.authority.activation import Authority, hash_token, serial_of
from volact.authority.db import SCHEMA_VERSION, key_summary
from volact.authority.guard import BodyLimit, Limits
from volact.authority.ratelimit import RateLimit, RateLimiter
from volact.documents import RevocationList
from volact.errors import ConfigurationError, VolactError
from volact.exchanges import FORMAT_VERSION, HostActivationRequest, MakRequest
from volact.keys import KeyKind, ProductKey

PROBLEM = "application/problem+json"

#: HTTP status of each problem code (the one place codes map to statuses).
STATUS: dict[str, int] = {
    "malformed_request": 422,
    "mistyped_key": 400,
    "wrong_key_kind": 400,
    "unknown_key": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "exhausted_key": 409,
    "host_id_taken": 409,
    "unknown_host": 404,
    "too_large": 413,
    "timeout": 408,
    "revoked": 403,
    "sku_not_covered": 403,
    "unauthorized": 401,
    "rate_limited": 429,
    "store": 503,
}

TITLES: dict[str, str] = {
    "malformed_request": "Malformed request",
    "mistyped_key": "Mistyped key",
    "wrong_key_kind": "Wrong kind of key",
    "unknown_key": "Unknown key",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "exhausted_key": "Key exhausted",
    "host_id_taken": "Host id taken",
    "unknown_host": "Unknown host",
    "too_large": "Request too large",
    "timeout": "Request timeout",
    "revoked": "Revoked",
    "sku_not_covered": "SKU not covered by this key",
    "unauthorized": "Unauthorized",
    "rate_limited": "Too many requests",
    "store": "Store unavailable",
    "internal": "Internal error",
}


# --------------------------------------------------------------------------- models


class Problem(BaseModel):
    """An RFC 9457 problem with volact's stable ``code``."""

    type: str = Field(description="URI naming the problem type")
    title: str = Field(description="short summary of the problem type")
    status: int = Field(description="HTTP status")
    detail: str = Field(description="what went wrong with this request, for a person")
    code: str = Field(description="stable machine-readable code, e.g. exhausted_key")


#: A name for the vendor's records: printable text, no control characters (C0, DEL, C1).
#: ``volact.exchanges`` refuses the same, for the batch items and the files.
PRINTABLE = r"^[^\x00-\x1F\x7F-\x9F]*$"


def _printable(value: str) -> str:
    # Checked here rather than by ``pattern`` for a message a person can act on.
    for ch in value:
        if unicodedata.category(ch) == "Cc":
            raise ValueError(f"contains the control character U+{ord(ch):04X}; send printable text")
    return value


#: A host or machine name (pydantic already refuses lone surrogates in a str).
Name = Annotated[str, AfterValidator(_printable)]


def _json_integer(value: Any) -> Any:
    # Lax mode takes ``true`` and ``1.0`` for the literal 1; the version is an integer.
    if type(value) is not int:
        raise ValueError("version must be the integer 1")
    return value


#: The format version: the JSON integer 1, exactly.
Version = Annotated[Literal[1], BeforeValidator(_json_integer)]


class HostActivationBody(BaseModel):
    """``volact.exchanges.HostActivationRequest`` as JSON."""

    format: Literal["volact-host-activation-request"]
    version: Version
    host_key: str = Field(max_length=64, description="the host key as typed")
    host_id: str = Field(max_length=64, description="16 hex digits, stable for the host")
    host_public_key: str = Field(max_length=128, description="base64 Ed25519 public key")
    hostname: Name = Field(
        default="",
        max_length=255,
        json_schema_extra={"pattern": PRINTABLE},
        description="the host's FQDN",
    )


class HostActivationResult(BaseModel):
    """``volact.exchanges.HostActivationResponse`` as JSON."""

    format: Literal["volact-host-activation-response"]
    version: int
    host_license: str = Field(description="base64 vendor-signed host license")


class MakBody(BaseModel):
    """``volact.exchanges.MakRequest`` as JSON."""

    format: Literal["volact-mak-request"]
    version: Version
    mak: str = Field(max_length=64, description="the MAK as typed")
    cmid: str = Field(max_length=64, description="the machine id (UUID)")
    sku: str = Field(max_length=64, description="the SKU id (UUID)")
    installation_id: str = Field(max_length=64, description="32 hex digits")
    workstation: Name = Field(
        default="",
        max_length=255,
        json_schema_extra={"pattern": PRINTABLE},
        description="machine name",
    )


class MakError(BaseModel):
    code: str = Field(description="stable code, e.g. exhausted_key")
    detail: str = Field(description="a sentence for a person")


class MakResult(BaseModel):
    """``volact.exchanges.MakResponse`` as JSON: a confirmation or an error."""

    format: Literal["volact-mak-response"]
    version: int
    cmid: str
    confirmation: str | None = Field(default=None, description="base64 MAK confirmation")
    error: MakError | None = None


class MakBatchBody(BaseModel):
    """Many MAK requests in one call (a proxy)."""

    # The batch limit is checked in the route, to answer 413 rather than 422.
    requests: list[Any] = Field(
        description=f"MAK request objects (at most {rules.BATCH_LIMIT}, else 413 "
        "too_large), each answered separately",
    )


class MakBatchResult(BaseModel):
    results: list[MakResult] = Field(description="one answer per request, in order")


class HostInfo(BaseModel):
    host_id: str
    hostname: str
    activations: int
    reactivations_left: int
    first_activated_at: int
    last_activated_at: int


class MachineInfo(BaseModel):
    cmid: str
    sku: str
    installation_id: str
    workstation: str
    activated_at: int


class KeySummary(BaseModel):
    key: str
    key_id: str
    kind: str
    group: str
    activations: int
    activations_used: int
    activations_left: int
    revoked: bool
    reactivations: int | None = None


class KeyInfo(KeySummary):
    hosts: list[HostInfo] | None = None
    machines: list[MachineInfo] | None = None


class KeyList(BaseModel):
    keys: list[KeySummary]


class Revocations(BaseModel):
    sequence: int | None = Field(description="the list's sequence, or null if none yet")
    revocation_list: str | None = Field(description="base64 vendor-signed list, or null")


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    schema_version: int
    vendor_key_id: str


# --------------------------------------------------------------------------- app


@dataclass
class ApiConfig:
    """What the app serves and how it limits."""

    authority: Authority  #: the vendor's authority
    rate_limit: RateLimit = field(default_factory=lambda: RateLimit(50.0, 500))  #: per bucket
    clock: Callable[[], int] = field(default=lambda: int(time.time()))  #: Unix seconds
    monotonic: Callable[[], float] = field(default=time.monotonic)  #: for rate limiting
    limits: Limits = field(default_factory=Limits)  #: body size and time limits


#: Batch items one rate-limit token pays for (a direct activation costs one token;
#: an item of a batch costs a tenth of one: no HTTP, no JSON envelope, shared commit).
ITEMS_PER_TOKEN = 10
#: Tokens a located typo costs on top (a search is about two activations of CPU).
TYPO_COST = 2.0


def problem(code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    status = STATUS.get(code, 400 if code != "internal" else 500)
    body = {
        "type": f"https://volact.example/problems/{code}",
        "title": TITLES.get(code, "Refused"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def answer(obj: dict[str, Any]) -> Response:
    """``obj`` as the JSON body FastAPI would send for it, byte for byte.

    For a plain (``def``) route FastAPI validates a returned dict against the
    route's response model on a worker thread: a second thread hop per request,
    a fifth of a direct activation's CPU once commits are shared (1.95 -> 1.57 ms
    measured, docs/authority.md "Throughput"). The activation routes build their
    answers from :mod:`volact.exchanges`, which already holds them to the model
    (tests/test_authority_api.py checks the bytes), so they return them rendered.
    """
    return Response(
        json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(),
        media_type="application/json",
    )


# Module level: the route signatures are resolved in this module's globals.
_BEARER = HTTPBearer(auto_error=False, description="an admin token from `token create`")


class _Problem(Exception):
    def __init__(self, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.headers = headers


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        c: {"model": Problem, "content": {PROBLEM: {"schema": Problem.model_json_schema()}}}
        for c in codes
    }


def create_app(config: ApiConfig) -> FastAPI:
    auth = config.authority
    limiter = RateLimiter(config.rate_limit)
    app = FastAPI(
        title="volact authority",
        version=__version__,
        description="The vendor's activation authority: host keys, MAKs, revocations.",
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
    )

    @app.exception_handler(_Problem)
    async def _on_problem(_req: Request, exc: _Problem) -> JSONResponse:
        return problem(exc.code, exc.detail, exc.headers)

    @app.exception_handler(VolactError)
    async def _on_volact(_req: Request, exc: VolactError) -> JSONResponse:
        code = "malformed_request" if isinstance(exc, ConfigurationError) else exc.code
        return problem(code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        parts = []
        for e in errs[:5]:
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{loc or 'body'}: {e.get('msg', 'invalid')}")
        return problem("malformed_request", "; ".join(parts) or "the request is malformed")

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "malformed_request"
        )
        # Anything else Starlette refuses (an unparsable body is its 400) is a
        # malformed request, with the one status that code always has.
        return problem(code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _on_bug(_req: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        return problem("internal", f"internal error ({type(exc).__name__}); see the log")

    app.add_middleware(BodyLimit, limits=config.limits)

    def limit(*buckets: tuple[str, float]) -> None:
        """Take each bucket's cost in tokens, or refuse with 429."""
        now = config.monotonic()
        for name, cost in buckets:
            wait = limiter.allow(name, now, cost)
            if wait > 0:
                raise _Problem(
                    "rate_limited",
                    f"too many activation requests ({name.split(':')[0]}); retry later",
                    {"Retry-After": str(max(1, int(wait + 0.999)))},
                )

    def charge(address: str, parser: rules.KeyParser) -> None:
        # Work found while serving (typo searches) is paid for afterwards.
        limiter.charge(address, config.monotonic(), parser.searched * TYPO_COST)

    def client(request: Request) -> str:
        return f"addr:{request.client.host if request.client else 'unknown'}"

    def admin(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> None:
        challenge = {"WWW-Authenticate": 'Bearer realm="volact-authority"'}
        if creds is None or creds.scheme.lower() != "bearer":
            raise _Problem("unauthorized", "send Authorization: Bearer TOKEN", challenge)
        if not auth.store.token_valid(hash_token(creds.credentials)):
            raise _Problem("unauthorized", "the token is unknown or revoked", challenge)

    # A malformed key has no bucket of its own: one shared bucket would let one
    # abuser turn everyone's typo into a 429; its sender's address bucket counts it.

    activation_errors = _responses(400, 403, 404, 408, 409, 413, 422, 429, 503)

    def checked_key(text: str, kind: KeyKind, request: Request) -> ProductKey:
        """The key of one activation, within its sender's and then its own rate."""
        address = client(request)
        limit((address, 1.0))
        parser = rules.KeyParser()
        try:
            parsed = parser.parse(text)
        finally:
            charge(address, parser)
        if isinstance(parsed, VolactError):
            raise parsed
        key = rules.expect_kind(parsed, kind)
        limit(("key:" + key.serial.hex(), 1.0))
        return key

    @app.post(
        "/v1/hosts/activate",
        response_model=HostActivationResult,
        responses=activation_errors,
        summary="Activate a host with a host key",
        tags=["activation"],
    )
    def activate_host(body: HostActivationBody, request: Request) -> Response:
        key = checked_key(body.host_key, KeyKind.HOST, request)
        req = HostActivationRequest.from_json(body.model_dump())
        return answer(auth.activate_host(req, now=config.clock(), key=key).to_json())

    @app.post(
        "/v1/mak/activate",
        response_model=MakResult,
        response_model_exclude_none=True,
        responses=activation_errors,
        summary="Activate one machine with a MAK",
        tags=["activation"],
    )
    def activate_mak(body: MakBody, request: Request) -> Response:
        key = checked_key(body.mak, KeyKind.MAK, request)
        req = MakRequest.from_json(body.model_dump())
        return answer(auth.activate_mak(req, now=config.clock(), key=key).to_json())

    @app.post(
        "/v1/mak/batch",
        response_model=MakBatchResult,
        response_model_exclude_none=True,
        responses=_responses(408, 413, 422, 429, 503),
        summary="Activate many machines in one call (a MAK proxy)",
        tags=["activation"],
    )
    def activate_batch(body: MakBatchBody, request: Request) -> dict[str, Any]:
        items = body.requests
        if len(items) > rules.BATCH_LIMIT:
            raise rules.TooLarge(f"a batch carries at most {rules.BATCH_LIMIT} requests; split it")
        address = client(request)
        # Charged by the work asked for: one token, plus one per ITEMS_PER_TOKEN more items.
        limit((address, 1.0 + max(0, len(items) - 1) / ITEMS_PER_TOKEN))
        parser = rules.KeyParser()
        per_key: dict[bytes, int] = {}
        try:
            for item in items:
                if isinstance(item, dict) and "mak" in item:
                    key = parser.parse(str(item["mak"]))  # as MakRequest.from_json reads it
                    if isinstance(key, ProductKey):
                        per_key[key.serial] = per_key.get(key.serial, 0) + 1
        finally:
            charge(address, parser)
        busiest = sorted(per_key.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
        limit(*(("key:" + s.hex(), 1.0 + (n - 1) / ITEMS_PER_TOKEN) for s, n in busiest))
        results = auth.activate_mak_batch(items, now=config.clock(), keys=parser)
        return {"results": [r.to_json() for r in results]}

    @app.get(
        "/v1/keys",
        response_model=KeyList,
        response_model_exclude_none=True,
        responses=_responses(401, 422, 503),
        dependencies=[Depends(admin)],
        summary="List issued keys (admin)",
        tags=["admin"],
    )
    def list_keys(
        limit_: int = Query(100, alias="limit", ge=1, le=1000),
        offset: int = Query(0, ge=0, le=10_000_000),
    ) -> dict[str, Any]:
        return {"keys": [key_summary(r) for r in auth.store.list_keys(limit=limit_, offset=offset)]}

    @app.get(
        "/v1/keys/{key}",
        response_model=KeyInfo,
        response_model_exclude_none=True,
        responses=_responses(400, 401, 404, 422, 503),
        dependencies=[Depends(admin)],
        summary="One key: kind, group, activations used and left, hosts or machines (admin)",
        tags=["admin"],
    )
    def key_info(key: str = Path(max_length=64)) -> dict[str, Any]:
        return auth.store.key_details(serial_of(key))

    @app.get(
        "/v1/revocations",
        response_model=Revocations,
        responses=_responses(503),
        summary="The current vendor-signed revocation list",
        tags=["revocation"],
    )
    def revocations() -> dict[str, Any]:
        data = auth.store.latest_revocation_list()
        if data is None:
            return {"sequence": None, "revocation_list": None}
        rl, _, _ = RevocationList.decode(data)
        return {"sequence": rl.sequence, "revocation_list": base64.b64encode(data).decode()}

    @app.get(
        "/v1/health",
        response_model=Health,
        responses=_responses(503),
        summary="Liveness and store readiness",
        tags=["health"],
    )
    def health() -> dict[str, Any]:
        version = auth.store.schema_version()
        if version != SCHEMA_VERSION:
            raise _Problem("store", f"store schema {version}, expected {SCHEMA_VERSION}")
        return {
            "status": "ok",
            "version": __version__,
            "schema_version": version,
            "vendor_key_id": auth.home.vendor_key_id.hex(),
        }

    assert FORMAT_VERSION == 1  # the body models above pin version 1
    return app
