"""A multi-pattern prefilter that finds which records of a batch may hold PII, at GB/s.

Python's `re` runs each redaction rule over every line at roughly 30 ns a character, which
at ingest costs more than storing the line. Hyperscan compiles one loose version of every
rule (the same pattern without its look-arounds and validators, so it matches a superset)
into a single automaton that scans a whole batch in one pass; only the few records it flags
go through the exact rules in `pantau.redaction`. Matches cannot cross records: records are
joined with a NUL byte, which none of the patterns accepts.

Where the `hyperscan` package is not available (it ships wheels for x86-64 Linux and macOS),
`build()` returns None and the caller falls back to scanning with `re`.

The databases are compiled in a short-lived child process and loaded here from their
serialised form: compiling runs Hyperscan's compiler, whose code pages (~4 MB) and working
memory would otherwise stay resident in the hub for good, though only the scanner is used
after start-up. If the child cannot run, they are compiled here.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import struct
import subprocess
import sys

from pantau.redaction import Redactor

log = logging.getLogger("pantau.redaction")

SECRET_WORDS = (r"(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
                r"|client[_-]?secret|authorization|credentials?|session[_-]?id|cookie)")

# rule name -> (loose pattern, caseless)
LOOSE: dict[str, tuple[str, bool]] = {
    "bearer": (r"bearer\s", True),
    "jwt": (r"eyJ[A-Za-z0-9_-]{4,}\.eyJ", False),
    "secret": (SECRET_WORDS + r"\"?\s*[=:]", True),
    "email": (r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]", False),
    "card": (r"\d(?:[ -]?\d){12,18}", False),
    "nik": (r"\d{16}", False),
    "phone": (r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,5}){1,4}"
              r"|08[1-9]\d{1,2}[ .-]?\d{3,4}[ .-]?\d{3,5}"
              r"|(?:\(\d{3}\) ?|\d{3}[.-])\d{3}[.-]\d{4}", False),
}
# attribute keys named like secrets, as they appear inside a record's encoding
SECRET_KEYS = r"password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key" \
              r"|client[_-]?secret|authorization|credentials?|cookie|session[_-]?id"


class Prefilter:
    def __init__(self, database, keys_database, names: list[str]) -> None:
        self._db = database
        self._keys_db = keys_database
        self.names = names  # rule name of each pattern id ("secret_key" for key names)

    @staticmethod
    def build(redactor: Redactor) -> Prefilter | None:
        try:
            import hyperscan
        except ImportError:
            log.info("hyperscan is not installed: redaction candidates are found with Python's re (slower)")
            return None
        active = [r.name for r in redactor._active]
        if any(name not in LOOSE for name in active):
            return None  # a custom rule: only the exact scan knows it
        patterns = [LOOSE[name] for name in active]
        key_patterns = []
        if redactor.secret_keys is not None:
            key_patterns.append((SECRET_KEYS, True))
        key_patterns += [(_literal(k), False) for k in sorted(redactor.force_keys)]
        # bodies: the text rules; encoded records (attributes): the text rules and the key names
        text_db, record_db = _compile_isolated(hyperscan, [patterns, patterns + key_patterns])
        return Prefilter(text_db, record_db, active + ["secret_key"] * len(key_patterns))

    def text_candidates(self, texts: list[str]) -> dict[int, set[str]]:
        """The texts (log bodies) in which some loose rule pattern matches: index -> the
        names of the rules that may apply."""
        if self._db is None or not texts:
            return {}
        joined = "\x00".join(texts)
        if joined.isascii():  # the usual case: byte offsets are character offsets
            return self._scan(self._db, joined.encode("ascii"), texts)
        chunks = [t.encode("utf-8", "surrogatepass") for t in texts]
        return self._scan(self._db, b"\x00".join(chunks), chunks)

    def record_candidates(self, payloads: list[bytes]) -> dict[int, set[str]]:
        """The encoded records whose attributes may need redaction, with the rules concerned."""
        if self._keys_db is None or not payloads:
            return {}
        return self._scan(self._keys_db, b"\x00".join(payloads), payloads)

    def _scan(self, db, data: bytes, chunks: list) -> dict[int, set[str]]:
        """`data` is `chunks` joined by one NUL each (lengths are only taken when something matched)."""
        hits: list[tuple[int, int]] = []

        def on_match(pattern: int, _start: int, end: int, _flags: int, _ctx) -> None:
            hits.append((end, pattern))

        db.scan(data, match_event_handler=on_match)
        if not hits:
            return {}
        starts = list(itertools.accumulate((len(c) + 1 for c in chunks[:-1]), initial=0))
        found: dict[int, set[str]] = {}
        for end, pattern in hits:
            found.setdefault(bisect.bisect_right(starts, end - 1) - 1, set()).add(self.names[pattern])
        return found


def _literal(text: str) -> str:
    return "".join("\\" + c if not c.isalnum() else c for c in text)


def _compile(hyperscan, patterns: list[tuple[str, bool]]):
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    flags = [hyperscan.HS_FLAG_CASELESS if caseless else 0 for _, caseless in patterns]
    db.compile(expressions=[p.encode() for p, _ in patterns], ids=list(range(len(patterns))),
               elements=len(patterns), flags=flags)
    return db


def _compile_isolated(hyperscan, pattern_sets: list[list[tuple[str, bool]]]) -> list:
    """One database per pattern set (None for an empty set), compiled by a child process."""
    try:
        proc = subprocess.run([sys.executable, "-c", "from pantau.logs.prefilter import compile_main; compile_main()"],
                              input=json.dumps(pattern_sets).encode(), capture_output=True, timeout=60, check=True)
        blobs = _unpack(proc.stdout, len(pattern_sets))
        databases = []
        for blob in blobs:
            db = None
            if blob:
                db = hyperscan.loadb(blob, hyperscan.HS_MODE_BLOCK)
                db.scratch = hyperscan.Scratch(db)
            databases.append(db)
        return databases
    except (OSError, subprocess.SubprocessError, ValueError, struct.error, hyperscan.error) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        log.warning("compiling the redaction prefilter in a child process failed (%s%s); compiling here",
                    exc, f": {detail.decode(errors='replace').strip()[-300:]}" if detail else "")
        return [_compile(hyperscan, patterns) if patterns else None for patterns in pattern_sets]


def _unpack(data: bytes, count: int) -> list[bytes]:
    blobs, pos = [], 0
    for _ in range(count):
        (size,) = struct.unpack_from("<Q", data, pos)
        blobs.append(data[pos + 8:pos + 8 + size])
        pos += 8 + size
    if pos != len(data):
        raise ValueError(f"prefilter compiler output has {len(data) - pos} stray bytes")
    return blobs


def compile_main() -> None:
    """The child: pattern sets as JSON on stdin; each serialised database, length-prefixed, on stdout."""
    import hyperscan

    out = bytearray()
    for patterns in json.load(sys.stdin):
        blob = hyperscan.dumpb(_compile(hyperscan, [(p, c) for p, c in patterns])) if patterns else b""
        out += struct.pack("<Q", len(blob)) + blob
    sys.stdout.buffer.write(out)
