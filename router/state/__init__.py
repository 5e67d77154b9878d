"""Where state that must outlive a request is kept when it is more than this process's memory: the shared
Redis backend (token buckets, spend reservations and the monthly ledger, cooldowns, sticky routes), the
local SQLite file that keeps the month's spend across restarts, and the health of the shared backend.

Speaks only in primitives (tenant names, capacities, amounts, model ids): it knows nothing of policies,
tenants files or requests. ``router.tenancy`` and ``router.gateway`` decide what to store; this package
decides how. Never imports anything above ``router.observability``.
"""
