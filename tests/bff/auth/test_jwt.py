"""Bearer JWTs with a shared secret: every check, every malformation, the verified-token cache."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from bff.auth import InvalidCredentials, JWTVerifier, Principal
from tests.bff.auth.conftest import HS_SECRET, SigningKey, make_token


def verifier(**kw: Any) -> JWTVerifier:
    options: dict[str, Any] = {"algorithms": ["HS256", "HS384", "HS512"], "secret": HS_SECRET}
    options.update(kw)
    return JWTVerifier(**options)


async def verify(token: str | bytes, v: JWTVerifier | None = None) -> Principal:
    raw = token.encode() if isinstance(token, str) else token
    return await (v or verifier()).verify(raw)


async def reason_of(token: str | bytes, v: JWTVerifier | None = None) -> str:
    with pytest.raises(InvalidCredentials) as info:
        await verify(token, v)
    assert info.value.message in (
        "invalid bearer token",
        "bearer token expired",
        "bearer token not yet valid",
    )
    return info.value.reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join((b64(orjson.dumps(header)), b64(orjson.dumps(claims)), b64(signature)))


# -- what a valid token gives --------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_hs_algorithms(alg: str) -> None:
    p = await verify(make_token(alg=alg, scope="orders:read orders:write", tier="pro"))
    assert p.kind == "user" and p.subject == "42" and p.tier == "pro"
    assert p.scopes == frozenset({"orders:read", "orders:write"})
    assert p.claims is not None and p.claims["sub"] == "42"


async def test_scp_list_and_default_tier() -> None:
    p = await verify(make_token(scp=["a", "b"], scope="c"))
    assert p.scopes == frozenset({"a", "b", "c"}) and p.tier == "free"
    assert (await verify(make_token(scp="x y"))).scopes == frozenset({"x", "y"})


async def test_tier_claim_and_default_are_configurable() -> None:
    v = verifier(tier_claim="plan", default_tier="basic")
    assert (await verify(make_token(plan="enterprise"), v)).tier == "enterprise"
    assert (await verify(make_token(), v)).tier == "basic"


async def test_demo_token_works_with_the_demo_secret() -> None:
    from bff.cli import demo_token
    from tests.support.gateway import demo_config

    secret = demo_config({}).auth.jwt.secret or ""
    v = JWTVerifier(algorithms=["HS256"], secret=secret)
    p = await v.verify(demo_token(secret).encode())
    assert p.subject == "1" and p.tier == "pro"
    assert p.scopes == frozenset({"orders:read", "orders:write"})


# -- what is refused -----------------------------------------------------------------------------


async def test_alg_none_is_refused() -> None:
    token = forged({"alg": "none", "typ": "JWT"}, {"sub": "42", "exp": time.time() + 60})
    assert "not accepted" in await reason_of(token)
    await reason_of(token.rstrip("."))
    assert "not accepted" in await reason_of(forged({"alg": "None"}, {"sub": "1"}))


async def test_algorithm_outside_the_allow_list_is_refused() -> None:
    v = verifier(algorithms=["HS256"])
    assert "not accepted" in await reason_of(make_token(alg="HS512"), v)


async def test_hs_token_refused_when_only_asymmetric_keys_are_configured(
    keys: dict[str, SigningKey],
) -> None:
    # The classic key confusion: an HS256 token whose "secret" is the RSA public key PEM.
    from bff.auth import JWKSClient

    pem = (
        keys["rsa1"]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    forged_sig = jwt.api_jws.PyJWS()._algorithms["HS256"]  # sign by hand: PyJWT refuses PEM
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    claims = {"sub": "42", "exp": int(time.time()) + 60}
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(claims))}".encode()
    signature = forged_sig.sign(signing_input, pem)
    token = signing_input.decode() + "." + b64(signature)
    jwks = JWKSClient("http://127.0.0.1:9/jwks.json")
    try:
        v = JWTVerifier(algorithms=["HS256", "RS256"], jwks=jwks)  # no secret
        assert v.usable == {"RS256"}
        assert "not accepted" in await reason_of(token, v)
    finally:
        await jwks.aclose()


async def test_no_usable_algorithm_means_disabled() -> None:
    assert not JWTVerifier(algorithms=["HS256"]).enabled
    assert not JWTVerifier(algorithms=["RS256"], secret="x" * 32).enabled


async def test_oversized_tokens_are_refused_unread() -> None:
    big = make_token(padding="x" * 9000)
    assert "longer than 8192" in await reason_of(big)
    assert "longer than 100" in await reason_of(make_token(), verifier(max_token_bytes=100))


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "....",
        "",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        "\x00\xff",
        "eyJ" + "A" * 500,
        forged({"alg": "HS256"}, {"sub": "1"})[:-3] + "!!!",
    ],
)
async def test_garbage_is_refused(token: str) -> None:
    await reason_of(token.encode("latin-1"))


async def test_truncated_token_is_refused() -> None:
    token = make_token()
    for cut in (10, len(token) // 2, len(token) - 5):
        await reason_of(token[:cut])


async def test_wrong_signature_is_refused() -> None:
    wrong_key = make_token(key="another-secret-of-sufficient-length-0123")
    assert await reason_of(wrong_key) == "bad signature"
    head, _body, sig = make_token().split(".")
    tampered_body = b64(orjson.dumps({"sub": "1", "exp": int(time.time()) + 60}))
    assert await reason_of(f"{head}.{tampered_body}.{sig}") == "bad signature"


async def test_header_that_is_not_an_object() -> None:
    token = b64(b"[1,2]") + "." + b64(b"{}") + "." + b64(b"x")
    await reason_of(token)


async def test_expiry_with_leeway() -> None:
    now = int(time.time())
    with pytest.raises(InvalidCredentials, match="expired"):
        await verify(make_token(exp=now - 120, iat=now - 600))
    # Within the leeway (30 s by default): still valid.
    assert (await verify(make_token(exp=now - 10, iat=now - 600))).subject == "42"
    with pytest.raises(InvalidCredentials, match="expired"):
        await verify(make_token(exp=now - 10, iat=now - 600), verifier(leeway=0))


async def test_exp_is_required_and_must_be_a_number() -> None:
    assert "exp" in await reason_of(make_token(exp=None))
    await reason_of(make_token(exp="tomorrow"))


async def test_sub_is_required() -> None:
    assert "sub" in await reason_of(make_token(sub=None))


async def test_not_before() -> None:
    now = int(time.time())
    with pytest.raises(InvalidCredentials, match="not yet valid"):
        await verify(make_token(nbf=now + 600))
    assert (await verify(make_token(nbf=now + 10))).subject == "42"  # within leeway


async def test_iat_sanity() -> None:
    now = int(time.time())
    with pytest.raises(InvalidCredentials, match="not yet valid"):
        await verify(make_token(iat=now + 3600))
    await reason_of(make_token(iat="yesterday"))


async def test_issuer_and_audience_when_configured() -> None:
    v = verifier(issuer="https://idp.example", audience=["bff", "api"])
    ok = make_token(iss="https://idp.example", aud="api")
    assert (await verify(ok, v)).subject == "42"
    assert (await verify(make_token(iss="https://idp.example", aud=["x", "bff"]), v)).subject
    assert await reason_of(make_token(iss="https://evil.example", aud="bff"), v) == "wrong issuer"
    assert await reason_of(make_token(iss="https://idp.example", aud="other"), v) == (
        "wrong audience"
    )
    assert "aud" in await reason_of(make_token(iss="https://idp.example"), v)
    assert "iss" in await reason_of(make_token(aud="bff"), v)


async def test_audience_not_checked_when_not_configured() -> None:
    assert (await verify(make_token(aud="whatever"))).subject == "42"


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "42\r\nX-Injected: 1"},
        {"sub": "a\x00b"},
        {"sub": "x" * 257},
        {"sub": ""},
        {"sub": 42},
        {"scope": "ok bad\nscope"},
        {"scope": "x" * 257},
        {"scp": ["ok", "with space"]},
        {"scp": ["tab\there"]},
        {"scp": [1, 2]},
        {"scope": ["not", "a", "string"]},
        {"scp": {"a": 1}},
        {"tier": "pro\n"},
        {"tier": 5},
    ],
)
async def test_unsafe_identity_claims_invalidate_the_token(claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidCredentials) as info:
        await verify(make_token(**claims))
    assert info.value.message == "invalid bearer token"


async def test_identity_limits_are_inclusive() -> None:
    p = await verify(make_token(sub="s" * 256, scope="c" * 256))
    assert p.subject == "s" * 256 and p.scopes == frozenset({"c" * 256})
    assert (await verify(make_token(sub="josé@example.com"))).subject == "josé@example.com"


# -- the cache -----------------------------------------------------------------------------------


async def test_verified_tokens_are_cached_until_expiry() -> None:
    now = [time.time()]
    v = verifier(leeway=0, clock=lambda: now[0])
    token = make_token(lifetime=60).encode()
    first = await v.verify(token)
    assert v.cached(token) is first
    # The cache answers without verifying again: even a changed secret does not matter.
    v.secret = b"rotated-secret-rotated-secret-rotated-secret-0123456789"
    assert await v.verify(token) is first
    now[0] += 61  # past exp: the entry is gone
    assert v.cached(token) is None


async def test_failures_are_not_cached() -> None:
    v = verifier()
    bad = make_token(key="another-secret-of-sufficient-length-0123").encode()
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            await v.verify(bad)
    assert v.cached(bad) is None


async def test_cache_is_bounded() -> None:
    v = verifier(cache_size=3)
    tokens = [make_token(sub=str(i)).encode() for i in range(5)]
    for t in tokens:
        await v.verify(t)
    assert sum(v.cached(t) is not None for t in tokens) == 3
