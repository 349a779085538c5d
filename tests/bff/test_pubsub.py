"""A Redis pub/sub channel that survives losing its subscription (real Redis)."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis

from bff.pubsub import RedisChannel


async def _next(queue: asyncio.Queue[object]) -> object:
    return await asyncio.wait_for(queue.get(), 5)


async def test_messages_arrive_and_a_lost_subscription_is_made_again(redis_url: str) -> None:
    seen: asyncio.Queue[object] = asyncio.Queue()
    channel = RedisChannel(
        redis_url,
        f"test:pubsub:{uuid.uuid4().hex}",
        on_message=seen.put_nowait,
        on_subscribed=lambda: seen.put_nowait("subscribed"),
        on_lost=lambda error: seen.put_nowait("lost"),
    )
    admin = aioredis.Redis.from_url(redis_url)
    try:
        channel.start()
        assert await _next(seen) == "subscribed"
        await channel.publish(b"one")
        assert await _next(seen) == b"one"

        # Redis drops every subscriber connection: the channel notices, says so, subscribes again.
        await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        assert await _next(seen) == "lost"
        assert await _next(seen) == "subscribed"
        await channel.publish("two")
        assert await _next(seen) == b"two"
    finally:
        await channel.aclose()
        await admin.aclose()
    assert not channel.subscribed.is_set()


async def test_a_failing_listener_does_not_end_the_subscription(redis_url: str) -> None:
    seen: asyncio.Queue[object] = asyncio.Queue()

    def listener(data: bytes) -> None:
        seen.put_nowait(data)
        if data == b"boom":
            raise RuntimeError("listener bug")

    channel = RedisChannel(redis_url, f"test:pubsub:{uuid.uuid4().hex}", on_message=listener)
    try:
        channel.start()
        await asyncio.wait_for(channel.subscribed.wait(), 5)
        await channel.publish(b"boom")
        await channel.publish(b"after")
        assert await _next(seen) == b"boom"
        assert await _next(seen) == b"after"
        assert channel.subscribed.is_set()
    finally:
        await channel.aclose()
