"""Command line: ``router serve`` runs the gateway, ``router sim`` the simulated Anthropic upstream.

Owns argument parsing and process start-up. Flags override environment variables; see README's
configuration table for both.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from router.errors import ConfigError


def _add_serve(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the router")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    p.add_argument("--policies", type=Path, default=Path("policies"), help="policy directory (default policies/)")
    p.add_argument("--models", type=Path, default=Path("models"), help="classifier model directory (default models/)")
    p.add_argument(
        "--upstream-url",
        default=None,
        help="Anthropic API base URL (env ROUTER_UPSTREAM_URL; default https://api.anthropic.com)",
    )
    p.add_argument("--request-timeout", type=float, default=None, help="deadline per request, seconds (600)")
    p.add_argument("--connect-timeout", type=float, default=None, help="upstream connect timeout, seconds (10)")
    p.add_argument(
        "--upstream-ca-bundle", type=Path, default=None,
        help="PEM file of extra CAs for the upstream's TLS certificate (env ROUTER_UPSTREAM_CA_BUNDLE; the system CAs "
        "and SSL_CERT_FILE always apply). Proxies come from HTTPS_PROXY / HTTP_PROXY / NO_PROXY",
    )
    p.add_argument(
        "--max-response-bytes", type=int, default=None,
        help="largest upstream answer the router reads, JSON or a whole stream; past it the request ends in a 502 (64 MiB)",
    )
    p.add_argument(
        "--first-content-timeout",
        type=float,
        default=None,
        help="streams: seconds to the first content event before falling back (60)",
    )
    p.add_argument(
        "--stream-idle-timeout", type=float, default=None, help="streams: longest upstream silence, seconds (120)"
    )
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR (env ROUTER_LOG_LEVEL; INFO)")
    p.add_argument(
        "--log-format", choices=("json", "text"), default=None,
        help="stderr lines as one JSON object each, or text (default: text on a terminal, json otherwise)",
    )
    p.add_argument(
        "--drain-seconds", type=float, default=None, help="on SIGTERM, time for in-flight requests to finish (30)"
    )
    # -- admin listener and connection guards (issue 13) ----------------------------------------------------
    p.add_argument("--admin-host", default=None, help="admin listener address (default 127.0.0.1)")
    p.add_argument(
        "--admin-port",
        type=int,
        default=None,
        help="admin listener port: /metrics, detailed /readyz, /v1/router/* (default 8081; 0 = a free port; -1 = off)",
    )
    p.add_argument("--header-timeout", type=float, default=None, help="seconds for a client to send its headers (10)")
    p.add_argument("--body-timeout", type=float, default=None, help="seconds for a client to send its body (60)")
    p.add_argument("--keep-alive-timeout", type=float, default=None, help="idle keep-alive connection, seconds (5)")
    p.add_argument("--max-connections", type=int, default=None, help="open connections per listener (4096)")
    # Shared state and scale-out (issue 14; README "State and scale-out").
    p.add_argument(
        "--state-url", default=None,
        help="redis://[:password@]host:port/db or rediss:// (TLS): state shared by replicas and workers "
        "(env ROUTER_STATE_URL; default: in-process memory)",
    )
    p.add_argument(
        "--ledger-path", type=Path, default=None,
        help="memory backend: SQLite file keeping the month's spend (env ROUTER_LEDGER_PATH; router-ledger.sqlite3)",
    )
    p.add_argument("--workers", type=int, default=None, help="worker processes on the one port (1; >1 needs --state-url)")
    p.add_argument(
        "--state-replicas", type=int, default=None,
        help="processes sharing the limits, for the local fallback while Redis is down (env ROUTER_STATE_REPLICAS; 1)",
    )
    p.add_argument(
        "--budget-enforcement", choices=("open", "strict"), default=None,
        help="budgets while Redis is down: open (local ledger, reconciled) or strict (refuse) (env ROUTER_BUDGET_ENFORCEMENT)",
    )


def _serve(args: argparse.Namespace) -> int:
    from router.observability.logs import configure_logging
    import msgspec

    from router.server.serving import RouterServer, raise_fd_limit
    from router.settings import Settings
    from router.policy.loader import load_policy
    from router.server.checks import startup_checks
    from router.upstream.endpoint import tls_context

    settings = Settings.from_env(
        host=args.host,
        port=args.port,
        policies_dir=args.policies,
        models_dir=args.models,
        upstream_url=args.upstream_url,
        request_timeout=args.request_timeout,
        connect_timeout=args.connect_timeout,
        upstream_ca_bundle=args.upstream_ca_bundle,
        max_response_bytes=args.max_response_bytes,
        first_content_timeout=args.first_content_timeout,
        stream_idle_timeout=args.stream_idle_timeout,
        log_level=args.log_level,
        log_format=args.log_format,
        drain_seconds=args.drain_seconds,
        admin_host=args.admin_host,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        keep_alive_timeout=args.keep_alive_timeout,
        max_connections=args.max_connections,
        state_url=args.state_url,
        ledger_path=args.ledger_path,
        workers=args.workers,
        state_replicas=args.state_replicas,
        budget_enforcement=args.budget_enforcement,
    )
    if args.admin_port is not None:  # -1 turns the admin listener off (None means "not given" to from_env)
        settings = msgspec.structs.replace(settings, admin_port=None if args.admin_port < 0 else args.admin_port)
    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1 and settings.state_url is None:
        print(
            f"router: --workers {settings.workers} needs shared state: with the in-process memory backend every "
            "worker would keep its own limits, budgets and cooldowns (each tenant could spend its budget once per "
            "worker). Pass --state-url redis://HOST:PORT/DB (or set ROUTER_STATE_URL), or run one worker per "
            "process and scale with replicas",
            file=sys.stderr,
        )
        return 2
    if settings.budget_enforcement not in ("open", "strict") or settings.workers < 1 or settings.state_replicas < 1:
        print("router: budget enforcement must be 'open' or 'strict'; workers and state replicas at least 1", file=sys.stderr)
        return 2
    try:
        # Fail before binding the port, with the file's own message.
        policy = load_policy(settings.policies_dir)
        startup_checks(settings, policy)  # the same checks every reload runs
        tls_context(settings)
    except ConfigError as exc:
        print(f"router: {exc}", file=sys.stderr)
        return 2
    raise_fd_limit()  # every connection is a descriptor; the usual 1,024 default is a slowloris' friend
    if settings.workers > 1:
        from router.server.workers import run_workers

        return run_workers(settings)
    RouterServer(settings).run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from router.cli.classify import add_commands as add_classifier_commands
    from router.cli.policy import add_commands as add_policy_commands
    from router.sim.cli import add_sim_arguments

    parser = argparse.ArgumentParser(prog="router", description="Anthropic-compatible tier router")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    add_sim_arguments(sub.add_parser("sim", help="run the simulated Anthropic upstream"))
    add_classifier_commands(sub)
    add_policy_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        try:
            return _serve(args)
        except KeyboardInterrupt:
            # Ctrl-C: uvicorn has already drained and shut down (it re-raises the signal it captured once it
            # is done) -- or start-up was interrupted. Either way a traceback would only alarm: exit as a
            # shell expects of SIGINT.
            print("router: interrupted", file=sys.stderr)
            return 130
    if args.command == "policy":
        from router.cli.policy import run as run_policy

        return run_policy(args)
    if args.command in ("train", "eval", "classify", "calibrate"):
        from router.cli.classify import run

        return run(args)
    from router.sim.cli import run_sim

    return run_sim(args)
