"""PII and secret redaction for log text and attributes.

Pure Python with no OpenTelemetry import, because two places need it: the SDK redacts in the
export thread before anything leaves the process, and the hub can redact at ingest what
other SDKs send. One `Redactor` holds an ordered list of `Rule`s; each rule has a cheap
pre-check (a substring test) so that a line without, say, an `@` never pays for the e-mail
regex. Matches that look alike but are not PII (a 16-digit microsecond timestamp is not a
NIK, an order number is not a card) are told apart by validators: the card issuer prefix and
the Luhn checksum, the NIK's province code, birth date and serial.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_SECRET_KEYS", "Redactor", "Rule", "default_rules", "luhn_ok", "nik_ok"]


@dataclass
class Rule:
    """One kind of sensitive text: where to look, how to find it, what to put instead.

    `precheck` runs first and must be cheap (a substring test): the regex runs only when it
    says yes. `validate`, when given, sees each match and may decline it (a Luhn failure).
    """

    name: str
    pattern: re.Pattern[str]
    replacement: str
    precheck: Callable[[str], bool] | None = None
    validate: Callable[[re.Match[str]], bool] | None = None
    enabled: bool = True
    # a regex fragment, matched on the lower-cased text, true whenever `precheck` is: when every
    # active rule has one, a single search over their union clears most clean text at once
    trigger: str | None = None


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_issuer(digits: str) -> bool:
    """Issuer prefixes and lengths: Visa, Mastercard, Amex, Discover, JCB, UnionPay, Diners."""
    n = len(digits)
    p2, p4 = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if p4 == 6011 or p2 == 65 or 644 <= int(digits[:3]) <= 649:
        return 16 <= n <= 19
    if 3528 <= p4 <= 3589:
        return 16 <= n <= 19
    if p2 == 62:
        return 16 <= n <= 19
    if p2 in (36, 38) or 300 <= int(digits[:3]) <= 305:
        return n == 14
    return False


def _card_match(m: re.Match[str]) -> bool:
    digits = m.group().replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and _card_issuer(digits) and luhn_ok(digits)


# Indonesian province codes (the first two digits of a NIK), Kemendagri numbering.
_PROVINCES = frozenset(
    [11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53,
     61, 62, 63, 64, 65, 71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96, 97])


def nik_ok(digits: str) -> bool:
    """A plausible NIK: province, regency and district codes, birth date (day + 40 for women),
    and a non-zero serial. Sixteen-digit timestamps and ids fail one of these."""
    if len(digits) != 16 or not digits.isdigit():
        return False
    if int(digits[:2]) not in _PROVINCES or digits[2:4] == "00" or digits[4:6] == "00":
        return False
    day, month = int(digits[6:8]), int(digits[8:10])
    if day > 40:
        day -= 40
    return 1 <= day <= 31 and 1 <= month <= 12 and digits[12:] != "0000"


def _nik_match(m: re.Match[str]) -> bool:
    return nik_ok(m.group())


def _has_digits(s: str) -> bool:
    """Seven or more digits in one run of digits and separators: the least any digit rule needs
    (card 13, NIK 16, phone 7+). `doc-10293` or `3 of 5` never reach the three regexes."""
    return _DIGIT_RUN(s) is not None


_DIGIT_RUN = re.compile(r"\d[\d ().-]{5,}\d").search  # == _DIGIT_TRIGGER

_SECRET_TRIGGER = "pass|pwd|secret|token|key|auth|credential|cookie|session"
_SECRET_WORDS = re.compile(_SECRET_TRIGGER).search
_DIGIT_TRIGGER = r"\d[\d ().-]{5,}\d"


def _mentions_secret(s: str) -> bool:
    return _SECRET_WORDS(s.lower()) is not None


def default_rules() -> list[Rule]:
    """The built-in rules, in the order they run (bearer before JWT, card before NIK)."""
    return [
        Rule("bearer", re.compile(r"\b(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), "Bearer [REDACTED:bearer]",
             precheck=lambda s: "earer" in s or "EARER" in s, trigger="earer"),
        Rule("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "[REDACTED:jwt]",
             precheck=lambda s: "eyJ" in s, trigger="eyj"),
        Rule("secret", re.compile(
            r"(?i)\b((?:[a-z0-9]+[_.-])?(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
            r"|private[_-]?key|client[_-]?secret|authorization|credentials?|session[_-]?id|cookie))"
            r"(\"?\s*[=:]\s*\"?(?:(?i:basic|digest)\s+)?)(?!\[REDACTED|(?i:bearer)\s)([^\s\"',;&]+)"),
             r"\1\2[REDACTED:secret]", precheck=_mentions_secret, trigger=_SECRET_TRIGGER),
        Rule("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
             "[REDACTED:email]", precheck=lambda s: "@" in s, trigger="@"),
        Rule("card", re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w-])"), "[REDACTED:card]",
             precheck=_has_digits, validate=_card_match, trigger=_DIGIT_TRIGGER),
        Rule("nik", re.compile(r"(?<![\w.-])\d{16}(?![\w.-])"), "[REDACTED:nik]",
             precheck=_has_digits, validate=_nik_match, trigger=_DIGIT_TRIGGER),
        Rule("phone", re.compile(
            # international: +CC then 7-13 more digits in groups
            r"(?<![\w+])\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,5}){1,4}(?![\w-])"
            # Indonesian mobile: 08xx-xxxx-xxxx (10-13 digits)
            r"|(?<![\w.:/-])08[1-9]\d{1,2}[ .-]?\d{3,4}[ .-]?\d{3,5}(?![\w:/-])"
            # US/NANP: (555) 123-4567, 555-123-4567, 555.123.4567
            r"|(?<![\w.:/-])(?:\(\d{3}\) ?|\d{3}[.-])\d{3}[.-]\d{4}(?![\w.:/-])"),
             "[REDACTED:phone]", precheck=_has_digits, trigger=_DIGIT_TRIGGER),
    ]


DEFAULT_SECRET_KEYS = re.compile(
    r"(?i)(?:^|[._-])(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    r"|client[_-]?secret|authorization|proxy-authorization|credentials?|cookie|set-cookie|session[_-]?id"
    r"|x-api-key)(?:$|[._-])")


@dataclass
class Redactor:
    """Applies rules to text and attribute values and counts what each rule redacted.

    `exempt_keys`: attributes never touched (say, `user.email` a team decided to keep);
    `force_keys`: attributes whose whole value is always replaced.
    """

    rules: list[Rule] = field(default_factory=default_rules)
    secret_keys: re.Pattern[str] | None = DEFAULT_SECRET_KEYS
    exempt_keys: set[str] = field(default_factory=set)
    force_keys: set[str] = field(default_factory=set)
    secret_replacement: str = "[REDACTED:secret]"

    def __post_init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._counts_lock = threading.Lock()  # span and log export threads share one redactor
        self._key_cache: dict[str, bool] = {}
        # attribute values found clean (file paths, function names, routes repeat endlessly);
        # only clean ones are cached, so the per-rule counts stay exact
        self._clean: set[str] = set()
        self._refresh()

    def _refresh(self) -> None:
        self._active = [r for r in self.rules if r.enabled]
        triggers = [r.trigger for r in self._active]
        self._gate = (re.compile("|".join(dict.fromkeys(t for t in triggers if t))).search
                      if self._active and all(triggers) else None)
        self._key_cache.clear()
        if hasattr(self, "_clean"):
            self._clean.clear()

    # --- configuration ---

    def enable(self, *names: str) -> None:
        self._set(names, True)

    def disable(self, *names: str) -> None:
        self._set(names, False)

    def _set(self, names: Iterable[str], enabled: bool) -> None:
        known = {r.name: r for r in self.rules}
        for name in names:
            if name == "secret_keys":
                raise ValueError("secret key matching is configured with secret_keys=None, not disable()")
            if name not in known:
                raise ValueError(f"unknown redaction rule {name!r}; known: {', '.join(known)}")
            known[name].enabled = enabled
        self._refresh()

    def add_rule(self, rule: Rule, before: str | None = None) -> None:
        index = next((i for i, r in enumerate(self.rules) if r.name == before), len(self.rules))
        self.rules.insert(index, rule)
        self._refresh()

    def exempt(self, *keys: str) -> None:
        self.exempt_keys.update(keys)
        self._key_cache.clear()

    def force(self, *keys: str) -> None:
        self.force_keys.update(keys)
        self._key_cache.clear()

    # --- work ---

    def counts(self) -> dict[str, int]:
        """Redactions per rule since creation (`secret_key` counts whole attribute values)."""
        return dict(self._counts)

    def _count(self, name: str, n: int) -> None:
        with self._counts_lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def redact_text(self, text: str, only: Collection[str] | None = None) -> str:
        """`only`: the names of the rules that may match (a caller that already scanned for
        them, like the hub's batch prefilter, skips the others)."""
        gate = self._gate
        if gate is not None and gate(text.lower()) is None:
            return text
        last_check, last_result = None, False
        for rule in self._active:
            if only is not None and rule.name not in only:
                continue
            check = rule.precheck
            if check is not None:
                if check is not last_check:  # rules sharing a pre-check (the digit rules) run it once
                    last_check, last_result = check, check(text)
                if not last_result:
                    continue
            if rule.validate is None:
                text, n = rule.pattern.subn(rule.replacement, text)
            else:
                validate, replacement = rule.validate, rule.replacement
                hits = 0

                def sub(m: re.Match[str], validate=validate, replacement=replacement) -> str:
                    nonlocal hits
                    if validate(m):
                        hits += 1
                        return replacement
                    return m.group()

                text = rule.pattern.sub(sub, text)
                n = hits
            if n:
                self._count(rule.name, n)
        return text

    def _secret_key(self, key: str) -> bool:
        hit = self._key_cache.get(key)
        if hit is None:
            if key in self.exempt_keys:
                hit = False
            else:
                hit = key in self.force_keys or bool(self.secret_keys and self.secret_keys.search(key))
            if len(self._key_cache) < 4096:
                self._key_cache[key] = hit
        return hit

    def redact_value(self, key: str, value: Any) -> Any:
        """One attribute value: whole-value for secret keys, text rules for strings."""
        if key in self.exempt_keys:
            return value
        if self._secret_key(key):
            if value in (None, ""):
                return value
            self._count("secret_key", 1)
            return self.secret_replacement
        if isinstance(value, str):
            if value in self._clean:
                return value
            out = self.redact_text(value)
            if out == value and len(value) <= 256:
                if len(self._clean) >= 4096:
                    self._clean.clear()
                self._clean.add(value)
            return out
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
            return type(value)(self.redact_text(v) if isinstance(v, str) else v for v in value)
        return value

    def redact_attributes(self, attributes: dict[str, Any] | Any) -> dict[str, Any]:
        """A copy with every value redacted; the same object when nothing changed (no allocation)."""
        out: dict[str, Any] | None = None
        for key, value in attributes.items():
            new = self.redact_value(key, value)
            if new is not value and new != value:
                if out is None:
                    out = dict(attributes)
                out[key] = new
        return attributes if out is None else out
