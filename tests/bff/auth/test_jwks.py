"""RS256/ES256 tokens with keys from a real JWKS server: caching, rotation, outages, junk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bff.auth import InvalidCredentials, JWKSClient, JWTVerifier
from tests.bff.auth.conftest import HS_SECRET, JWKSServer, SigningKey, make_token, rsa_key
from tests.support.servers import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_verifier(jwks_server: JWKSServer, clock: Clock) -> AsyncIterator[Callable[..., Any]]:
    clients: list[JWKSClient] = []

    async def make(
        *, url: str | None = None, start: bool = True, **kw: Any
    ) -> tuple[JWTVerifier, JWKSClient]:
        options: dict[str, Any] = {"ttl": 300.0, "min_refresh_interval": 30.0, "clock": clock}
        options.update(kw)
        client = JWKSClient(url or jwks_server.url, **options)
        clients.append(client)
        if start:
            await client.start()
        verifier = JWTVerifier(
            algorithms=["HS256", "RS256", "ES256", "PS256", "EdDSA"], jwks=client
        )
        return verifier, client

    yield make
    for c in clients:
        await c.aclose()


async def ok(verifier: JWTVerifier, token: str) -> str | None:
    return (await verifier.verify(token.encode())).subject


async def refused(verifier: JWTVerifier, token: str) -> str:
    with pytest.raises(InvalidCredentials) as info:
        await verifier.verify(token.encode())
    return info.value.reason


async def test_rs256_and_es256(make_verifier: Any, keys: dict[str, SigningKey]) -> None:
    verifier, client = await make_verifier()
    assert await ok(verifier, keys["rsa1"].token(sub="rsa-user")) == "rsa-user"
    assert await ok(verifier, keys["ec1"].token(sub="ec-user", scope="a b")) == "ec-user"
    assert client.fetches == 1


async def test_keys_are_cached(
    make_verifier: Any, keys: dict[str, SigningKey], jwks_server: JWKSServer
) -> None:
    verifier, _ = await make_verifier()
    for i in range(5):
        await ok(verifier, keys["rsa1"].token(sub=f"u{i}"))
    assert jwks_server.state.requests == 1


async def test_unknown_kid_refreshes_once_per_interval(
    make_verifier: Any, keys: dict[str, SigningKey], jwks_server: JWKSServer, clock: Clock
) -> None:
    verifier, client = await make_verifier()
    # A flood of made-up kids costs one fetch per interval, not one per token (and the
    # start-up fetch counts: nothing is refetched within 30 s of it).
    await refused(verifier, keys["rsa2"].token(kid="bogus"))
    assert jwks_server.state.requests == 1
    clock.now += 31
    for i in range(20):
        assert "no signing key" in await refused(verifier, keys["rsa2"].token(kid=f"bogus-{i}"))
    assert jwks_server.state.requests == 2
    # Rotation: the IdP publishes a new key; the first token signed with it waits for the
    # next allowed refresh.
    jwks_server.state.publish(keys["rsa1"], keys["rsa2"], keys["ec1"])
    await refused(verifier, keys["rsa2"].token())
    clock.now += 31
    assert await ok(verifier, keys["rsa2"].token()) == "42"
    assert jwks_server.state.requests == 3
    assert client.fetches == 3


async def test_concurrent_unknown_kids_share_one_fetch(
    make_verifier: Any, keys: dict[str, SigningKey], jwks_server: JWKSServer, clock: Clock
) -> None:
    verifier, _ = await make_verifier()
    jwks_server.state.publish(keys["rsa1"], keys["rsa2"])
    clock.now += 31
    tokens = [keys["rsa2"].token(sub=str(i)) for i in range(10)]
    results = await asyncio.gather(*(ok(verifier, t) for t in tokens))
    assert results == [str(i) for i in range(10)]
    assert jwks_server.state.requests == 2


async def test_idp_down_keeps_known_keys_usable(
    make_verifier: Any, keys: dict[str, SigningKey], jwks_server: JWKSServer, clock: Clock
) -> None:
    verifier, client = await make_verifier(ttl=60)
    jwks_server.server.stop()
    clock.now += 120  # keys are stale: a background refresh is tried, and fails
    assert await ok(verifier, keys["rsa1"].token(sub="a")) == "a"
    await asyncio.sleep(0.3)
    assert client.fetches == 2
    assert await ok(verifier, keys["ec1"].token(sub="b")) == "b"
    # An unknown kid while the IdP is down: a clean refusal.
    clock.now += 31
    assert "no signing key" in await refused(verifier, keys["rsa2"].token())


@pytest.mark.parametrize("mode", ["error", "junk", "huge"])
async def test_a_broken_jwks_answer_keeps_known_keys(
    make_verifier: Any,
    keys: dict[str, SigningKey],
    jwks_server: JWKSServer,
    clock: Clock,
    mode: str,
) -> None:
    verifier, client = await make_verifier()
    jwks_server.state.mode = mode
    clock.now += 31
    await refused(verifier, keys["rsa2"].token())  # unknown kid: refetch, which fails
    assert client.fetches == 2
    assert await ok(verifier, keys["rsa1"].token()) == "42"
    assert len(client.keys) == 2


async def test_jwks_down_at_start_up_then_recovers(
    make_verifier: Any, keys: dict[str, SigningKey], jwks_server: JWKSServer, clock: Clock
) -> None:
    jwks_server.state.mode = "junk"
    verifier, client = await make_verifier()
    assert client.keys == []
    assert "no signing key" in await refused(verifier, keys["rsa1"].token())
    # With no key at all, retries back off from 1 s rather than waiting the full interval.
    jwks_server.state.mode = "ok"
    clock.now += 2.5
    assert await ok(verifier, keys["rsa1"].token()) == "42"


async def test_unreachable_jwks_url_is_a_clean_refusal(
    make_verifier: Any, keys: dict[str, SigningKey]
) -> None:
    verifier, client = await make_verifier(url=f"http://127.0.0.1:{free_port()}/jwks.json")
    assert client.keys == []
    assert "no signing key" in await refused(verifier, keys["rsa1"].token())


async def test_key_type_must_fit_the_algorithm(
    make_verifier: Any, keys: dict[str, SigningKey]
) -> None:
    verifier, _ = await make_verifier()
    # An ES256 token naming the RSA key's kid: the RSA key is never used for ES256.
    assert "no signing key" in await refused(verifier, keys["ec2"].token(kid="rsa-1"))
    # A kid whose JWK says alg RS256 does not verify a PS256 token.
    assert "no signing key" in await refused(
        verifier, make_token(keys["rsa1"].private, "PS256", kid="rsa-1")
    )


async def test_hs_token_never_verified_by_jwks(
    make_verifier: Any, keys: dict[str, SigningKey]
) -> None:
    verifier, _ = await make_verifier()
    assert "not accepted" in await refused(verifier, make_token(HS_SECRET, "HS256", kid="rsa-1"))


@pytest.mark.filterwarnings("ignore::UserWarning")  # PyJWT warns when signing with 1024 bits
async def test_symmetric_private_and_weak_keys_in_jwks_are_ignored(
    make_verifier: Any, keys: dict[str, SigningKey], jwks_server: JWKSServer
) -> None:
    weak = rsa_key("weak", bits=1024)
    private_jwk = {**keys["rsa2"].jwk, "d": "AAAA"}
    jwks_server.state.keys = [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "sym", "alg": "HS256"},
        private_jwk,
        weak.jwk,
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        {**keys["ec2"].jwk, "use": "enc"},
        "not an object",
        keys["rsa1"].jwk,
    ]
    verifier, client = await make_verifier()
    assert [k.kid for k in client.keys] == ["rsa-1"]
    assert await ok(verifier, keys["rsa1"].token()) == "42"
    for token in (weak.token(), keys["rsa2"].token(), keys["ec2"].token()):
        await refused(verifier, token)


async def test_token_without_kid(
    make_verifier: Any, keys: dict[str, SigningKey], jwks_server: JWKSServer
) -> None:
    verifier, _ = await make_verifier()
    # One EC key and one RSA key: an ES256 token without kid has exactly one candidate.
    assert await ok(verifier, make_token(keys["ec1"].private, "ES256")) == "42"
    jwks_server.state.publish(keys["ec1"], keys["ec2"])
    verifier2, _ = await make_verifier()
    await refused(verifier2, make_token(keys["ec1"].private, "ES256"))  # ambiguous


async def test_expiry_and_claims_apply_to_jwks_tokens(
    make_verifier: Any, keys: dict[str, SigningKey]
) -> None:
    verifier, _ = await make_verifier()
    assert await refused(verifier, keys["rsa1"].token(lifetime=-120)) == "expired"
    await refused(verifier, keys["rsa1"].token(sub="evil\r\nX-Admin: 1"))
