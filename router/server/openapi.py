"""The OpenAPI 3.1 document of the router's own endpoints on the admin listener (``/v1/router/*``, health,
metrics), served at ``GET /v1/router/openapi.json``.

Owns the document only. Written by hand rather than generated from the handlers: they return raw bytes
(no per-request encoding layer), so a generator would know nothing about the bodies; the fuzz run
(``make fuzz``: schemathesis against this document) and ``tests/server/test_openapi.py`` keep it honest.
The Anthropic API itself (``/v1/messages``) is Anthropic's to document.
"""

from __future__ import annotations

from typing import Any

import msgspec

_ERROR = {"$ref": "#/components/schemas/Error"}
_JSON = "application/json"


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ERROR}}}


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


_AUTH_ERRORS = {
    "400": _error("the body is not a Messages request (or not JSON)"),
    "401": _error("a key is required and the one sent is not configured in tenants.yaml"),
    "413": _error("body larger than the router's limit"),
}

_MESSAGES_LIKE = {
    "type": "object",
    "description": "A Messages API request body; only the fields the router reads are described, others pass.",
    "properties": {
        "model": {"type": "string"},
        "max_tokens": {"type": ["integer", "null"]},
        "messages": {"type": "array"},
        "stream": {"type": "boolean"},
        "tools": {"type": ["array", "null"]},
        "system": {},
        "thinking": {},
        "metadata": {},
    },
    "required": ["model", "messages"],
}


