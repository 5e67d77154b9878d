"""Command-line entry for the sim: ``add_sim_arguments`` declares the options, ``run_sim`` serves until a signal.

Owns turning arguments (``--config``, ``--fault`` specs, latency overrides) into a ``SimConfig`` and the
foreground run loop. Wiring it under the ``router`` command lives elsewhere.

Fault spec grammar: ``[MODEL=]KIND[:KEY=VALUE[,KEY=VALUE...]]``, e.g.
``claude-opus-4-5=rate_limit:retry_after=2,count=3`` or ``*=overloaded:probability=0.1``. Keys are
``FaultRule`` fields; ``none``/``null`` means an unset optional value.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

import msgspec

from router.sim.config import FaultRule, LatencyProfile, SimConfig

log = logging.getLogger("router.sim")


def add_sim_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9000, help="port to listen on; 0 picks a free one (default 9000)")
    p.add_argument("--config", metavar="FILE", help="YAML or JSON SimConfig (profiles, faults, seed)")
    p.add_argument(
        "--fault",
        metavar="SPEC",
        action="append",
        default=[],
        help="add a fault rule, e.g. 'claude-opus-4-5=rate_limit:retry_after=2,count=3' (repeatable)",
    )
    p.add_argument("--latency-ms", type=float, metavar="N", help="override every profile's ttft_ms")
    p.add_argument("--tokens-per-s", type=float, metavar="N", help="override every profile's tokens_per_s (0 = instant)")


def parse_fault_spec(spec: str) -> FaultRule:
    """Parse ``[MODEL=]KIND[:KEY=VALUE,...]`` into a ``FaultRule``; errors are ``ValueError``s quoting the spec."""
    head, _, options = spec.partition(":")
    model, sep, kind = head.partition("=")
    if not sep:
        model, kind = "*", head
    fields: dict[str, object] = {"kind": kind.strip(), "model": model.strip() or "*"}
    for item in filter(None, (part.strip() for part in options.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"fault spec {spec!r}: expected KEY=VALUE, got {item!r}")
        value = value.strip()
        fields[key.strip()] = None if value.lower() in ("none", "null") else value
    try:
        # strict=False lets "3" become 3 and "0.5" become 0.5, as typed on a command line.
        return msgspec.convert(fields, FaultRule, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"fault spec {spec!r}: {exc}") from None


def build_config(args: argparse.Namespace) -> SimConfig:
    """The SimConfig the arguments describe: file or defaults, plus ``--fault`` rules and latency overrides."""
    config = SimConfig.load(args.config) if args.config else SimConfig.default()
    faults = [*config.faults, *(parse_fault_spec(spec) for spec in args.fault)]
    profiles = dict(config.profiles) or {"*": LatencyProfile()}
    overrides: dict[str, float] = {}
    if args.latency_ms is not None:
        overrides["ttft_ms"] = args.latency_ms
    if args.tokens_per_s is not None:
        overrides["tokens_per_s"] = args.tokens_per_s
    if overrides:
        profiles = {model: msgspec.structs.replace(profile, **overrides) for model, profile in profiles.items()}
    return msgspec.structs.replace(config, faults=faults, profiles=profiles)


async def _serve(config: SimConfig, host: str, port: int) -> None:
    from router.sim.server import start_sim  # deferred: argument parsing should not import aiohttp

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    sim = await start_sim(config, host, port)
    try:
        log.info("simulated Anthropic API listening on %s (%d fault rules)", sim.url, len(config.faults))
        await stop.wait()
    finally:
        await sim.close()


def run_sim(args: argparse.Namespace) -> int:
    """Serve the sim in the foreground until SIGINT/SIGTERM; returns the process exit code."""
    try:
        config = build_config(args)
    except (OSError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(_serve(config, args.host, args.port))
    return 0
