"""Privilege changes: someone gained a role, a group or a grant.

Audit records (`log.type=audit`, `pantau.audit`, `audit.*` attributes) whose action names a
role, permission, privilege or group change; and the lines systems write for the same thing
when nobody made them audit records: `usermod -aG sudo`, `gpasswd -a`, "added user x to group
wheel", SQL `GRANT ... TO` and `ALTER ROLE ... SUPERUSER`, "role changed to admin". Each is
one event (they are rare, and each one matters); critical when the new privilege is an
administrative one.
"""

from __future__ import annotations

import hashlib
import re

from pantau.logs.audit import is_audit
from pantau.logs.detectors.base import attribute, body_text, contains_any, sample
from pantau.logs.detectors.config import PrivilegeConfig
from pantau.model import LogRecord
from pantau.store.base import Event

_AUDIT_ACTION = re.compile(r"role|privilege|permission|grant|sudo|admin|promot|elevat|group|acl|policy",
                           re.IGNORECASE)
_AUDIT_NOT = re.compile(r"revok|remov|demot|delete|list|read|view|get|check|denied", re.IGNORECASE)
_TEXT = re.compile(
    r"\busermod\b[^\n]*\s-a?G\s*\S+|\bgpasswd\b[^\n]*\s-a\s+\S+|\badd(?:ed|ing)? (?:user )?['\"`]?[\w.@-]+['\"`]? to "
    r"(?:the )?group\b|\bgrant(?:ed)?\b[^\n]{0,80}\bto\b|\balter (?:user|role)\b[^\n]*\b(?:superuser|createrole|"
    r"sysadmin)\b|\brole (?:changed|granted|assigned|updated)\b|\bpromoted to\b|\bprivileges? (?:escalat|elevat|grant)"
    r"|\bnew (?:role|permission)s?\b|\bsudoers\b[^\n]*\b(?:added|modified|changed)\b",
    re.IGNORECASE)
# every _TEXT alternative contains one of these
_HINTS = ("usermod", "gpasswd", "group", "grant", "alter ", "role", "promoted", "privilege", "permission", "sudoers")
_ADMIN = re.compile(r"\b(?:admin\w*|root|superuser|sudo|sudoers|wheel|owner|sysadmin|all privileges|dba)\b",
                    re.IGNORECASE)


class PrivilegeDetector:
    kind = "security"

    def __init__(self, config: PrivilegeConfig, samples: int = 5) -> None:
        self.config = config

    def match(self, record: LogRecord) -> str | None:
        """What changed ("audit: role.grant" or the matching text), or None."""
        if is_audit(record.attributes, record.event_name):
            action = attribute(record, "audit.action", "event.action")
            if action and _AUDIT_ACTION.search(action) and not _AUDIT_NOT.search(action):
                outcome = attribute(record, "audit.outcome", "event.outcome").lower()
                if outcome not in ("failure", "failed", "denied"):
                    return f"audit: {action}"
        text = body_text(record)
        lower = text.lower()
        if not contains_any(lower, _HINTS):
            return None
        m = _TEXT.search(text)
        return m.group(0)[:200] if m else None

    def observe(self, record: LogRecord) -> list[Event]:
        what = self.match(record)
        if what is None:
            return []
        actor = attribute(record, "audit.actor", "user.name", "enduser.id", "user.id")
        target = attribute(record, "audit.target", "audit.subject", "target.user", "user.target")
        role = attribute(record, "audit.role", "audit.new_role", "role", "group", "audit.group")
        text = f"{what} {role} {body_text(record)[:500]}"
        admin = _ADMIN.search(text)
        t = record.timestamp_ns
        digest = hashlib.blake2b(f"{record.service}\0{t}\0{body_text(record)}".encode(), digest_size=6).hexdigest()
        who = f"{actor or 'someone'} gave {target or 'an account'}" if (actor or target) else "an account got"
        return [Event(
            self.kind, t, id=f"privilege-{digest}", end_ns=t, severity="critical" if admin else "warning",
            title=f"Privilege change in {record.service}: {who} {role or (admin.group(0) if admin else 'new rights')}",
            labels={"service": record.service, "detector": "privilege_change",
                    **({"actor": actor} if actor else {}), **({"target": target} if target else {})},
            data={"change": what, "actor": actor, "target": target, "role": role,
                  "administrative": bool(admin), "samples": [sample(record)]})]

    def tick(self, now_ns: int) -> list[Event]:
        return []
