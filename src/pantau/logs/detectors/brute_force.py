"""Repeated failed logins per actor or per source IP (brute force, password spraying).

A failed login is recognised from attributes (`event.outcome=failure` on an authentication
event, `audit.action` login with `audit.outcome` failure, an HTTP 401 on a login route) or
from the text sshd, PAM and most frameworks write ("Failed password for root from 1.2.3.4").
Keys are counted separately, so one IP trying many users and many IPs trying one user are
both caught. A successful login for a key under attack raises a critical event: the attack
may have worked.
"""

from __future__ import annotations

import re
from collections import deque

from pantau.logs.detectors.access import parse_access
from pantau.logs.detectors.base import Samples, attribute, body_text, contains_any, sample
from pantau.logs.detectors.config import BruteForceConfig
from pantau.model import LogRecord
from pantau.store.base import Event

_FAILED = re.compile(
    r"failed password|authentication fail|log ?in fail|failed (?:to )?log ?in|invalid password|invalid credentials"
    r"|bad password|incorrect password|wrong password|failed to authenticate|authentication error"
    r"|access denied for user|unauthori[sz]ed login|login incorrect|invalid user", re.IGNORECASE)
_SUCCEEDED = re.compile(r"accepted (?:password|publickey|keyboard)|log ?in succe|logged in|authentication succe"
                        r"|successful(?:ly)? (?:log ?in|authenticat)", re.IGNORECASE)
_ACTOR = re.compile(r"\bfor (?:invalid user |illegal user )?(?P<a>[\w.@-]+) from\b"
                    r"|\buser(?:name)?[=:]\s*['\"]?(?P<b>[\w.@-]+)|\buser ['\"]?(?P<c>[\w.@-]+)['\"]?", re.IGNORECASE)
# the source: an address, or the host name sshd/PAM print when the address resolves (rhost=host.example.net)
_IP = re.compile(r"(?:\bfrom |rhost=|client[=: ]+|\bip[=: ]+)\[?(?P<ip>[A-Za-z0-9][\w-]*(?:\.[\w-]+)*\.[A-Za-z]{2,}"
                 r"(?![\w.-])|\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f:]*:[0-9a-f:]+)", re.IGNORECASE)
_LOGIN_ROUTE = re.compile(r"log-?in|sign-?in|auth|session|token|oauth|password", re.IGNORECASE)
_AUTH_WORDS = ("auth", "login", "logon", "signin", "sign_in", "session")


def login_outcome(record: LogRecord) -> str | None:
    """"failure", "success", or None when the record is not about a login."""
    outcome = attribute(record, "event.outcome", "audit.outcome", "auth.result", "login.result").lower() \
        if record.attributes else ""
    about = (attribute(record, "event.category", "event.action", "audit.action", "event.name").lower()
             or record.event_name.lower()) if outcome else ""
    if outcome and any(w in about for w in _AUTH_WORDS):
        if outcome in ("failure", "failed", "fail", "denied", "error"):
            return "failure"
        if outcome in ("success", "succeeded", "ok", "allowed"):
            return "success"
    access = parse_access(record)
    if access is not None and access.status and _LOGIN_ROUTE.search(access.target.split("?")[0]):
        if access.method in ("POST", "PUT", ""):
            if access.status in (401, 403):
                return "failure"
            if 200 <= access.status < 400:
                return "success"
        return None
    text = body_text(record)
    lower = text.lower()  # cheap literal tests first: most lines are about something else
    if contains_any(lower, _FAILED_HINTS) and _FAILED.search(text):
        return "failure"
    if contains_any(lower, _SUCCEEDED_HINTS) and _SUCCEEDED.search(text):
        return "success"
    return None


_FAILED_HINTS = ("fail", "invalid", "incorrect", "wrong", "bad pass", "denied", "unauthori", "error")
_SUCCEEDED_HINTS = ("accepted", "succe", "logged in")


