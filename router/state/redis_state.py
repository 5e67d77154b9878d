"""The shared backend on Redis: what every replica and worker reads and writes so that limits, budgets,
cooldowns and sticky routes hold for the fleet, not per process.

Owns the key layout, the Lua scripts and the cooldown channel. Every operation is one round trip:
admission (both token buckets and the budget reservation) is one script, settling (token correction,
reservation release, spend) another, the routing read (cooldowns + sticky route) one pipeline. The
cooldown scripts publish each change on ``router:<db>:cooldowns``, so a replica subscribed to it keeps the
table in memory and reads no Redis for it per request (``router.gateway.cooldown``). Scripts run atomically on the server
and use the server's clock (``TIME``) for buckets and reservation expiry, so replicas with skewed clocks
still share one bucket. Cooldowns carry wall-clock times from the replica that saw the 429 (a cooldown is
seconds long; NTP skew is milliseconds).

Keys (``{tenant}`` is a Redis Cluster hash tag, so one tenant's keys share a slot):

    router:{t}:rpm / router:{t}:tpm        hash  l (level), t (ms)      token buckets, expire after 2 min idle
    router:{t}:spent:YYYY-MM               float USD settled this month  expires ~2 months after last write
    router:{t}:reserved:YYYY-MM            float USD reserved in flight
    router:{t}:rsv:YYYY-MM                 zset  "id:usd" -> expiry ms  reservations (a crashed replica's expire)
    router:cooldowns                       hash  model -> "until_ms:marked_ms:status"
    router:sticky:<conversation>           string model, TTL = sticky TTL (refreshed on read)
    router:<db>:cooldowns (channel)        "until_ms:marked_ms:status|model", "|model" when cleared

Every call is bounded by the client's socket timeouts; any failure raises ``StateBackendError`` and the
caller falls back to local state (``router.state.health``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from router.errors import StateBackendError
from router.state.subscriber import Subscription

LEDGER_TTL_S = 62 * 24 * 3600
BUCKET_IDLE_MS = 120_000
COOLDOWNS = "router:cooldowns"

# Admission. KEYS: rpm bucket, tpm bucket, spent, reserved, reservations.
# ARGV: rpm cap (-1: none), tpm cap (-1: none), tokens needed, budget USD (-1: none), on exceeded (1 reject,
# 2 downgrade), USD to reserve, reservation member, reservation TTL ms.
# Returns {code, retry_after_ms, bucket (1 requests, 2 tokens), spent, reserved}; code 0 admitted, 1 rate
# limited, 2 budget exhausted (refused, nothing consumed), 3 admitted over budget (downgrade).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local caps = {tonumber(ARGV[1]), tonumber(ARGV[2])}
local needs = {1, tonumber(ARGV[3])}
local limit = tonumber(ARGV[4])
local mode = tonumber(ARGV[5])
local amount = tonumber(ARGV[6])
local levels = {}
local wait, kind = 0, 0
for i = 1, 2 do
  local cap = caps[i]
  if cap == 0 then
    if 60000 > wait then wait = 60000; kind = i end
  elseif cap > 0 then
    local b = redis.call('HMGET', KEYS[i], 'l', 't')
    local level = tonumber(b[1]) or cap
    local at = tonumber(b[2]) or now
    level = math.min(cap, level + math.max(0, now - at) * cap / 60000)
    levels[i] = level
    local deficit = math.min(needs[i], cap) - level
    if deficit > 0 then
      local w = deficit * 60000 / cap
      if w > wait then wait = w; kind = i end
    end
  end
end
if kind > 0 then return {1, tostring(wait), kind, '0', '0'} end
local spent = tonumber(redis.call('GET', KEYS[3]) or '0')
local reserved = 0
if limit >= 0 then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now)
  if #expired > 0 then
    for _, m in ipairs(expired) do
      redis.call('INCRBYFLOAT', KEYS[4], -tonumber(string.match(m, ':([^:]+)$')))
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  end
  reserved = math.max(0, tonumber(redis.call('GET', KEYS[4]) or '0'))
end
local code = 0
if limit >= 0 and spent + reserved >= limit then
  if mode == 1 then return {2, '0', 0, tostring(spent), tostring(reserved)} end
  code = 3
end
for i = 1, 2 do
  if levels[i] then
    redis.call('HSET', KEYS[i], 'l', tostring(levels[i] - needs[i]), 't', now)
    redis.call('PEXPIRE', KEYS[i], 120000)
  end
end
if limit >= 0 and amount > 0 then
  local ttl = tonumber(ARGV[8])
  redis.call('ZADD', KEYS[5], now + ttl, ARGV[7])
  reserved = tonumber(redis.call('INCRBYFLOAT', KEYS[4], amount))
  redis.call('PEXPIRE', KEYS[4], ttl + 60000)
  redis.call('PEXPIRE', KEYS[5], ttl + 60000)
end
return {code, '0', 0, tostring(spent), tostring(reserved)}
"""

