"""The authority's HTTP API in process: every route, every problem code, rate limits,
admin auth, and a Schemathesis run against the OpenAPI schema (no 500, no response
that breaks the schema)."""

from __future__ import annotations

import base64
import json
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import schemathesis
from schemathesis.generation.modes import GenerationMode

from volact.authority.activation import Authority, hash_token, issue_key, new_token
from volact.authority.api import ApiConfig, HostActivationResult, MakResult, create_app
from volact.authority.db import Store
from volact.authority.ratelimit import RateLimit
from volact.authority.vault import AuthorityHome
from volact.catalog import demo_catalog
from volact.documents import installation_id, verify_host_license, verify_mak_confirmation
from volact.errors import ConfigurationError
from volact.exchanges import HostActivationRequest, MakRequest, MakResponse
from volact.keys import KeyKind, ProductKey
from volact.signing import SigningKey

NOW = 1_800_000_000
CATALOG = demo_catalog()
DESKTOP = next(s for s in CATALOG.skus if s.group == "desktop")
SERVER = next(s for s in CATALOG.skus if s.group == "server")


@dataclass
class Api:
    client: TestClient
    auth: Authority
    token: str

    def key(self, kind: str, group: str, n: int | None = None) -> str:
        rec = issue_key(
            self.auth.home, self.auth.store, KeyKind.from_label(kind), group,
            activations=n, reactivations=None, now=NOW,
        )  # fmt: skip
        return rec.text

    @property
    def pub(self) -> bytes:
        return self.auth.home.vendor_public_key


def make_api(
    tmp: Path,
    limit: RateLimit | None = None,
    clock: list[float] | None = None,
    database: str | None = None,
) -> Api:
    home = AuthorityHome.init(tmp / "auth", vendor="Test", catalog=CATALOG, database=database)
    store = Store(home.database_url)
    store.migrate()
    auth = Authority(home, store, home.signing_key())
    token = new_token()
    store.add_token("test", hash_token(token), now=NOW)
    cfg = ApiConfig(auth, clock=lambda: NOW)
    if limit is not None:
        cfg.rate_limit = limit
    if clock is not None:
        cfg.monotonic = lambda: clock[0]
    return Api(TestClient(create_app(cfg)), auth, token)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    a = make_api(tmp_path)
    yield a
    a.client.close()
    a.auth.store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_store_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """The API on SQLite and on a real PostgreSQL (a database of its own)."""
    database = None
    if request.param == "postgres":
        pg = request.getfixturevalue("postgres")
        database = pg.create_database("api_" + uuid.uuid4().hex[:16])
    a = make_api(tmp_path, database=database)
    yield a
    a.client.close()
    a.auth.store.close()


def mak_body(
    mak: str, cmid: uuid.UUID | None = None, sku: uuid.UUID = DESKTOP.id
) -> dict[str, Any]:
    cmid = cmid or uuid.uuid4()
    return MakRequest(mak, cmid, sku, installation_id(cmid, sku), "ws").to_json()


def host_body(key: str, host_id: bytes = b"\x05" * 8, pub: bytes | None = None) -> dict[str, Any]:
    pub = pub or SigningKey.generate().public_key
    return HostActivationRequest(key, host_id, pub, "kms.example").to_json()


def assert_problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["code"] == code and body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return dict(body)


def test_health_and_openapi(api: Api) -> None:
    h = api.client.get("/v1/health").json()
    assert h["status"] == "ok" and h["vendor_key_id"] == api.auth.home.vendor_key_id.hex()
    spec = api.client.get("/v1/openapi.json").json()
    assert {"/v1/hosts/activate", "/v1/mak/activate", "/v1/mak/batch", "/v1/keys/{key}",
            "/v1/revocations", "/v1/health"} <= set(spec["paths"])  # fmt: skip


def test_host_activation(api: Api) -> None:
    key = api.key("host", "server")
    pub = SigningKey.generate().public_key
    r = api.client.post("/v1/hosts/activate", json=host_body(key, b"\x07" * 8, pub))
    assert r.status_code == 200, r.text
    lic = verify_host_license(base64.b64decode(r.json()["host_license"]), api.pub, now=NOW)
    assert lic.host_id == b"\x07" * 8 and lic.host_public_key == pub
    assert lic.groups == ("desktop", "server") and lic.issued_at == NOW
    # A retry is answered without consuming anything.
    assert (
        api.client.post("/v1/hosts/activate", json=host_body(key, b"\x07" * 8, pub)).status_code
        == 200
    )
    rec = api.auth.store.get_key(ProductKey.parse(key).serial)
    assert rec is not None and rec.used == 1


