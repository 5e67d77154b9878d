"""Pass-through (issue 15, item 4): the Anthropic API paths the router does not serve itself -- Files, model
lookups, anything else under /v1/ -- are forwarded with the tenant's key checked and swapped for the router's,
the request as the client sent it, the answer streamed back, and errors in Anthropic's envelope.
Real SDK over HTTP, through the router, against the simulator."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.request

import anthropic
import pytest

from router.policy.keys import hash_key
from tests.conftest import CLIENT_KEY, UPSTREAM_KEY, post, sdk_client
from tests.servers import free_port

TENANT_KEY = "sk-router-passthrough-test-4455"
TENANTS = f'tenants:\n  team-a:\n    keys: ["{hash_key(TENANT_KEY)}"]\n'


def metrics(router) -> str:
    with urllib.request.urlopen(router.admin_url + "/metrics", timeout=5) as resp:
        return resp.read().decode()


def forwarded(sim, path: str) -> list[dict]:
    return [r for r in sim.requests() if r["path"] == path]


def test_files_upload_list_download_delete_through_the_router(router, sim):
    client = sdk_client(router)
    data = bytes(range(256)) * 12288  # 3 MiB: many reads on the way back
    meta = client.beta.files.upload(file=("notes.bin", data, "application/octet-stream"), betas=["files-api-2025-04-14"])
    assert meta.size_bytes == len(data) and meta.id.startswith("file_sim_")
    assert meta.id in [f.id for f in client.beta.files.list()]
    assert meta.id in [f.id for f in client.files.list()], "the GA client too"
    download = client.beta.files.with_raw_response.download(meta.id)
    assert download.http_response.read() == data
    assert download.headers["content-length"] == str(len(data))
    assert download.headers["request-id"].startswith("req_sim_"), "the upstream's request id is relayed"
    assert client.beta.files.delete(meta.id).type == "file_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.retrieve_metadata(meta.id)

    upload = [r for r in forwarded(sim, "/v1/files") if r["method"] == "POST"][0]
    assert upload["headers"]["x-api-key"] == UPSTREAM_KEY, "the router's key goes upstream"
    assert "authorization" not in upload["headers"]
    assert "files-api-2025-04-14" in upload["headers"]["anthropic-beta"], "beta flags pass as sent"
    assert upload["headers"]["anthropic-version"], "anthropic-version passes as sent"
    assert upload["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    for seen in sim.requests():
        assert CLIENT_KEY not in json.dumps(seen), "the client's key is never forwarded"
    text = metrics(router)
    assert 'router_passthrough_requests_total{family="files",method="POST",outcome="ok"} 1.0' in text
    assert 'router_passthrough_requests_total{family="files",method="GET",outcome="ok"}' in text
    assert meta.id not in text, "ids never become label values"


def test_an_unknown_path_is_forwarded_and_the_upstreams_404_comes_back(router, sim):
    status, headers, body = post(router.url + "/v1/whatever/else?x=1", b'{"a": 1}', {"x-api-key": CLIENT_KEY}, method="PUT")
    envelope = json.loads(body)
    assert status == 404 and envelope["type"] == "error" and envelope["error"]["type"] == "not_found_error"
    assert envelope["error"]["message"] == "Not found: PUT /v1/whatever/else", "the sim's own 404, method and path as sent"
    assert headers["request-id"] == envelope["request_id"] and headers["request-id"].startswith("req_sim_")
    text = metrics(router)
    assert 'router_passthrough_requests_total{family="other",method="PUT",outcome="client_error"} 1.0' in text
    assert "whatever" not in text, "the raw path never becomes a label"


def test_method_query_body_and_end_to_end_headers_pass_hop_by_hop_ones_do_not(router, sim):
    item = {"custom_id": "q", "params": {"model": "claude-haiku-4-5", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}}
    status, _, body = post(
        router.url + "/v1/messages/batches?beta=true&x=1",
        json.dumps({"requests": [item]}).encode(),
        {"x-api-key": CLIENT_KEY, "content-type": "application/json", "anthropic-beta": "future-2027-01-01",
         "anthropic-version": "2023-06-01", "te": "trailers", "proxy-authorization": "Basic c2VjcmV0",
         "cookie": "session=1", "x-router-policy": "quality"},
    )
    assert status == 200 and json.loads(body)["type"] == "message_batch"
    (seen,) = forwarded(sim, "/v1/messages/batches")
    assert seen["method"] == "POST" and seen["query"] == "beta=true&x=1"
    assert seen["body"] == {"requests": [item]}, "a batch with nothing to route goes as sent"
    assert seen["headers"]["anthropic-beta"] == "future-2027-01-01"
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    assert seen["headers"]["x-api-key"] == UPSTREAM_KEY
    for dropped in ("te", "proxy-authorization", "cookie", "x-router-policy", "authorization"):
        assert dropped not in seen["headers"], f"{dropped} is not forwarded"


def test_models_retrieve_answers_router_ids_locally_and_forwards_the_rest(router, sim):
    client = sdk_client(router)
    assert client.models.retrieve("sonnet").id == "sonnet"
    raw = client.models.with_raw_response.retrieve("auto")
    assert json.loads(raw.http_response.read())["router"]["kind"] == "auto"
    assert forwarded(sim, "/v1/models/auto") == [] and forwarded(sim, "/v1/models/sonnet") == []
    upstream = client.models.retrieve("claude-opus-4-8")
    assert upstream.id == "claude-opus-4-8" and upstream.display_name == "Claude Opus 4.8"
    (seen,) = forwarded(sim, "/v1/models/claude-opus-4-8")
    assert seen["headers"]["x-api-key"] == UPSTREAM_KEY
    with pytest.raises(anthropic.NotFoundError) as info:
        client.models.retrieve("claude-nope-9")
    assert info.value.body["request_id"].startswith("req_sim_"), "the upstream's 404, relayed"


def test_an_unknown_key_is_401_and_nothing_is_forwarded(make_router, sim):
    router = make_router(files={"tenants.yaml": TENANTS})
    for path in ("/v1/files", "/v1/messages/batches", "/v1/whatever", "/v1/models/claude-opus-4-8"):
        status, headers, body = post(router.url + path, b"", {"x-api-key": "sk-wrong-key-0000"}, method="GET")
        envelope = json.loads(body)
        assert status == 401 and envelope["error"]["type"] == "authentication_error", path
        assert headers["request-id"].startswith("req_router_")
        assert "sk-wrong-key-0000" not in body.decode()
    assert sim.requests() == []
    client = anthropic.Anthropic(base_url=router.url, api_key=TENANT_KEY, max_retries=0, timeout=10)
    assert client.beta.files.list().data is not None, "the tenant's own key works"
    assert 'router_passthrough_requests_total{family="files",method="GET",outcome="rejected"} 1.0' in metrics(router)


def test_the_upstream_key_is_never_echoed_to_the_client(router, sim):
    client = sdk_client(router)
    meta = client.beta.files.upload(file=("k.txt", b"key check", "text/plain"))
    responses = [
        client.beta.files.with_raw_response.retrieve_metadata(meta.id),
        client.beta.files.with_raw_response.list(),
        client.models.with_raw_response.retrieve("claude-haiku-4-5"),
    ]
    for raw in responses:
        assert UPSTREAM_KEY not in raw.http_response.read().decode()
        assert all(UPSTREAM_KEY not in value for value in raw.headers.values())
    status, headers, body = post(router.url + "/v1/whatever", b"", {"x-api-key": CLIENT_KEY}, method="GET")
    assert UPSTREAM_KEY not in body.decode() and all(UPSTREAM_KEY not in v for v in headers.values())


def test_the_body_limit_applies(make_router, sim):
    router = make_router(max_body_bytes=1_000_000)
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk_client(router).beta.files.upload(file=("big.bin", b"x" * 1_500_000, "application/octet-stream"))
    assert info.value.status_code == 413 and info.value.body["error"]["type"] == "request_too_large"
    assert forwarded(sim, "/v1/files") == []
    assert 'router_passthrough_requests_total{family="files",method="POST",outcome="rejected"} 1.0' in metrics(router)


def test_an_unreachable_upstream_is_502_and_a_silent_one_504(make_router):
    closed = free_port()  # nothing listens here
    router = make_router(upstream_url=f"http://127.0.0.1:{closed}")
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk_client(router).beta.files.list()
    assert info.value.status_code == 502 and info.value.body["error"]["type"] == "api_error"
    assert info.value.response.headers["request-id"].startswith("req_router_")

    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        router = make_router(upstream_url=f"http://127.0.0.1:{silent.getsockname()[1]}", request_timeout=1.0)
        started = time.monotonic()
        with pytest.raises(anthropic.APIStatusError) as info:
            sdk_client(router).beta.files.list()
        assert info.value.status_code == 504 and info.value.body["error"]["type"] == "timeout_error"
        assert time.monotonic() - started < 5
        assert 'router_passthrough_requests_total{family="files",method="GET",outcome="unreachable"} 1.0' in metrics(router)
    finally:
        silent.close()


def test_paths_with_dot_segments_are_not_forwarded(router, sim):
    port = int(router.url.rsplit(":", 1)[1])
    for path in (b"/v1/files/../../admin", b"/v1/./files", b"/v1/%2e%2e/x"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:  # raw: clients normalise paths
            conn.sendall(b"GET " + path + f" HTTP/1.1\r\nhost: x\r\nx-api-key: {CLIENT_KEY}\r\nconnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 404"), path
        envelope = json.loads(body)
        assert envelope["error"]["type"] == "not_found_error" and envelope["request_id"].startswith("req_router_")
        assert "'..' segments" in envelope["error"]["message"], "refused by the router, not the upstream's 404"
    assert sim.requests() == []


def test_one_access_line_per_forwarded_request_without_keys_or_paths(router, sim, caplog):
    caplog.set_level(logging.INFO, logger="router.access")
    client = sdk_client(router)
    meta = client.beta.files.upload(file=("log.txt", b"secret file content", "text/plain"))
    client.beta.files.download(meta.id).read()
    end = time.monotonic() + 5
    while len([r for r in caplog.records if r.name == "router.access"]) < 2 and time.monotonic() < end:
        time.sleep(0.01)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "router.access"]
    assert [(line["passthrough"], line["method"], line["outcome"], line["status"]) for line in lines] == [
        ("files", "POST", "ok", 200),
        ("files", "GET", "ok", 200),
    ]
    assert lines[1]["bytes"] == len(b"secret file content") and lines[1]["request_id"].startswith("req_sim_")
    text = " ".join(r.getMessage() for r in caplog.records)
    for secret in (CLIENT_KEY, UPSTREAM_KEY, "secret file content", meta.id):
        assert secret not in text
