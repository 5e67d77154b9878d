"""The mutable state of one running sim: live profiles, fault selector, request log and counters.

One ``SimState`` is created per app by ``create_sim_app`` and stored on the app (never a module global), so
several sims can run in one process. The control endpoints mutate it; request handlers read it.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from typing import Any

from aiohttp import web

from router.sim.config import FaultRule, LatencyProfile, SimConfig, resolve_profile
from router.sim.faults import FaultSelector

REQUEST_LOG_SIZE = 200


class SimState:
    """Everything a sim instance remembers between requests."""

    def __init__(self, config: SimConfig) -> None:
        self.startup = config
        # Set when the server shuts down, so stalled handlers stop waiting instead of holding close().
        self.closing = asyncio.Event()
        self.faults = FaultSelector(config.faults, config.seed)
        self.reset()

    def reset(self) -> None:
        """Back to the startup config, with an empty log and zeroed counters."""
        self.profiles: dict[str, LatencyProfile] = dict(self.startup.profiles)
        self.faults.replace(self.startup.faults)
        self.log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.served = 0
        self.by_model: Counter[str] = Counter()
        self.by_fault: Counter[str] = Counter()
        self.by_endpoint: Counter[str] = Counter()

    @property
    def seed(self) -> int:
        return self.startup.seed

    def profile_for(self, model: str) -> LatencyProfile:
        return resolve_profile(self.profiles, model)

    def set_faults(self, rules: list[FaultRule]) -> None:
        self.faults.replace(rules)

    def set_profiles(self, profiles: dict[str, LatencyProfile]) -> None:
        self.profiles = dict(profiles)

    def record(self, request: web.Request, body: Any, endpoint: str) -> dict[str, Any]:
        """Log a received request; the returned entry is updated later with the model and fault."""
        self.served += 1
        self.by_endpoint[endpoint] += 1
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            # Repeated headers are joined the way HTTP allows, so no value is silently dropped.
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        entry: dict[str, Any] = {
            "path": request.path,
            "query": request.query_string,
            "method": request.method,
            "headers": headers,
            # As received, in order: a repeated header appears once per occurrence.
            "raw_headers": [[name.lower(), value] for name, value in request.headers.items()],
            "body": body,
            "model": None,
            "fault": None,
        }
        self.log.append(entry)
        return entry

    def note_model(self, entry: dict[str, Any], model: str) -> None:
        entry["model"] = model
        self.by_model[model] += 1

    def note_fault(self, entry: dict[str, Any], rule: FaultRule) -> None:
        entry["fault"] = rule.kind
        self.by_fault[rule.kind] += 1

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.served,
            "models": dict(self.by_model),
            "faults": dict(self.by_fault),
            "endpoints": dict(self.by_endpoint),
            "fault_rules_remaining": self.faults.remaining(),
        }


STATE_KEY: web.AppKey[SimState] = web.AppKey("sim_state", SimState)
