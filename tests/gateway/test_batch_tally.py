"""The results tally sums usage per model however the JSONL arrives: lines split across reads, merged in one,
a last line without its newline; only ``succeeded`` results count, unreadable lines are counted apart."""

from __future__ import annotations

import json
import random

from router.gateway.batches import ResultsTally, point_results_here


def line(kind: str, model: str = "claude-haiku-4-5", inp: int = 10, out: int = 5, cache: int | None = 0) -> bytes:
    if kind != "succeeded":
        return json.dumps({"custom_id": kind, "result": {"type": kind}}).encode()
    usage = {"input_tokens": inp, "output_tokens": out, "cache_read_input_tokens": cache, "cache_creation_input_tokens": None}
    message = {"id": "m", "type": "message", "model": model, "content": [{"type": "text", "text": "é\\n{}"}], "usage": usage}
    return json.dumps({"custom_id": "s", "result": {"type": "succeeded", "message": message}}).encode()


FILE = b"\n".join(
    [
        line("succeeded", inp=10, out=5, cache=3),
        line("errored"),
        line("succeeded", model="claude-opus-4-8", inp=100, out=50, cache=None),
        b"{not json",
        line("canceled"),
        line("succeeded", inp=1, out=2),
    ]
)  # no newline after the last line


def tally_of(pieces: list[bytes]) -> ResultsTally:
    tally = ResultsTally()
    for piece in pieces:
        tally.feed(piece)
    tally.close()
    return tally


def test_usage_per_model_whatever_the_chunking():
    whole = tally_of([FILE])
    assert whole.usage == {
        "claude-haiku-4-5": {"input_tokens": 11, "output_tokens": 7, "cache_read_input_tokens": 3},
        "claude-opus-4-8": {"input_tokens": 100, "output_tokens": 50},
    }
    assert (whole.succeeded, whole.other, whole.unreadable) == (3, 2, 1)
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(FILE)), rng.randint(1, 40)))
        pieces = [FILE[a:b] for a, b in zip([0, *cuts], [*cuts, len(FILE)])]
        split = tally_of(pieces)
        assert (split.usage, split.succeeded, split.other, split.unreadable) == (whole.usage, 3, 2, 1)
    assert tally_of([bytes([b]) for b in FILE]).usage == whole.usage, "one byte at a time"


def test_results_url_points_at_the_router_in_objects_and_lists():
    batch = {"id": "b1", "type": "message_batch", "results_url": "https://api.anthropic.com/v1/messages/batches/b1/results"}
    out = json.loads(point_results_here(json.dumps(batch).encode(), "http://127.0.0.1:8080"))
    assert out["results_url"] == "http://127.0.0.1:8080/v1/messages/batches/b1/results"
    listing = {"data": [batch, {**batch, "id": "b2", "results_url": None}], "has_more": False}
    out = json.loads(point_results_here(json.dumps(listing).encode(), ""))
    assert [b["results_url"] for b in out["data"]] == ["/v1/messages/batches/b1/results", None]
    assert point_results_here(b"not json", "http://x") == b"not json"
