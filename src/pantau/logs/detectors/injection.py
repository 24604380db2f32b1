"""SQL injection and path traversal in access logs.

Only the request target (path and query) is inspected, never free text: an error message
that quotes SQL, or a search for "union select committee", is not an attack. The target is
normalised the way a server would see it, undoing the usual evasions first: repeated URL
encoding (`%2527`), `%uXXXX`, overlong UTF-8 slashes (`%c0%af`), `+` for space, HTML
entities, backslashes, inline SQL comments (`UNION/**/SELECT`, `/*!50000UNION*/`) and case.
The patterns then look for SQL *syntax* (a quote closing a string followed by a boolean,
`UNION SELECT` followed by a column list, stacked statements, time delays, schema probes), not
for keywords alone.
"""

from __future__ import annotations

import html
import re
from urllib.parse import unquote_plus

from pantau.logs.detectors.access import parse_access
from pantau.logs.detectors.base import Samples
from pantau.logs.detectors.config import InjectionConfig
from pantau.model import LogRecord
from pantau.store.base import Event

_OVERLONG = re.compile(r"%(?:c0%af|e0%80%af|c1%9c|c0%2f|c0%5c|25c0%25af)", re.IGNORECASE)
_UNICODE = re.compile(r"%u([0-9a-fA-F]{4})")
_SQL_COMMENT = re.compile(r"/\*!?\d*|\*/")
_SPACES = re.compile(r"\s+")

_SQLI = [
    ("union_select", r"\bunion\b(?: (?:all|distinct))? ?\(? ?select\b ?"
                     r"(?:null\b|\d|@@|\(|'|\"|\*|[\w.`]+ ?(?:,|\bfrom\b))"),
    ("tautology", r"['\"`)] ?(?:or|and|xor|\|\||&&) ?[('\"]*\w+[)'\"]* ?(?:=|<>|!=|<|>|like\b|is\b)"
                  r"|['\"`)] ?(?:or|and) ?(?:true|false|not)\b|\b(?:or|and) \d+ ?= ?\d+ ?(?:--|#|$)"),
    ("comment_after_quote", r"['\"`] ?\)? ?;? ?(?:--|#)"),
    ("stacked_query", r"; ?(?:drop|delete|truncate|insert|update|alter|create|exec(?:ute)?|shutdown|declare)\b \w"),
    ("time_delay", r"\b(?:sleep|pg_sleep)\( ?\d|\bbenchmark\( ?\d|\bwaitfor delay '"),
    ("schema_probe", r"\binformation_schema\b|\bsysobjects\b|\bpg_catalog\b|\bsqlite_master\b|@@version\b"),
    ("file_or_exec", r"\bload_file\(|\binto (?:out|dump)file\b|\bxp_cmdshell\b"),
    ("error_based", r"\b(?:extractvalue|updatexml)\(|\bconvert\(int,"),
    ("char_encoding", r"\bchar\( ?\d+ ?(?:, ?\d+ ?)+\)|\bconcat\(0x[0-9a-f]+"),
]
_TRAVERSAL = [
    ("dot_dot_slash", r"(?:^|[/=?&;:,])\.{2,}/|/\.{2,}(?:$|[?&#;])"),
    ("sensitive_file", r"/etc/(?:passwd|shadow|group|hosts|issue)\b|/proc/self/|\b(?:boot|win)\.ini\b"
                       r"|/windows/(?:system32|win\.ini)|\bc:/windows/|/\.ssh/|/\.env\b|web-inf/web\.xml"),
    ("null_byte", r"\x00"),
]
_SQLI_RE = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _SQLI))
_TRAVERSAL_RE = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _TRAVERSAL))


def normalise(target: str) -> str:
    """The target as the application would see it, with evasions undone (see the module doc)."""
    s = _OVERLONG.sub("/", target)
    for _ in range(4):  # double and triple encoding
        decoded = _UNICODE.sub(lambda m: chr(int(m.group(1), 16)), unquote_plus(s))
        if decoded == s:
            break
        s = _OVERLONG.sub("/", decoded)
    s = html.unescape(s).replace("\\", "/").lower()
    s = _SQL_COMMENT.sub(" ", s)
    return _SPACES.sub(" ", s)


