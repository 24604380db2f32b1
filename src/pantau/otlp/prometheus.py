"""OTLP names and values as Prometheus spells them.

Follows Prometheus's own OTLP receiver (the `otlptranslator` package, strategy
`UnderscoreEscapingWithSuffixes`, Prometheus's default) so that a metric sent to pantau over
OTLP gets the same series name and labels it would get in Prometheus.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

_UNITS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds",
    "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes",
    "TiBy": "tibibytes", "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters", "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams",
    "Cel": "celsius", "Hz": "hertz", "1": "", "%": "percent",
}
_PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month",
              "y": "year"}

_INVALID_METRIC_CHARS = re.compile(r"[^a-zA-Z0-9:]+")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9]+")
_UNDERSCORES = re.compile(r"__+")


class MetricKind:
    """The translator's view of a metric's type (it decides the `_total` / `_ratio` suffixes)."""

    GAUGE = "gauge"
    MONOTONIC_COUNTER = "counter"
    NON_MONOTONIC_COUNTER = "updowncounter"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"


def _unit_suffixes(unit: str) -> tuple[str, str]:
    parts = unit.split("/", 1)
    main = parts[0].strip()
    main_suffix = "" if not main or "{" in main or "}" in main else _UNITS.get(main, main)
    per_suffix = ""
    if len(parts) > 1 and parts[1]:
        per = parts[1].strip()
        if per and "{" not in per and "}" not in per:
            per_suffix = _PER_UNITS.get(per, per)
        if per_suffix:
            per_suffix = "per_" + per_suffix
    return main_suffix, per_suffix


def _clean_unit(unit: str) -> str:
    return _UNDERSCORES.sub("_", re.sub(r"[^a-zA-Z0-9:]", "_", unit)).removeprefix("_")


@lru_cache(maxsize=8192)
def metric_name(name: str, unit: str, kind: str) -> str:
    """The Prometheus metric name for an OTLP metric (name, unit and type as the translator sees them)."""
    tokens = [t for t in _INVALID_METRIC_CHARS.split(name) if t]
    main_suffix, per_suffix = _unit_suffixes(unit)
    main_suffix, per_suffix = _clean_unit(main_suffix), _clean_unit(per_suffix)
    if main_suffix in tokens:
        main_suffix = ""
    if per_suffix == "per_":
        per_suffix = ""
    else:
        per_suffix = per_suffix.removesuffix("_")
        if per_suffix in tokens:
            per_suffix = ""
    if per_suffix:
        main_suffix = main_suffix.removesuffix("_")
    if main_suffix:
        tokens.append(main_suffix)
    if per_suffix:
        tokens.append(per_suffix)
    if kind == MetricKind.MONOTONIC_COUNTER:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and kind == MetricKind.GAUGE:
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    normalized = "_".join(tokens)
    if normalized and normalized[0].isdigit():
        normalized = "_" + normalized
    return normalized


@lru_cache(maxsize=8192)
def unit_name(unit: str) -> str:
    """The unit as `/api/v1/metadata` reports it (`s` -> `seconds`, `By/s` -> `bytes_per_second`)."""
    main, per = _unit_suffixes(unit)
    main, per = _clean_unit(main), _clean_unit(per)
    u = f"{main}_{per}" if main and per else (main or per)
    return u.strip("_")


@lru_cache(maxsize=8192)
def label_name(attribute: str) -> str:
    """An attribute key as a Prometheus label name (`http.method` -> `http_method`)."""
    if not attribute:
        return ""
    reserved = len(attribute) >= 4 and attribute.startswith("__") and attribute.endswith("__")
    core = attribute[2:-2] if reserved else attribute
    out = _INVALID_LABEL_CHARS.sub("_", core)
    if reserved:
        return f"__{out}__"
    if out and out[0].isdigit():
        out = "key_" + out
    return out


def format_float(value: float) -> str:
    """A float as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes it (Prometheus `le` and
    `quantile` labels use this), so `1` not `1.0` and `1e+06` not `1000000.0`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits = repr(value)  # shortest round-trip representation
    mantissa, _, exp_part = digits.partition("e")
    exponent = int(exp_part) if exp_part else 0
    sign = ""
    if mantissa.startswith("-"):
        sign, mantissa = "-", mantissa[1:]
    int_part, _, frac_part = mantissa.partition(".")
    if frac_part == "0":
        frac_part = ""
    # normalise to digit string d1d2d3... and decimal exponent of d1
    all_digits = (int_part + frac_part).lstrip("0")
    lead_zeros = len(int_part + frac_part) - len((int_part + frac_part).lstrip("0"))
    decimal_exp = len(int_part) - 1 - lead_zeros + exponent
    all_digits = all_digits.rstrip("0") or "0"
    # Go uses %e when the exponent is < -4 or >= 6 for the shortest representation.
    if decimal_exp < -4 or decimal_exp >= 6:
        mant = all_digits[0] + ("." + all_digits[1:] if len(all_digits) > 1 else "")
        esign = "-" if decimal_exp < 0 else "+"
        return f"{sign}{mant}e{esign}{abs(decimal_exp):02d}"
    if decimal_exp < 0:
        return f"{sign}0.{'0' * (-decimal_exp - 1)}{all_digits}"
    if len(all_digits) <= decimal_exp + 1:
        return sign + all_digits + "0" * (decimal_exp + 1 - len(all_digits))
    return f"{sign}{all_digits[: decimal_exp + 1]}.{all_digits[decimal_exp + 1 :]}"
