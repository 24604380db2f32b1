"""LogQL: the log query language of Loki, evaluated over pantau's store (a documented subset)."""

from __future__ import annotations

from pantau.model import Labels
from pantau.query.logql.evaluate import LogQLEngine, Series, Stream
from pantau.query.logql.parser import LogQLError, parse
from pantau.store.base import Store


def instant(store: Store, query: str, t_ms: int) -> list[tuple[Labels, float]]:
    """Evaluate a LogQL metric query at one instant (what log alert rules need)."""
    result = LogQLEngine(store).instant(query, t_ms * 1_000_000)
    if isinstance(result, float):
        return [((), result)]
    return [(s.labels, float(s.values[0])) for s in result]


__all__ = ["LogQLEngine", "LogQLError", "Series", "Stream", "instant", "parse"]
