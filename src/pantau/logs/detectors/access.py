"""Reading HTTP access logs: the request target, status, method and client, from OpenTelemetry
semantic-convention attributes or from a Common/Combined Log Format line."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from pantau.logs.detectors.base import attribute, body_text
from pantau.model import LogRecord

# 1.2.3.4 - user [10/Oct/2000:13:55:36 -0700] "GET /a?b=c HTTP/1.1" 200 2326 ...
_CLF = re.compile(r'^(?P<ip>\S+) \S+ (?P<user>\S+) \[[^\]]*\] "(?P<method>[A-Z]+) (?P<target>\S+)(?: [^"]*)?" '
                  r"(?P<status>\d{3})")
# anything else that names a request: "GET /path HTTP/1.1"
_REQUEST = re.compile(r"\b(?P<method>GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS) (?P<target>/\S*)")
# a JSON access log (nginx `log_format ... escape=json`, Caddy, most frameworks' JSON loggers)
_JSON_TARGET = re.compile(r'"(?:url|uri|request_uri|path|request|target)"\s*:')
_STATUS = re.compile(r"\b(?:status[=: ]+|HTTP/\d(?:\.\d)?\"? )(?P<status>[1-5]\d\d)\b")


@dataclass(slots=True)
class Access:
    method: str
    target: str  # path and query, as sent
    status: int  # 0: unknown
    client: str  # "" when unknown
    user: str


_last: tuple[LogRecord | None, Access | None] = (None, None)


def parse_access(record: LogRecord) -> Access | None:
    """The request a record logs, or None. Several detectors ask about the same record in a
    row: the last answer is kept (the record is held, so its identity cannot be reused)."""
    global _last
    if _last[0] is record:
        return _last[1]
    access = _parse(record)
    _last = (record, access)
    return access


def _parse(record: LogRecord) -> Access | None:
    target = attribute(record, "url.full", "http.target", "url.original", "http.url") if record.attributes else ""
    if not target and record.attributes:
        path = attribute(record, "url.path")
        if path:
            query = attribute(record, "url.query")
            target = f"{path}?{query}" if query else path
    if target:
        status = attribute(record, "http.response.status_code", "http.status_code")
        return Access(attribute(record, "http.request.method", "http.method"), target,
                      int(status) if status.isdigit() else 0,
                      attribute(record, "client.address", "source.address", "http.client_ip", "net.peer.ip",
                                "client.ip"),
                      attribute(record, "user.name", "enduser.id", "user.id"))
    body = record.body
    if isinstance(body, str) and body.startswith("{") and _JSON_TARGET.search(body):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    if isinstance(body, dict):
        return _from_fields(record, body)
    text = body_text(record)
    if "/" not in text:
        return None
    m = _CLF.match(text)
    if m:
        user = m.group("user")
        return Access(m.group("method"), m.group("target"), int(m.group("status")), m.group("ip"),
                      "" if user == "-" else user)
    m = _REQUEST.search(text)
    if m:
        s = _STATUS.search(text, m.end())
        return Access(m.group("method"), m.group("target"), int(s.group("status")) if s else 0,
                      attribute(record, "client.address", "source.address", "client.ip"), "")
    return None


def _field(fields: dict, *keys: str) -> str:
    for key in keys:
        value = fields.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def _from_fields(record: LogRecord, fields: dict) -> Access | None:
    """A structured body: {"method": "GET", "uri": "/a?b", "status": 200, "remote_addr": ...}."""
    nested = fields.get("request") if isinstance(fields.get("request"), dict) else None
    if nested is not None:  # {"request": {"method": ..., "uri": ...}, "status": ...} (Caddy)
        fields = {**fields, **nested}
    target = _field(fields, "url", "uri", "request_uri", "target", "path")
    method = _field(fields, "method", "request_method", "http_method", "verb")
    if not target:
        m = _REQUEST.search(_field(fields, "request"))  # nginx/Apache "$request": "GET /a HTTP/1.1"
        if m is None:
            return None
        method, target = m.group("method"), m.group("target")
    status = _field(fields, "status", "status_code", "response_code", "http_status")
    if target == fields.get("path") and not (method or status):
        return None  # a "path" alone is as likely a file on the server as a request
    if target == fields.get("path") and fields.get("query") not in (None, ""):
        target = f"{target}?{fields['query']}"
    client = _field(fields, "remote_addr", "client_ip", "remote_ip", "client", "ip", "x_forwarded_for") \
        or attribute(record, "client.address", "source.address", "client.ip")
    return Access(method, target, int(status) if status.isdigit() else 0, client.split(",")[0].strip(),
                  _field(fields, "remote_user", "user", "username"))
