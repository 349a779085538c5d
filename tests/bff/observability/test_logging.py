"""The gateway's own logs as JSON lines, with the request they belong to."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from bff.observability import RequestRecord, configure_logging


def lines_of(stream: io.StringIO, count: int, text: str = "") -> list[dict[str, Any]]:
    """The JSON lines, once the listener thread has written ``count`` of them (and ``text``)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        written = stream.getvalue()
        if len(written.splitlines()) >= count and text in written:
            break
        time.sleep(0.01)
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def captured_root() -> Iterator[io.StringIO]:
    """Logging of the ``bff.test`` loggers set up into a buffer (the real root is left to
    pytest)."""
    logger = logging.getLogger("bff.test")
    logger.propagate = False
    stream = io.StringIO()
    listener = configure_logging("info", "json", stream=stream, logger=logger)
    try:
        yield stream
    finally:
        if listener._thread is not None:
            listener.stop()
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_json_lines_with_extra_fields_and_exceptions(captured_root: io.StringIO) -> None:
    log = logging.getLogger("bff.test")
    log.debug("not at info level")
    log.warning("upstream %s is slow", "users", extra={"upstream": "users", "ms": 1200})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    lines = lines_of(captured_root, 2)
    assert [line["level"] for line in lines] == ["warning", "error"]
    first = lines[0]
    assert first["message"] == "upstream users is slow" and first["logger"] == "bff.test"
    assert first["upstream"] == "users" and first["ms"] == 1200
    assert first["time"].endswith("Z")
    assert "RuntimeError: boom" in lines[1]["exception"]


async def test_lines_carry_the_request_id(
    captured_root: io.StringIO, observed_gateway: Any
) -> None:
    async with observed_gateway({"rate_limits": {"plans": None}}) as obs:
        record = RequestRecord(obs.gateway.telemetry)
        record.request_id = "req-42"
        record.trace_id = "ab" * 16
        token = record.open()
        try:
            logging.getLogger("bff.test").warning("inside")
        finally:
            RequestRecord.close(token)
    (line,) = [x for x in lines_of(captured_root, 1, "inside") if x["message"] == "inside"]
    assert line["request_id"] == "req-42" and line["trace_id"] == "ab" * 16


def test_text_format() -> None:
    logger = logging.getLogger("bff.test.text")
    logger.propagate = False
    stream = io.StringIO()
    listener = configure_logging("warning", "text", stream=stream, logger=logger)
    logger.info("below the level")
    logger.warning("plain words")
    listener.stop()
    logger.removeHandler(logger.handlers[0])
    logger.propagate = True
    assert "WARNING bff.test.text plain words" in stream.getvalue()
    assert "below the level" not in stream.getvalue()