def test_activation_answers_are_what_their_response_models_send(api: Api) -> None:
    # The activation routes return their answers already rendered (api.answer), not
    # through FastAPI's response validation: the bytes must be what it would send.
    host = api.client.post(
        "/v1/hosts/activate", json=host_body(api.key("host", "server"), b"\x05" * 8)
    )
    mak = api.client.post("/v1/mak/activate", json=mak_body(api.key("mak", "desktop")))
    for r, model in ((host, HostActivationResult), (mak, MakResult)):
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.content == model.model_validate_json(r.content).model_dump_json(
            exclude_none=True
        ).encode()
    assert set(mak.json()) == {"format", "version", "cmid", "confirmation"}


def test_host_key_exhausted_and_wrong_kind(api: Api) -> None:
    key = api.key("host", "desktop", 1)
    assert (
        api.client.post("/v1/hosts/activate", json=host_body(key, b"\x01" * 8)).status_code == 200
    )
    assert_problem(
        api.client.post("/v1/hosts/activate", json=host_body(key, b"\x02" * 8)),
        409,
        "exhausted_key",
    )
    mak = api.key("mak", "desktop")
    assert_problem(
        api.client.post("/v1/hosts/activate", json=host_body(mak)), 400, "wrong_key_kind"
    )
    assert_problem(api.client.post("/v1/mak/activate", json=mak_body(key)), 400, "wrong_key_kind")


def test_mistyped_and_unknown_keys(api: Api) -> None:
    key = api.key("mak", "desktop")
    typo = key[:-1] + ("2" if key[-1] != "2" else "3")
    p = assert_problem(
        api.client.post("/v1/mak/activate", json=mak_body(typo)), 400, "mistyped_key"
    )
    assert "mistyped" in p["detail"]
    unknown = ProductKey.generate(KeyKind.MAK, b"\x11" * 12).text
    assert_problem(api.client.post("/v1/mak/activate", json=mak_body(unknown)), 404, "unknown_key")


def test_mak_direct(api: Api) -> None:
    mak = api.key("mak", "desktop", 1)
    body = mak_body(mak)
    r = api.client.post("/v1/mak/activate", json=body)
    assert r.status_code == 200, r.text
    resp = MakResponse.from_json(r.json())
    assert resp.confirmation is not None
    cmid, sku = uuid.UUID(body["cmid"]), uuid.UUID(body["sku"])
    verify_mak_confirmation(resp.confirmation, api.pub, cmid=cmid, sku=sku)
    assert api.client.post("/v1/mak/activate", json=body).status_code == 200  # same machine
    assert_problem(api.client.post("/v1/mak/activate", json=mak_body(mak)), 409, "exhausted_key")
    other = mak_body(api.key("mak", "desktop"), sku=SERVER.id)
    p = assert_problem(api.client.post("/v1/mak/activate", json=other), 403, "sku_not_covered")
    assert "desktop" in p["detail"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("cmid"),
        lambda b: b.update(installation_id="00" * 16),
        lambda b: b.update(installation_id="zz"),
        lambda b: b.update(cmid="not-a-uuid"),
        lambda b: b.update(sku=str(uuid.uuid4())),
        lambda b: b.update(format="volact-host-activation-request"),
        lambda b: b.update(version=2),
        lambda b: b.update(mak=7),
    ],
)
def test_malformed_mak_requests(api: Api, mutate: Any) -> None:
    body = mak_body(api.key("mak", "desktop"))
    mutate(body)
    assert_problem(api.client.post("/v1/mak/activate", json=body), 422, "malformed_request")


def test_malformed_bodies_never_500(api: Api) -> None:
    for path in ("/v1/hosts/activate", "/v1/mak/activate", "/v1/mak/batch"):
        for raw in (b"", b"{", b"[]", b"null", b"\xff\xfe", json.dumps({"requests": 5}).encode()):
            r = api.client.post(path, content=raw, headers={"content-type": "application/json"})
            assert_problem(r, 422, "malformed_request")
    bad_host = host_body(api.key("host", "server"))
    bad_host["host_public_key"] = "!!!"
    assert_problem(api.client.post("/v1/hosts/activate", json=bad_host), 422, "malformed_request")
    assert_problem(api.client.get("/v1/nowhere"), 404, "not_found")
    assert_problem(api.client.get("/v1/mak/activate"), 405, "method_not_allowed")


