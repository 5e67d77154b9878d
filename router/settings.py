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
        return cls(**values)  # type: ignore[arg-type]