def find_attacks(target: str, sql: bool = True, traversal: bool = True) -> list[tuple[str, str]]:
    """[(attack, technique)] in a request target, e.g. [("sql_injection", "union_select")]."""
    s = normalise(target)
    found = []
    if sql:
        m = _SQLI_RE.search(s)
        if m:
            found.append(("sql_injection", m.lastgroup or ""))
    if traversal:
        m = _TRAVERSAL_RE.search(s)
        if m:
            found.append(("path_traversal", m.lastgroup or ""))
    return found


class _Campaign:
    __slots__ = ("count", "id", "start_ns", "statuses", "targets", "techniques", "until_ns")

    def __init__(self, id: str, start_ns: int, until_ns: int, samples: int) -> None:
        self.id, self.start_ns, self.until_ns = id, start_ns, until_ns
        self.count = 0
        self.techniques: dict[str, int] = {}
        self.statuses: dict[int, int] = {}
        self.targets = Samples(samples)


class InjectionDetector:
    """One event per (service, attack, source) and window: raised on the first hit, updated
    with counts and samples when the window closes."""

    kind = "security"

    def __init__(self, config: InjectionConfig, samples: int = 5) -> None:
        self.config = config
        self.samples = samples
        self.window_ns = int(config.window_seconds * 1e9)
        self._open: dict[tuple[str, str, str], _Campaign] = {}

    def inspect(self, record: LogRecord) -> list[tuple[str, str]]:
        """The attacks one record carries (empty for anything that is not an access log)."""
        access = parse_access(record)
        if access is None:
            return []
        return find_attacks(access.target, self.config.sql_injection, self.config.path_traversal)

    def observe(self, record: LogRecord) -> list[Event]:
        access = parse_access(record)
        if access is None:
            return []
        attacks = find_attacks(access.target, self.config.sql_injection, self.config.path_traversal)
        events = []
        t = record.timestamp_ns
        for attack, technique in attacks:
            key = (record.service, attack, access.client or "unknown")
            campaign = self._open.get(key)
            new = campaign is None or t >= campaign.until_ns
            if campaign is not None and new:
                events.append(self._event(key, campaign, campaign.until_ns))
            if new:
                campaign = self._open[key] = _Campaign(f"{attack}-{key[0]}-{key[2]}-{t}", t, t + self.window_ns,
                                                       self.samples)
            campaign.count += 1
            campaign.techniques[technique] = campaign.techniques.get(technique, 0) + 1
            campaign.statuses[access.status] = campaign.statuses.get(access.status, 0) + 1
            if len(campaign.targets.items) < self.samples:
                campaign.targets.add(record)
                campaign.targets.items[-1]["target"] = access.target[:500]
                campaign.targets.items[-1]["normalised"] = normalise(access.target)[:500]
            if new:
                events.append(self._event(key, campaign, None))
        return events

    def tick(self, now_ns: int) -> list[Event]:
        events = []
        for key in [k for k, c in self._open.items() if now_ns >= c.until_ns]:
            campaign = self._open.pop(key)
            events.append(self._event(key, campaign, campaign.until_ns))
        return events

    def _event(self, key: tuple[str, str, str], c: _Campaign, end_ns: int | None) -> Event:
        service, attack, client = key
        what = "SQL injection" if attack == "sql_injection" else "Path traversal"
        # answered 2xx: the application may have executed it
        served = sum(n for status, n in c.statuses.items() if 200 <= status < 300)
        return Event(
            self.kind, c.start_ns, id=c.id, end_ns=end_ns, severity="critical" if served else "warning",
            title=f"{what} attempts against {service} from {client}: {c.count} request(s)",
            labels={"service": service, "detector": attack, "source_ip": client},
            data={"requests": c.count, "techniques": c.techniques,
                  "statuses": {str(k): v for k, v in c.statuses.items()}, "answered_2xx": served,
                  "window_seconds": self.config.window_seconds, "samples": c.targets.items})