def test_batch(api: Api) -> None:
    mak = api.key("mak", "desktop", 2)
    a, b, c = mak_body(mak), mak_body(mak), mak_body(mak)
    garbage = {"format": "volact-mak-request", "cmid": "x"}
    r = api.client.post("/v1/mak/batch", json={"requests": [a, a, garbage, b, c, 7]})
    assert r.status_code == 200, r.text
    results = [MakResponse.from_json(x) for x in r.json()["results"]]
    assert [str(x.cmid) for x in results[:2]] == [a["cmid"], a["cmid"]]
    assert [x.error_code for x in results] == [
        None, None, "malformed_request", None, "exhausted_key", "malformed_request",
    ]  # fmt: skip
    assert results[4].cmid == uuid.UUID(c["cmid"])
    too_many = {"requests": [a] * 1001}
    assert_problem(api.client.post("/v1/mak/batch", json=too_many), 413, "too_large")


CONTROL_NAMES = ["ws\x00", "\x00", "ws\x07", "ws\x1b[2J", "ws\x7f", "ws\x85", "ws\ud800"]


def post_raw(api: Api, path: str, body: Any) -> Any:
    # ensure_ascii escapes a lone surrogate as \ud800, as a hostile client would send it.
    raw = json.dumps(body).encode()
    return api.client.post(path, content=raw, headers={"content-type": "application/json"})


@pytest.mark.parametrize("name", CONTROL_NAMES)
def test_control_characters_in_names_are_malformed_requests(
    any_store_api: Api, name: str
) -> None:
    api = any_store_api
    mak = api.key("mak", "desktop", 5)
    body = mak_body(mak)
    body["workstation"] = name
    p = assert_problem(post_raw(api, "/v1/mak/activate", body), 422, "malformed_request")
    assert "workstation" in p["detail"]
    host = host_body(api.key("host", "server"))
    host["hostname"] = name.replace("ws", "kms.example")
    p = assert_problem(post_raw(api, "/v1/hosts/activate", host), 422, "malformed_request")
    assert "hostname" in p["detail"]
    # In a batch the bad item is refused on its own; the good ones around it activate.
    good_1, good_2 = mak_body(mak), mak_body(mak)
    r = post_raw(api, "/v1/mak/batch", {"requests": [good_1, body, good_2]})
    assert r.status_code == 200, r.text
    results = [MakResponse.from_json(x) for x in r.json()["results"]]
    assert [x.error_code for x in results] == [None, "malformed_request", None]
    assert results[1].cmid == uuid.UUID(body["cmid"])
    assert results[1].error_detail is not None and "control character" in results[1].error_detail
    for res in (results[0], results[2]):
        assert res.confirmation is not None
        verify_mak_confirmation(res.confirmation, api.pub, cmid=res.cmid, sku=DESKTOP.id)
    rec = api.auth.store.get_key(ProductKey.parse(mak).serial)
    assert rec is not None and rec.used == 2
    info = api.auth.store.key_details(ProductKey.parse(mak).serial)
    assert all(m["workstation"] == "ws" for m in info["machines"])


def test_exchanges_refuse_control_characters_in_names() -> None:
    cmid = uuid.uuid4()
    mak = MakRequest("K", cmid, DESKTOP.id, installation_id(cmid, DESKTOP.id), "ws").to_json()
    host = HostActivationRequest("K", b"\x01" * 8, b"\x02" * 32, "kms").to_json()
    for name in CONTROL_NAMES:
        with pytest.raises(ConfigurationError, match="control character"):
            MakRequest.from_json({**mak, "workstation": name})
        with pytest.raises(ConfigurationError, match="control character"):
            HostActivationRequest.from_json(json.dumps({**host, "hostname": name}))
    for bad in (None, 7, ["ws"]):
        with pytest.raises(ConfigurationError, match="must be a string"):
            MakRequest.from_json({**mak, "workstation": bad})
    # Printable names, non-ASCII included, still pass (and are cut to the column size).
    assert MakRequest.from_json({**mak, "workstation": "poste-é" * 20}).workstation == (
        "poste-é" * 20
    )[:63]
    assert HostActivationRequest.from_json({**host, "hostname": "kms.例え.jp"}).hostname == (
        "kms.例え.jp"
    )


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_version_must_be_the_integer_1(api: Api, version: Any) -> None:
    mak = api.key("mak", "desktop")
    body = {**mak_body(mak), "version": version}
    assert_problem(api.client.post("/v1/mak/activate", json=body), 422, "malformed_request")
    host = {**host_body(api.key("host", "server")), "version": version}
    assert_problem(api.client.post("/v1/hosts/activate", json=host), 422, "malformed_request")
    r = api.client.post("/v1/mak/batch", json={"requests": [body, mak_body(mak)]})
    assert [x["error"]["code"] if "error" in x else None for x in r.json()["results"]] == [
        "malformed_request", None,
    ]  # fmt: skip
    with pytest.raises(ConfigurationError, match="version"):
        MakRequest.from_json(body)


