"""Conversation stickiness: keep a conversation on the model that answered it, because prompt caches are
per model and per exact prefix -- switching models mid-conversation pays the whole prefix again.

Owns the conversation key and a bounded map from key to model. One instance per process (the lifespan
builds it); ``plan`` receives the remembered model as an input and stays pure.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import msgspec

MAX_CONVERSATIONS = 10_000


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
    """Least-recently-used map from conversation key to the model that answered it."""

    def __init__(self, capacity: int = MAX_CONVERSATIONS) -> None:
        self.capacity = capacity
        self._models: OrderedDict[str, str] = OrderedDict()

    def get(self, key: str | None) -> str | None:
        if key is None:
            return None
        model = self._models.get(key)
        if model is not None:
            self._models.move_to_end(key)
        return model

    def remember(self, key: str | None, model: str) -> None:
        if key is None:
            return
        self._models[key] = model
        self._models.move_to_end(key)
        while len(self._models) > self.capacity:
            self._models.popitem(last=False)
