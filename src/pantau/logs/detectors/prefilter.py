"""Which records of a batch any detector could act on, found in one pass over the batch.

Most log lines are about something else: no failed login, no request, no privilege word, not
an error. For those, the detectors only need to count them (silence). A Hyperscan database of
the words every detector's own test starts from scans a whole batch's bodies at once, and
only the records it flags are built and inspected; the detectors then apply their exact
tests, so the result is the same as inspecting every record (the patterns here must stay a
superset of theirs: `tests/test_unit_log_detectors.py` checks both paths give the same events).

Without the `hyperscan` package every record is inspected.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import re

from pantau.logs.detectors import access, brute_force, privilege

log = logging.getLogger("pantau.logs")

# Caseless literals: the detectors' own cheap tests (brute force and privilege hints) ...
_WORDS = sorted({*brute_force._FAILED_HINTS, *brute_force._SUCCEEDED_HINTS, *privilege._HINTS})
# ... and the start of an HTTP request line or a JSON access log's target field, which every
# access-log reading needs
_REQUEST = r"(?:GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS|CONNECT|TRACE|PROPFIND) "

# Attribute keys (as bytes in the OTLP encoding) that some detector reads; a record without
# any is inspected from its body, severity and service alone, without decoding its payload.
DETECTOR_KEYS = re.compile(rb"url\.|http\.|audit|outcome|user|client|source\.|log\.type|event\.|net\.|role|group"
                           rb"|target|login|auth")


class BodyPrefilter:
    def __init__(self, database) -> None:
        self._db = database

    @staticmethod
    def build() -> BodyPrefilter | None:
        try:
            import hyperscan
        except ImportError:
            log.info("hyperscan is not installed: every log record goes through the detectors")
            return None
        patterns = [(re.escape(w), True) for w in _WORDS] + [(_REQUEST, False), (access._JSON_TARGET.pattern, False)]
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        db.compile(expressions=[p.encode() for p, _ in patterns], ids=list(range(len(patterns))),
                   elements=len(patterns),
                   flags=[hyperscan.HS_FLAG_CASELESS if caseless else 0 for _, caseless in patterns])
        return BodyPrefilter(db)

    def candidates(self, bodies: list[str]) -> set[int]:
        """Indexes of the bodies in which some detector's words occur."""
        if not bodies:
            return set()
        joined = "\x00".join(bodies)
        if joined.isascii():
            data, lengths = joined.encode("ascii"), [len(b) for b in bodies]
        else:
            chunks = [b.encode("utf-8", "surrogatepass") for b in bodies]
            data, lengths = b"\x00".join(chunks), [len(c) for c in chunks]
        ends: list[int] = []

        def on_match(_id: int, _start: int, end: int, _flags: int, _ctx) -> None:
            ends.append(end)

        self._db.scan(data, match_event_handler=on_match)
        if not ends:
            return set()
        starts = list(itertools.accumulate((n + 1 for n in lengths[:-1]), initial=0))
        return {bisect.bisect_right(starts, end - 1) - 1 for end in ends}
