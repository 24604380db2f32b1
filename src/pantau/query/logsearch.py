"""The search box language of `/api/pantau/logs?q=...`, in the habits of Kibana and Datadog.

    service:signer level:error "chain verification" timeout -debug user.id:u123 trace_id:4bf9...

* bare words must all appear (whole words, case-insensitive); `word*` is a prefix;
* `"a phrase"` must appear as written (word for word);
* `-word` or `NOT word` excludes; `AND` is implied and may be written;
* `service:` (or `service.name:`) selects services, `level:`/`severity:` a severity
  (`error`, `warn`, ...; `level>=warn` for at least), `trace_id:`/`span_id:` a trace or span,
  `template:` the records of one log pattern (its id from `/api/pantau/log-patterns`);
* any other `key:value` filters on a log attribute;
* `OR`, parentheses and `NOT` on anything: `service:signer (timeout OR "connection reset")
  AND NOT level:debug`. The conditions every match must meet still narrow the search through
  the index; the whole expression is then checked on each candidate.
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


_TEMPLATE_KEYS = ("template", "template_id", "pattern")


def parse_search(text: str, query: LogQuery | None = None) -> LogQuery:
    """Add the conditions written in `text` to `query` (a new one by default)."""
    q = query or LogQuery()
    try:
        words = _tokens_with_quotes(text)
    except ValueError as exc:
        raise SearchSyntaxError(f"cannot parse search {text!r}: {exc}") from None
    if _needs_boolean(words):
        return _parse_boolean(words, q)
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
    elif lowered in _TEMPLATE_KEYS:
        q.template_id = parse_hex_id(value, 8, "template id").hex()
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


# --- boolean searches --------------------------------------------------------------------------


def _needs_boolean(words: list[tuple[str, bool]]) -> bool:
    plain = [w for w, quoted in words if not quoted]
    if any(w in ("OR", "||") or w.startswith("(") or w.endswith(")") for w in plain):
        return True
    for i, (w, quoted) in enumerate(words):  # NOT / - before a field filter
        if quoted:
            continue
        target = w[1:] if w.startswith("-") and len(w) > 1 else (
            words[i + 1][0] if w == "NOT" and i + 1 < len(words) and not words[i + 1][1] else "")
        if target and _KEY.match(target):
            return True
    return False


def _split_parens(words: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for w, quoted in words:
        if quoted:
            out.append((w, True))
            continue
        while w.startswith("("):
            out.append(("(", False))
            w = w[1:]
        closing = 0
        while w.endswith(")") and not _KEY.match(w):
            closing += 1
            w = w[:-1]
        if w.endswith(")") and _KEY.match(w) and w.count("(") < w.count(")"):
            while w.endswith(")"):
                closing += 1
                w = w[:-1]
        if w:
            out.append((w, False))
        out.extend((")", False) for _ in range(closing))
    return out


class _Expr:
    def __init__(self, words: list[tuple[str, bool]]) -> None:
        self.words = _split_parens(words)
        self.i = 0

    def peek(self) -> tuple[str, bool] | None:
        return self.words[self.i] if self.i < len(self.words) else None

    def parse(self):
        node = self.or_expr()
        if self.peek() is not None:
            raise SearchSyntaxError(f"unexpected {self.peek()[0]!r}")
        return node

    def or_expr(self):
        node = self.and_expr()
        while self.peek() in (("OR", False), ("||", False)):
            self.i += 1
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self):
        node = self.not_expr()
        while True:
            tok = self.peek()
            if tok is None or tok in ((")", False), ("OR", False), ("||", False)):
                return node
            if tok in (("AND", False), ("&&", False)):
                self.i += 1
            node = ("and", node, self.not_expr())

    def not_expr(self):
        tok = self.peek()
        if tok is None:
            raise SearchSyntaxError("the search ends where a term was expected")
        if tok == ("NOT", False):
            self.i += 1
            return ("not", self.not_expr())
        if not tok[1] and tok[0].startswith("-") and len(tok[0]) > 1:
            self.words[self.i] = (tok[0][1:], False)
            return ("not", self.not_expr())
        if tok == ("(", False):
            self.i += 1
            node = self.or_expr()
            if self.peek() != (")", False):
                raise SearchSyntaxError("a parenthesis is not closed")
            self.i += 1
            return node
        self.i += 1
        return ("term", tok[0], tok[1])


def _conjuncts(node) -> list:
    if node[0] == "and":
        return _conjuncts(node[1]) + _conjuncts(node[2])
    return [node]


def _parse_boolean(words: list[tuple[str, bool]], q: LogQuery) -> LogQuery:
    tree = _Expr(words).parse()
    # Positive terms every match needs narrow the search (and use the index) ...
    for node in _conjuncts(tree):
        if node[0] == "term":
            word, quoted = node[1], node[2]
            if quoted:
                q.phrases.append(word)
            elif (m := _KEY.match(word)) and m.group(3) != "":
                _field(q, m.group(1), m.group(2), _unquote(m.group(3)), False)
            else:
                q.terms.append(word)
    # ... and the whole expression is checked on each candidate.
    check = _compile(tree)
    previous = q.predicate
    q.predicate = check if previous is None else (lambda r: previous(r) and check(r))
    return q


def _compile(node):
    kind = node[0]
    if kind == "and":
        a, b = _compile(node[1]), _compile(node[2])
        return lambda r: a(r) and b(r)
    if kind == "or":
        a, b = _compile(node[1]), _compile(node[2])
        return lambda r: a(r) or b(r)
    if kind == "not":
        a = _compile(node[1])
        return lambda r: not a(r)
    return _term_check(node[1], node[2])


def _record_words(record) -> list[str]:
    from pantau.otlp.values import as_text
    from pantau.textmatch import tokens

    body = record.body if isinstance(record.body, str) else as_text(record.body)
    return tokens(body + "\n" + "\n".join(as_text(v) for v in record.attributes.values()))


def _term_check(word: str, quoted: bool):
    from pantau.otlp.values import as_text
    from pantau.textmatch import contains_sequence, fold, tokens

    if quoted or not ((m := _KEY.match(word)) and m.group(3) != ""):
        if not quoted and word.endswith("*") and len(word) > 1:
            prefix = fold(word[:-1])
            return lambda r: any(t.startswith(prefix) for t in _record_words(r))
        seq = tokens(word)
        return lambda r: contains_sequence(_record_words(r), seq)
    key, op, value = m.group(1), m.group(2), _unquote(m.group(3))
    lowered = key.lower()
    if lowered in _SERVICE_KEYS:
        return lambda r: r.service == value
    if lowered in _LEVEL_KEYS:
        lo, hi = severity_range(value)
        if op == ":":
            return lambda r: lo <= r.severity_number <= hi
        low = lo if op == ">=" else hi + 1
        return lambda r: r.severity_number >= low
    if lowered in ("trace_id", "traceid", "trace.id"):
        tid = parse_hex_id(value, 16, "trace id").hex()
        return lambda r: r.trace_id == tid
    if lowered in ("span_id", "spanid", "span.id"):
        sid = parse_hex_id(value, 8, "span id").hex()
        return lambda r: r.span_id == sid
    if lowered in _TEMPLATE_KEYS:
        template = parse_hex_id(value, 8, "template id").hex()
        return lambda r: r.template_id == template
    name = key.removeprefix("attributes.").removeprefix("attr.")
    return lambda r: name in r.attributes and as_text(r.attributes[name]) == value
