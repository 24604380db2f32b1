"""Masking: replace the variable parts of a log line (numbers, ids, addresses, paths,
sizes, times) with one placeholder before Drain sees it.

Why one placeholder (`<V>`) and not typed ones (`<IP>`, `<NUM>`): Drain's prefix tree
branches on the first tokens, so a line starting with an IP and the same line starting with
a host name would land in different branches and never meet. Why not Drain's own `<*>`:
Drain counts a `<*>` in a template as a *mismatch* when it scores similarity, so a line that
is mostly variables ("onExtend:<*> <*> <*> <*>") never matches its own template. A distinct
placeholder compares equal to itself, and the miner's similarity ignores it (see
`patterns._PantauDrain`): only the literal words decide whether two lines are one event.

The masks are generic (no per-system rules) and ordered from the most specific to the
least: a URL or path is masked whole before its digits are; an IP before its numbers.
"""

from __future__ import annotations

import re

PLACEHOLDER = "<V>"

_B = r"(?<![A-Za-z0-9])"  # not glued to a letter or digit on the left ...
_E = r"(?![A-Za-z0-9])"  # ... or on the right

# Masks within one whitespace-separated token, tried in this order at each position.
TOKEN_MASKS: list[tuple[str, str]] = [
    ("url", r"\b[a-zA-Z][\w+.-]*://[^\s\"'<>]*"),
    # absolute paths of two or more parts, or one part with a digit (/tmp/x, /user/u1/f, /blk9)
    ("path", r"(?<![\w.~/-])(?:/[\w.~@%+-]+){2,}/?|(?<![\w.~/-])/[\w.~@%+-]*\d[\w.~@%+-]*"),
    # host names with at least three labels (www.example.com), optionally with a port
    ("host", r"(?<![\w.])(?:[A-Za-z0-9-]+\.){2,}[a-z]{2,6}(?::\d{1,5})?(?![\w.])"),
    ("uuid", _B + r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}" + _E),
    ("iso_date", _B + r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?" + _E),
    ("ipv4", _B + r"\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?" + _E),
    ("ipv6", r"(?<![\w:])[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}(?![\w:])"),
    ("host_port", r"(?<![\w.:/-])(?=[\w.-]*[A-Za-z])[\w-]+(?:\.[\w-]+)*:\d{1,5}(?![\w.:])"),
    ("clock", _B + r"\d{1,2}(?::\d{2}){1,2}(?:[.,]\d+)?" + _E),
    ("hex", _B + r"0x[0-9a-fA-F]+" + _E + "|" + _B + r"(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}" + _E),
    ("quantity", _B + r"\d+(?:\.\d+)?(?:[KMGT]i?B|ms|us|ns|s)" + _E),  # glued: 12ms, 1.5GiB
    ("number", _B + r"[-+]?\d+(?:\.\d+)?" + _E),
    # an identifier glued to its number: u1234, node017 (two digits or more: eth0 and ext4 stay words)
    ("id_number", r"(?<=[A-Za-z])\d{2,}" + _E),
]

# Units that turn a preceding number into one quantity ("1190 bytes" is one variable).
UNITS = frozenset([
    "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB", "byte", "bytes", "ms", "us", "ns",
    "sec", "secs", "second", "seconds", "min", "mins", "minute", "minutes", "hour", "hours",
])
_WEEKDAYS = frozenset(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
_MONTHS = frozenset(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])


class Masker:
    """Masks a line and returns its tokens (split on whitespace, as Drain splits).

    Speed is the point of its shape: it works token by token, where most tokens are plain
    words that a cheap test lets through untouched, and remembers how it masked recent
    tokens (ids, hosts and paths repeat). Regexes over the whole line measured 3-6x slower.
    What spans tokens is done by looking at neighbours: a number followed by a unit, with an
    optional alternative in parentheses ("1190 bytes (1.16 KB)"); a date written
    "Fri Jul  1 00:00:00 2005"; and repeats of one masked token ("blk_1 blk_2"), which are
    one variable-length parameter.
    """

    def __init__(self, token_masks: list[tuple[str, str]] | None = None, memo_size: int = 20_000) -> None:
        masks = TOKEN_MASKS if token_masks is None else token_masks
        self._token = re.compile("|".join(f"(?:{pattern})" for _, pattern in masks))
        self._memo: dict[str, str] = {}
        self._memo_size = memo_size

    def mask_token(self, token: str) -> str:
        if token.isalpha():
            return token
        masked = self._memo.get(token)
        if masked is None:
            if token.isdigit():
                return PLACEHOLDER
            # unique ids (doc-123456, req_0042, u1234) would each cost a regex pass and a memo slot:
            # these shapes give the same result as the masks, with string methods
            core = token.strip(_WRAPPERS)  # (12) [3] 200, "5"
            if core and (core.isdigit() or _is_decimal(core)):
                left = token.index(core)
                return token[:left] + PLACEHOLDER + token[left + len(core):]
            head = token.rstrip(_DIGITS)
            if head != token and head:
                if head[-1] in "-_" and head[:-1].isalpha():
                    return head + PLACEHOLDER
                if head.isalpha() and len(token) - len(head) >= 2 and head.strip(_HEX_LETTERS) != "":
                    return head + PLACEHOLDER
            masked = self._token.sub(PLACEHOLDER, token) if _CANDIDATE.search(token) else token
            if len(self._memo) >= self._memo_size:
                self._memo.clear()
            self._memo[token] = masked
        return masked

    def tokens(self, line: str) -> list[str]:
        raw = line.split()
        out: list[str] = []
        append = out.append
        memo = self._memo
        n = len(raw)
        i = 0
        prev = ""  # the last token out, or "" (the hot loop avoids calls for plain words)
        while i < n:
            token = raw[i]
            i += 1
            if token.isalpha():
                if token in _WEEKDAYS and i + 2 < n and raw[i] in _MONTHS and raw[i + 1].isdigit():
                    i = _skip_date(raw, i + 2)
                    token = PLACEHOLDER
                elif token in UNITS and (prev == PLACEHOLDER or _is_value(prev)):
                    out[-1] = prev = PLACEHOLDER
                    if i + 1 < n and raw[i].startswith("("):
                        i = _skip_alternative(self, raw, i, out)
                        prev = out[-1]
                    continue
                else:
                    append(token)
                    prev = token
                    continue
            else:
                if prev and prev[-1] == ">" and _is_value(prev):
                    unit, tail = _split_unit(token)
                    if unit:
                        out[-1] = prev = PLACEHOLDER + tail
                        continue
                masked = memo.get(token)
                token = masked if masked is not None else self.mask_token(token)
            if token == prev and token != PLACEHOLDER and PLACEHOLDER in token:
                continue  # a variable-length list ("blk_1 blk_2 blk_3") is one parameter
            append(token)
            prev = token
        return out

    def __call__(self, line: str) -> str:
        return " ".join(self.tokens(line))


def _is_value(token: str) -> bool:
    """A masked number, possibly with a comparison sign ("<1 sec")."""
    return token == PLACEHOLDER or (len(token) == 4 and token[0] in "<>~" and token.endswith(PLACEHOLDER))


def _split_unit(token: str) -> tuple[str, str]:
    """("MB", ")") for "MB)": a unit with the punctuation glued after it, or ("", "")."""
    word = token.rstrip(",;:.)]}")
    return (word, token[len(word):]) if word in UNITS else ("", "")


def _skip_date(raw: list[str], i: int) -> int:
    """Past the clock and optional year of "Fri Jul 1 00:00:00 2005" (i: after the day)."""
    n = len(raw)
    if i < n and raw[i].count(":") == 2:
        i += 1
        if i < n and len(raw[i]) == 4 and raw[i].isdigit():
            i += 1
    return i


def _skip_alternative(masker: Masker, raw: list[str], i: int, out: list[str]) -> int:
    """After "1190 bytes": skip "(1.16 KB)" and keep any punctuation after its ")"."""
    inner = masker.mask_token(raw[i][1:])
    if inner != PLACEHOLDER:
        return i
    unit, tail = _split_unit(raw[i + 1])
    if unit and tail.startswith(")"):
        if tail[1:]:
            out[-1] += tail[1:]
        return i + 2
    return i


_DIGITS = "0123456789"
_WRAPPERS = "()[]{},;\"'"


def _is_decimal(text: str) -> bool:
    """12.5 (not 1.2.3, not .5)"""
    whole, dot, fraction = text.partition(".")
    return bool(dot) and whole.isdigit() and fraction.isdigit()
_HEX_LETTERS = "abcdefABCDEF"
# a token a mask can change has a digit, a slash, a colon or two dots
_CANDIDATE = re.compile(r"[\d/:]|\..*\.")


def display(template: str) -> str:
    """A template as users (and the loghub benchmark) write it: every variable is `<*>`, and an
    identifier with a variable part (`blk_<*>`, `attempt_<*>_<*>_m_<*>`) is one variable."""
    if PLACEHOLDER not in template:
        return template
    tokens = template.split(" ")
    for i, token in enumerate(tokens):
        if PLACEHOLDER in token:
            tokens[i] = _ID_WITH_VARIABLE.sub("<*>", token)
    return " ".join(tokens).replace(PLACEHOLDER, "<*>")


# word_<V>, word_<V>_word0, word_word_<V>_<V>: an identifier made of a prefix and variable parts
_ID_WITH_VARIABLE = re.compile(r"(?<![\w<>])[A-Za-z][A-Za-z0-9]*_(?:[A-Za-z0-9]+_)*(?:<V>(?:_[A-Za-z0-9]+|_<V>)*)"
                               r"(?:_[A-Za-z0-9]+)*(?![\w<>])")
