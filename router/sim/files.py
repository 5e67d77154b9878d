"""The sim's Files API (beta): upload (multipart), list, retrieve metadata, download content, delete, in memory.

Owns the file objects. Uploads are read part by part (aiohttp's multipart reader) up to the API's 500 MB
file limit; the download is written in 64 KiB pieces, so a relay in front of it sees a streamed body.
The ``anthropic-beta: files-api-2025-04-14`` flag ``client.beta.files`` sends is accepted, not required
(the SDK's ``client.files`` sends none). Requests are logged in
the sim's request log without their content (``body`` is the upload's metadata only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aiohttp import BodyPartReader, web

from router.sim.content import new_id
from router.sim.state import STATE_KEY
from router.sim.wire import common_headers, error_response, json_response, new_request_id

MAX_FILE_BYTES = 500 * 1024 * 1024
_PIECE = 64 * 1024


@dataclass
class StoredFile:
    id: str
    filename: str
    mime_type: str
    data: bytes
    created: datetime

    def metadata(self) -> dict[str, Any]:
        return {
            "type": "file",
            "id": self.id,
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size_bytes": len(self.data),
            "created_at": self.created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "downloadable": True,
        }


class FileStore:
    def __init__(self) -> None:
        self.files: dict[str, StoredFile] = {}


def _begin(request: web.Request, body: Any = None) -> tuple[dict[str, str], web.Response | None]:
    """Log the request and make its headers (the second value is a refusal, today never)."""
    state = request.app[STATE_KEY]
    state.record(request, body, "files")
    return common_headers(new_request_id(), state.served), None


def _store(request: web.Request) -> FileStore:
    return request.app[FILES_KEY]


async def upload_file(request: web.Request) -> web.StreamResponse:
    headers, refused = _begin(request)
    if refused is not None:
        return refused
    if not request.content_type.startswith("multipart/"):
        return error_response(400, headers, "expected a multipart/form-data body with a 'file' part")
    reader = await request.multipart()
    stored: StoredFile | None = None
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name != "file":
            continue
        data = bytearray()
        while chunk := await part.read_chunk(_PIECE):
            data += chunk
            if len(data) > MAX_FILE_BYTES:
                return error_response(413, headers, f"file larger than {MAX_FILE_BYTES} bytes")
        mime = part.headers.get("content-type", "application/octet-stream")
        stored = StoredFile(new_id("file_sim_"), part.filename or "unnamed", mime, bytes(data), datetime.now(timezone.utc))
    if stored is None:
        return error_response(400, headers, "file: Field required")
    _store(request).files[stored.id] = stored
    request.app[STATE_KEY].log[-1]["body"] = {"filename": stored.filename, "size_bytes": len(stored.data)}
    return json_response(stored.metadata(), headers=headers)


async def list_files(request: web.Request) -> web.StreamResponse:
    headers, refused = _begin(request)
    if refused is not None:
        return refused
    try:
        limit = max(1, min(1000, int(request.query.get("limit", "20"))))
    except ValueError:
        return error_response(400, headers, "limit: Input should be a valid integer")
    newest_first = list(reversed(_store(request).files.values()))
    after = request.query.get("after_id")
    if after is not None:
        ids = [f.id for f in newest_first]
        newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
    data = [f.metadata() for f in newest_first[:limit]]
    body = {
        "data": data,
        "has_more": len(newest_first) > limit,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
    return json_response(body, headers=headers)


def _find(request: web.Request) -> tuple[StoredFile | None, dict[str, str], web.Response | None]:
    headers, refused = _begin(request)
    if refused is not None:
        return None, headers, refused
    found = _store(request).files.get(request.match_info["file_id"])
    if found is None:
        return None, headers, error_response(404, headers, f"file {request.match_info['file_id']} not found")
    return found, headers, None


async def file_metadata(request: web.Request) -> web.StreamResponse:
    found, headers, refused = _find(request)
    if refused is not None:
        return refused
    assert found is not None
    return json_response(found.metadata(), headers=headers)


async def file_content(request: web.Request) -> web.StreamResponse:
    found, headers, refused = _find(request)
    if refused is not None:
        return refused
    assert found is not None
    response = web.StreamResponse(status=200, headers={**headers, "content-type": found.mime_type})
    response.content_length = len(found.data)
    await response.prepare(request)
    view = memoryview(found.data)
    for start in range(0, len(found.data), _PIECE):
        await response.write(bytes(view[start : start + _PIECE]))
    await response.write_eof()
    return response


async def delete_file(request: web.Request) -> web.StreamResponse:
    found, headers, refused = _find(request)
    if refused is not None:
        return refused
    assert found is not None
    del _store(request).files[found.id]
    return json_response({"id": found.id, "type": "file_deleted"}, headers=headers)


def add_file_routes(app: web.Application) -> None:
    app[FILES_KEY] = FileStore()
    app.router.add_post("/v1/files", upload_file)
    app.router.add_get("/v1/files", list_files)
    app.router.add_get("/v1/files/{file_id}", file_metadata)
    app.router.add_get("/v1/files/{file_id}/content", file_content)
    app.router.add_delete("/v1/files/{file_id}", delete_file)


FILES_KEY: web.AppKey[FileStore] = web.AppKey("sim_files", FileStore)
