"""Switch on the OpenTelemetry instrumentations that are installed, and only those.

Each entry names the module of an instrumentation package and its instrumentor class; an
ImportError means the package (or the library it instruments) is absent, which is fine.
sqlite3 is traced through the DB-API instrumentation (the dedicated sqlite3 package has no
release matching current SDKs). FastAPI apps created before `init` are instrumented by
`instrument_app(app)`; `FastAPIInstrumentor().instrument()` covers apps created afterwards.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("pantau.sdk")

INSTRUMENTATIONS: dict[str, tuple[str, str]] = {
    "fastapi": ("opentelemetry.instrumentation.fastapi", "FastAPIInstrumentor"),
    "requests": ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
    "httpx": ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
}

_active: list[Any] = []
_sqlite3_patched: Any = None


def _instrument_sqlite3() -> bool:
    """sqlite3.connect through opentelemetry-instrumentation-dbapi's `wrap_connect`."""
    global _sqlite3_patched
    try:
        import sqlite3

        from opentelemetry.instrumentation import dbapi
    except ImportError:
        return False
    dbapi.wrap_connect("pantau", sqlite3, "connect", "sqlite", {"database": "database"})
    _sqlite3_patched = (dbapi, sqlite3)
    return True


def auto_instrument(only: Iterable[str] | None = None) -> list[str]:
    """Instrument what is installed (or the named subset); returns the names switched on."""
    wanted = set(only) if only is not None else {*INSTRUMENTATIONS, "sqlite3"}
    unknown = wanted - {*INSTRUMENTATIONS, "sqlite3"}
    if unknown:
        raise ValueError(f"unknown instrumentation {', '.join(sorted(unknown))}; "
                         f"known: {', '.join([*INSTRUMENTATIONS, 'sqlite3'])}")
    done = []
    for name in sorted(wanted):
        if name == "sqlite3":
            if _instrument_sqlite3():
                done.append(name)
            continue
        module, cls = INSTRUMENTATIONS[name]
        try:
            instrumentor = getattr(importlib.import_module(module), cls)()
        except ImportError:
            continue
        try:
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument()
            _active.append(instrumentor)
            done.append(name)
        except Exception as e:  # a broken instrumentation must not stop the app
            log.warning("pantau: could not instrument %s: %s", name, e)
    return done


def instrument_app(app: Any) -> Any:
    """Instrument one FastAPI/Starlette app object (server spans and HTTP RED metrics)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    if not getattr(app, "_is_instrumented_by_opentelemetry", False):  # auto_instrument may have done it
        FastAPIInstrumentor.instrument_app(app)
    return app


def wsgi_middleware(app: Any) -> Any:
    """A WSGI app (Flask, Django's WSGIHandler...) wrapped for server spans and HTTP metrics."""
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app)


def asgi_middleware(app: Any) -> Any:
    """Any ASGI app wrapped for server spans and HTTP metrics (FastAPI: use `instrument_app`)."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app)


def uninstrument_all() -> None:
    global _sqlite3_patched
    for instrumentor in _active:
        try:
            instrumentor.uninstrument()
        except Exception:
            pass
    _active.clear()
    if _sqlite3_patched is not None:
        dbapi, sqlite3 = _sqlite3_patched
        dbapi.unwrap_connect(sqlite3, "connect")
        _sqlite3_patched = None