def test_admin_key_info(api: Api) -> None:
    mak = api.key("mak", "desktop", 3)
    body = mak_body(mak)
    api.client.post("/v1/mak/activate", json=body)
    p = assert_problem(api.client.get(f"/v1/keys/{mak}"), 401, "unauthorized")
    assert p["detail"]
    bad = {"Authorization": "Bearer nope"}
    assert_problem(api.client.get(f"/v1/keys/{mak}", headers=bad), 401, "unauthorized")
    auth = {"Authorization": f"Bearer {api.token}"}
    info = api.client.get(f"/v1/keys/{mak}", headers=auth).json()
    assert info["kind"] == "mak" and info["group"] == "desktop"
    assert info["activations_used"] == 1 and info["activations_left"] == 2
    assert info["machines"][0]["cmid"] == body["cmid"]
    listed = api.client.get("/v1/keys", headers=auth).json()["keys"]
    assert [k["key"] for k in listed] == [mak]
    assert_problem(api.client.get("/v1/keys/AAAAA", headers=auth), 400, "mistyped_key")
    api.auth.store.revoke_tokens(name="test", now=NOW)
    assert_problem(api.client.get(f"/v1/keys/{mak}", headers=auth), 401, "unauthorized")


def test_revocations_endpoint(api: Api) -> None:
    assert api.client.get("/v1/revocations").json() == {"sequence": None, "revocation_list": None}
    key = api.key("host", "server")
    api.auth.revoke(host_key=key, now=NOW)
    got = api.client.get("/v1/revocations").json()
    assert got["sequence"] == 1
    from volact.documents import verify_revocation_list

    rl = verify_revocation_list(base64.b64decode(got["revocation_list"]), api.pub)
    assert rl.host_key_ids == {ProductKey.parse(key).serial}
    assert_problem(api.client.post("/v1/hosts/activate", json=host_body(key)), 403, "revoked")


