"""The lenient request view: the few fields the router reads, decoded from the client's JSON body.

Everything else in the body stays in the decoded ``dict`` and is forwarded untouched. The view is not a
schema check: the upstream validates the request; the router rejects only what it cannot read itself.
"""

from __future__ import annotations

from typing import Any

import msgspec

from router.errors import InvalidRequest


class RequestView(msgspec.Struct, frozen=True):
    """The fields routing decisions may use. Unknown fields are ignored (and kept in ``Request.body``)."""

    model: str
    messages: list[Any] = []
    stream: bool = False
    max_tokens: int | None = None
    system: Any = None
    tools: list[Any] | None = None
    thinking: Any = None
    metadata: Any = None


class ParsedRequest(msgspec.Struct, frozen=True):
    """A decoded request: the view for decisions, the dict for forwarding, the original bytes.

    A request in another API's format (``router.gateway.dialect``: the OpenAI chat completions surface)
    also carries ``shaped``, a Messages-shaped reading of its body (system, messages, tools) for the
    classifier and the conversation key; ``body`` and ``raw`` stay in the client's own format, which is
    what is forwarded. ``max_tokens_field`` names the body's output-limit field (the one a clamp rewrites);
    ``api`` names the surface in the access line (None: the Messages API); ``added`` lists what the router
    itself added to the client's body (e.g. ``stream_options.include_usage``), to be undone downstream."""

    view: RequestView
    body: dict[str, Any]
    raw: bytes
    shaped: dict[str, Any] | None = None
    max_tokens_field: str = "max_tokens"
    api: str | None = None
    added: tuple[str, ...] = ()

    @property
    def messages_body(self) -> dict[str, Any]:
        """The body as a Messages request: what the classifier and the conversation key read."""
        shaped = self.shaped
        return self.body if shaped is None else shaped

    @property
    def estimated_tokens(self) -> int:
        """The request's input size in tokens, estimated as about four bytes of JSON per token: the one
        estimate rules (``input_tokens``), rate limits and budget reservations all use; never a count."""
        return len(self.raw) // 4


MAX_MODEL_CHARS = 256
"""Longest ``model`` string accepted. Real ids are ~20 characters; the bound keeps a client string from
becoming a megabyte response header or log line."""


def decode_body(raw: bytes) -> Any:
    """The client's JSON, or InvalidRequest (400) for every way it can fail to decode: bad syntax, invalid
    UTF-8 (``UnicodeDecodeError``) and nesting deeper than msgspec's limit (``RecursionError``). Any of
    these escaping as a 500 would make the client's SDK retry a request that can never succeed."""
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid JSON: invalid UTF-8") from None
    except RecursionError:
        raise InvalidRequest("request body is not valid JSON: nested too deeply") from None


def check_model(model: str) -> None:
    """``model`` must be 1..256 printable ASCII characters: it may reach response headers (latin-1 only, no
    CR/LF) and the access log, so anything else is refused at the door, before any upstream call."""
    if not model or len(model) > MAX_MODEL_CHARS or not (model.isascii() and model.isprintable()):
        raise InvalidRequest(
            f"model: expected 1 to {MAX_MODEL_CHARS} printable ASCII characters (a model id, a tier or auto)"
        )


def parse_request(raw: bytes, *, require_messages: bool = True) -> ParsedRequest:
    """Decode the body. Raises InvalidRequest (400) with a message naming the unreadable field."""
    if not raw:
        raise InvalidRequest("request body is empty: expected a JSON object")
    body = decode_body(raw)
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    if "model" not in body:
        raise InvalidRequest("model: Field required")
    if require_messages and "messages" not in body:
        raise InvalidRequest("messages: Field required")
    fields = body
    limit = body.get("max_tokens")
    if type(limit) is float and limit.is_integer():
        # JSON has one number type: 1024.0 is the integer 1024 to most clients' serialisers and to JSON
        # Schema validators. The view reads it as such; the body is forwarded as the client wrote it.
        fields = {**body, "max_tokens": int(limit)}
    try:
        view = msgspec.convert(fields, RequestView)
    except msgspec.ValidationError as exc:
        # msgspec names the path, e.g. "Expected `str`, got `int` - at `$.model`".
        raise InvalidRequest(f"cannot read the request: {exc}") from None
    check_model(view.model)
    return ParsedRequest(view=view, body=body, raw=raw)


def body_for_model(
    parsed: ParsedRequest, model: str, max_output_tokens: int | None = None, drop_thinking: bool = False
) -> bytes:
    """The bytes to send to ``model``: the client's own bytes when nothing changes. Otherwise the model is
    set, ``max_tokens`` lowered to ``max_output_tokens`` if it is above it, and ``thinking`` removed when
    ``drop_thinking`` (a target that does not support it)."""
    changes: dict[str, Any] = {}
    if parsed.view.model != model:
        changes["model"] = model
    limit = parsed.view.max_tokens
    if max_output_tokens is not None and limit is not None and limit > max_output_tokens:
        changes[parsed.max_tokens_field] = max_output_tokens
    drop = drop_thinking and "thinking" in parsed.body
    if not changes and not drop:
        return parsed.raw
    body = {**parsed.body, **changes}
    if drop:
        del body["thinking"]
    return msgspec.json.encode(body)
