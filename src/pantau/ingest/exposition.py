"""The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0, read as Prometheus reads them.

Why not `prometheus_client.parser`: it builds metric families and renames what it reads (a
counter exposed as `foo` comes back as sample `foo_total`, family `http_requests_total` as
`http_requests`), while Prometheus stores exactly the sample names a target exposes and keys
metadata by the name in the `# TYPE` line. This parser returns samples as exposed.

It is also built for repeated scrapes of the same target: each sample line is split into its
series text (`name{labels}`, as written) and its value, and only a series text not seen
before is parsed into labels (`parse_series`), so steady-state scrapes cost one regular
expression match per line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pantau.model import METRIC_NAME, MetricMetadata

OPENMETRICS = "application/openmetrics-text"

# name, optional {labels} (quoted values may hold any character, escaped quotes included),
# value, optional timestamp, optional OpenMetrics exemplar (` # {...} value [ts]`, ignored).
_SAMPLE = re.compile(
    r'([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[^"}]|"(?:[^"\\\n]|\\.)*")*\})?)'
    r'[ \t]+([^ \t]+)(?:[ \t]+([^ \t#]+))?[ \t]*(?:#.*)?')
_LABEL = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*(?:,|(?=\}))')
_ESCAPE = re.compile(r'\\(["\\n])')
_META = re.compile(r"#[ \t]+(HELP|TYPE|UNIT)[ \t]+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:[ \t]+(.*))?")
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped", "gaugehistogram", "info", "stateset", "unknown"}


class ExpositionError(ValueError):
    """The body is not valid exposition text; Prometheus fails the whole scrape on it."""


@dataclass(slots=True)
class Exposition:
    # (series text as exposed, value, timestamp in ms or None)
    samples: list[tuple[str, float, int | None]] = field(default_factory=list)
    metadata: dict[str, MetricMetadata] = field(default_factory=dict)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def parse_series(text: str) -> list[tuple[str, str]]:
    """The label pairs of a series text (`name{a="b"}`), `__name__` first, in exposed order."""
    brace = text.find("{")
    if brace < 0:
        return [(METRIC_NAME, text)]
    pairs = [(METRIC_NAME, text[:brace])]
    pos, end = brace + 1, len(text) - 1
    while pos < end:
        m = _LABEL.match(text, pos)
        if m is None:
            if not text[pos:end].strip():
                break
            raise ExpositionError(f"invalid labels in {text!r}")
        pairs.append((m.group(1), _unescape(m.group(2))))
        pos = m.end()
    return pairs


def parse(body: str, content_type: str = "") -> Exposition:
    """Samples and metadata of one scrape; the format is chosen by the response's content type."""
    openmetrics = content_type.strip().lower().startswith(OPENMETRICS)
    out = Exposition()
    samples = out.samples
    add = samples.append
    match = _SAMPLE.fullmatch
    meta: dict[str, dict[str, str]] = {}
    ended = False
    for number, line in enumerate(body.split("\n"), 1):
        if ended:
            if line:
                raise ExpositionError(f"line {number}: content after # EOF")
            continue
        if not line or line.isspace():
            continue
        if line[0] == "#":
            if openmetrics and line.rstrip() == "# EOF":
                ended = True
                continue
            m = _META.fullmatch(line.rstrip("\r"))
            if m is not None:
                kind, name, rest = m.group(1), m.group(2), (m.group(3) or "")
                entry = meta.setdefault(name, {})
                if kind == "TYPE":
                    rest = rest.strip()
                    if rest not in _TYPES:
                        raise ExpositionError(f"line {number}: invalid metric type {rest!r}")
                    entry["type"] = "unknown" if rest == "untyped" else rest
                elif kind == "HELP":
                    entry["help"] = _unescape(rest)
                else:
                    entry["unit"] = rest.strip()
            continue
        m = match(line.rstrip("\r"))
        if m is None:
            raise ExpositionError(f"line {number}: not a sample: {line[:200]!r}")
        series, value_text, stamp = m.groups()
        try:
            value = float(value_text)
            if stamp is None:
                ts = None
            elif openmetrics:
                ts = int(float(stamp) * 1000)  # seconds; truncated to ms as Prometheus does
            else:
                ts = int(stamp)
        except ValueError:
            raise ExpositionError(f"line {number}: invalid value or timestamp in {line[:200]!r}") from None
        add((series, value, ts))
    if openmetrics and not ended:
        raise ExpositionError("OpenMetrics body does not end with # EOF")
    for name, entry in meta.items():
        out.metadata[name] = MetricMetadata(name, entry.get("type", "unknown"), entry.get("help", ""),
                                            entry.get("unit", ""))
    return out