# Settling. KEYS: tpm bucket, spent, reserved, reservations. ARGV: tpm cap (-1: none), tokens to charge
# (negative refunds), reservation member ('' for none), USD spent, ledger TTL s. Returns the month's spend.
_SETTLE = """
local cap = tonumber(ARGV[1])
if cap > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local b = redis.call('HMGET', KEYS[1], 'l', 't')
  local level = tonumber(b[1]) or cap
  local at = tonumber(b[2]) or now
  level = math.min(cap, level + math.max(0, now - at) * cap / 60000)
  redis.call('HSET', KEYS[1], 'l', tostring(math.min(cap, level - tonumber(ARGV[2]))), 't', now)
  redis.call('PEXPIRE', KEYS[1], 120000)
end
if ARGV[3] ~= '' and redis.call('ZREM', KEYS[4], ARGV[3]) == 1 then
  local left = tonumber(redis.call('INCRBYFLOAT', KEYS[3], -tonumber(string.match(ARGV[3], ':([^:]+)$'))))
  if left < 1e-9 then redis.call('SET', KEYS[3], '0', 'KEEPTTL') end
end
if tonumber(ARGV[4]) > 0 then
  local spent = redis.call('INCRBYFLOAT', KEYS[2], ARGV[4])
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
  return spent
end
return redis.call('GET', KEYS[2]) or '0'
"""

# A cooldown only ever grows, and its mark time is the newest mark's. KEYS: cooldowns.
# ARGV: model, until ms, marked ms, status, now ms, channel. Expired entries are dropped on the way. The
# model's new entry is published ("until:marked:status|model") before the script returns, so every
# subscribed replica has it before the replica that saw the 429 answers its client. ``pcall``: a user whose
# ACL denies the channel still marks (its replicas, unable to subscribe either, read the table per request).
_MARK = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local untilms, marked, status = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if cur then
  local u, m, s = string.match(cur, '^([^:]+):([^:]+):(.*)$')
  if tonumber(u) > untilms then untilms = tonumber(u); status = s end
  if tonumber(m) > marked then marked = tonumber(m) end
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d:%d:%s', untilms, marked, status))
local latest = untilms
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local u = tonumber(string.match(all[i + 1], '^([^:]+)'))
  if u <= tonumber(ARGV[5]) then redis.call('HDEL', KEYS[1], all[i]) elseif u > latest then latest = u end
end
redis.call('PEXPIREAT', KEYS[1], latest)
redis.pcall('PUBLISH', ARGV[6], string.format('%d:%d:%s', untilms, marked, status) .. '|' .. ARGV[1])
return 1
"""

# Only an outcome newer than the mark clears it. KEYS: cooldowns. ARGV: model, attempt start ms, channel.
# Publishes the model's entry as it now stands ("|model" when cleared), so a replica that cleared its own
# table on an older success takes back a newer mark from elsewhere.
_CLEAR = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local marked = tonumber(string.match(cur, '^[^:]+:([^:]+):'))
if marked < tonumber(ARGV[2]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.pcall('PUBLISH', ARGV[3], '|' .. ARGV[1])
  return 1
end
redis.pcall('PUBLISH', ARGV[3], cur .. '|' .. ARGV[1])
return 0
"""


