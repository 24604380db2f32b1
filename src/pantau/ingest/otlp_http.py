"""OTLP/HTTP receiver (`/v1/traces`, `/v1/metrics`, `/v1/logs`), to the OTLP specification.

* `application/x-protobuf` and `application/json` bodies, optionally gzip-compressed;
  the response uses the request's encoding.
* 200 with `partial_success` when some items were rejected;
* 400 with a `google.rpc.Status` for a malformed body, 415 for another content type or
  content encoding, 413 over the size limit (checked before and during decompression);
* 503 with `Retry-After` when the write queue is full or storage is failing: the client
  retries and nothing it sent is lost.
"""

from __future__ import annotations

import zlib

import orjson
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from pantau.ingest.receiver import Receiver, Unavailable, export_response
from pantau.otlp.decode import DecodeError

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_CODES = {400: 3, 405: 12, 413: 8, 415: 3, 503: 14, 500: 13}  # HTTP status -> google.rpc.Code


class _TooLarge(Exception):
    pass


def _encode(message, as_json: bool) -> tuple[bytes, str]:
    if as_json:
        return orjson.dumps(json_format.MessageToDict(message)), JSON
    return message.SerializeToString(), PROTOBUF


def _error(status: int, message: str, as_json: bool, headers: dict[str, str] | None = None) -> Response:
    body, ctype = _encode(Status(code=_CODES.get(status, 2), message=message), as_json)
    return Response(body, status_code=status, media_type=ctype, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress with a cap on the output, so a small 'zip bomb' cannot exhaust memory."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise DecodeError(f"invalid gzip body: {exc}") from None
    if len(out) > limit:
        raise _TooLarge
    if not inflater.eof:
        raise DecodeError("invalid gzip body: truncated (missing end of stream)")
    return out


def create_app(receiver: Receiver, max_request_bytes: int) -> Starlette:
    async def export(request: Request) -> Response:
        signal = request.url.path.rsplit("/", 1)[-1]
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        as_json = ctype == JSON
        if ctype not in (PROTOBUF, JSON):
            return _error(415, f"unsupported content type {ctype or '(none)'!r}: "
                               f"use {PROTOBUF} or {JSON}", True)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("gzip", "identity", ""):
            return _error(415, f"unsupported content encoding {encoding!r}: use gzip or none", as_json)
        try:
            body = await _read_body(request, max_request_bytes)
            if encoding == "gzip":
                body = _gunzip(body, max_request_bytes)
            result = await receiver.export(signal, body, protocol="http", json=as_json)
        except _TooLarge:
            return _error(413, f"request body larger than the limit of {max_request_bytes} bytes "
                               "(limits.max_request_bytes); send smaller batches", as_json)
        except DecodeError as exc:
            return _error(400, str(exc), as_json)
        except Unavailable as exc:
            retry = str(max(1, round(exc.retry_after)))
            return _error(503, str(exc), as_json, {"Retry-After": retry})
        except ClientDisconnect:
            return Response(status_code=400)
        body_out, media = _encode(export_response(signal, result.rejected, result.message), as_json)
        return Response(body_out, media_type=media)

    async def method_not_allowed(request: Request) -> Response:
        return _error(405, f"{request.method} not allowed: OTLP export requests are POSTs", True,
                      {"Allow": "POST"})

    routes = [Route(f"/v1/{s}", export, methods=["POST"]) for s in ("traces", "metrics", "logs")]
    routes += [Route(f"/v1/{s}", method_not_allowed, methods=["GET", "PUT", "DELETE", "PATCH"])
               for s in ("traces", "metrics", "logs")]
    return Starlette(routes=routes)
