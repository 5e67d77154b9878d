"""One usage parser: a JSON answer and the stream of the same answer give the same four token counts."""

from __future__ import annotations

import msgspec

from router.gateway import usage

USAGE = {"input_tokens": 12, "output_tokens": 40, "cache_read_input_tokens": 90_000, "cache_creation_input_tokens": 512}


def test_json_and_stream_agree_including_cache_tokens() -> None:
    body = msgspec.json.encode({"id": "msg_1", "type": "message", "content": [], "usage": USAGE})
    streamed = usage.empty()
    start_usage = {**USAGE, "output_tokens": 1}
    usage.merge_event(streamed, "message_start", {"type": "message_start", "message": {"usage": start_usage}})
    usage.merge_event(streamed, "content_block_delta", {"type": "content_block_delta", "delta": {"text": "x"}})
    usage.merge_event(streamed, "message_delta", {"type": "message_delta", "usage": {"output_tokens": 40}})
    assert usage.of_json(body) == streamed == USAGE


def test_message_delta_totals_replace_earlier_values() -> None:
    """``message_delta`` usage is cumulative; a later delta that restates input or cache counts wins."""
    seen = usage.empty()
    usage.merge_event(seen, "message_start", {"message": {"usage": {"input_tokens": 5, "output_tokens": 1}}})
    usage.merge_event(seen, "message_delta", {"usage": {"output_tokens": 7, "cache_read_input_tokens": 3}})
    usage.merge_event(seen, "message_delta", {"usage": {"output_tokens": 9, "input_tokens": None}})
    assert seen == {"input_tokens": 5, "output_tokens": 9, "cache_read_input_tokens": 3, "cache_creation_input_tokens": 0}


def test_malformed_usage_is_ignored() -> None:
    assert usage.of_json(b"not json") == {} and usage.of_json(b'{"content": []}') == {}
    seen = usage.empty()
    usage.merge_event(seen, "message_delta", {"usage": {"output_tokens": "many", "input_tokens": -4}})
    usage.merge_event(seen, "message_delta", ["not", "a", "dict"])
    assert seen == usage.empty()
