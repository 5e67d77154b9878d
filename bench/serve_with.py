"""``router serve`` with another upstream transport, for ``bench.harness --transport NAME`` only.

    python -m bench.serve_with aiohttp serve --port 8080 ...

The router takes its transport from the lifespan's ``default_transport``; this launcher replaces that one
name with a factory from ``bench.transport_adapters`` and then runs the ordinary CLI. Bench tooling, never
a way to run the router in production.
"""

from __future__ import annotations

import sys

from bench.transport_adapters import transport


def main(argv: list[str]) -> int:
    name, rest = argv[0], argv[1:]
    import router.server.lifespan as lifespan
    from router.cli import main as router_main

    def factory(settings):  # type: ignore[no-untyped-def]
        return lambda base_url: transport(name, base_url, settings.connect_timeout)

    lifespan.default_transport = factory  # type: ignore[assignment]
    return router_main(rest)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
