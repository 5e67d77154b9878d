"""The live policy: which loaded policy object handlers see, and how it is replaced.

Owns the current policy object, the outcome of the last (re)load and the reload counters. It does not know
how a policy is parsed (the injected loader does) or when to reload (the watcher, SIGHUP and the admin
endpoint decide and call ``reload``).

Readers take ``store.current`` once per request into a local: a swap is one attribute assignment on the
event loop, so a request keeps the version it started with and no lock is needed on the read path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

import msgspec

from router.errors import ConfigError

log = logging.getLogger("router.policy")

Trigger = Literal["watch", "sighup", "admin", "startup"]


class Versioned(Protocol):
    @property
    def version(self) -> str: ...


P = TypeVar("P", bound=Versioned)


class ReloadResult(msgspec.Struct, frozen=True):
    """What one load attempt did."""

    ok: bool
    trigger: Trigger
    version: str
    """The new version on success; on failure the version still being served."""
    error: str | None
    """On failure every problem, one per line, each starting with file:line:column."""
    at: float
    """Wall-clock epoch seconds when the attempt finished."""
    changed: bool = False
    """True when the attempt swapped in a different policy (False for same content or failure)."""


class PolicyStore(Generic[P]):
    """Holds the current policy and replaces it on successful reloads, never on failed ones.

    ``reload`` is async: the loader (file reads + validation, tens of ms) runs in a worker thread so the
    event loop keeps serving, and an ``asyncio.Lock`` serialises reloads so two triggers arriving together
    (a watch event and a SIGHUP) cannot interleave or swap out of order. ``initial_load`` is sync: it runs
    once in the lifespan before the app serves, when blocking the loop costs nothing.
    """

    def __init__(
        self,
        loader: Callable[[Path], P],
        directory: Path,
        *,
        check: Callable[[P, P], None] | None = None,
        on_swap: Callable[[P], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._loader = loader
        # ``check(served, candidate)`` runs after a reload's load, in the same worker thread, and raises to
        # refuse the candidate: what start-up checks beyond the files (the classifier artifact, the bind
        # guard) and what only a transition can show (tenants -> no tenants) live there, not in the loader.
        self._check = check
        # ``on_swap(policy)`` runs on the loop after every load that changes the served policy, whatever
        # triggered it (start-up, the watcher, SIGHUP, the admin endpoint): one place for what each new
        # policy must announce (deprecation warnings), so no trigger can skip it.
        self._on_swap = on_swap
        self.directory = directory
        self._wall_clock = wall_clock
        self._current: P | None = None
        # asyncio.Lock binds to a loop on first use (3.10+), so creating it here, outside a loop, is safe.
        self._lock = asyncio.Lock()
        self.last_result: ReloadResult | None = None
        self.reloads_ok = 0
        self.reloads_failed = 0

    @property
    def current(self) -> P:
        """The policy to serve with. Read it once per request and keep the local."""
        if self._current is None:
            raise RuntimeError("policy store used before initial_load()")
        return self._current

    @property
    def version(self) -> str:
        return self._current.version if self._current is not None else ""

    def initial_load(self) -> P:
        """Load the directory or raise: the router must not start serving with a bad policy."""
        policy = self._loader(self.directory)
        self._current = policy
        # Not counted in reloads_ok: the counters are about replacing a served policy, and a failed
        # startup never gets here (the process exits).
        self.last_result = ReloadResult(True, "startup", policy.version, None, self._wall_clock(), changed=True)
        log.info("policy %s loaded from %s", policy.version, self.directory)
        self._announce(policy)
        return policy

    async def reload(self, trigger: Trigger) -> ReloadResult:
        """Load the whole directory again; swap on success, keep the last good policy on any failure."""
        async with self._lock:
            try:
                policy = await asyncio.to_thread(self._load_checked)
            except Exception as exc:  # noqa: BLE001 -- a reload must never take the router down
                return self._failed(trigger, exc)
            changed = policy.version != self.version
            if changed:
                # The swap: one assignment on the loop thread, after the load completed in full.
                self._current = policy
            result = ReloadResult(True, trigger, policy.version, None, self._wall_clock(), changed=changed)
            self.last_result = result
            self.reloads_ok += 1
            if changed:
                log.info("policy reloaded (%s): now %s", trigger, policy.version)
                self._announce(policy)
            else:
                log.info("policy reload (%s): unchanged at %s", trigger, policy.version)
            return result

    def _announce(self, policy: P) -> None:
        if self._on_swap is None:
            return
        try:
            self._on_swap(policy)
        except Exception as exc:  # noqa: BLE001 -- the swap happened; a notice must not fail the reload
            log.error("policy %s: the post-swap notice failed (%s)", policy.version, type(exc).__name__)

    def _load_checked(self) -> P:
        policy = self._loader(self.directory)
        if self._check is not None and self._current is not None:
            self._check(self._current, policy)
        return policy

    def _failed(self, trigger: Trigger, exc: Exception) -> ReloadResult:
        # A PolicyError's text is already every problem as "file:line:col: message"; anything else (a file
        # vanishing mid-swap, a loader bug) is named by type so ops can tell the two apart.
        # A ConfigError (a refusal by the reload checks) reads the same way.
        refused = isinstance(exc, ConfigError)
        text = str(exc) if refused else f"{type(exc).__name__}: {exc}"
        result = ReloadResult(False, trigger, self.version, text, self._wall_clock())
        self.last_result = result
        self.reloads_failed += 1
        if refused:
            log.error("policy reload (%s) rejected; still serving %s:\n%s", trigger, self.version, text)
        else:
            log.exception("policy reload (%s) failed; still serving %s", trigger, self.version)
        return result

    def details(self) -> dict[str, Any]:
        """For ``/readyz``: what is served and how the last reload went."""
        last = self.last_result
        return {
            "version": self.version,
            "last_reload": None
            if last is None
            else {"ok": last.ok, "trigger": last.trigger, "at": last.at, "error": last.error},
            "reloads_ok": self.reloads_ok,
            "reloads_failed": self.reloads_failed,
        }
