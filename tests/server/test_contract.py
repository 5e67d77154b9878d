"""Contract: the real anthropic SDK, pointed at the router over loopback, works as it would against Anthropic.

Sync and async clients, JSON and streaming, count_tokens and the model list, both API versions, Bearer
and x-api-key auth; and the router forwards what it must (query strings, unknown fields, anthropic-*
headers) while never forwarding the client's key.
"""

from __future__ import annotations

import asyncio
import json

import anthropic
import pytest

from router.policy.loader import load_policy
from tests.conftest import CLIENT_KEY, ROOT, UPSTREAM_KEY, post, sdk_client

MESSAGES = [{"role": "user", "content": "Name three prime numbers."}]


VERSIONS = ["2023-06-01", "2026-10-21"]
RULE_NAMES = {rule.name for rule in load_policy(ROOT / "policies").rules}
AUTH = ["x-api-key", "bearer"]


def auth_kwargs(auth, version):
    """SDK 2.x sends its key as ``Authorization: Bearer``; older SDKs and raw clients send ``x-api-key``."""
    headers = {"anthropic-version": version}
    if auth == "bearer":
        return {"api_key": CLIENT_KEY, "default_headers": headers}
    return {"api_key": "unused", "default_headers": {**headers, "x-api-key": CLIENT_KEY, "authorization": anthropic.omit}}


def check_forwarded(seen, version, auth):
    assert seen["headers"]["anthropic-version"] == version
    assert seen["headers"]["x-api-key"] == UPSTREAM_KEY, "the router's own key goes upstream"
    assert "authorization" not in seen["headers"]
    assert CLIENT_KEY not in json.dumps(seen), f"client key ({auth}) never forwarded"


@pytest.mark.parametrize("auth", AUTH)
@pytest.mark.parametrize("version", VERSIONS)
def test_sync_client_create_stream_count(router, sim, version, auth):
    client = anthropic.Anthropic(base_url=router.url, max_retries=0, timeout=20, **auth_kwargs(auth, version))
    raw = client.messages.with_raw_response.create(model="auto", max_tokens=64, messages=MESSAGES)
    message = raw.parse()
    routed = raw.headers["x-router-model"]
    assert message.model == routed
    assert message.content[0].type == "text" and message.content[0].text
    assert message.usage.input_tokens > 0
    assert raw.headers["x-router-tier"] in ("haiku", "sonnet", "opus")
    assert raw.headers["x-router-rule"] in RULE_NAMES
    assert raw.headers["x-router-attempts"] == f"{routed}:200"
    assert raw.headers["request-id"].startswith("req_sim_")
    assert sim.requests()[-1]["body"]["model"] == routed

    with client.messages.stream(model="opus", max_tokens=64, messages=MESSAGES) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == final.content[0].text and final.content[0].text
    assert final.model == "claude-opus-4-8"
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.output_tokens > 0

    assert client.messages.count_tokens(model="haiku", messages=MESSAGES).input_tokens > 0
    seen = sim.requests()
    assert [r["path"] for r in seen] == ["/v1/messages", "/v1/messages", "/v1/messages/count_tokens"]
    for request in seen:
        check_forwarded(request, version, auth)


@pytest.mark.parametrize("auth", AUTH)
@pytest.mark.parametrize("version", VERSIONS)
def test_async_client_create_stream_count(router, sim, version, auth):
    async def main():
        client = anthropic.AsyncAnthropic(base_url=router.url, max_retries=0, timeout=20, **auth_kwargs(auth, version))
        message = await client.messages.create(model="haiku", max_tokens=32, messages=MESSAGES)
        async with client.messages.stream(model="haiku", max_tokens=32, messages=MESSAGES) as stream:
            chunks = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
        count = await client.messages.count_tokens(model="haiku", messages=MESSAGES)
        await client.close()
        return message, chunks, final, count

    message, chunks, final, count = asyncio.run(main())
    assert message.model == final.model == "claude-haiku-4-5"
    assert "".join(chunks) == final.content[0].text and final.content[0].text
    assert count.input_tokens > 0
    for request in sim.requests():
        check_forwarded(request, version, auth)


