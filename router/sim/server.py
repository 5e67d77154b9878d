"""Building and running the sim's aiohttp app: ``create_sim_app`` and ``start_sim``/``SimServer.close``.

Owns routing and the server lifecycle (ephemeral ports, no access log, stalled handlers released on
close). Nothing runs at import; each call builds a fresh app with its own ``SimState``.

TCP_NODELAY: aiohttp's ``BaseProtocol.connection_made`` enables it on every accepted socket, so SSE events
written one by one are not held back by Nagle's algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from router.sim.batches import add_batch_routes
from router.sim.chat import handle_chat_completions
from router.sim.config import SimConfig
from router.sim.control import add_control_routes
from router.sim.endpoints import handle_count_tokens, handle_models, handle_not_found
from router.sim.files import add_file_routes
from router.sim.model_lookup import handle_model
from router.sim.messages import handle_messages
from router.sim.state import STATE_KEY, SimState

# Stalled or streaming handlers are released via SimState.closing; this only bounds stragglers.
_SHUTDOWN_TIMEOUT_S = 2.0


def create_sim_app(config: SimConfig) -> web.Application:
    """A new sim app whose state starts from ``config``."""
    # The API allows 32 MB bodies; aiohttp's default limit is 1 MB.
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app[STATE_KEY] = SimState(config)
    app.router.add_post("/v1/messages", handle_messages)
    app.router.add_post("/v1/messages/count_tokens", handle_count_tokens)
    app.router.add_post("/v1/chat/completions", handle_chat_completions)
    app.router.add_get("/v1/models", handle_models)
    app.router.add_get("/v1/models/{model_id}", handle_model)
    add_batch_routes(app)
    add_file_routes(app)
    add_control_routes(app)
    app.router.add_route("*", "/{tail:.*}", handle_not_found)
    app.on_shutdown.append(_release_waiters)
    return app


async def _release_waiters(app: web.Application) -> None:
    app[STATE_KEY].closing.set()


@dataclass
class SimServer:
    """A running sim: its base URL (what ``base_url`` should be), bound port, app and runner."""

    host: str
    port: int
    app: web.Application
    runner: web.AppRunner

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def state(self) -> SimState:
        return self.app[STATE_KEY]

    async def close(self) -> None:
        self.state.closing.set()
        await self.runner.cleanup()


async def start_sim(config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> SimServer:
    """Start serving ``config`` on host:port (0 = an ephemeral port; the bound one is reported)."""
    app = create_sim_app(config)
    # handler_cancellation: when a client hangs up on a stalled request, stop that handler instead of
    # letting it sleep for stall_s.
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    # runner.addresses holds the sockname of every listening socket: the real port when port=0.
    bound = runner.addresses[0][1] if runner.addresses else port
    return SimServer(host=host, port=bound, app=app, runner=runner)
