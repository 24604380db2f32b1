"""OTLP/gRPC receiver: the three `Export` services, with the status codes the spec names.

Requests arrive as raw bytes (a pass-through deserializer), so the same shadow decoder as
OTLP/HTTP does the work and nothing is parsed twice.

* INVALID_ARGUMENT: malformed message (not retryable);
* RESOURCE_EXHAUSTED with `google.rpc.RetryInfo`: the write queue is full; the spec makes
  RESOURCE_EXHAUSTED retryable only when RetryInfo is present, so it always is;
* UNAVAILABLE with RetryInfo: shutting down or storage failing;
* messages over the size limit are refused by gRPC itself with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import grpc
from google.protobuf.any_pb2 import Any as PbAny
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, status_pb2
from google.rpc.error_details_pb2 import RetryInfo
from grpc_status import rpc_status

from pantau.ingest.receiver import Receiver, Unavailable, export_response
from pantau.otlp.decode import DecodeError

SERVICES = {
    "opentelemetry.proto.collector.trace.v1.TraceService": "traces",
    "opentelemetry.proto.collector.metrics.v1.MetricsService": "metrics",
    "opentelemetry.proto.collector.logs.v1.LogsService": "logs",
}


def _retry_status(code: int, message: str, seconds: float):
    info = PbAny()
    info.Pack(RetryInfo(retry_delay=Duration(seconds=max(1, round(seconds)))))
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=[info]))


def _handler(receiver: Receiver, signal: str):
    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            result = await receiver.export(signal, request, protocol="grpc")
        except DecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Unavailable as exc:
            code = code_pb2.RESOURCE_EXHAUSTED if exc.overloaded else code_pb2.UNAVAILABLE
            await context.abort_with_status(_retry_status(code, str(exc), exc.retry_after))
        return export_response(signal, result.rejected, result.message).SerializeToString()

    return grpc.unary_unary_rpc_method_handler(
        export, request_deserializer=None, response_serializer=None)


def create_server(receiver: Receiver, max_request_bytes: int) -> grpc.aio.Server:
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_request_bytes),
        ("grpc.so_reuseport", 0),  # a second pantau on the same port must fail, not share it
    ])
    server.add_generic_rpc_handlers([
        grpc.method_handlers_generic_handler(service, {"Export": _handler(receiver, signal)})
        for service, signal in SERVICES.items()
    ])
    return server
