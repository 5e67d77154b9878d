"""A simulated Anthropic Messages API upstream with fault injection, for tests and demos.

It is a real HTTP server (aiohttp) speaking ``POST /v1/messages`` (JSON and SSE), ``POST
/v1/messages/count_tokens``, ``GET /v1/models`` and ``/v1/models/{id}``, with per-model latency profiles and
injectable faults; Message Batches (``batches``) and Files (``files``) are kept in memory, unfaulted.

Usage::

    from router.sim.config import SimConfig, FaultRule
    from router.sim.server import start_sim

    sim = await start_sim(SimConfig.default())            # ephemeral port on 127.0.0.1
    client = anthropic.Anthropic(base_url=sim.url, api_key="x", max_retries=0)
    ...
    await sim.close()

From a shell (once wired under ``router sim``): ``--fault 'claude-opus-4-5=rate_limit:retry_after=2,count=3'``
or ``--config sim.yaml`` with::

    seed: 0
    profiles:
      "*": {ttft_ms: 10, tokens_per_s: 1000}
      claude-opus-4-5: {ttft_ms: 20, tokens_per_s: 500, output_tokens: 40}
    faults:
      - {kind: overloaded, model: claude-opus-4-5, count: 2}
      - {kind: cut, model: "*", probability: 0.1, after_events: 3}

Fault kinds: ``rate_limit`` (429 + retry-after), ``overloaded`` (529), ``server_error`` (500/502/503/504), ``invalid_request`` (400),
``connect_refused`` (TCP reset, no response), ``stall`` (no response / stream stalls after ping),
``stall_after_content``, ``cut`` (connection reset mid-stream or mid-body), ``error_before_content`` /
``error_after_content`` (``event: error`` overloaded_error after the 200), ``malformed`` /
``malformed_after_content`` (a ``content_block_delta`` frame with invalid JSON). On non-stream requests
the stream-only kinds (error_*, malformed*, stall_after_content) answer 529 overloaded_error. The
``*_after_content`` kinds and ``cut`` send ``after_events`` content_block_delta events first. Rules
apply to ``endpoint`` "messages" (default), "count_tokens" or "*"; ``/v1/models`` is never faulted.
Wire variations a correct client must survive: ``novel_events``, ``fragmented``, ``trickle`` (frames a
few bytes per write), ``comment_frames`` (SSE ``: ...`` frames before content and between deltas; the
``comments: true`` flag adds a comment and an unknown event before content to any stream fault),
``prompt_cache`` (``cache_read_tokens`` / ``cache_creation_tokens`` in the JSON usage, ``message_start``
and a cumulative ``message_delta``), ``oversize`` (one delta frame of ``frame_bytes``, written 64 KiB
at a time; JSON: a text of that size), ``extra_headers`` (two ``set-cookie``, an
``anthropic-organization-id`` and other headers a router must not relay). Failures: ``empty_stream``
(``message_start``, ``ping``, ``message_stop``: nothing else), ``malformed_json`` (a 200 whose JSON
body is cut in half; streams get a 529). ``stall`` on a JSON request stalls before the response head.
The request log keeps ``raw_headers`` in order, so repeated headers stay visible.

A stall ends after ``stall_s`` (or when the server closes) and the response then completes normally.
Every stream starts ``message_start``, ``ping``; content waits ``ttft_ms`` and deltas are paced by
``tokens_per_s``. Non-stream answers wait ttft plus the whole generation time.

Test control (not part of Anthropic's API): ``PUT /_sim/faults {"faults":[...]}`` (replaces rules and
resets counts), ``PUT /_sim/profiles {"profiles":{...}}``, ``POST /_sim/reset`` (startup config, empty
log), ``GET /_sim/requests`` (last 200 requests: path, query, method, headers, body, model, fault),
``DELETE /_sim/requests``, ``GET /_sim/stats``.

Modules: ``config`` (types, loading), ``faults`` (rule selection), ``content`` / ``schema_fill`` (answer
bodies, tool inputs), ``wire`` (headers, envelopes, SSE frames), ``intake`` (parse, log, 400/404),
``breaks`` (error statuses, resets, stalls), ``messages`` / ``endpoints`` / ``control`` (handlers),
``state`` (per-app state), ``server`` (app factory, start/stop), ``cli``.
"""