def test_rate_limit_per_key_and_per_address(tmp_path: Path) -> None:
    clock = [100.0]
    a = make_api(tmp_path, RateLimit(rate=1.0, burst=3), clock)
    mak = a.key("mak", "desktop")
    codes = [a.client.post("/v1/mak/activate", json=mak_body(mak)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = a.client.post("/v1/mak/activate", json=mak_body(mak))
    assert_problem(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1
    clock[0] += 2.0  # two tokens refill
    assert a.client.post("/v1/mak/activate", json=mak_body(mak)).status_code == 200
    a.client.close()
    a.auth.store.close()


def test_malformed_keys_are_limited_by_address_only(tmp_path: Path) -> None:
    clock = [100.0]
    a = make_api(tmp_path, RateLimit(rate=1.0, burst=3), clock)
    app = a.client.app
    abuser = TestClient(app, client=("192.0.2.66", 4000))
    for _ in range(10):
        abuser.post("/v1/mak/activate", json=mak_body("AAAAA-AAAAA-AAAAA-AAAAA-AAAAA"))
    assert_problem(
        abuser.post("/v1/mak/activate", json=mak_body("BBBBB")), 429, "rate_limited"
    )
    # Another user's typos are answered as typos, at every endpoint, not with a 429.
    user = TestClient(app, client=("192.0.2.7", 4000))
    assert_problem(user.post("/v1/mak/activate", json=mak_body("CCCCC")), 400, "mistyped_key")
    assert_problem(user.post("/v1/hosts/activate", json=host_body("DDDDD")), 400, "mistyped_key")
    r = user.post("/v1/mak/batch", json={"requests": [mak_body("EEEEE")]})
    assert r.status_code == 200 and r.json()["results"][0]["error"]["code"] == "mistyped_key"
    abuser.close()
    user.close()
    a.client.close()
    a.auth.store.close()


def mistyped(i: int) -> str:
    """A distinct key whose checksum fails (a typo the authority would try to locate)."""
    text = ProductKey.generate(KeyKind.MAK, i.to_bytes(12, "big")).text
    return text[:-1] + ("2" if text[-1] != "2" else "3")


def test_bodies_over_the_limit_are_413_before_they_are_read(api: Api) -> None:
    big = b'{"requests": [' + b"0," * 600_000 + b"0]}"
    r = api.client.post("/v1/mak/batch", content=big, headers={"content-type": "application/json"})
    assert_problem(r, 413, "too_large")
    assert r.headers["connection"] == "close"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"requests": ['
        for _ in range(100):
            yield b"0," * 10_000
        yield b"0]}"

    r = api.client.post("/v1/mak/batch", content=chunks(),
                        headers={"content-type": "application/json"})  # fmt: skip
    assert_problem(r, 413, "too_large")
    r = api.client.post("/v1/mak/activate", content=b"{}",
                        headers={"content-length": "-1"})  # fmt: skip
    assert r.status_code in {400, 413}
    # Just under the limit is read and judged on its content.
    ok = {"requests": [mak_body(api.key("mak", "desktop"))] * 1000}
    r = api.client.post("/v1/mak/batch", json=ok)
    assert r.status_code == 200 and len(r.json()["results"]) == 1000


def test_each_key_is_parsed_once_and_typos_are_located_a_bounded_number_of_times(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import volact.keys

    parses: list[str] = []
    searches: list[str] = []
    parse, candidates = ProductKey.parse.__func__, volact.keys._candidates  # type: ignore[attr-defined]

    def counting_parse(cls: Any, text: str, **kw: Any) -> ProductKey:
        parses.append(text)
        return parse(cls, text, **kw)  # type: ignore[no-any-return]

    def counting_candidates(chars: str) -> Any:
        searches.append(chars)
        return candidates(chars)

    monkeypatch.setattr(ProductKey, "parse", classmethod(counting_parse))
    monkeypatch.setattr(volact.keys, "_candidates", counting_candidates)
    mak = api.key("mak", "desktop")
    r = api.client.post("/v1/mak/batch", json={"requests": [mak_body(mak) for _ in range(100)]})
    assert r.status_code == 200 and parses.count(mak) == 1
    parses.clear()
    bad = [mak_body(mistyped(i)) for i in range(300)]
    r = api.client.post("/v1/mak/batch", json={"requests": bad})
    errors = [x["error"] for x in r.json()["results"]]
    assert {e["code"] for e in errors} == {"mistyped_key"}
    assert len(searches) == 1  # one typo located, the other 299 only said so
    assert sum("looks wrong" in e["detail"] for e in errors) == 1
    assert len(parses) <= 2 * 300 + 1  # once per text, twice only for the one located


def test_rate_limit_charges_by_work_done(tmp_path: Path) -> None:
    clock = [100.0]
    a = make_api(tmp_path, RateLimit(rate=0.001, burst=30), clock)
    mak = a.key("mak", "desktop")
    # A batch of 201 machines costs 1 + 200/10 = 21 tokens: the second one waits.
    batch = {"requests": [mak_body(mak) for _ in range(201)]}
    assert a.client.post("/v1/mak/batch", json=batch).status_code == 200
    assert_problem(a.client.post("/v1/mak/batch", json=batch), 429, "rate_limited")
    # A mistyped key whose typo is searched for costs 1 + 2 tokens, not 1: the
    # burst of 30 pays for 10 of them, not 30.
    typist = TestClient(a.client.app, client=("192.0.2.9", 4000))
    codes = [
        typist.post("/v1/mak/activate", json=mak_body(mistyped(i))).status_code
        for i in range(12)
    ]
    assert codes == [400] * 10 + [429] * 2, codes
    typist.close()
    a.client.close()
    a.auth.store.close()


# --------------------------------------------------------------------------- schemathesis


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    a = make_api(tmp_path_factory.mktemp("fuzz"))
    yield a
    a.client.close()
    a.auth.store.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis(fuzz_api: Api, mode: GenerationMode) -> None:
    from schemathesis.specs.openapi import checks

    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", fuzz_api.client.app)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) == 7
    tried: list[str] = []
    for op in operations:

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            # Excluded: the schema cannot express a key's checksum or a base64
            # length, so schema-valid data is often refused with a documented 4xx;
            # and unknown query parameters are ignored, as HTTP APIs do. Every
            # other check (no 5xx, documented status, content type, response
            # schema, headers) runs.
            case.call_and_validate(
                headers={"Authorization": f"Bearer {fuzz_api.token}"},
                excluded_checks=[checks.positive_data_acceptance, checks.negative_data_rejection],
            )
            tried.append(case.operation.label)

        try:
            run()
        except Unsatisfiable:
            # An operation with no inputs (health, revocations) has no invalid form.
            assert mode is GenerationMode.NEGATIVE
    assert len(set(tried)) >= (len(operations) if mode is GenerationMode.POSITIVE else 5)