def document() -> dict[str, Any]:
    """The document as a plain dict (build it once, at app creation)."""
    # Classify reads ``messages`` (a list) or else ``prompt`` (a string); every other field is ignored.
    classify_body = {
        "anyOf": [
            {"type": "object", "properties": {"messages": {"type": "array"}}, "required": ["messages"]},
            {
                "type": "object",
                "properties": {"prompt": {"type": "string"}},
                "required": ["prompt"],
                "not": {"required": ["messages"]},
            },
        ]
    }
    key_params = [
        {"name": "x-api-key", "in": "header", "required": False, "schema": {"type": "string"}},
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Triage router: own endpoints (admin listener)",
            "version": "1",
            "description": "Operations endpoints of the triage router. The Anthropic API it proxies (/v1/messages, "
            "/v1/messages/count_tokens, /v1/models) is served on the client port and documented by Anthropic.",
        },
        "paths": {
            "/v1/router/classify": {
                "post": {
                    "summary": "Triage classification of one request body",
                    "parameters": [
                        *key_params,
                        {
                            "name": "local_only",
                            "in": "query",
                            "required": False,
                            "description": "'true' or '1': the local model only, no Haiku call; anything else: no",
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {"required": True, "content": {_JSON: {"schema": classify_body}}},
                    "responses": {
                        "200": _json_body({"$ref": "#/components/schemas/Classification"}, "the classification"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/v1/router/explain": {
                "post": {
                    "summary": "Where a Messages request would go under the current policy, and why",
                    "parameters": key_params,
                    "requestBody": {"required": True, "content": {_JSON: {"schema": _MESSAGES_LIKE}}},
                    "responses": {
                        "200": _json_body({"type": "object", "required": ["targets", "rule"]}, "the routing explanation"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/v1/router/admin/reload": {
                "post": {
                    "summary": "Reload the policy directory now (needs the admin key)",
                    "parameters": key_params,
                    "responses": {
                        "200": _json_body({"$ref": "#/components/schemas/ReloadResult"}, "reloaded (or unchanged)"),
                        "401": _error("admin key missing or wrong"),
                        "403": _error("the admin endpoint is disabled (ROUTER_ADMIN_KEY_HASH unset)"),
                        "422": _json_body({"$ref": "#/components/schemas/ReloadResult"}, "refused: the problems"),
                    },
                }
            },
            "/v1/router/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": _json_body({"type": "object"}, "OpenAPI 3.1")}}
            },
            "/v1/router/status": {
                "get": {
                    "summary": "The status page's numbers: per tier, per rule, auto share, fallbacks, cooldowns, "
                    "triage, estimated savings vs always-Opus, tenants' budgets, policy and state",
                    "description": "Computed from the same samples as /metrics (summed over workers with --workers); "
                    "costs are estimates from the policy's prices. Tenant names only, never keys.",
                    "responses": {"200": _json_body({"$ref": "#/components/schemas/RouterStatus"}, "the snapshot")},
                }
            },
            "/": _HTML_PAGE,
            "/dashboard": _HTML_PAGE,
            "/metrics": {
                "get": {
                    "summary": "Prometheus exposition",
                    "responses": {"200": {"description": "text format", "content": {"text/plain": {"schema": {"type": "string"}}}}},
                }
            },
            "/livez": {
                "get": {"summary": "The process answers", "responses": {"200": _json_body(_STATUS, "alive")}}
            },
            "/readyz": {
                "get": {
                    "summary": "Ready: policy loaded, not draining; with details",
                    "responses": {
                        "200": _json_body({"$ref": "#/components/schemas/Readiness"}, "ready"),
                        "503": _json_body({"$ref": "#/components/schemas/Readiness"}, "draining"),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["type", "error"],
                    "properties": {
                        "type": {"const": "error"},
                        "error": {
                            "type": "object",
                            "required": ["type", "message"],
                            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
                        },
                        "request_id": {"type": ["string", "null"]},
                    },
                },
                "Classification": {
                    "type": "object",
                    "required": ["category", "complexity", "confidence", "stage"],
                    "properties": {
                        "category": {"type": "string"},
                        "complexity": {"type": "string"},
                        "confidence": {"type": "number"},
                        "stage": {"type": "string"},
                    },
                },
                "ReloadResult": {
                    "type": "object",
                    "required": ["ok", "trigger", "version", "error", "at"],
                    "properties": {
                        "ok": {"type": "boolean"},
                        "trigger": {"type": "string"},
                        "version": {"type": "string"},
                        "error": {"type": ["string", "null"]},
                        "at": {"type": "number"},
                        "changed": {"type": "boolean"},
                    },
                },
                "RouterStatus": _ROUTER_STATUS,
                "Readiness": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ready", "draining"]},
                        "upstream": {"type": "string"},
                        "policy": {"type": "object"},
                        "tiers": {"type": "object", "additionalProperties": {"type": "string"}},
                        "default_tier": {"type": "string"},
                        "cooling": {"type": "array", "items": {"type": "string"}},
                    },
                },
            }
        },
    }


_STATUS = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}

_HTML_PAGE = {
    "get": {
        "summary": "The status page: one self-contained HTML document refreshing from /v1/router/status",
        "responses": {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}},
    }
}

_RATIO = {"type": ["number", "null"]}
_COUNT = {"type": "number", "minimum": 0}
_COUNTS = {"type": "object", "additionalProperties": _COUNT}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


_ROUTER_STATUS = _object({
    "generated_at": {"type": "number"},
    "uptime_seconds": {"type": ["number", "null"]},
    "status": {"type": "string", "enum": ["ready", "draining"]},
    "upstream": {"type": "string"},
    "policy": {"type": "object", "required": ["version", "last_reload"]},
    "state": {"type": "object"},
    "totals": _object({"requests": _COUNT, "errors": _COUNT, "error_rate": _RATIO, "in_flight": {"type": "number"}}),
    "tiers": {"type": "array", "items": _object({
        "tier": {"type": "string"}, "model": {"type": ["string", "null"]}, "requests": _COUNT, "errors": _COUNT,
        "error_rate": _RATIO, "outcomes": _COUNTS, "auto_requests": _COUNT, "auto_share": _RATIO,
    })},
    "auto": _object({"measured": {"type": "boolean"}, "requests": _COUNT, "share_of_all": _RATIO}),
    "rules": {"type": "array", "items": _object({"rule": {"type": "string"}, "requests": _COUNT, "errors": _COUNT, "share": _RATIO})},
    "fallbacks": _object({
        "total": _COUNT, "exhausted": _COUNT, "by_reason": _COUNTS,
        "paths": {"type": "array", "items": _object({
            "from": {"type": "string"}, "to": {"type": "string"}, "reason": {"type": "string"}, "count": _COUNT,
        })},
        "cooldowns": {"type": "array", "items": _object({"model": {"type": "string"}, "seconds_left": _COUNT})},
    }),
    "triage": _object({
        "classifications": _COUNT, "by_stage": _COUNTS, "haiku_share": _RATIO, "simulated": {"type": "boolean"},
        "haiku_calls": _COUNTS,
        "spend_usd": {"type": "number"}, "share_of_spend": _RATIO,
    }),
    "cost": _object({
        "reference_model": {"type": "string"}, "serving_usd": {"type": "number"}, "triage_usd": {"type": "number"},
        "spent_usd": {"type": "number"}, "always_opus_usd": {"type": "number"}, "savings_usd": {"type": "number"},
        "savings_ratio": _RATIO, "unpriced_tokens": _COUNT,
    }),
    "tenants": {"type": "array", "items": _object({
        "tenant": {"type": "string"}, "spent_since_start_usd": {"type": "number"},
        "month_spent_usd": {"type": ["number", "null"]}, "budget_usd": {"type": ["number", "null"]},
        "used_ratio": _RATIO, "on_exceeded": {"type": ["string", "null"]},
    })},
})


def encoded() -> bytes:
    return msgspec.json.encode(document())
