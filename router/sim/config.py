"""Typed, frozen configuration of the simulated upstream: latency profiles, fault rules, and loading them.

Owns the config types, their validation, the built-in default profiles and strict decoding of YAML/JSON
config files. It must not hold runtime state (fault counters, request logs live in ``faults``/``state``).

Default profiles (``SimConfig.default()``), chosen so demos show tier differences while tests stay quick:

    model family   ttft_ms   tokens_per_s   output_tokens
    haiku              5         2000            24
    sonnet            10         1000            24
    opus              20          500            24
    "*" (other)       10         1000            24
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

# Every fault kind the sim can inject; see ``router.sim`` for what each one looks like on the wire.
FAULT_KINDS: frozenset[str] = frozenset(
    {
        "rate_limit",
        "overloaded",
        "server_error",
        "invalid_request",  # 400 invalid_request_error, as for a parameter this model does not accept
        "connect_refused",
        "stall",
        "stall_after_content",
        "cut",
        "error_before_content",
        "error_after_content",
        "malformed",
        "malformed_after_content",
        # Not failures: wire variations a correct client must survive. Streams only; JSON answers are normal.
        "novel_events",  # event types from a future API version, before content and between deltas
        "fragmented",  # every frame written in several small pieces, so frames straddle network reads
        "trickle",  # every frame written a few bytes at a time with a pause between writes
        "comment_frames",  # SSE comment frames (": ...") before content and between deltas
        "prompt_cache",  # usage reports cache_read_tokens / cache_creation_tokens (JSON, message_start/_delta)
        "extra_headers",  # response headers a router must not relay (set-cookie x2, organization id)
        "oversize",  # a stream: one content_block_delta frame of frame_bytes; JSON: a text of frame_bytes
        # Failures of their own:
        "empty_stream",  # message_start, ping, message_stop: a complete stream without any content
        "malformed_json",  # a 200 JSON answer whose body is truncated (streams: 529, like stream-only kinds)
    }
)

# Kinds that only make sense for a JSON answer; a stream request gets a 529 instead.
JSON_ONLY_KINDS: frozenset[str] = frozenset({"malformed_json"})

# Kinds that only make sense once a 200 SSE stream is open; a non-stream request gets a 529 instead.
STREAM_ONLY_KINDS: frozenset[str] = frozenset(
    {
        "error_before_content",
        "error_after_content",
        "malformed",
        "malformed_after_content",
        "stall_after_content",
        "empty_stream",
    }
)

SERVER_ERROR_STATUSES: frozenset[int] = frozenset({500, 502, 503, 504})
ENDPOINTS: frozenset[str] = frozenset({"messages", "count_tokens", "chat_completions", "*"})

# The models GET /v1/models lists (the sim accepts any id on /v1/messages).
KNOWN_MODELS: tuple[str, ...] = (
    "claude-haiku-4-5",
    "claude-haiku-5-5",
    "claude-sonnet-4-6",
    "claude-sonnet-5-5",
    "claude-sonnet-4-5",
    "claude-opus-4-5",
    "claude-opus-4-6",
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-opus-5-5",
)


class LatencyProfile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How fast one model answers: time to first token, generation speed (0 = instant), answer length."""

    ttft_ms: float = 0
    tokens_per_s: float = 0
    output_tokens: int = 24

    def __post_init__(self) -> None:
        if self.ttft_ms < 0 or self.tokens_per_s < 0:
            raise ValueError("ttft_ms and tokens_per_s must be >= 0")
        if self.output_tokens < 1:
            raise ValueError("output_tokens must be >= 1")


class FaultRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One fault to inject into matching requests (by model and endpoint), N times or forever."""

    kind: str
    model: str = "*"
    count: int | None = None
    probability: float = 1.0
    retry_after: float | None = None
    status: int | None = None
    after_events: int = 2
    stall_s: float = 3600
    endpoint: str = "messages"
    cache_read_tokens: int = 0
    """``prompt_cache``: cache reads reported in usage."""
    cache_creation_tokens: int = 0
    """``prompt_cache``: cache writes reported in usage."""
    input_tokens: int | None = None
    """``prompt_cache``: input tokens reported instead of the size estimate (same usage for any body)."""
    frame_bytes: int = 16 << 20
    """``oversize``: bytes of text in the one huge delta (or the JSON answer's text)."""
    comments: bool = False
    """Any stream kind: also send an SSE comment frame and an unknown event before content."""

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(sorted(FAULT_KINDS))}")
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}; expected one of {', '.join(sorted(ENDPOINTS))}")
        if self.status is not None and (self.kind != "server_error" or self.status not in SERVER_ERROR_STATUSES):
            raise ValueError("status is only valid for server_error and must be one of 500, 502, 503, 504")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be within 0..1, got {self.probability}")
        if self.count is not None and self.count < 0:
            raise ValueError("count must be >= 0 (or null for unlimited)")
        if self.after_events < 0 or self.stall_s < 0:
            raise ValueError("after_events and stall_s must be >= 0")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        if min(self.cache_read_tokens, self.cache_creation_tokens, self.frame_bytes) < 0:
            raise ValueError("cache_read_tokens, cache_creation_tokens and frame_bytes must be >= 0")


def _default_profiles() -> dict[str, LatencyProfile]:
    haiku = LatencyProfile(ttft_ms=5, tokens_per_s=2000)
    sonnet = LatencyProfile(ttft_ms=10, tokens_per_s=1000)
    opus = LatencyProfile(ttft_ms=20, tokens_per_s=500)
    by_family = {"haiku": haiku, "sonnet": sonnet, "opus": opus}
    profiles = {model: by_family[model.split("-")[1]] for model in KNOWN_MODELS}
    profiles["*"] = LatencyProfile(ttft_ms=10, tokens_per_s=1000)
    return profiles


class SimConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the sim starts with: per-model latency profiles (``"*"`` = default), faults, RNG seed."""

    profiles: dict[str, LatencyProfile] = msgspec.field(default_factory=dict)
    faults: list[FaultRule] = msgspec.field(default_factory=list)
    seed: int = 0

    @classmethod
    def default(cls) -> SimConfig:
        """Realistic-but-quick per-family profiles (see the module docstring), no faults."""
        return cls(profiles=_default_profiles())

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "config") -> SimConfig:
        """Strictly convert already-parsed data; any problem becomes a ``ValueError`` naming where it is."""
        if data is None:
            data = {}
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"{source}: invalid sim config: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> SimConfig:
        """Read a ``.yaml``/``.yml`` or ``.json`` file into a ``SimConfig`` (unknown keys are errors)."""
        import yaml  # imported here, not at module import: only file loading needs it

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".yaml", ".yml", ".json"):
            raise ValueError(f"{path}: unsupported config extension {suffix!r} (use .yaml, .yml or .json)")
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot parse: {exc}") from None
        return cls.from_dict(data, source=str(path))

    def profile_for(self, model: str) -> LatencyProfile:
        """The profile this config gives a model id (see ``resolve_profile``)."""
        return resolve_profile(self.profiles, model)


def resolve_profile(profiles: dict[str, LatencyProfile], model: str) -> LatencyProfile:
    """Exact model id first, then ``"*"``, then an instant profile."""
    found = profiles.get(model)
    if found is None:
        found = profiles.get("*")
    return found if found is not None else LatencyProfile()
