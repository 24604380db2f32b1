"""`pantau.trace`: one span around a business operation, as decorator or context manager.

Built on `tracer.start_span` plus `context.attach`/`detach` rather than
`start_as_current_span`: the latter goes through a generator-based context manager and
`use_span`, which costs more than the span itself on small operations. The behaviour is the
same: the span is current inside the block, an exception is recorded as an event, the status
becomes ERROR with the exception's type and message, and the exception propagates.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind, Status, StatusCode

F = TypeVar("F", bound=Callable[..., Any])

RESULT_ATTRIBUTE = "pantau.result"
RESULT_MAX_CHARS = 256

_tracer: trace_api.Tracer | None = None


def tracer() -> trace_api.Tracer:
    """pantau's tracer (set by `init`; before that, OpenTelemetry's global proxy)."""
    global _tracer
    if _tracer is None:
        _tracer = trace_api.get_tracer("pantau")
    return _tracer


def set_tracer(t: trace_api.Tracer | None) -> None:
    global _tracer
    _tracer = t


_set_span_in_context = trace_api.set_span_in_context
_attach, _detach = otel_context.attach, otel_context.detach
_ERROR = StatusCode.ERROR


def _fail(span: trace_api.Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(_ERROR, f"{type(exc).__name__}: {exc}"))


def _result_text(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= RESULT_MAX_CHARS else text[: RESULT_MAX_CHARS - 1] + "…"


class trace:  # lowercase: used like a function, pantau.trace("name")
    """A span named `name` around a block or a function (sync or async).

        @pantau.trace("document_signing", attributes={"doc.type": "contract"}, record_result=True)
        def sign(doc): ...

        with pantau.trace("verify_chain") as span:
            span.set_attribute("chain.length", n)

    `record_result=True` stores the return value (as text, at most 256 characters) in the
    `pantau.result` attribute. Used bare (`@pantau.trace`), the span takes the function's
    qualified name.
    """

    __slots__ = ("_span", "_token", "attributes", "kind", "name", "record_result")

    @overload
    def __new__(cls, name: F) -> F: ...  # type: ignore[misc]

    @overload
    def __new__(cls, name: str | None = None, attributes: Mapping[str, Any] | None = None, *,
                record_result: bool = False, kind: SpanKind = SpanKind.INTERNAL) -> trace: ...

    def __new__(cls, name: Any = None, attributes: Mapping[str, Any] | None = None, *,
                record_result: bool = False, kind: SpanKind = SpanKind.INTERNAL) -> Any:
        if callable(name):  # bare decorator
            return cls(None)(name)
        return super().__new__(cls)

    def __init__(self, name: str | None = None, attributes: Mapping[str, Any] | None = None, *,
                 record_result: bool = False, kind: SpanKind = SpanKind.INTERNAL) -> None:
        self.name = name
        self.attributes = attributes
        self.record_result = record_result
        self.kind = kind

    # --- context manager (one use per instance) ---

    def __enter__(self) -> trace_api.Span:
        span = tracer().start_span(self.name or "block", attributes=self.attributes, kind=self.kind)
        self._span = span
        self._token = _attach(_set_span_in_context(span))
        return span

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        span = self._span
        if exc is not None:
            _fail(span, exc)
        span.end()
        _detach(self._token)

    async def __aenter__(self) -> trace_api.Span:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # --- decorator (no state on self: calls may overlap) ---

    def __call__(self, fn: F) -> F:
        name = self.name or fn.__qualname__
        attributes, kind, record = self.attributes, self.kind, self.record_result

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                span = tracer().start_span(name, attributes=attributes, kind=kind)
                token = _attach(_set_span_in_context(span))
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as e:
                    _fail(span, e)
                    raise
                else:
                    if record:
                        span.set_attribute(RESULT_ATTRIBUTE, _result_text(result))
                    return result
                finally:
                    span.end()
                    _detach(token)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            span = tracer().start_span(name, attributes=attributes, kind=kind)
            token = _attach(_set_span_in_context(span))
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:
                _fail(span, e)
                raise
            else:
                if record:
                    span.set_attribute(RESULT_ATTRIBUTE, _result_text(result))
                return result
            finally:
                span.end()
                _detach(token)

        return wrapper  # type: ignore[return-value]


def current_span() -> trace_api.Span:
    return trace_api.get_current_span()


def add_event(name: str, attributes: Mapping[str, Any] | None = None) -> None:
    """An event on the current span (no-op without one)."""
    trace_api.get_current_span().add_event(name, attributes=attributes)


def set_attributes(attributes: Mapping[str, Any]) -> None:
    """Attributes on the current span (no-op without one)."""
    trace_api.get_current_span().set_attributes(attributes)
