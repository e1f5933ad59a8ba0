"""Who may do what: bearer tokens over HTTP and WebSocket, and the role-by-operation matrix."""

from __future__ import annotations

import asyncio
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from litestar.exceptions import NotAuthorizedException
from websockets.exceptions import ConnectionClosed, InvalidStatus

from programledger.api import Role, jwt_secret, mint_token
from programledger.api.auth import Identity, TokenVerifier, VerifiedTokens
from programledger.settings import Settings
from tests.e2e.conftest import SECRET, Api, ApiFactory, new_id, program_input

ME = "{ me { subject roles } }"


def _claims(**overrides: object) -> dict[str, object]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, object] = {"sub": "eve", "roles": ["admin"], "iat": now, "exp": now + 600}
    claims.update(overrides)
    return claims


@pytest.mark.parametrize(
    ("role", "may_write"),
    [(Role.VIEWER, False), (Role.EDITOR, True), (Role.AUDITOR, False), (Role.ADMIN, True)],
)
async def test_every_role_reads_and_only_editors_and_admins_write(
    api: Api, role: Role, may_write: bool
) -> None:
    headers = api.auth(role, subject="casey")

    me = (await api.post(ME, headers=headers)).json()
    payload = await api.mutate("proposeProgram", program_input(new_id()), headers=headers)

    assert me == {"data": {"me": {"subject": "casey", "roles": [role.name]}}}
    if may_write:
        assert payload["__typename"] == "ProposeProgramSuccess"
    else:
        assert payload["__typename"] == "ForbiddenError"
        assert payload["code"] == "FORBIDDEN"
        assert payload["requiredRoles"] == ["ADMIN", "EDITOR"]
        assert await api.store.read_all() == []


async def test_a_token_without_a_known_role_may_do_nothing(api: Api) -> None:
    headers = {"Authorization": f"Bearer {api.token_without_roles()}"}

    me = (await api.post(ME, headers=headers)).json()
    payload = await api.mutate("proposeProgram", program_input(new_id()), headers=headers)

    assert me["data"] is None
    assert me["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert payload["__typename"] == "ForbiddenError"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer not-a-jwt",
        "Basic ZXZlOnNlY3JldA==",
        "Bearer " + jwt.encode(_claims(), "another-secret-" + "y" * 40, algorithm="HS256"),
    ],
    ids=["missing", "malformed", "basic", "wrong-secret"],
)
async def test_queries_and_mutations_need_a_valid_token(
    api: Api, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    mutation = 'mutation { activateProgram(input: {programId: "x"}) { __typename } }'

    for query in (ME, mutation):
        response = await api.post(query, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert error["extensions"]["requestId"] == response.headers["X-Request-Id"]


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(datetime.now(UTC).timestamp()) - 60},
        {"sub": ""},
        {"sub": "x" * 201},
        {"sub": "eve\nadmin"},
    ],
    ids=["expired", "empty-subject", "long-subject", "control-in-subject"],
)
async def test_tokens_that_cannot_name_an_actor_are_refused(
    api: Api, claims: dict[str, object]
) -> None:
    token = jwt.encode(_claims(**claims), SECRET, algorithm="HS256")

    response = await api.post(ME, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


async def test_a_token_verified_once_is_refused_once_it_expires(api: Api) -> None:
    token = mint_token(SECRET, "eve", [Role.VIEWER], timedelta(seconds=2))
    headers = {"Authorization": f"Bearer {token}"}
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]

    before = await api.post(ME, headers=headers)
    again = await api.post(ME, headers=headers)  # the verdict is remembered...
    await asyncio.sleep(max(0.0, expires - datetime.now(UTC).timestamp()) + 0.2)
    after = await api.post(ME, headers=headers)  # ...until the token's exp

    assert (before.status_code, again.status_code) == (200, 200)
    assert after.status_code == 401
    with pytest.raises(NotAuthorizedException, match="expired"):
        await TokenVerifier(SECRET).authenticate(f"Bearer {token}")


async def test_a_remembered_token_is_still_refused_under_another_secret() -> None:
    token = mint_token(SECRET, "eve", [Role.ADMIN], timedelta(minutes=5))

    assert (await TokenVerifier(SECRET).authenticate(f"Bearer {token}")).subject == "eve"
    with pytest.raises(NotAuthorizedException, match="signature does not verify"):
        await TokenVerifier("another-secret-" + "y" * 40).authenticate(f"Bearer {token}")


