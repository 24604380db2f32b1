"""`POST /api/v1/write`: Prometheus remote-write 1.0, answered as Prometheus answers it.

* 204 No Content once the samples are committed (never before);
* 400 with a plain-text message for a body that is not a snappy block of a valid
  `WriteRequest`, or that holds an invalid label set or a sample out of bounds; Prometheus's
  sender drops such a request and does not retry it;
* 413 over `limits.max_request_bytes` (compressed, or as announced by the snappy header);
* 503 with `Retry-After` when the write queue is full or the store is shutting down or failing:
  the sender retries 5xx, so nothing it sent is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from pantau.ingest.remote_write import RemoteWriteDecoder, RemoteWriteError, TooLarge
from pantau.selfmon import SelfMetrics
from pantau.store.base import Overloaded, Store, StoreClosed, StoreError

PROTOCOL = "remote_write"


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error as Go's `http.Error` writes it (Prometheus's handler uses it)."""
    return Response(message.rstrip("\n") + "\n", status_code=status, media_type="text/plain; charset=utf-8",
                    headers={"X-Content-Type-Options": "nosniff", **(headers or {})})


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body of {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_router(store: Store, metrics: SelfMetrics, max_request_bytes: int, max_age_s: float,
                  max_future_s: float, clock: Callable[[], float] = time.time) -> APIRouter:
    """The remote-write route. Samples older than `max_age_s` (metrics retention) or more than
    `max_future_s` ahead of `clock()` are out of bounds."""
    router = APIRouter(tags=["prometheus"])
    decoder = RemoteWriteDecoder(max_request_bytes)

    async def write(request: Request) -> Response:
        now_ms = int(clock() * 1000)
        try:
            body = await _read_body(request, max_request_bytes)
            batch = decoder.decode(body, now_ms - int(max_age_s * 1000), now_ms + int(max_future_s * 1000))
        except TooLarge as exc:
            metrics.requests("metrics", PROTOCOL, "invalid")
            return _text(413, f"{exc} (limits.max_request_bytes); send smaller batches")
        except RemoteWriteError as exc:
            metrics.requests("metrics", PROTOCOL, "invalid")
            return _text(400, str(exc))
        except ClientDisconnect:
            return Response(status_code=400)
        n = len(batch)
        if n or batch.metadata:
            try:
                future = store.submit(batch)
            except Overloaded as exc:
                metrics.requests("metrics", PROTOCOL, "overloaded")
                metrics.items("metrics", PROTOCOL, "refused", n)
                return _text(503, str(exc), {"Retry-After": str(max(1, round(exc.retry_after)))})
            except StoreClosed as exc:
                metrics.requests("metrics", PROTOCOL, "unavailable")
                return _text(503, str(exc), {"Retry-After": "1"})
            try:
                await asyncio.wrap_future(future)
            except StoreError as exc:
                metrics.requests("metrics", PROTOCOL, "unavailable")
                metrics.items("metrics", PROTOCOL, "refused", n)
                return _text(503, str(exc), {"Retry-After": "5"})
        metrics.requests("metrics", PROTOCOL, "ok")
        metrics.items("metrics", PROTOCOL, "accepted", n)
        return Response(status_code=204)

    router.add_api_route(
        "/api/v1/write", write, methods=["POST"], status_code=204,
        summary="Prometheus remote write 1.0 (snappy-compressed protobuf WriteRequest)")
    return router
