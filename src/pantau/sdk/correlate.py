"""Correlation ids: one id for one business transaction, across services, on every span and log.

When the caller gives none, the trace id is the correlation id: it costs nothing, and it is
the same in every service of the trace. An explicit id (from an `X-Correlation-ID` header,
or `pantau.correlation("order-42")`) travels in W3C baggage, so any OpenTelemetry service
carries it on; the propagator also writes and reads the `X-Correlation-ID` header for
services that know only that.

The id is stamped on spans and log records by pantau's batch processors (see `export.py`),
not by a separate span processor: that would cost a call per span on the app's thread.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

BAGGAGE_KEY = "correlation.id"
ATTRIBUTE = "correlation.id"
HEADER = "X-Correlation-ID"
_HEADER_LOWER = HEADER.lower()


def explicit_correlation_id(ctx: Context | None = None) -> str | None:
    """The id carried in baggage, if any (no fallback to the trace id)."""
    value = baggage.get_baggage(BAGGAGE_KEY, ctx)
    return value if isinstance(value, str) and value else None


def correlation_id(ctx: Context | None = None) -> str | None:
    """The current correlation id: the one in baggage, else the current trace id, else None."""
    value = explicit_correlation_id(ctx)
    if value:
        return value
    span_ctx = trace.get_current_span(ctx).get_span_context()
    return f"{span_ctx.trace_id:032x}" if span_ctx.is_valid else None


def new_correlation_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def correlation(cid: str | None = None) -> Iterator[str]:
    """Run a block under correlation id `cid` (a new random one when None)."""
    cid = cid or new_correlation_id()
    token = otel_context.attach(baggage.set_baggage(BAGGAGE_KEY, cid))
    try:
        yield cid
    finally:
        otel_context.detach(token)


class CorrelationPropagator(TextMapPropagator):
    """Writes and reads `X-Correlation-ID` (next to W3C tracecontext and baggage)."""

    def inject(self, carrier: CarrierT, context: Context | None = None, setter: Setter = default_setter) -> None:
        cid = correlation_id(context)
        if cid:
            setter.set(carrier, HEADER, cid)

    def extract(self, carrier: CarrierT, context: Context | None = None, getter: Getter = default_getter) -> Context:
        if context is None:
            context = otel_context.get_current()
        values = getter.get(carrier, HEADER) or getter.get(carrier, _HEADER_LOWER)
        if not values or explicit_correlation_id(context):
            return context
        value = values[0].strip()
        if not value or len(value) > 256:
            return context
        return baggage.set_baggage(BAGGAGE_KEY, value, context)

    @property
    def fields(self) -> set[str]:
        return {HEADER}
