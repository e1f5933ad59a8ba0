"""Tokens from an identity provider: RS256, ES256 and EdDSA tokens verified against a
JWKS served on loopback, as Keycloak, Auth0, Okta or Entra ID publish theirs, with the
issuer, audience, lifetime and key rotation checks an operator relies on."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from litestar.exceptions import NotAuthorizedException
from websockets.exceptions import ConnectionClosed

from programledger.api.auth import TokenVerifier
from programledger.api.jwks import JwksKeys
from tests.e2e.conftest import SECRET, ApiFactory, new_id, program_input
from tests.support.ledger import settled

ISSUER = "https://id.example.com/realms/pmo"
AUDIENCE = "programledger"
ME = "{ me { subject roles } }"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass
class SigningKey:
    """One key of the identity provider: what it signs with and what it publishes."""

    algorithm: str
    private: PrivateKey
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @classmethod
    def new(cls, algorithm: str) -> SigningKey:
        private: PrivateKey
        if algorithm == "RS256":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            private = ed25519.Ed25519PrivateKey.generate()
        return cls(algorithm, private)

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            found = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            found = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            found = OKPAlgorithm.to_jwk(public, as_dict=True)
        # Entra ID publishes no alg; Keycloak does: both must work.
        extra = {"alg": self.algorithm} if self.algorithm != "RS256" else {}
        return {**found, "kid": self.kid, "use": "sig", **extra}

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.algorithm, headers={"kid": kid or self.kid}
        )


def _claims(lifetime: int = 300, **overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": [AUDIENCE, "account"],
        "sub": "f1c2-tia",
        "iat": now,
        "exp": now + lifetime,
        "realm_access": {"roles": ["editor", "offline_access"]},
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


class Jwks:
    """A JWKS endpoint on loopback whose keys the test changes, counting its requests."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.requests = 0

    @contextlib.contextmanager
    def served(self) -> Iterator[str]:
        jwks = self

        class Endpoint(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.requests += 1
                body = json.dumps({"keys": [key.jwk() for key in jwks.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test counts the requests."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/realms/pmo/certs"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def _provider(url: str | Path, **overrides: Any) -> dict[str, Any]:
    """Settings for a Keycloak-like provider at ``url``."""
    source = {"jwks_file": url} if isinstance(url, Path) else {"jwks_url": url}
    return {
        **source,
        "jwt_issuer": ISSUER,
        "jwt_audience": (AUDIENCE,),
        "jwt_roles_claim": "realm_access.roles",
        "jwt_max_lifetime": 3600,
        **overrides,
    }


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
async def test_tokens_signed_by_the_identity_provider_act_as_their_subject(
    api_with: ApiFactory, algorithm: str
) -> None:
    key = SigningKey.new(algorithm)
    jwks = Jwks(key)
    token = key.sign(_claims())
    with jwks.served() as url:
        async with api_with(settings=_provider(url)) as api:
            me = (await api.post(ME, headers=_bearer(token))).json()
            proposed = await api.accepted(
                "proposeProgram", program_input(new_id()), headers=_bearer(token)
            )
            await settled(api.store)
            stored = await api.store.read_all()
            async with api.websocket(token) as ws:
                acknowledged = json.loads(await ws.recv())
            shared_secret = (await api.post(ME, headers=api.auth())).json()

    assert me == {"data": {"me": {"subject": "f1c2-tia", "roles": ["EDITOR"]}}}
    assert proposed["position"] == stored[-1].position
    assert stored[-1].metadata.actor == "f1c2-tia"
    assert acknowledged == {"type": "connection_ack"}
    assert shared_secret["data"]["me"]["subject"] == "alice@example.com"  # both kinds work
    assert jwks.requests == 1  # fetched once, then cached


async def test_bad_tokens_are_refused_with_a_clear_401(api_with: ApiFactory) -> None:
    key, stranger = SigningKey.new("RS256"), SigningKey.new("ES256")
    jwks = Jwks(key)
    refused = {
        "wrong issuer": (key.sign(_claims(iss="https://evil.example.com")), "issuer (iss)"),
        "wrong audience": (key.sign(_claims(aud="another-app")), "audience (aud)"),
        "no audience": (key.sign(_claims(aud=None)), "no 'aud' claim"),
        "expired": (key.sign(_claims(exp=int(datetime.now(UTC).timestamp()) - 60)), "expired"),
        "too long": (key.sign(_claims(lifetime=2 * 86_400)), "longer than the 3600 s"),
        "no exp": (key.sign(_claims(exp=None)), "no 'exp' claim"),
        "forged": (stranger.sign(_claims(), kid=key.kid), "not a ES256 key"),
        "unsigned": (jwt.encode(_claims(), "", algorithm="none"), "'none' are not accepted"),
    }
    with jwks.served() as url:
        async with api_with(settings=_provider(url)) as api:
            answers = {
                case: (await api.post(ME, headers=_bearer(token)))
                for case, (token, _) in refused.items()
            }
            async with api.websocket(refused["wrong issuer"][0]) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()

    for case, answer in answers.items():
        assert answer.status_code == 401, (case, answer.text)
        message = answer.json()["errors"][0]["message"]
        assert refused[case][1] in message, (case, message)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_a_rotated_key_is_fetched_and_unknown_keys_are_refused_without_a_flood(
    api_with: ApiFactory,
) -> None:
    first, rotated, unknown = (SigningKey.new("ES256") for _ in range(3))
    jwks = Jwks(first)
    with jwks.served() as url:
        async with api_with(settings=_provider(url)) as api:
            before = await api.post(ME, headers=_bearer(first.sign(_claims())))
            jwks.keys.append(rotated)  # the provider rotates: a new kid, the old one kept
            after = await api.post(ME, headers=_bearer(rotated.sign(_claims())))
            fetched_for_rotation = jwks.requests
            refused = await api.post(ME, headers=_bearer(unknown.sign(_claims())))
            fetched_for_unknown = jwks.requests
            for _ in range(10):  # made-up key ids, as anyone can send
                await api.post(ME, headers=_bearer(unknown.sign(_claims(), kid=uuid.uuid4().hex)))

    assert (before.status_code, after.status_code) == (200, 200)
    assert fetched_for_rotation == 2
    assert refused.status_code == 401
    assert "is not in the identity provider's JWKS" in refused.json()["errors"][0]["message"]
    assert fetched_for_unknown == 3  # refused only after a refetch
    assert jwks.requests == 5  # at most 5 fetches a minute, however many tokens come


async def test_keys_may_come_from_a_jwks_file_and_the_shared_secret_may_be_absent(
    api_with: ApiFactory, tmp_path: Path
) -> None:
    key = SigningKey.new("EdDSA")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [key.jwk()]}))
    settings = _provider(path, jwt_secret=None, jwt_roles_claim="roles")

    async with api_with(settings=settings) as api:
        accepted = await api.post(ME, headers=_bearer(key.sign(_claims(roles="auditor"))))
        minted = await api.post(ME, headers=api.auth())

    assert accepted.json() == {"data": {"me": {"subject": "f1c2-tia", "roles": ["AUDITOR"]}}}
    assert minted.status_code == 401
    assert "'HS256' are not accepted" in minted.json()["errors"][0]["message"]
    assert SECRET not in minted.text


async def test_held_keys_keep_working_while_the_provider_is_unreachable() -> None:
    key = SigningKey.new("RS256")
    jwks = Jwks(key)
    with jwks.served() as url:
        keys = JwksKeys(url, max_age=0.0)  # every use wants a fresh copy
        verifier = TokenVerifier(None, keys, issuer=ISSUER, audience=[AUDIENCE])
        first = await verifier.verify(key.sign(_claims(sub="a")))
    second = await verifier.verify(key.sign(_claims(sub="b")))  # the provider is gone

    assert (first.subject, second.subject) == ("a", "b")
    assert keys.fetch_count == 2  # it tried, failed, and kept the keys it held


async def test_secret_or_private_keys_in_a_jwks_are_never_used(tmp_path: Path) -> None:
    signing = ec.generate_private_key(ec.SECP256R1())
    key = SigningKey("ES256", signing)
    private = {**ECAlgorithm.to_jwk(signing, as_dict=True), "kid": key.kid}
    hmac_key = "s" * 40
    secret = {
        "kty": "oct",
        "kid": "hmac",
        "k": base64.urlsafe_b64encode(hmac_key.encode()).decode(),
    }
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [private, secret]}))
    verifier = TokenVerifier(None, JwksKeys(path))
    forged = jwt.encode(_claims(), hmac_key, headers={"kid": "hmac"})

    with pytest.raises(NotAuthorizedException, match="cannot be read"):
        await verifier.verify(key.sign(_claims()))
    with pytest.raises(NotAuthorizedException, match="'HS256' are not accepted"):
        await verifier.verify(forged)
