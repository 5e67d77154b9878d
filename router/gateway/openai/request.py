"""A chat-completions request body: the lenient view the router decides on, and its Messages-shaped reading.

Like ``router.gateway.view`` for the Messages API, only what the router reads is decoded and checked
(``model``, ``messages``, ``stream``, the output limit); the body is forwarded as the client sent it, with
two changes at most: the target's ``model`` (``view.body_for_model``) and, for a stream, ``stream_options:
{"include_usage": true}`` when the client did not ask for usage (the router needs it to account the
answer; ``ParsedChat.strip_usage`` says to drop that chunk again before the client sees it).

``messages_view`` is a pure function from the OpenAI body to the fields a Messages request would carry
(``system`` from the system/developer messages, user/assistant turns with text, image and document
blocks, tool calls and results as ``tool_use`` / ``tool_result``, ``tools`` with ``input_schema``), so the
classifier, the rules' facts and the conversation key read an OpenAI request exactly as they read a
Messages one. It copies no text: blocks refer to the client's own strings.
"""

from __future__ import annotations

from typing import Any

import msgspec

from router.errors import InvalidRequest
from router.gateway.view import ParsedRequest, RequestView, check_model, decode_body

API = "chat.completions"
"""The surface's name in the access line (``api``)."""

_SYSTEM_ROLES = frozenset({"system", "developer"})


class _ChatView(msgspec.Struct, frozen=True):
    """The fields read from the client's body (unknown ones are ignored and forwarded)."""

    model: str
    messages: list[Any]
    stream: bool | None = False
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    metadata: Any = None
    thinking: Any = None


def _content_blocks(content: Any) -> Any:
    """OpenAI message content as Messages content: a string stays a string; parts become blocks."""
    if isinstance(content, str) or not isinstance(content, list):
        return content if isinstance(content, str) else ""
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append({"type": "image"})
        elif kind in ("file", "input_file"):
            blocks.append({"type": "document"})
    return blocks


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _as_list(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def _turn(message: dict[str, Any]) -> tuple[str, Any] | None:
    """(Messages role, content) of one OpenAI message, None for system messages and unknown roles."""
    role = message.get("role")
    if role == "user":
        return "user", _content_blocks(message.get("content"))
    if role == "assistant":
        content = _content_blocks(message.get("content"))
        calls = message.get("tool_calls")
        if not isinstance(calls, list) or not calls:
            return "assistant", content
        blocks = _as_list(content)
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            blocks.append({"type": "tool_use", "id": call.get("id") if isinstance(call, dict) else None,
                           "name": name if isinstance(name, str) else "", "input": {}})
        return "assistant", blocks
    if role in ("tool", "function"):
        result = {"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": _content_blocks(message.get("content"))}
        return "user", [result]
    return None


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    if not isinstance(tools, list) or not tools:
        return None
    out: list[dict[str, Any]] = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            out.append({"name": function["name"], "description": function.get("description") or "",
                        "input_schema": function.get("parameters") or {}})
    return out or None


def messages_view(body: dict[str, Any]) -> dict[str, Any]:
    """The Messages-shaped reading of a chat-completions body (see the module docstring). Pure; lenient:
    odd or missing fields are skipped, never an error. Consecutive turns of one role are merged, as the
    Messages API requires alternation (tool results after a tool call are one user turn)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        if message.get("role") in _SYSTEM_ROLES:
            text = _text_of(message.get("content"))
            if text:
                system.append(text)
            continue
        turn = _turn(message)
        if turn is None:
            continue
        role, content = turn
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] = _as_list(turns[-1]["content"]) + _as_list(content)
        else:
            turns.append({"role": role, "content": content})
    shaped: dict[str, Any] = {"messages": turns}
    if system:
        shaped["system"] = "\n\n".join(system)
    tools = _tools(body.get("tools"))
    if tools is not None:
        shaped["tools"] = tools
    if "thinking" in body:
        shaped["thinking"] = body["thinking"]
    return shaped


def _wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


INCLUDE_USAGE = "stream_options.include_usage"
"""In ``ParsedRequest.added`` when the router, not the client, asked for the stream's usage chunk."""


def strip_usage(parsed: ParsedRequest) -> bool:
    """A stream whose usage chunk the router asked for: it is read, then dropped before the client."""
    return INCLUDE_USAGE in parsed.added


def parse_chat(raw: bytes) -> ParsedRequest:
    """Decode a chat-completions body. Raises InvalidRequest (400, OpenAI-shaped at the door) naming the
    unreadable field."""
    if not raw:
        raise InvalidRequest("request body is empty: expected a JSON object")
    body = decode_body(raw)
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    if "model" not in body:
        raise InvalidRequest("model: Field required")
    if "messages" not in body:
        raise InvalidRequest("messages: Field required")
    try:
        chat = msgspec.convert(body, _ChatView)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"cannot read the request: {exc}") from None
    check_model(chat.model)
    if not chat.messages:
        raise InvalidRequest("messages: at least one message is required")
    stream = chat.stream is True
    added: tuple[str, ...] = ()
    if stream and not _wants_usage(body):
        options = body.get("stream_options")
        body = {**body, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}}
        raw = msgspec.json.encode(body)
        added = (INCLUDE_USAGE,)
    limit_field = "max_completion_tokens" if chat.max_completion_tokens is not None or chat.max_tokens is None else "max_tokens"
    limit = chat.max_completion_tokens if chat.max_completion_tokens is not None else chat.max_tokens
    shaped = messages_view(body)
    view = RequestView(
        model=chat.model,
        messages=shaped["messages"],
        stream=stream,
        max_tokens=limit,
        system=shaped.get("system"),
        tools=shaped.get("tools"),
        thinking=chat.thinking,
        metadata=chat.metadata,
    )
    return ParsedRequest(
        view=view, body=body, raw=raw, shaped=shaped, max_tokens_field=limit_field, api=API, added=added
    )
