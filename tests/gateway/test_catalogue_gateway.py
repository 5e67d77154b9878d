"""The catalogue as the gateway applies it: a retired model is a 404 before any upstream call, an unlisted id
of a known family is priced and labelled by its family, and the access line carries the classification."""

from __future__ import annotations

import json
import logging
import time
import urllib.request

import anthropic
import pytest

from tests.conftest import sdk_client


def _metrics(router) -> str:
    with urllib.request.urlopen(router.admin_url + "/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_a_client_asking_for_a_retired_model_gets_a_404_envelope(router, sim):
    with pytest.raises(anthropic.NotFoundError) as error:
        sdk_client(router).messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    body = error.value.body
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert "retired on 2026-11-30" in body["error"]["message"] and "claude-sonnet-4-6" in body["error"]["message"]
    assert sim.models_seen() == [], "never sent upstream"


def test_unlisted_family_ids_are_counted_and_labelled_by_family(router, sim):
    message = sdk_client(router).messages.create(model="claude-sonnet-7", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert message.model == "claude-sonnet-7"
    text = _metrics(router)
    assert 'router_unlisted_models_total{family="sonnet"} 1.0' in text
    assert 'router_cost_usd_total{model="family:sonnet",purpose="serving"}' in text
    assert 'model="claude-sonnet-7"' not in text, "the client's own string never becomes a label"


def test_access_line_carries_the_classification(router, caplog):
    caplog.set_level(logging.INFO, logger="router.access")
    sdk_client(router).messages.create(model="auto", max_tokens=16, messages=[{"role": "user", "content": "Prove that 17 is prime."}])
    end = time.monotonic() + 5  # the access line is written once the answer is out: it may trail the client
    while not any(r.name == "router.access" for r in caplog.records) and time.monotonic() < end:
        time.sleep(0.01)
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "router.access"]
    assert {"category", "complexity", "difficulty", "confidence", "stage", "rule"} <= set(line), line
