"""The `15s`/`5m` duration type for alerting's pydantic models. It defers to the hub's
parser at validation time, so `pantau.config` can import the alerting models at load time
without an import cycle."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def _seconds(value: Any) -> float:
    from pantau.config import parse_duration

    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_seconds)]
