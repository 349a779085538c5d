"""Real things for the auth tests: a JWKS server, keys made here, a SQLite store, Redis."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bff.store import Store
from tests.support.servers import ThreadedServer, free_port

HS_SECRET = "a-test-secret-that-is-long-enough-for-hs512-0123456789abcdef0123"


def make_token(
    key: Any = HS_SECRET,
    alg: str = "HS256",
    *,
    kid: str | None = None,
    lifetime: float = 300,
    **claims: Any,
) -> str:
    """A signed JWT with sensible defaults (sub "42", iat now, exp in 5 minutes)."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": "42", "iat": now, "exp": now + int(lifetime)}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any
    jwk: dict[str, Any]

    def token(self, **kw: Any) -> str:
        kw.setdefault("kid", self.kid)
        return make_token(self.private, self.alg, **kw)


def rsa_key(kid: str, bits: int = 2048) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return SigningKey(kid, "RS256", private, {**jwk, "kid": kid, "use": "sig", "alg": "RS256"})


def ec_key(kid: str) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return SigningKey(kid, "ES256", private, {**jwk, "kid": kid, "use": "sig"})


@dataclass
class JWKSState:
    """What the JWKS server answers; tests change it between requests."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "ok"  # ok | error | junk | huge
    requests: int = 0

    def publish(self, *keys: SigningKey) -> None:
        self.keys = [k.jwk for k in keys]


class JWKSApp:
    def __init__(self, state: JWKSState) -> None:
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.state.requests += 1
        status, body = 200, orjson.dumps({"keys": self.state.keys})
        if self.state.mode == "error":
            status, body = 503, b"down for maintenance"
        elif self.state.mode == "junk":
            body = b"<html>not json</html>"
        elif self.state.mode == "huge":
            body = b'{"keys": [' + b" " * (600 * 1024) + b"]}"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@dataclass
class JWKSServer:
    state: JWKSState
    server: ThreadedServer

    @property
    def url(self) -> str:
        return self.server.url + "/.well-known/jwks.json"


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    """Keys generated once per module (RSA generation takes a moment)."""
    return {
        "rsa1": rsa_key("rsa-1"),
        "rsa2": rsa_key("rsa-2"),
        "ec1": ec_key("ec-1"),
        "ec2": ec_key("ec-2"),
    }


@pytest.fixture(scope="module")
def _jwks_server() -> Iterator[JWKSServer]:
    state = JWKSState()
    server = ThreadedServer(JWKSApp(state), lifespan="off").start()
    try:
        yield JWKSServer(state, server)
    finally:
        server.stop()


@pytest.fixture
def jwks_server(_jwks_server: JWKSServer, keys: dict[str, SigningKey]) -> Iterator[JWKSServer]:
    """The module's JWKS server, publishing rsa1 and ec1, with its counters reset."""
    state = _jwks_server.state
    state.publish(keys["rsa1"], keys["ec1"])
    state.mode, state.requests = "ok", 0
    yield _jwks_server
    if _jwks_server.server._server is None:  # a test stopped it
        _jwks_server.server.start()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite:///{tmp_path}/keys.db")
    await store.open()
    try:
        yield store
    finally:
        await store.aclose()


def _ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``$REDIS_URL``, a Redis on 127.0.0.1:6379, or a redis-server started for the session."""
    for url in (os.environ.get("REDIS_URL"), "redis://127.0.0.1:6379/0"):
        if url and _ping(url):
            yield url
            return
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("BFF_REQUIRE_REDIS"):
            pytest.fail("Redis is required (BFF_REQUIRE_REDIS) but none is reachable")
        pytest.skip("no Redis available")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while not _ping(url):
            if time.monotonic() > deadline:
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
