"""Label matchers as Alertmanager writes them: `severity="critical"`, `job=~"api|web"`,
`{team!="ops"}`, the new-style `matchers:` lists and the legacy `match`/`match_re` maps."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from pantau.store.base import Matcher

_ONE = re.compile(r'\s*([a-zA-Z_:][a-zA-Z0-9_:]*|"(?:[^"\\]|\\.)*")\s*(=~|!~|!=|=)\s*'
                  r'("(?:[^"\\]|\\.)*"|[^,}"]*?)\s*(?:,|$)')
_TYPE_ORDER = {"=": 0, "!=": 1, "=~": 2, "!~": 3}


def parse_matchers(text: str) -> list[Matcher]:
    """`a="b", c=~"d.*"` or `{a="b"}`: each comma-separated matcher. Raises ValueError."""
    s = text.strip()
    if s.startswith("{"):
        if not s.endswith("}"):
            raise ValueError(f"missing closing brace in matchers {text!r}")
        s = s[1:-1].strip()
    out: list[Matcher] = []
    pos = 0
    while pos < len(s):
        m = _ONE.match(s, pos)
        if not m or m.end() == pos:
            raise ValueError(f"bad matcher {s[pos:]!r} in {text!r}")
        name, op, value = m.group(1), m.group(2), m.group(3).strip()
        if name.startswith('"'):
            name = json.loads(name)
        if value.startswith('"'):
            value = json.loads(value)
        out.append(Matcher(name, op, value))
        pos = m.end()
    return out


def from_config(matchers: Iterable[str] = (), match: Mapping[str, str] | None = None,
                match_re: Mapping[str, str] | None = None) -> list[Matcher]:
    """A route's or inhibit rule's matchers, sorted as Alertmanager sorts them (this order is
    part of the route key, hence of every group key)."""
    out = [Matcher(k, "=", v) for k, v in (match or {}).items()]
    out += [Matcher(k, "=~", v) for k, v in (match_re or {}).items()]
    for text in matchers:
        out += parse_matchers(text)
    return sorted(out, key=lambda m: (m.name, _TYPE_ORDER[m.op], m.value))


def matches(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels.get(m.name, "")) for m in matchers)


def matcher_string(m: Matcher) -> str:
    return f"{m.name}{m.op}{json.dumps(m.value, ensure_ascii=False)}"


def matchers_string(ms: Iterable[Matcher]) -> str:
    return "{" + ",".join(matcher_string(m) for m in ms) + "}"