def login_keys(record: LogRecord) -> list[tuple[str, str]]:
    """(key kind, value): the actor and the source IP a login names, where known."""
    actor = attribute(record, "user.name", "enduser.id", "user.id", "usr.name", "audit.actor", "username")
    ip = attribute(record, "client.address", "source.address", "source.ip", "client.ip", "net.peer.ip",
                   "http.client_ip", "net.sock.peer.addr")
    if not actor or not ip:
        access = parse_access(record)
        if access is not None:
            actor = actor or access.user
            ip = ip or access.client
    if not actor or not ip:
        text = body_text(record)
        if not actor:
            m = _ACTOR.search(text)
            if m:
                actor = m.group("a") or m.group("b") or m.group("c") or ""
        if not ip:
            m = _IP.search(text)
            if m:
                ip = m.group("ip")
    keys = []
    if actor:
        keys.append(("actor", actor))
    if ip:
        keys.append(("source_ip", ip))
    return keys


class _Key:
    __slots__ = ("attack", "failures", "recent")

    def __init__(self, samples: int) -> None:
        self.failures: deque[int] = deque()
        self.recent: deque[dict] = deque(maxlen=samples)  # the latest failures, evidence once it is an attack
        self.attack: _Attack | None = None


class _Attack:
    __slots__ = ("actors", "count", "id", "ips", "samples", "services", "start_ns", "succeeded")

    def __init__(self, id: str, start_ns: int, samples: int) -> None:
        self.id, self.start_ns = id, start_ns
        self.count = 0
        self.samples = Samples(samples)
        self.services: set[str] = set()
        self.actors: set[str] = set()
        self.ips: set[str] = set()
        self.succeeded = False


class BruteForceDetector:
    kind = "security"

    def __init__(self, config: BruteForceConfig, samples: int = 5) -> None:
        self.config = config
        self.samples = samples
        self.window_ns = int(config.window_seconds * 1e9)
        self._keys: dict[tuple[str, str], _Key] = {}

    def observe(self, record: LogRecord) -> list[Event]:
        outcome = login_outcome(record)
        if outcome is None:
            return []
        keys = login_keys(record)
        t = record.timestamp_ns
        events: list[Event] = []
        for key in keys:
            state = self._keys.get(key)
            if outcome == "success":
                if state is not None and state.attack is not None and not state.attack.succeeded:
                    state.attack.succeeded = True
                    state.attack.samples.items.append({**sample(record), "note": "successful login"})
                    events.append(self._event(key, state.attack, None, success=record))
                continue
            if state is None:
                state = self._keys[key] = _Key(self.samples)
            failures = state.failures
            failures.append(t)
            while failures and failures[0] <= t - self.window_ns:
                failures.popleft()
            attack = state.attack
            if attack is None:
                state.recent.append(sample(record))
                if len(failures) < self.config.threshold:
                    continue
                attack = state.attack = _Attack(f"bruteforce-{key[0]}-{key[1]}-{failures[0]}", failures[0],
                                                self.samples)
                attack.count = len(failures)
                attack.samples.items = list(state.recent)
                new = True
            else:
                attack.count += 1
                attack.samples.add(record)
                new = False
            attack.services.add(record.service)
            attack.actors.update(v for k, v in keys if k == "actor")
            attack.ips.update(v for k, v in keys if k == "source_ip")
            if new:
                events.append(self._event(key, attack, None))
        return events

    def tick(self, now_ns: int) -> list[Event]:
        events: list[Event] = []
        for key in list(self._keys):
            state = self._keys[key]
            while state.failures and state.failures[0] <= now_ns - self.window_ns:
                state.failures.popleft()
            if state.attack is not None and not state.failures:
                events.append(self._event(key, state.attack, now_ns))
                state.attack = None
            if state.attack is None and not state.failures:
                del self._keys[key]
        return events

    def _event(self, key: tuple[str, str], attack: _Attack, end_ns: int | None,
               success: LogRecord | None = None) -> Event:
        kind, value = key
        who = f"user {value}" if kind == "actor" else f"source {value}"
        title = f"Brute force against {who}: {attack.count} failed logins"
        if attack.succeeded:
            title += ", then a successful login"
        return Event(
            self.kind, attack.start_ns, id=attack.id, end_ns=end_ns,
            severity="critical" if attack.succeeded else "warning", title=title,
            labels={"detector": "brute_force", kind: value,
                    **({"service": next(iter(attack.services))} if len(attack.services) == 1 else {})},
            data={"failed_logins": attack.count, "window_seconds": self.config.window_seconds,
                  "threshold": self.config.threshold, "services": sorted(attack.services),
                  "actors": sorted(attack.actors)[:50], "source_ips": sorted(attack.ips)[:50],
                  "succeeded": attack.succeeded, "samples": attack.samples.items})

