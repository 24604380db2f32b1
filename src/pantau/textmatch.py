"""Words as the full-text index sees them (FTS5's unicode61 tokenizer with remove_diacritics
2): runs of letters and digits, lower-cased, accents removed. The store and the query layers
share this so that checking a record by hand agrees with what the index found."""

from __future__ import annotations

import re
import unicodedata

WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def tokens(text: str) -> list[str]:
    return WORD.findall(fold(text))


def contains_sequence(words: list[str], seq: list[str]) -> bool:
    """Whether `seq` appears in `words` as consecutive words."""
    if len(seq) == 1:
        return seq[0] in words
    n = len(seq)
    first = seq[0]
    return any(words[i] == first and words[i:i + n] == seq for i in range(len(words) - n + 1))
