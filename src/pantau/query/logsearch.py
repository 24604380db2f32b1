"""The search box language of `/api/pantau/logs?q=...`, in the habits of Kibana and Datadog.

    service:signer level:error "chain verification" timeout -debug user.id:u123 trace_id:4bf9...

* bare words must all appear (whole words, case-insensitive); `word*` is a prefix;
* `"a phrase"` must appear as written (word for word);
* `-word` or `NOT word` excludes; `AND` is implied and may be written;
* `service:` (or `service.name:`) selects services, `level:`/`severity:` a severity
  (`error`, `warn`, ...; `level>=warn` for at least), `trace_id:`/`span_id:` a trace or span;
* any other `key:value` filters on a log attribute.
"""

from __future__ import annotations

import re

from pantau.store.base import LogQuery

SEVERITY_RANGES = {
    "trace": (1, 4), "debug": (5, 8), "info": (9, 12), "information": (9, 12), "warn": (13, 16),
    "warning": (13, 16), "error": (17, 20), "err": (17, 20), "fatal": (21, 24), "critical": (21, 24),
}
_SERVICE_KEYS = {"service", "service.name", "service_name"}
_LEVEL_KEYS = {"level", "severity", "severity_text", "status"}
_KEY = re.compile(r"^([A-Za-z_][\w.\-]*)(:|>=|>)(.*)$", re.DOTALL)


class SearchSyntaxError(ValueError):
    pass


def severity_range(name: str) -> tuple[int, int]:
    key = name.strip().lower()
    if key.isdigit():
        n = int(key)
        if not 1 <= n <= 24:
            raise SearchSyntaxError(f"severity number {n} is outside 1..24")
        return n, n
    if key not in SEVERITY_RANGES:
        raise SearchSyntaxError(f"unknown severity {name!r}: use trace, debug, info, warn, error or fatal")
    return SEVERITY_RANGES[key]


def parse_hex_id(text: str, size: int, what: str) -> bytes:
    t = text.strip().lower()
    if len(t) != 2 * size or any(c not in "0123456789abcdef" for c in t):
        raise SearchSyntaxError(f"invalid {what} {text!r}: expected {2 * size} hex digits")
    return bytes.fromhex(t)


def parse_search(text: str, query: LogQuery | None = None) -> LogQuery:
    """Add the conditions written in `text` to `query` (a new one by default)."""
    q = query or LogQuery()
    try:
        words = _tokens_with_quotes(text)
    except ValueError as exc:
        raise SearchSyntaxError(f"cannot parse search {text!r}: {exc}") from None
    negate = False
    for word, quoted in words:
        if not quoted and word in ("AND", "&&"):
            continue
        if not quoted and word in ("OR", "||"):
            raise SearchSyntaxError("OR is not supported yet: run one search per alternative")
        if not quoted and word == "NOT":
            negate = True
            continue
        if not quoted and word.startswith("-") and len(word) > 1:
            negate, word = True, word[1:]
        if quoted:
            (q.excluded if negate else q.phrases).append(word)
            negate = False
            continue
        m = _KEY.match(word)
        if m and m.group(3) != "":
            key, op, value = m.group(1), m.group(2), _unquote(m.group(3))
            _field(q, key, op, value, negate)
        else:
            (q.excluded if negate else q.terms).append(word)
        negate = False
    if negate:
        raise SearchSyntaxError("NOT must be followed by a term")
    return q


def _field(q: LogQuery, key: str, op: str, value: str, negate: bool) -> None:
    lowered = key.lower()
    if negate:
        raise SearchSyntaxError(f"negating a field filter ({key}) is not supported yet")
    if op != ":" and lowered not in _LEVEL_KEYS:
        raise SearchSyntaxError(f"'{op}' works only with level/severity, not {key!r}")
    if lowered in _SERVICE_KEYS:
        q.services.append(value)
    elif lowered in _LEVEL_KEYS:
        lo, hi = severity_range(value)
        if op == ":":
            q.severity_ranges.append((lo, hi))
        else:
            q.min_severity = lo if op == ">=" else hi + 1
    elif lowered in ("trace_id", "traceid", "trace.id"):
        q.trace_id = parse_hex_id(value, 16, "trace id")
    elif lowered in ("span_id", "spanid", "span.id"):
        q.span_id = parse_hex_id(value, 8, "span id")
    else:
        q.attributes[key.removeprefix("attributes.").removeprefix("attr.")] = value


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def _tokens_with_quotes(text: str) -> list[tuple[str, bool]]:
    """Split on whitespace, keeping "quoted phrases" (and key:"quoted values") together."""
    out: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == '"':
            j = i + 1
            buf = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ValueError("unterminated quote")
            out.append(("".join(buf), True))
            i = j + 1
            continue
        j = i
        in_quote = False
        while j < n and (in_quote or not text[j].isspace()):
            if text[j] == '"':
                in_quote = not in_quote
            j += 1
        if in_quote:
            raise ValueError("unterminated quote")
        out.append((text[i:j], False))
        i = j
    return out
