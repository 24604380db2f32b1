"""Severity classes by OpenTelemetry severity-number range, under the names users type."""

from __future__ import annotations

SEVERITY_CLASSES: dict[str, tuple[int, int]] = {
    "trace": (1, 4), "debug": (5, 8), "info": (9, 12), "warn": (13, 16), "error": (17, 20), "fatal": (21, 24),
}
ALIASES = {"warning": "warn", "critical": "fatal"}


def severity_class(name: str) -> str:
    """The canonical class name, or a ValueError that lists the valid ones."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in SEVERITY_CLASSES:
        raise ValueError(f"unknown severity {name!r}: use one of {', '.join(SEVERITY_CLASSES)}")
    return key
