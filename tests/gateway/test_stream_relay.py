"""The relay after the commit point, as a unit: its cleanup runs once however the stream ends."""

from __future__ import annotations


def test_relay_closed_before_its_first_chunk_still_closes_upstream_and_reports_once() -> None:
    import asyncio

    from router.gateway.sse import SSEFramer
    from router.gateway.stream import OpenStream, Relay, StreamStats

    class Upstream:
        closed = 0

        def close(self) -> None:
            Upstream.closed += 1

    ended: list[str] = []
    stream = OpenStream(Upstream(), 1.0, {}, [b"event: ping\ndata: {}\n\n"], SSEFramer(), StreamStats(), False)  # type: ignore[arg-type]
    relay = Relay(stream, lambda stats: ended.append(stats.end))

    async def main() -> None:
        await relay.aclose()  # the client left between the commit point and the first write
        await relay.aclose()

    asyncio.run(main())
    assert ended == ["client_gone"] and Upstream.closed == 1
