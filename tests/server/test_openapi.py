"""The OpenAPI document of the router's own endpoints: served on the admin listener (not the client
port), a valid OpenAPI 3.1 document, listing every admin route, and true to what the routes answer."""

from __future__ import annotations

import json
import urllib.request

import jsonschema
from openapi_spec_validator import validate

from router.server.routes import ADMIN_ROUTES
from tests.conftest import CLIENT_KEY, post


def fetch(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200 and resp.headers["content-type"].startswith("application/json")
        return json.loads(resp.read())  # type: ignore[no-any-return]


def response_schema(doc: dict, path: str, method: str, status: int) -> dict:
    content = doc["paths"][path][method]["responses"][str(status)]["content"]
    schema = next(iter(content.values()))["schema"]
    return {**schema, "components": doc["components"]} if "$ref" not in schema else {
        "$ref": schema["$ref"], "components": doc["components"]
    }


def test_the_document_is_valid_openapi_and_covers_every_admin_route(router):
    doc = fetch(router.admin_url + "/v1/router/openapi.json")
    validate(doc)  # raises on an invalid document
    served = {path for handler in ADMIN_ROUTES for path in handler.paths}
    assert served == set(doc["paths"]), served ^ set(doc["paths"])
    status, _, _ = post(router.url + "/v1/router/openapi.json", b"", method="GET")
    assert status == 404  # not on the client port


def test_the_routes_answer_what_the_document_says(router):
    doc = fetch(router.admin_url + "/v1/router/openapi.json")
    key = {"x-api-key": CLIENT_KEY, "content-type": "application/json"}
    cases = [
        ("/v1/router/classify?local_only=true", "/v1/router/classify", b'{"prompt": "What is 2+2?"}'),
        ("/v1/router/classify", "/v1/router/classify", b"{bad"),
        ("/v1/router/explain", "/v1/router/explain", json.dumps({"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}).encode()),
        ("/v1/router/admin/reload", "/v1/router/admin/reload", b""),
    ]
    for url, path, body in cases:
        status, _, payload = post(router.admin_url + url, body, key)
        assert str(status) in doc["paths"][path]["post"]["responses"], (path, status)
        jsonschema.validate(json.loads(payload), response_schema(doc, path, "post", status))
    for path in ("/readyz", "/livez"):
        status, _, payload = post(router.admin_url + path, b"", method="GET")
        jsonschema.validate(json.loads(payload), response_schema(doc, path, "get", status))