async def test_roles_may_be_one_name_and_unknown_names_are_ignored() -> None:
    verifier = TokenVerifier(SECRET)
    one = jwt.encode(_claims(roles="auditor"), SECRET, algorithm="HS256")
    mixed = jwt.encode(_claims(roles=["intern", "editor"]), SECRET, algorithm="HS256")
    odd = jwt.encode(_claims(roles=7), SECRET, algorithm="HS256")

    assert (await verifier.verify(one)).roles == {Role.AUDITOR}
    assert (await verifier.verify(mixed)).roles == {Role.EDITOR}
    assert (await verifier.verify(odd)).roles == frozenset()


def test_remembered_tokens_are_bounded() -> None:
    tokens = VerifiedTokens(size=2)
    identity = Identity("eve", frozenset({Role.VIEWER}), datetime.now(UTC) + timedelta(hours=1))
    verifier, other = object(), object()
    for encoded in ("a", "b", "c"):
        tokens.put(verifier, encoded, identity)

    assert tokens.get(verifier, "a") is None
    assert tokens.get(verifier, "c") == identity
    assert tokens.get(other, "c") is None


async def test_the_graphiql_page_loads_without_a_token_but_get_queries_do_not(api: Api) -> None:
    page = await api.http.get("/graphql", headers={"Accept": "text/html"})
    query = await api.http.get("/graphql", params={"query": ME}, headers={"Accept": "text/html"})

    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    assert query.status_code == 401


async def test_a_websocket_needs_a_valid_token_in_connection_init(api: Api) -> None:
    for token in (None, "not-a-jwt"):
        async with api.websocket(token) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4403

    async with api.websocket(api.token(Role.VIEWER, subject="val")) as ws:
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": ME}}))
        result = json.loads(await ws.recv())
        assert result["payload"]["data"]["me"] == {"subject": "val", "roles": ["VIEWER"]}


async def test_mutations_over_a_websocket_are_checked_like_over_http(api: Api) -> None:
    query = (
        "mutation($input: ProposeProgramInput!) { proposeProgram(input: $input) { __typename } }"
    )
    message = {
        "id": "1",
        "type": "subscribe",
        "payload": {"query": query, "variables": {"input": program_input(new_id())}},
    }

    async with api.websocket(api.token(Role.AUDITOR)) as ws:
        await ws.recv()  # connection_ack
        await ws.send(json.dumps(message))
        result = json.loads(await ws.recv())

    assert result["payload"]["data"]["proposeProgram"]["__typename"] == "ForbiddenError"


async def test_only_allowed_browser_origins_may_call_or_open_a_websocket(
    api_with: ApiFactory,
) -> None:
    app, evil = "https://app.example.com", "https://evil.example.com"
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }

    async with api_with(allowed_origins=[app]) as api:
        allowed = await api.http.options("/graphql", headers={"Origin": app, **preflight})
        refused = await api.http.options("/graphql", headers={"Origin": evil, **preflight})
        async with api.websocket(api.token(Role.VIEWER), origin=app) as ws:
            assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        with pytest.raises(InvalidStatus) as rejected:
            async with api.websocket(api.token(Role.VIEWER), origin=evil):
                pass

    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == app
    assert "access-control-allow-origin" not in refused.headers
    assert rejected.value.response.status_code == 403


async def test_development_mode_shares_a_private_generated_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", mode="development")

    secret = jwt_secret(settings)
    again = jwt_secret(settings)
    token = mint_token(secret, "dev", [Role.ADMIN], timedelta(minutes=5))

    assert secret == again
    assert len(secret) >= 32
    path = tmp_path / "data" / "dev-jwt-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (await TokenVerifier(secret).authenticate(f"Bearer {token}")).subject == "dev"
    with pytest.raises(ValueError, match="required"):
        jwt_secret(Settings(data_dir=tmp_path, mode="production"))


def test_minting_refuses_what_the_server_would_refuse() -> None:
    with pytest.raises(ValueError, match="roles are viewer, editor, auditor, admin"):
        mint_token(SECRET, "dev", ["root"], timedelta(minutes=5))
    with pytest.raises(ValueError, match="subject"):
        mint_token(SECRET, "", [Role.VIEWER], timedelta(minutes=5))
    with pytest.raises(ValueError, match="ttl"):
        mint_token(SECRET, "dev", [Role.VIEWER], timedelta(0))
    with pytest.raises(ValueError, match="at most 3600 s"):
        mint_token(SECRET, "dev", [Role.VIEWER], timedelta(hours=2), max_ttl=timedelta(hours=1))
