"""Writes that need not delay the answer (settling a request's spend after its reply went out, remembering
a sticky route): started as tasks, kept referenced until done, awaited on drain so none is lost.

Owns the set of pending tasks of one process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("router.state")


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # the loop keeps only a weak reference: an unreferenced task can vanish
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("state write failed: %s", type(task.exception()).__name__)

    async def drain(self, timeout: float) -> None:
        """Wait for pending writes (at most ``timeout`` seconds)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def __len__(self) -> int:
        return len(self._tasks)
