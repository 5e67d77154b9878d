"""The simulator's Message Batches and Files APIs, driven directly by the real anthropic SDK: the shapes the SDK
parses, the lifecycle (in progress, ended on retrieve, canceled), results with usage, and files round-tripping."""

from __future__ import annotations

import json
import urllib.request

import anthropic
import pytest

ITEM = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "Name a colour."}]}


def client(sim) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.url, api_key="sk-sim", max_retries=0, timeout=10)


def set_processing(sim, ms: int) -> None:
    req = urllib.request.Request(sim.url + "/_sim/batches", data=json.dumps({"processing_ms": ms}).encode(), method="PUT")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read()) == {"processing_ms": ms}


@pytest.fixture
def slow_batches(sim):
    set_processing(sim, 60_000)
    yield
    set_processing(sim, 0)


def test_a_batch_ends_on_retrieve_and_its_results_carry_usage(sim):
    c = client(sim)
    bad = {**ITEM, "model": "claude-does-not-exist"}
    created = c.messages.batches.create(
        requests=[{"custom_id": "one", "params": ITEM}, {"custom_id": "two", "params": {**ITEM, "max_tokens": 4}}, {"custom_id": "bad", "params": bad}]
    )
    assert created.processing_status == "in_progress" and created.results_url is None
    assert created.request_counts.processing == 3
    batch = c.messages.batches.retrieve(created.id)
    assert batch.processing_status == "ended" and batch.ended_at is not None
    assert (batch.request_counts.succeeded, batch.request_counts.errored, batch.request_counts.processing) == (2, 1, 0)
    assert batch.results_url == f"{sim.url}/v1/messages/batches/{created.id}/results"
    results = {r.custom_id: r.result for r in c.messages.batches.results(created.id)}
    assert results["one"].type == "succeeded" and results["one"].message.model == "claude-haiku-4-5"
    assert results["one"].message.usage.input_tokens > 0 and results["one"].message.usage.output_tokens > 0
    assert results["two"].message.usage.output_tokens == 4, "max_tokens is honoured"
    assert results["bad"].type == "errored" and results["bad"].error.error.type == "not_found_error"
    assert created.id in [b.id for b in c.messages.batches.list(limit=5)]
    assert c.messages.batches.delete(created.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        c.messages.batches.retrieve(created.id)


def test_processing_time_cancel_and_canceled_results(sim, slow_batches):
    c = client(sim)
    created = c.messages.batches.create(requests=[{"custom_id": "a", "params": ITEM}])
    assert c.messages.batches.retrieve(created.id).processing_status == "in_progress"
    with pytest.raises(anthropic.BadRequestError):
        c.get(f"/v1/messages/batches/{created.id}/results", cast_to=object)  # no results before the end
    with pytest.raises(anthropic.BadRequestError):
        c.messages.batches.delete(created.id)  # an unfinished batch cannot be deleted
    canceling = c.messages.batches.cancel(created.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = c.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 1
    assert [r.result.type for r in c.messages.batches.results(created.id)] == ["canceled"]


def test_malformed_batches_are_400(sim):
    c = client(sim)
    with pytest.raises(anthropic.BadRequestError):
        c.messages.batches.create(requests=[])
    with pytest.raises(anthropic.BadRequestError):
        c.messages.batches.create(requests=[{"custom_id": "x", "params": ITEM}, {"custom_id": "x", "params": ITEM}])
    with pytest.raises(anthropic.NotFoundError):
        c.messages.batches.retrieve("msgbatch_nope")


def test_files_round_trip_and_are_streamed(sim):
    c = client(sim)
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    meta = c.beta.files.upload(file=("table.bin", data, "application/octet-stream"))
    assert meta.type == "file" and meta.size_bytes == len(data) and meta.filename == "table.bin"
    assert meta.id in [f.id for f in c.beta.files.list()]
    assert c.beta.files.retrieve_metadata(meta.id).mime_type == "application/octet-stream"
    assert c.files.retrieve_metadata(meta.id).size_bytes == len(data), "the GA client works too"
    assert c.beta.files.download(meta.id).read() == data
    seen = [r for r in sim.requests() if r["path"] == "/v1/files" and r["method"] == "POST"][-1]
    assert seen["body"] == {"filename": "table.bin", "size_bytes": len(data)}, "content is not logged"
    assert c.beta.files.delete(meta.id).type == "file_deleted"
    with pytest.raises(anthropic.NotFoundError):
        c.beta.files.download(meta.id)


def test_a_model_lookup_answers_known_ids_and_404s_the_rest(sim):
    c = client(sim)
    assert c.models.retrieve("claude-opus-4-8").display_name == "Claude Opus 4.8"
    with pytest.raises(anthropic.NotFoundError):
        c.models.retrieve("claude-nope-1")
