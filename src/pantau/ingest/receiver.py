"""What every OTLP transport shares: decode, store, wait for the commit, count.

HTTP and gRPC differ only in how they frame requests and spell errors; both call
`Receiver.export` and map its outcome (`Accepted`, or one of the errors below) to their
protocol's status codes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from pantau.otlp.decode import DecodeError, OtlpDecoder, json_to_protobuf
from pantau.selfmon import SelfMetrics
from pantau.store.base import Overloaded, Store, StoreClosed, StoreError

SIGNALS = ("traces", "metrics", "logs")


@dataclass(slots=True)
class Accepted:
    accepted: int
    rejected: int
    message: str


class Unavailable(Exception):
    """A transient failure: the client should retry later (503 / UNAVAILABLE)."""

    def __init__(self, message: str, retry_after: float = 1.0, overloaded: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.overloaded = overloaded


class Receiver:
    def __init__(self, store: Store, decoder: OtlpDecoder, metrics: SelfMetrics) -> None:
        self.store = store
        self.decoder = decoder
        self.metrics = metrics

    async def export(self, signal: str, body: bytes, *, protocol: str, json: bool = False) -> Accepted:
        """Decode and store one export request; returns once it is committed.

        Raises `DecodeError` for a malformed request and `Unavailable` when it could not be
        stored now (queue full, shutting down, storage failing).
        """
        try:
            if json:
                body = json_to_protobuf(signal, body)
            if signal == "traces":
                decoded = self.decoder.traces(body)
            elif signal == "logs":
                decoded = self.decoder.logs(body)
            else:
                decoded = self.decoder.metrics(body)
        except DecodeError:
            self.metrics.requests(signal, protocol, "invalid")
            raise
        batch = decoded.batch
        n = len(batch)
        if n:
            try:
                future = self.store.submit(batch)
            except Overloaded as exc:
                self.metrics.requests(signal, protocol, "overloaded")
                self.metrics.items(signal, protocol, "refused", n)
                raise Unavailable(str(exc), exc.retry_after, overloaded=True) from None
            except StoreClosed as exc:
                self.metrics.requests(signal, protocol, "unavailable")
                raise Unavailable(str(exc)) from None
            try:
                await asyncio.wrap_future(future)
            except StoreError as exc:
                self.metrics.requests(signal, protocol, "unavailable")
                self.metrics.items(signal, protocol, "refused", n)
                raise Unavailable(str(exc), 5.0) from None
        self.metrics.requests(signal, protocol, "ok")
        self.metrics.items(signal, protocol, "accepted", n)
        if decoded.rejected:
            self.metrics.items(signal, protocol, "rejected", decoded.rejected)
        return Accepted(n, decoded.rejected, decoded.error_message)


def export_response(signal: str, rejected: int, message: str):
    """The Export*ServiceResponse for a signal, with `partial_success` when anything was rejected
    or there is a warning to pass on."""
    if signal == "traces":
        resp = ExportTraceServiceResponse()
        if rejected or message:
            resp.partial_success.rejected_spans = rejected
            resp.partial_success.error_message = message
    elif signal == "logs":
        resp = ExportLogsServiceResponse()
        if rejected or message:
            resp.partial_success.rejected_log_records = rejected
            resp.partial_success.error_message = message
    else:
        resp = ExportMetricsServiceResponse()
        if rejected or message:
            resp.partial_success.rejected_data_points = rejected
            resp.partial_success.error_message = message
    return resp