class Admitted(msgspec.Struct, frozen=True):
    code: int
    retry_after_s: float
    bucket: int
    spent: float
    reserved: float


class RemoteCooling(msgspec.Struct, frozen=True):
    until: float
    """Wall-clock seconds."""
    marked: float
    status: int


def _ledger_keys(tenant: str, month: str) -> list[str]:
    return [f"router:{{{tenant}}}:spent:{month}", f"router:{{{tenant}}}:reserved:{month}", f"router:{{{tenant}}}:rsv:{month}"]


def parse_cooldowns(raw: dict[str, str], now_wall: float) -> dict[str, RemoteCooling]:
    cooling: dict[str, RemoteCooling] = {}
    for model, value in raw.items():
        until_ms, marked_ms, status = value.split(":", 2)
        until = int(until_ms) / 1000
        if until > now_wall:
            cooling[model] = RemoteCooling(until, int(marked_ms) / 1000, int(status or 0))
    return cooling


def parse_change(payload: str, now_wall: float) -> tuple[str, RemoteCooling | None]:
    """A published cooldown change: the model and its entry (None: cleared or already over)."""
    value, _, model = payload.partition("|")
    if not value:
        return model, None
    return model, parse_cooldowns({model: value}, now_wall).get(model)


class RedisState:
    """One connection pool per process; every method is one round trip."""

    def __init__(self, url: str, timeout: float, password: str | None = None, max_connections: int = 64) -> None:
        # Retries off: a dead Redis must cost one timeout, not three, and the caller has a fallback anyway.
        # A blocking pool: a burst past ``max_connections`` waits (up to the timeout) for a free connection
        # instead of failing at once.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            password=password,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=max_connections,
            timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self.client: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self.pool = pool
        self.timeout = timeout
        # Channels are server-wide, keys are per database: the database is in the channel's name.
        self.channel = f"router:{pool.connection_kwargs.get('db', 0)}:cooldowns"
        self._admit = self.client.register_script(_ADMIT)
        self._settle = self.client.register_script(_SETTLE)
        self._mark = self.client.register_script(_MARK)
        self._clear = self.client.register_script(_CLEAR)

    async def close(self) -> None:
        await self.client.aclose()

    async def _call(self, operation: str, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError, TimeoutError) as exc:
            # Redis' own messages name host, port and command, never the password.
            raise StateBackendError(operation, f"{type(exc).__name__}: {str(exc)[:200]}") from None

    async def reset(self) -> None:
        """Drop every pooled connection: after an outage they are dead sockets the pool would hand out."""
        try:
            await self.client.connection_pool.disconnect()
        except (RedisError, OSError):
            pass

    async def ping(self) -> None:
        await self._call("ping", self.client.ping())

    async def admit(
        self,
        tenant: str,
        month: str,
        rpm: int | None,
        tpm: int | None,
        tokens: int,
        budget_usd: float | None,
        downgrade: bool,
        reserve_usd: float,
        member: str,
        ttl_ms: int,
    ) -> Admitted:
        keys = [f"router:{{{tenant}}}:rpm", f"router:{{{tenant}}}:tpm", *_ledger_keys(tenant, month)]
        args = [
            -1 if rpm is None else rpm,
            -1 if tpm is None else tpm,
            max(0, tokens),
            -1 if budget_usd is None else repr(float(budget_usd)),
            2 if downgrade else 1,
            repr(float(reserve_usd)),
            member,
            ttl_ms,
        ]
        code, wait_ms, bucket, spent, reserved = await self._call("admit", self._admit(keys, args))
        return Admitted(int(code), float(wait_ms) / 1000, int(bucket), float(spent), float(reserved))

    async def settle(self, tenant: str, month: str, tpm: int | None, tokens_delta: int, member: str, usd: float) -> float:
        keys = [f"router:{{{tenant}}}:tpm", *_ledger_keys(tenant, month)]
        args = [-1 if tpm is None else tpm, tokens_delta, member, repr(float(usd)), LEDGER_TTL_S]
        return float(await self._call("settle", self._settle(keys, args)))

    async def settle_many(self, items: list[tuple[str, str, int | None, int, str, float]]) -> list[float | None]:
        """Several settlements (tenant, month, tpm, tokens delta, member, usd) in one round trip: a pipeline
        of the settle script, each atomic by itself. Per item the month's spend, or None when that item's
        script failed (the caller books it locally); a failure of the round trip raises."""

        async def run(batch: list[tuple[str, str, int | None, int, str, float]]) -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for tenant, month, tpm, delta, member, usd in batch:
                keys = [f"router:{{{tenant}}}:tpm", *_ledger_keys(tenant, month)]
                args = [-1 if tpm is None else tpm, delta, member, repr(float(usd)), LEDGER_TTL_S]
                pipe.evalsha(self._settle.sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
            return await pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

        results = await self._call("settle", run(items))
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:  # a restarted Redis has forgotten the script; those items did not run
            await self._call("settle", self.client.script_load(_SETTLE))
            for i, again in zip(missing, await self._call("settle", run([items[i] for i in missing])), strict=True):
                results[i] = again
        return [None if isinstance(r, Exception) else float(r) for r in results]

    async def spent(self, tenant: str, month: str) -> float:
        return float(await self._call("spent", self.client.get(_ledger_keys(tenant, month)[0])) or 0.0)

    async def spent_many(self, tenants: list[str], month: str) -> dict[str, float]:
        """Month-to-date spend of several tenants in one round trip (MGET; cluster users: one slot each)."""
        if not tenants:
            return {}
        values = await self._call("spent", self.client.mget([_ledger_keys(t, month)[0] for t in tenants]))
        return {t: float(v or 0.0) for t, v in zip(tenants, values, strict=True)}

    async def routing(self, sticky_key: str | None, sticky_ttl_ms: int) -> tuple[dict[str, str], str | None]:
        """The cooldown table and this conversation's sticky model (TTL refreshed), in one round trip."""
        if sticky_key is None:
            return await self._call("routing", self.client.hgetall(COOLDOWNS)), None
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(COOLDOWNS)
        pipe.getex(f"router:sticky:{sticky_key}", px=sticky_ttl_ms)
        cooling, sticky = await self._call("routing", pipe.execute())
        return cooling, sticky

    async def cooldowns(self) -> dict[str, str]:
        return await self._call("cooldowns", self.client.hgetall(COOLDOWNS))  # type: ignore[no-any-return]

    async def mark(self, model: str, until: float, marked: float, status: int, now: float) -> None:
        args = [model, int(until * 1000), int(marked * 1000), status, int(now * 1000), self.channel]
        await self._call("mark", self._mark([COOLDOWNS], args))

    async def clear(self, model: str, started: float) -> None:
        await self._call("clear", self._clear([COOLDOWNS], [model, int(started * 1000), self.channel]))

    def subscribe(self, on_change: Callable[[str], None], on_resync: Callable[[], Awaitable[None]]) -> Subscription:
        """The cooldown channel: ``on_change(payload)`` for each published change (see ``parse_change``),
        ``on_resync()`` after each (re)subscription. Not started."""
        return Subscription(self.pool, self.channel, on_change, on_resync, self.timeout)

    async def sticky(self, sticky_key: str, sticky_ttl_ms: int) -> str | None:
        """This conversation's sticky model (TTL refreshed)."""
        return await self._call("routing", self.client.getex(f"router:sticky:{sticky_key}", px=sticky_ttl_ms))  # type: ignore[no-any-return]

    async def remember(self, sticky_key: str, model: str, ttl_ms: int) -> None:
        await self._call("remember", self.client.set(f"router:sticky:{sticky_key}", model, px=ttl_ms))
