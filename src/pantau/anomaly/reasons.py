"""Human reasons: numbers written as an operator would say them, with their unit."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def fmt_value(v: float, unit: str = "") -> str:
    """`850 ms`, `1.25 s`, `91.2 %`, `12.3k`: three significant digits are enough to read."""
    if v is None or not math.isfinite(v):
        return str(v)
    if unit in ("s", "seconds") and abs(v) < 1:
        v, unit = v * 1000, "ms"
    a = abs(v)
    if unit in ("", "1"):
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if a >= div * 10:
                return f"{_digits(v / div)}{suffix}"
        return _digits(v)
    sep = "" if unit == "%" else " "
    return f"{_digits(v)}{sep}{unit}"


def _digits(v: float) -> str:
    a = abs(v)
    if a >= 100 or a == 0:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    if a >= 0.01:
        return f"{v:.3g}"
    return f"{v:.2e}"


def fmt_time(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def direction(z: float) -> str:
    return "above" if z >= 0 else "below"
