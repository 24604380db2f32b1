"""PromQL: parsing with `promql-parser`, evaluation over the store interface."""

from pantau.query.promql.engine import Engine, InstantResult, parse, parse_selector, selector_matchers
from pantau.query.promql.values import (
    ExecutionError,
    Matrix,
    PromQLError,
    QueryTimeout,
    Scalar,
    TooManySamples,
    Unsupported,
    Vector,
)

__all__ = [
    "Engine",
    "ExecutionError",
    "InstantResult",
    "Matrix",
    "PromQLError",
    "QueryTimeout",
    "Scalar",
    "TooManySamples",
    "Unsupported",
    "Vector",
    "parse",
    "parse_selector",
    "selector_matchers",
]
