"""A complete reply is written before its accounting runs, and the accounting runs however the write went."""

from __future__ import annotations

import asyncio
import logging

import pytest

from router.server.asgi import send_reply
from router.gateway.replies import Reply


def _reply(events: list[str], fail: bool = False) -> Reply:
    def account() -> None:
        events.append("accounted")
        if fail:
            raise ValueError("quoting a prompt here must never reach the log")

    return Reply(200, {"content-type": "application/json"}, b'{"ok": true}', account)


def test_accounting_runs_after_the_body_is_written() -> None:
    events: list[str] = []

    async def send(message: dict) -> None:
        events.append(message["type"])

    asyncio.run(send_reply(_reply(events), send))
    assert events == ["http.response.start", "http.response.body", "accounted"]


def test_accounting_still_runs_when_the_write_fails() -> None:
    events: list[str] = []

    async def send(message: dict) -> None:
        events.append(message["type"])
        if message["type"] == "http.response.body":
            raise OSError("connection reset")

    with pytest.raises(OSError):
        asyncio.run(send_reply(_reply(events), send))
    assert events == ["http.response.start", "http.response.body", "accounted"]


def test_a_failing_accounting_step_is_logged_by_type_and_does_not_touch_the_answer(caplog) -> None:
    events: list[str] = []
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    with caplog.at_level(logging.ERROR, logger="router"):
        asyncio.run(send_reply(_reply(events, fail=True), send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == b'{"ok": true}'
    assert "ValueError" in caplog.text and "prompt" not in caplog.text
