"""Conversation stickiness: keep a conversation on the model that answered it, because prompt caches are
per model and per exact prefix -- switching models mid-conversation pays the whole prefix again.

Owns the conversation key and a bounded map from key to model whose entries expire ``ttl`` seconds after
their last use (a conversation idle for longer has lost its prompt cache anyway, and a route must not
outlive the reason for it). One instance per process (the lifespan builds it); with a shared backend the
routes live in Redis with the same TTL (``router.gateway.services`` reads and writes them) and this map is
the fallback. ``plan`` receives the remembered model as an input and stays pure.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgspec

MAX_CONVERSATIONS = 10_000
STICKY_TTL_SECONDS = 3600.0
"""Default: one hour, the longest prompt-cache lifetime the API offers."""


def conversation_key(body: dict[str, Any], tenant: str | None) -> str | None:
    """A conversation is identified by its tenant, system prompt and first user turn; None without one."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    first = messages[0]
    if not isinstance(first, dict):
        return None
    digest = hashlib.sha256()
    digest.update((tenant or "").encode() + b"\0")
    digest.update(msgspec.json.encode(body.get("system")) + b"\0")
    digest.update(msgspec.json.encode(first.get("content")))
    return digest.hexdigest()[:32]


class StickyModels:
    """Least-recently-used map from conversation key to the model that answered it, with a TTL."""

    def __init__(
        self, capacity: int = MAX_CONVERSATIONS, ttl: float = STICKY_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self._clock = clock
        self._models: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, key: str | None) -> str | None:
        if key is None:
            return None
        entry = self._models.get(key)
        if entry is None:
            return None
        now = self._clock()
        if entry[1] <= now:
            del self._models[key]
            return None
        self._models[key] = (entry[0], now + self.ttl)
        self._models.move_to_end(key)
        return entry[0]

    def remember(self, key: str | None, model: str) -> None:
        if key is None:
            return
        self._models[key] = (model, self._clock() + self.ttl)
        self._models.move_to_end(key)
        while len(self._models) > self.capacity:
            self._models.popitem(last=False)
