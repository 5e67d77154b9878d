"""What the sim says: deterministic answer text, forced-tool inputs, message bodies and SSE event payloads.

Owns the *content* of successful responses, as pure functions of the request (so the same request gets
the same answer). It must not do I/O, sleep, or know about faults: the server decides when and whether
each piece is sent.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
from dataclasses import dataclass
from typing import Any

from router.sim.config import LatencyProfile
from router.sim.schema_fill import fill_schema

_WORDS = (
    "the system routes each request to a model tier that fits its difficulty while keeping latency "
    "low and cost predictable under load so simple questions get quick answers and hard problems "
    "receive careful reasoning with clear steps plus a short summary of trade offs data shows that "
    "caching stable prefixes saves money when conversations stay on one model across many turns"
).split()

# Words per text_delta: real streams send a few tokens per delta, not one frame per token.
WORDS_PER_DELTA = 3
# Characters per input_json_delta piece for streamed tool input.
JSON_PIECE_CHARS = 16


@dataclass(frozen=True)
class Answer:
    """One planned reply: its final content block, the delta pieces that stream it, and usage."""

    block: dict[str, Any]
    pieces: tuple[str, ...]
    piece_tokens: tuple[int, ...]
    stop_reason: str
    output_tokens: int

    @property
    def is_tool_use(self) -> bool:
        return self.block["type"] == "tool_use"


def estimate_input_tokens(raw_body: bytes) -> int:
    """The sim's token estimate: about four bytes of JSON per token, at least one."""
    return max(1, len(raw_body) // 4)


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def conversation_text(body: dict[str, Any]) -> str:
    """All text in system and messages, in order: the stable key for deterministic choices."""
    parts: list[str] = []
    _collect_text(body.get("system"), parts)
    _collect_text(body.get("messages"), parts)
    return "\n".join(parts)


def _collect_text(value: Any, parts: list[str]) -> None:
    if isinstance(value, str):
        parts.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect_text(item, parts)
    elif isinstance(value, dict):
        if isinstance(value.get("text"), str):
            parts.append(value["text"])
        _collect_text(value.get("content"), parts)


def forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool the request forces (``tool_choice`` type ``tool`` by name, or ``any`` = first), if any."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or not tools or not isinstance(choice, dict):
        return None
    named = [tool for tool in tools if isinstance(tool, dict) and isinstance(tool.get("name"), str)]
    if choice.get("type") == "any":
        return named[0] if named else None
    if choice.get("type") == "tool":
        return next((tool for tool in named if tool["name"] == choice.get("name")), None)
    return None


def plan_answer(body: dict[str, Any], profile: LatencyProfile, seed: int) -> Answer:
    """Decide the full reply to a valid /v1/messages body."""
    text = conversation_text(body)
    digest = hashlib.sha256(f"{seed}\x00{body.get('model')}\x00{text}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    tool = forced_tool(body)
    if tool is not None:
        return _tool_answer(tool, text)
    max_tokens = body.get("max_tokens")
    limit = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else profile.output_tokens
    count = min(profile.output_tokens, limit)
    words = [rng.choice(_WORDS) for _ in range(count)]
    # Sentences of 6-12 words read like prose in demos; the word count (= token count) is unchanged.
    sentence_start, sentence_len = 0, rng.randint(6, 12)
    for index in range(count):
        if index == sentence_start:
            words[index] = words[index].capitalize()
        if index - sentence_start + 1 >= sentence_len or index == count - 1:
            if index < count - 1 or count == profile.output_tokens:
                words[index] += "."
            sentence_start, sentence_len = index + 1, rng.randint(6, 12)
    pieces, piece_tokens = [], []
    for start in range(0, count, WORDS_PER_DELTA):
        chunk = words[start : start + WORDS_PER_DELTA]
        pieces.append((" " if start else "") + " ".join(chunk))
        piece_tokens.append(len(chunk))
    stop = "end_turn" if count == profile.output_tokens else "max_tokens"
    block = {"type": "text", "text": "".join(pieces)}
    return Answer(block, tuple(pieces), tuple(piece_tokens), stop, count)


def _tool_answer(tool: dict[str, Any], text: str) -> Answer:
    schema = tool.get("input_schema")
    tool_input = fill_schema(schema if isinstance(schema, dict) else {}, text)
    if not isinstance(tool_input, dict):
        tool_input = {}
    encoded = json.dumps(tool_input, separators=(",", ":"))
    pieces = tuple(encoded[i : i + JSON_PIECE_CHARS] for i in range(0, len(encoded), JSON_PIECE_CHARS))
    piece_tokens = tuple(max(1, len(piece) // 4) for piece in pieces)
    block = {"type": "tool_use", "id": new_id("toolu_sim_"), "name": tool["name"], "input": tool_input}
    return Answer(block, pieces, piece_tokens, "tool_use", max(1, sum(piece_tokens)))


def usage(input_tokens: int, output_tokens: int, cache_read: int = 0, cache_creation: int = 0) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache_creation,
        "cache_read_input_tokens": cache_read,
    }


def message_body(
    answer: Answer, *, model: str, msg_id: str, input_tokens: int, cache_read: int = 0, cache_creation: int = 0
) -> dict[str, Any]:
    """The non-streaming response body."""
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [answer.block],
        "stop_reason": answer.stop_reason,
        "stop_sequence": None,
        "usage": usage(input_tokens, answer.output_tokens, cache_read, cache_creation),
    }


def message_start(
    *, model: str, msg_id: str, input_tokens: int, cache_read: int = 0, cache_creation: int = 0
) -> dict[str, Any]:
    message = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage(input_tokens, 1, cache_read, cache_creation),
    }
    return {"type": "message_start", "message": message}


def block_start(answer: Answer) -> dict[str, Any]:
    if answer.is_tool_use:
        start = {**answer.block, "input": {}}
    else:
        start = {"type": "text", "text": ""}
    return {"type": "content_block_start", "index": 0, "content_block": start}


def block_delta(answer: Answer, piece: str) -> dict[str, Any]:
    if answer.is_tool_use:
        delta = {"type": "input_json_delta", "partial_json": piece}
    else:
        delta = {"type": "text_delta", "text": piece}
    return {"type": "content_block_delta", "index": 0, "delta": delta}


def block_stop() -> dict[str, Any]:
    return {"type": "content_block_stop", "index": 0}


def message_delta(answer: Answer, cumulative: dict[str, int] | None = None) -> dict[str, Any]:
    """The final ``message_delta``. ``cumulative``: the full usage object (input and cache fields too), as
    newer API versions send it; by default only ``output_tokens``."""
    return {
        "type": "message_delta",
        "delta": {"stop_reason": answer.stop_reason, "stop_sequence": None},
        "usage": cumulative if cumulative is not None else {"output_tokens": answer.output_tokens},
    }