def test_count_tokens_maps_alias_to_model(router, sim):
    client = sdk_client(router)
    raw = client.messages.with_raw_response.count_tokens(model="auto", messages=MESSAGES)
    assert raw.parse().input_tokens > 0
    assert raw.headers["x-router-model"] == "claude-sonnet-4-6"
    seen = sim.requests()[-1]
    assert seen["path"] == "/v1/messages/count_tokens" and seen["body"]["model"] == "claude-sonnet-4-6"


def test_models_list_shows_tiers_and_models(router):
    client = sdk_client(router)
    ids = [m.id for m in client.models.list()]
    assert ids[:4] == ["auto", "haiku", "sonnet", "opus"]
    assert "claude-opus-4-8" in ids and "claude-haiku-4-5" in ids
    assert client.models.retrieve("opus").id == "opus"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("gpt-9")


def test_bearer_and_x_api_key_both_accepted_and_never_forwarded(router, sim):
    body = json.dumps({"model": "haiku", "max_tokens": 8, "messages": MESSAGES}).encode()
    status, _, _ = post(router.url + "/v1/messages", body, {"x-api-key": CLIENT_KEY})
    assert status == 200
    status, _, _ = post(router.url + "/v1/messages", body, {"authorization": f"Bearer {CLIENT_KEY}"})
    assert status == 200
    for seen in sim.requests()[-2:]:
        assert seen["headers"]["x-api-key"] == UPSTREAM_KEY
        assert "authorization" not in seen["headers"]
        assert CLIENT_KEY not in json.dumps(seen)


def test_query_string_beta_headers_and_unknown_fields_forwarded(router, sim):
    client = sdk_client(router)
    client.beta.messages.create(
        model="sonnet",
        max_tokens=16,
        messages=MESSAGES,
        betas=["some-future-beta-2026-11-01"],
        extra_body={"future_field": {"nested": [1, 2.5, "x"]}},
        extra_headers={"anthropic-custom-thing": "kept"},
        # SDK 2.x keeps its beta qualifier internal; older SDKs and raw clients send ?beta=true.
        extra_query={"beta": "true"},
    )
    seen = sim.requests()[-1]
    assert seen["query"] == "beta=true"
    assert seen["headers"]["anthropic-beta"] == "some-future-beta-2026-11-01"
    assert seen["headers"]["anthropic-custom-thing"] == "kept"
    assert seen["body"]["future_field"] == {"nested": [1, 2.5, "x"]}
    assert seen["body"]["model"] == "claude-sonnet-4-6"


def test_concrete_model_bytes_forwarded_verbatim(router, sim):
    """When the request already names the model the router sends to, its body is not re-encoded."""
    body = b'{"model":"claude-haiku-4-5","max_tokens":8,  "messages":[{"role":"user","content":"caf\\u00e9"}],"z":1e2}'
    status, headers, _ = post(router.url + "/v1/messages", body, {"x-api-key": CLIENT_KEY})
    assert status == 200 and headers["x-router-rule"] == "default" and headers["x-router-tier"] == "haiku"
    seen = sim.requests()[-1]
    assert seen["body"]["messages"][0]["content"] == "café" and seen["body"]["z"] == 100.0
    assert seen["headers"]["content-length"] == str(len(body)), "same bytes: spacing and 1e2 kept"


def test_rewritten_model_keeps_every_other_field(router, sim):
    body = {"max_tokens": 8, "model": "auto", "messages": MESSAGES, "temperature": 0.25, "metadata": {"user_id": "u1"}}
    status, headers, _ = post(router.url + "/v1/messages", json.dumps(body).encode(), {"x-api-key": CLIENT_KEY})
    assert status == 200
    seen = sim.requests()[-1]["body"]
    assert list(seen) == list(body), "field order kept"
    assert seen["model"] != "auto" and seen == {**body, "model": headers["x-router-model"]}


def test_unknown_model_passes_through_and_upstream_404_is_relayed(router, sim):
    client = sdk_client(router)
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="claude-does-not-exist-1", max_tokens=8, messages=MESSAGES)
    assert info.value.response.headers["x-router-rule"] == "default"
    assert "x-router-tier" not in info.value.response.headers
    assert info.value.response.headers["x-router-attempts"] == "claude-does-not-exist-1:404"
    assert info.value.body["error"]["type"] == "not_found_error"
    assert sim.models_seen() == ["claude-does-not-exist-1"]
