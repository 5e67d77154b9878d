"""Process settings: typed and frozen, built once from flags and environment by the CLI.

Nothing here reads the environment at import time; ``Settings.from_env`` is called by the CLI (and by tests
that want the environment's view). The upstream key is wrapped so it never shows up in a repr or a log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

DEFAULT_UPSTREAM = "https://api.anthropic.com"
MAX_BODY_BYTES = 32 * 1024 * 1024  # the Messages API's own request limit


class Secret(str):
    """A string that prints as ``***`` so it cannot leak through reprs, f-strings in logs or tracebacks."""

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def reveal(self) -> str:
        return str.__str__(self)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8080
    policies_dir: Path = Path("policies")
    models_dir: Path = Path("models")
    upstream_url: str = DEFAULT_UPSTREAM
    upstream_key: Secret | None = None
    embedded_sim: bool = False
    """Start the simulated upstream inside the router (no key and no upstream URL were given)."""
    connect_timeout: float = 10.0
    """Seconds to open a connection to the upstream."""
    request_timeout: float = 600.0
    """Deadline for a whole request, every attempt and wait included."""
    first_content_timeout: float = 60.0
    """Streams: seconds until the first content event; past it the stream falls back to the next target."""
    stream_idle_timeout: float = 120.0
    """Streams: longest silence between upstream reads once content flows (the API pings meanwhile)."""
    max_body_bytes: int = MAX_BODY_BYTES
    upstream_ca_bundle: Path | None = None
    """PEM file of the CAs that sign the upstream's certificate (besides the system's and SSL_CERT_FILE)."""
    max_response_bytes: int = 64 << 20
    """Largest upstream answer body the router reads (JSON, or a whole stream); past it: a 502."""
    drain_seconds: float = 30.0
    """On SIGTERM: how long in-flight requests and streams may take to finish before the process exits."""
    policy_poll_seconds: float = 1.0
    """How often the policy directory is checked for changes (hot reload)."""
    admin_key_hash: str | None = None
    """``sha256:<hex>`` of the key allowed to call ``POST /v1/router/admin/reload`` (env ROUTER_ADMIN_KEY_HASH)."""
    log_level: str = "INFO"
    # -- listeners and connection guards (issue 13) ------------------------------------------------------------
    admin_host: str = "127.0.0.1"
    """Address of the admin listener: /metrics, detailed /readyz, /v1/router/{admin,explain,classify,openapi.json}."""
    admin_port: int | None = 8081
    """Port of the admin listener; 0 picks a free port, None turns the listener off."""
    header_timeout: float = 10.0
    """Seconds a client connection may take to send a request's headers (also: to send anything at all)."""
    body_timeout: float = 60.0
    """Seconds a client may take to send a request's body once its headers arrived."""
    keep_alive_timeout: float = 5.0
    """Seconds an idle keep-alive connection stays open between requests."""
    max_connections: int = 4096
    """Open client connections per listener; past it a new connection gets a 529 envelope and is closed."""
    log_format: str | None = None
    """``json`` (one object per line) or ``text``; unset: text on a terminal, JSON otherwise."""
    # --- shared state and scale-out (issue 14; README "State and scale-out") -----------------------------
    state_url: Secret | None = None
    """``redis://[:password@]host:port/db`` or ``rediss://`` (TLS): limits, budgets, cooldowns and sticky routes
    shared by every replica and worker (env ROUTER_STATE_URL). None: the ``memory`` backend."""
    state_password: Secret | None = None
    """Redis password when it is not in the URL (env ROUTER_STATE_PASSWORD, e.g. from a Kubernetes Secret)."""
    state_timeout: float = 0.5
    """Seconds any one Redis call may take (connect included) before the router falls back to local state."""
    ledger_path: Path | None = None
    """``memory`` backend: the SQLite file that keeps the month's spend across restarts (env ROUTER_LEDGER_PATH;
    ``router serve`` defaults to ``router-ledger.sqlite3`` in the working directory). None: not persisted."""
    state_replicas: int = 1
    """Processes expected to share the limits (replicas x workers): while Redis is unreachable each process
    enforces limit / this (env ROUTER_STATE_REPLICAS)."""
    budget_enforcement: str = "open"
    """While Redis is unreachable: ``open`` admits against the last spend seen plus local spend (handed to Redis
    when it returns); ``strict`` refuses budgeted tenants with a 429 (env ROUTER_BUDGET_ENFORCEMENT)."""
    sticky_ttl_seconds: float = 3600.0
    """How long an idle conversation keeps its model."""
    workers: int = 1
    """Worker processes on the one port (``router serve --workers``); more than 1 needs ``state_url``."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from the environment, with explicit ``overrides`` (CLI flags) taking precedence."""
        env = os.environ if env is None else env
        key = env.get("ANTHROPIC_API_KEY") or None
        url = overrides.pop("upstream_url", None) or env.get("ROUTER_UPSTREAM_URL") or None
        values: dict[str, object] = {k: v for k, v in overrides.items() if v is not None}
        values["upstream_key"] = Secret(key) if key else None
        values["upstream_url"] = (url or DEFAULT_UPSTREAM).rstrip("/")
        # The embedded simulator is the newcomer's path: no key and no explicit upstream at all.
        values["embedded_sim"] = key is None and url is None
        if env.get("ROUTER_ADMIN_KEY_HASH") and "admin_key_hash" not in values:
            values["admin_key_hash"] = env["ROUTER_ADMIN_KEY_HASH"]
        if env.get("ROUTER_UPSTREAM_CA_BUNDLE") and "upstream_ca_bundle" not in values:
            values["upstream_ca_bundle"] = Path(env["ROUTER_UPSTREAM_CA_BUNDLE"])
        if "ROUTER_LOG_LEVEL" in env and "log_level" not in values:
            values["log_level"] = env["ROUTER_LOG_LEVEL"]
        # Shared state (issue 14): flags win over the environment; secrets stay wrapped.
        state_url = values.pop("state_url", None) or env.get("ROUTER_STATE_URL") or None
        if isinstance(state_url, Secret):
            state_url = state_url.reveal()
        values["state_url"] = Secret(state_url) if state_url else None
        if env.get("ROUTER_STATE_PASSWORD"):
            values["state_password"] = Secret(env["ROUTER_STATE_PASSWORD"])
        if "ledger_path" not in values:
            values["ledger_path"] = Path(env.get("ROUTER_LEDGER_PATH") or "router-ledger.sqlite3")
        if env.get("ROUTER_STATE_REPLICAS") and "state_replicas" not in values:
            values["state_replicas"] = int(env["ROUTER_STATE_REPLICAS"])
        if env.get("ROUTER_BUDGET_ENFORCEMENT") and "budget_enforcement" not in values:
            values["budget_enforcement"] = env["ROUTER_BUDGET_ENFORCEMENT"]
        return cls(**values)  # type: ignore[arg-type]
