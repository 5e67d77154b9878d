"""What requests cost and what each tenant has spent this month, against its ``budget`` in ``tenants.yaml``.

Owns the per-tenant monthly ledger (``BudgetLedger``, one per process,
built in the app's lifespan) and ``budget_exceeded``, the 429 a tenant over a ``reject`` budget gets.

Months are UTC calendar months: the ledger starts from zero at 00:00 UTC on the 1st. Reserve, then
settle: admission reserves the request's estimated cost (``reserve``) and is refused once spend plus
reservations reach the budget, and the real cost replaces the reservation when the answer's usage is known
(``settle``). Concurrent requests can therefore overshoot a budget by at most what the last admitted
request costs beyond what was left. This ledger is one process's; ``router.tenancy.state`` persists it to
SQLite (memory backend) or replaces it by the shared Redis ledger, keeping it as the local fallback.
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

def format_usd(usd: float) -> str:
    """Dollars for a message: cents from $1 up, and enough digits below that that $0.0004 is not "$0.00"."""
    if usd == 0 or abs(usd) >= 1:
        return f"${usd:,.2f}"
    digits = min(8, max(2, 2 - math.floor(math.log10(abs(usd)))))
    text = f"{usd:.{digits}f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def month_key(now: float) -> str:
    """``YYYY-MM`` of the UTC month of ``now`` (epoch seconds): the ledger's key for a month."""
    year, month = _month(now)
    return f"{year:04d}-{month:02d}"


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
        f"tenant {tenant_name!r} has used its monthly budget of {format_usd(state.monthly_usd or 0)} "
        f"({format_usd(state.spent_usd)} spent this month); requests are refused until the budget resets at "
        f"{reset} or it is raised in tenants.yaml",
        headers={"x-should-retry": "false", "x-router-budget-reset": reset},
    )


class BudgetLedger:
    """USD spent and reserved per tenant in the current UTC calendar month."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._month = _month(clock())
        self._spent: dict[str, float] = {}
        self._holds: dict[str, dict[str, tuple[float, float]]] = {}
        """Tenant -> reservation id -> (USD, expiry on the ledger's clock). A reservation a request never
        settled (a bug, a crash in between) expires instead of shrinking the budget for the rest of the month."""
        self._dirty: set[str] = set()

    @property
    def month(self) -> str:
        """``YYYY-MM`` of the month the ledger holds."""
        self._roll()
        return f"{self._month[0]:04d}-{self._month[1]:02d}"

    def _roll(self) -> None:
        # Checked on every call rather than by a timer: no background task, and exact at the boundary.
        month = _month(self._clock())
        if month != self._month:
            self._month = month
            self._spent = {}
            self._holds = {}
            self._dirty = set()

    def add(self, tenant_name: str, usd: float) -> None:
        if not math.isfinite(usd) or usd < 0:
            raise ValueError("spend must be a finite, non-negative amount")
        self._roll()
        if usd:
            self._spent[tenant_name] = self._spent.get(tenant_name, 0.0) + usd
            self._dirty.add(tenant_name)

    def spent(self, tenant_name: str) -> float:
        self._roll()
        return self._spent.get(tenant_name, 0.0)

    def reserved(self, tenant_name: str) -> float:
        self._roll()
        holds = self._holds.get(tenant_name)
        if not holds:
            return 0.0
        now = self._clock()
        expired = [hold for hold, (_, until) in holds.items() if until <= now]
        for hold in expired:
            del holds[hold]
        return sum(usd for usd, _ in holds.values())

    def check(self, tenant_name: str, budget: Budget | None, base_usd: float = 0.0) -> BudgetState:
        """Whether the tenant is within budget; a used-up budget rejects or downgrades per ``on_exceeded``.

        Reservations of requests in flight count as spent. ``base_usd`` is spend known from elsewhere (the
        shared ledger's last value while this one stands in for it)."""
        spent = base_usd + self.spent(tenant_name)
        if budget is None:
            return BudgetState(OK, spent)
        resets_at = month_reset(self._clock())
        if spent + self.reserved(tenant_name) < budget.monthly_usd:
            return BudgetState(OK, spent, budget.monthly_usd, resets_at=resets_at)
        # Anything but a complete downgrade setting rejects: a typo must not turn a budget into no budget.
        if budget.on_exceeded == "downgrade" and budget.downgrade_tier:
            return BudgetState(EXCEEDED_DOWNGRADE, spent, budget.monthly_usd, budget.downgrade_tier, resets_at)
        return BudgetState(EXCEEDED_REJECT, spent, budget.monthly_usd, resets_at=resets_at)

    def reserve(
        self,
        tenant_name: str,
        budget: Budget | None,
        usd: float,
        base_usd: float = 0.0,
        hold: str | None = None,
        ttl: float = 660.0,
    ) -> BudgetState:
        """``check``, and unless it rejects, hold ``usd`` against the budget (as ``hold``, for at most ``ttl``
        seconds) until ``settle``."""
        state = self.check(tenant_name, budget, base_usd)
        if state.status != EXCEEDED_REJECT and budget is not None and usd > 0:
            key = hold if hold is not None else f"h{len(self._holds.get(tenant_name, ()))}-{self._clock()!r}"
            self._holds.setdefault(tenant_name, {})[key] = (usd, self._clock() + ttl)
        return state

    def settle(self, tenant_name: str, hold: str | None, usd: float) -> None:
        """Release a reservation and book the real cost."""
        self._roll()
        holds = self._holds.get(tenant_name)
        if hold is not None and holds:
            holds.pop(hold, None)
            if not holds:
                del self._holds[tenant_name]
        self.add(tenant_name, usd)

    def load(self, month: str, totals: dict[str, float]) -> None:
        """Start from persisted totals (if they are this month's)."""
        if month == self.month:
            for tenant_name, usd in totals.items():
                self._spent[tenant_name] = self._spent.get(tenant_name, 0.0) + usd

    def take_dirty(self) -> tuple[str, dict[str, float]]:
        """The month and the totals of tenants whose spend changed since the last call."""
        month = self.month
        dirty, self._dirty = self._dirty, set()
        return month, {name: self._spent.get(name, 0.0) for name in dirty}

    def mark_dirty(self, names: list[str] | set[str] | dict[str, float]) -> None:
        """Write these tenants again on the next flush (the last one failed)."""
        self._dirty.update(names)

    def drop(self, tenant_name: str, usd: float) -> None:
        """Forget ``usd`` of a tenant's spend (it was handed over to the shared ledger)."""
        left = self._spent.get(tenant_name, 0.0) - usd
        if left > 1e-12:
            self._spent[tenant_name] = left
        else:
            self._spent.pop(tenant_name, None)

    def tenants(self) -> list[str]:
        self._roll()
        return list(self._spent)
