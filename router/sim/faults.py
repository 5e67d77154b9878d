"""Fault selection: which configured fault (if any) applies to the request that just arrived.

Owns the mutable per-rule "remaining count" state and the seeded RNG for probabilistic faults. One
``FaultSelector`` lives on each sim app instance; it never performs I/O or shapes responses.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from router.sim.config import FaultRule


class FaultSelector:
    """Picks the first matching rule that fires; ``count`` rules are consumed only when they fire."""

    def __init__(self, rules: Sequence[FaultRule], seed: int = 0) -> None:
        self._seed = seed
        self.replace(rules)

    def replace(self, rules: Sequence[FaultRule]) -> None:
        """Install a new rule list; counts and the RNG start over so runs are reproducible."""
        self._rules: list[FaultRule] = list(rules)
        self._remaining: list[int | None] = [rule.count for rule in self._rules]
        self._rng = random.Random(self._seed)

    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def remaining(self) -> list[int | None]:
        """How many more times each rule may fire (``None`` = unlimited), in rule order."""
        return list(self._remaining)

    def select(self, model: str | None, endpoint: str) -> FaultRule | None:
        """The fault for a request to ``endpoint`` ("messages"/"count_tokens") naming ``model``, or None."""
        for index, rule in enumerate(self._rules):
            if not _matches(rule, model, endpoint):
                continue
            left = self._remaining[index]
            if left is not None and left <= 0:
                continue
            # Draw only for rules that could fire, so adding a rule for another model does not shift the
            # random sequence that decides this model's faults.
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            if left is not None:
                self._remaining[index] = left - 1
            return rule
        return None


def _matches(rule: FaultRule, model: str | None, endpoint: str) -> bool:
    if rule.endpoint != "*" and rule.endpoint != endpoint:
        return False
    return rule.model == "*" or rule.model == model
