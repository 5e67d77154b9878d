"""What requests cost and what each tenant has spent this month, against its ``budget`` in ``tenants.yaml``.

Owns the per-tenant monthly ledger (``BudgetLedger``, one per process,
built in the app's lifespan) and ``budget_exceeded``, the 429 a tenant over a ``reject`` budget gets.

Months are UTC calendar months: the ledger starts from zero at 00:00 UTC on the 1st. The ledger is in
memory: a restart forgets the month's spend, and replicas each keep their own ledger, so a tenant can spend
up to its budget on every replica. Persistence (or a shared store) is a follow-up. The budget is checked
before a request and spend is added after its response, so requests in flight when the budget runs out
can overshoot it by their own cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from router.errors import BudgetExceeded
from router.policy.model import Budget

OK = "ok"
EXCEEDED_REJECT = "exceeded_reject"
EXCEEDED_DOWNGRADE = "exceeded_downgrade"

def _month(now: float) -> tuple[int, int]:
    moment = datetime.fromtimestamp(now, UTC)
    return moment.year, moment.month


def month_reset(now: float) -> datetime:
    """00:00 UTC on the first day of the month after ``now`` (epoch seconds)."""
    year, month = _month(now)
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


class BudgetState(msgspec.Struct, frozen=True):
    """``status`` is ``ok``, ``exceeded_reject`` or ``exceeded_downgrade`` (then ``downgrade_tier`` is set)."""

    status: str
    spent_usd: float = 0.0
    monthly_usd: float | None = None
    downgrade_tier: str | None = None
    resets_at: datetime | None = None
    """When the month's spend starts again from zero (UTC)."""


def budget_exceeded(tenant_name: str, state: BudgetState) -> BudgetExceeded:
    """The 429 for a tenant whose ``reject`` budget is used up for the month.

    ``x-should-retry: false`` and no ``retry-after``: retrying does not help before the month ends, and a
    retry-after of days is either ignored or obeyed by sleeping, both worse than failing now. The reset time
    is in the message and, machine-readable (RFC 3339, like ``anthropic-ratelimit-*-reset``), in
    ``x-router-budget-reset``.
    """
    reset = state.resets_at.strftime("%Y-%m-%dT%H:%M:%SZ") if state.resets_at else "the start of next month"
    return BudgetExceeded(
        f"tenant {tenant_name!r} has used its monthly budget of ${state.monthly_usd or 0:,.2f} "
        f"(${state.spent_usd:,.2f} spent this month); requests are refused until the budget resets at "
        f"{reset} or it is raised in tenants.yaml",
        headers={"x-should-retry": "false", "x-router-budget-reset": reset},
    )


class BudgetLedger:
    """USD spent per tenant in the current UTC calendar month."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._month = _month(clock())
        self._spent: dict[str, float] = {}

    def _roll(self) -> None:
        # Checked on every call rather than by a timer: no background task, and exact at the boundary.
        month = _month(self._clock())
        if month != self._month:
            self._month = month
            self._spent = {}

    def add(self, tenant_name: str, usd: float) -> None:
        if not math.isfinite(usd) or usd < 0:
            raise ValueError("spend must be a finite, non-negative amount")
        self._roll()
        self._spent[tenant_name] = self._spent.get(tenant_name, 0.0) + usd

    def spent(self, tenant_name: str) -> float:
        self._roll()
        return self._spent.get(tenant_name, 0.0)

    def check(self, tenant_name: str, budget: Budget | None) -> BudgetState:
        """Whether the tenant is within budget; a used-up budget rejects or downgrades per ``on_exceeded``."""
        spent = self.spent(tenant_name)
        if budget is None:
            return BudgetState(OK, spent)
        resets_at = month_reset(self._clock())
        if spent < budget.monthly_usd:
            return BudgetState(OK, spent, budget.monthly_usd, resets_at=resets_at)
        # Anything but a complete downgrade setting rejects: a typo must not turn a budget into no budget.
        if budget.on_exceeded == "downgrade" and budget.downgrade_tier:
            return BudgetState(EXCEEDED_DOWNGRADE, spent, budget.monthly_usd, budget.downgrade_tier, resets_at)
        return BudgetState(EXCEEDED_REJECT, spent, budget.monthly_usd, resets_at=resets_at)
