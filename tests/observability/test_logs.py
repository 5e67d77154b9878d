"""Logs ops can ship: a real ``router serve`` writing to a pipe (not a terminal) logs one JSON object per
line -- the access line's fields at the top level -- with no third-party per-request lines, no prompt text
and no key, after traffic with triage calls, fallbacks, errors and streams. Plus the formatter's contract."""

from __future__ import annotations

import io
import json
import logging
import shutil
import signal
import sys

import anthropic
import pytest

from router.observability import logs
from tests.conftest import POLICIES, post
from tests.server.test_serve_process import CLIENT_KEY, SECRET_PROMPT, UPSTREAM_KEY, ServeProcess, clean_env

ENVELOPE = ("timestamp", "level", "logger", "message")


def test_every_line_of_router_serve_is_one_json_object_without_prompt_or_key(sim, tmp_path):
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies, ignore=shutil.ignore_patterns("tests", "examples", "schema"))
    classifier = (policies / "classifier.yaml").read_text()
    # Every auto request asks Claude Haiku, so the triage call's HTTP client gets its chance to log.
    (policies / "classifier.yaml").write_text(classifier.replace("confidence_threshold: 0.5", "confidence_threshold: 1.0"))
    env = {**clean_env(), "ANTHROPIC_API_KEY": UPSTREAM_KEY}
    proc = ServeProcess(env, "--upstream-url", sim.url, "--policies", str(policies), "--first-content-timeout", "1")
    try:
        client = anthropic.Anthropic(base_url=proc.url, api_key=CLIENT_KEY, max_retries=0)
        messages = [{"role": "user", "content": SECRET_PROMPT}]
        client.messages.create(model="auto", max_tokens=16, messages=messages, system=SECRET_PROMPT)
        client.messages.create(model="auto", max_tokens=16, messages=messages)
        with client.messages.stream(model="haiku", max_tokens=16, messages=messages) as stream:
            stream.get_final_message()
        sim.faults({"kind": "rate_limit", "model": "claude-opus-4-8", "count": 1, "retry_after": 30})
        client.messages.create(model="opus", max_tokens=16, messages=messages)
        sim.faults({"kind": "error_after_content", "model": "claude-sonnet-4-6"})
        with pytest.raises(anthropic.APIStatusError):
            with client.messages.stream(model="sonnet", max_tokens=16, messages=messages) as stream:
                stream.get_final_message()
        sim.faults({"kind": "server_error"})
        with pytest.raises(anthropic.InternalServerError):
            client.messages.create(model="opus", max_tokens=16, messages=messages)
        sim.faults()
        post(proc.url + "/v1/messages", b'{"model": "' + SECRET_PROMPT.encode() + b'", oops', {"x-api-key": CLIENT_KEY})
        post(proc.url + "/v1/messages", b'{"model": "auto", "max_tokens": 5, "messages": []}', {})
        assert [r for r in sim.requests(triage=True) if r not in sim.requests()], "the Haiku triage call was made"
    finally:
        proc.proc.send_signal(signal.SIGTERM)  # how a supervisor stops it; stop() then only collects the log
        proc.proc.wait(15)
        log = proc.stop()
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines
    records = []
    for line in lines:
        try:
            record = json.loads(line)  # every line, one by one
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}\n--- the whole log:\n{log}")
        assert isinstance(record, dict) and all(key in record for key in ENVELOPE), line
        records.append(record)
    access = [r for r in records if r["logger"] == "router.access"]
    assert len(access) >= 6, [r["message"] for r in records]
    for record in access:
        assert {"requested", "tier", "model", "rule", "attempts", "outcome", "ms"} <= set(record), record
        assert isinstance(record["attempts"], list), "fields are values, not JSON inside a string"
    assert ["claude-opus-4-8:429", "claude-sonnet-4-6:200"] in [r["attempts"] for r in access]
    assert {"ok", "upstream_error", "stream_error"} <= {r["outcome"] for r in access}
    noisy = [r for r in records if r["logger"].split(".")[0] in ("httpx", "httpx2", "httpcore", "anthropic")]
    assert not noisy, noisy
    for secret in (SECRET_PROMPT, "zebra-quartz", CLIENT_KEY, UPSTREAM_KEY, UPSTREAM_KEY[-8:]):
        assert secret not in log


def _format(record: logging.LogRecord) -> dict[str, object]:
    return json.loads(logs.JsonFormatter().format(record))


def test_json_formatter_puts_fields_at_the_top_level_and_keeps_the_envelope():
    record = logging.LogRecord("router.access", logging.INFO, __file__, 1, "%s", ('{"tier":"opus","usd":0.5,"message":"x"}',), None)
    line = _format(record)
    assert line["tier"] == "opus" and line["usd"] == 0.5 and line["logger"] == "router.access"
    assert line["message"] == "request" and line["field_message"] == "x" and line["level"] == "INFO"
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    other = logging.LogRecord("router", logging.WARNING, __file__, 1, "plain %s", ("text",), None)
    other.fields = {"model": "claude-opus-4-5"}
    assert _format(other) == {**_format(other), "message": "plain text", "model": "claude-opus-4-5"}
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = logging.LogRecord("router", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "RuntimeError: boom" in _format(failed)["exception"]


def test_format_is_text_on_a_terminal_and_json_otherwise(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert logs.resolve_format(None, Tty()) == "text"
    assert logs.resolve_format(None, io.StringIO()) == "json"
    assert logs.resolve_format("text", io.StringIO()) == "text" and logs.resolve_format("json", Tty()) == "json"
    with pytest.raises(ValueError):
        logs.resolve_format("xml")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        monkeypatch.setattr(sys, "stderr", io.StringIO())
        logs.configure_logging("INFO")
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
        for name in ("httpx", "httpx2", "anthropic"):
            assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
        logs.configure_logging("INFO", "text")
        assert not isinstance(root.handlers[0].formatter, logs.JsonFormatter)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        logging.captureWarnings(False)
