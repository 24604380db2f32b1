"""Carry trace context (and the correlation id in baggage) over HTTP headers and threads.

asyncio needs nothing: OpenTelemetry keeps its context in a `contextvars.ContextVar`, and
every task starts with a copy of its creator's context. Threads do not inherit context
variables, so work handed to a thread pool goes through `wrap` or `submit`.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.context import Context

T = TypeVar("T")


def inject_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """`headers` (a new dict when None) plus traceparent, baggage and X-Correlation-ID."""
    headers = {} if headers is None else headers
    propagate.inject(headers)
    return headers


def extract_context(headers: Mapping[str, str]) -> Context:
    """The context a caller sent in its headers (case-insensitive names)."""
    return propagate.extract({k.lower(): v for k, v in headers.items()})


@contextmanager
def continue_trace(headers: Mapping[str, str]) -> Iterator[Context]:
    """Make the caller's context current for a block (a server handling a request by hand)."""
    ctx = extract_context(headers)
    token = otel_context.attach(ctx)
    try:
        yield ctx
    finally:
        otel_context.detach(token)


def wrap(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn` bound to the current context: it runs under it in whatever thread calls it."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> T:
        return ctx.copy().run(fn, *args, **kwargs)

    return run


def submit(executor: Executor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """`executor.submit`, with the current trace context carried into the worker thread."""
    return executor.submit(wrap(fn), *args, **kwargs)
