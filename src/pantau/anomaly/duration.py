"""Durations in pantau.yaml's spelling (`15s`, `5m`, `1h30m`) for the anomaly settings.

pantau.config imports the anomaly settings to nest them, so they cannot import pantau.config
when they are loaded; the parser is looked up when a value is validated instead.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def _parse(value: Any) -> float:
    from pantau.config import parse_duration

    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_parse)]
