"""Prometheus remote-write 1.0 requests into a `SampleBatch`: decompress, decode, validate.

A request is accepted or refused whole: every label set and timestamp is checked before
anything is handed to the store, so a refused request has stored nothing ("nothing stored
half"; Prometheus gets the same from rolling back its appender).

How this differs from Prometheus 2.42's own receiver (measured against it), and why:

* label sets without `__name__`, with an invalid metric or label name, or with a label name
  twice are refused with 400 naming the label set. 2.42 stores the first two as they are and
  answers the third with 500, which its own sender retries forever; later Prometheus
  versions validate label sets too.
* native histograms (`TimeSeries.histograms`) get 400: pantau stores classic histograms only
  (2.42 without the feature flag answers 500, retried forever).
* samples outside the accepted window (older than metrics retention, or further ahead than
  `limits.future_tolerance`) get 400 "out of bounds", as 2.42 answers samples too old for its
  head. Out-of-order and duplicate samples are accepted (last write wins), which 2.42 refuses
  without its out-of-order window.

Like Prometheus, labels with an empty value are dropped, label order on the wire does not
matter, exemplars are ignored, and the HTTP headers are not checked: the body must be a snappy
*block* (a framed stream or an uncompressed body fails as corrupt snappy input).

Speed: Prometheus sends each series once per request, usually with one sample, so per-series
work is what counts. A series' encoding is its labels followed by its samples; a label set
seen before is found by its raw encoding (one slice and one dict lookup), and the common
one-sample tail is decoded for all series of the request at once with NumPy. Anything else
(several samples, a zero timestamp, a new label set) takes the general path through upb.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from pantau.ingest import remote_write_pb as pb
from pantau.model import METRIC_NAME, Labels, MetricMetadata, SampleBatch, series_key

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_CACHE_LIMIT = 100_000  # label sets remembered (as the OTLP path): bounds memory

# A series whose encoding ends with exactly one sample: `0x12 len` (field 2) then the Sample:
# `0x09` + 8-byte double value, `0x10` + a 6-byte varint timestamp (every ms timestamp from
# 1971 to 2109), or the timestamp alone when the value is 0.0 (proto3 leaves zeros out).
_TAIL_VALUE = 18
_TAIL_ZERO = 9
# The most a snappy block can expand: a 3-byte copy element writes at most 64 bytes.
_MAX_EXPANSION = 22


class RemoteWriteError(ValueError):
    """A request Prometheus would refuse with 400 (its sender drops it and does not retry)."""


class TooLarge(RemoteWriteError):
    """The body, compressed or not, is over `limits.max_request_bytes` (413)."""


@dataclass(slots=True)
class _Series:
    labels: Labels
    key: str
    sid: int  # unique per label set: tells duplicates within a request apart cheaply


def _corrupt(detail: str) -> RemoteWriteError:
    detail = detail.removeprefix("snappy: corrupt input").strip(" ()") or "invalid block"
    return RemoteWriteError(f"snappy: corrupt input ({detail}); the body must be one snappy block, "
                            "not a framed stream, not uncompressed")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if not n:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _describe(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in pairs) + "}"


def _varint6(cols: np.ndarray) -> np.ndarray:
    """Little-endian base-128 varints of exactly six bytes (one per row) as int64."""
    out = np.zeros(len(cols), dtype=np.int64)
    for i in range(6):
        out |= (cols[:, i].astype(np.int64) & 0x7F) << (7 * i)
    return out


def _six_byte_varints(cols: np.ndarray) -> np.ndarray:
    """Rows whose six bytes form one complete varint (continuation bit on the first five only)."""
    return (cols[:, :5] >= 0x80).all(axis=1) & (cols[:, 5] < 0x80)


class RemoteWriteDecoder:
    """Decodes requests, remembering label sets between them (Prometheus resends the same series
    every few seconds)."""

    def __init__(self, max_request_bytes: int) -> None:
        self.max_request_bytes = max_request_bytes
        self._by_prefix: dict[bytes, _Series] = {}
        self._by_labels: dict[str, _Series] = {}
        self._next_sid = 0

    # --- the request ----------------------------------------------------------------------

    def decompress(self, body: bytes) -> bytes:
        import cramjam  # here, not at the top: a hub nobody remote-writes to never maps its 1.4 MB

        limit = self.max_request_bytes
        if len(body) > limit:
            raise TooLarge(f"request body of {len(body)} bytes is over the limit of {limit} bytes")
        try:
            size = cramjam.snappy.decompress_raw_len(body)
        except Exception as exc:
            raise _corrupt(str(exc)) from None
        if size > _MAX_EXPANSION * len(body) + 16:
            raise _corrupt(f"the header announces {size} bytes, more than {len(body)} bytes of snappy can hold")
        if size > limit:
            raise TooLarge(f"request body of {size} bytes after snappy decompression is over the limit "
                           f"of {limit} bytes")
        try:
            return bytes(cramjam.snappy.decompress_raw(body))
        except Exception as exc:
            raise _corrupt(str(exc)) from None

    def decode(self, body: bytes, oldest_ms: int, newest_ms: int) -> SampleBatch:
        """A snappy-compressed `WriteRequest` as one batch; raises `RemoteWriteError` (400) or
        `TooLarge` (413) and then nothing of the request may be stored."""
        raw = self.decompress(body)
        request = pb.RawWriteRequest()
        try:
            request.ParseFromString(raw)
        except Exception as exc:
            raise RemoteWriteError(f"malformed protobuf WriteRequest: {exc}") from None
        series = list(request.timeseries)
        batch = SampleBatch()
        if request.metadata:
            self._metadata(request.metadata, batch)
        if series:
            if len(self._by_prefix) > _CACHE_LIMIT:
                self._by_prefix.clear()
                self._by_labels.clear()
            self._samples(series, batch)
            if len(batch):
                stamps = np.asarray(batch.timestamp_ms, dtype=np.int64)
                low, high = int(stamps.min()), int(stamps.max())
                if low < oldest_ms or high > newest_ms:
                    bad = low if low < oldest_ms else high
                    i = int(np.flatnonzero(stamps == bad)[0])
                    side = "older than the retention period" if bad < oldest_ms else "too far in the future"
                    raise RemoteWriteError(
                        f"out of bounds: sample at {bad} ms of series {_describe(list(batch.labels_at(i)))} "
                        f"is {side} (accepted: {oldest_ms}..{newest_ms} ms); nothing of this request was stored")
        return batch

    def _metadata(self, items, batch: SampleBatch) -> None:
        for m in items:
            name = m.metric_family_name
            if name:
                batch.metadata[name] = MetricMetadata(name, pb.METRIC_TYPES.get(m.type, "unknown"), m.help, m.unit)

    # --- samples --------------------------------------------------------------------------

    def _samples(self, series: list[bytes], batch: SampleBatch) -> None:
        """Fast path for series whose label set is known and that carry one plain sample;
        the general path for the rest."""
        get = self._by_prefix.get
        hits = [get(s[:-_TAIL_VALUE]) for s in series]
        with_value = [i for i, hit in enumerate(hits) if hit is not None]
        zero: list[int] = []
        slow: list[int] = []
        if len(with_value) < len(series):
            for i, hit in enumerate(hits):
                if hit is None:
                    hits[i] = get(series[i][:-_TAIL_ZERO])
                    (slow if hits[i] is None else zero).append(i)
        refs: list[int] = []
        stamps: list[int] = []
        values: list[float] = []
        local: dict[int, int] = {}
        for rows, size in ((with_value, _TAIL_VALUE), (zero, _TAIL_ZERO)):
            if rows:
                slow.extend(self._tails(series, hits, rows, size, batch, local, refs, stamps, values))
        for i in sorted(slow):
            self._general(series[i], batch, local, refs, stamps, values)
        batch.ref, batch.timestamp_ms, batch.value = refs, stamps, values

    def _tails(self, series: list[bytes], hits: list, rows: list[int], size: int, batch: SampleBatch,
               local: dict[int, int], refs: list[int], stamps: list[int], values: list[float]) -> list[int]:
        """Decode the one-sample tails of `rows` at once; returns the rows whose tail is not of
        that shape after all (they go the general way).

        A cached prefix is always a complete, valid label encoding, so when the rest has the
        exact shape of one sample field the split is the message's only parse."""
        cols = np.frombuffer(b"".join([series[i][-size:] for i in rows]), dtype=np.uint8).reshape(-1, size)
        if size == _TAIL_VALUE:
            ok = ((cols[:, 0] == 0x12) & (cols[:, 1] == 16) & (cols[:, 2] == 0x09) & (cols[:, 11] == 0x10)
                  & _six_byte_varints(cols[:, 12:]))
        else:
            ok = (cols[:, 0] == 0x12) & (cols[:, 1] == 7) & (cols[:, 2] == 0x10) & _six_byte_varints(cols[:, 3:])
        rejected: list[int] = []
        if not ok.all():
            rejected = [i for i, good in zip(rows, ok.tolist(), strict=True) if not good]
            rows = [i for i, good in zip(rows, ok.tolist(), strict=True) if good]
            cols = cols[ok]
            if not rows:
                return rejected
        if size == _TAIL_VALUE:
            values.extend(np.ascontiguousarray(cols[:, 3:11]).view("<f8").ravel().tolist())
            stamps.extend(_varint6(cols[:, 12:]).tolist())
        else:
            values.extend([0.0] * len(rows))
            stamps.extend(_varint6(cols[:, 3:]).tolist())
        found = [hits[i] for i in rows]
        sids = [s.sid for s in found]
        if not local and len(set(sids)) == len(sids):
            # every series once (how Prometheus sends): positions in order, no lookups
            base = len(batch.series)
            batch.series.extend([s.labels for s in found])
            batch.series_key.extend([s.key for s in found])
            local.update(zip(sids, range(base, base + len(sids)), strict=True))
            refs.extend(range(base, base + len(sids)))
        else:
            for s in found:
                ref = local.get(s.sid)
                if ref is None:
                    ref = local[s.sid] = batch.add_new_series(s.labels, s.key)
                refs.append(ref)
        return rejected

    def _general(self, raw: bytes, batch: SampleBatch, local: dict[int, int], refs: list[int],
                 stamps: list[int], values: list[float]) -> None:
        ts = pb.ShadowTimeSeries()
        try:
            ts.ParseFromString(raw)
        except Exception as exc:
            raise RemoteWriteError(f"malformed protobuf TimeSeries: {exc}") from None
        if ts.histograms:
            pairs = self._label_pairs(ts.labels)
            raise RemoteWriteError(f"series {_describe(pairs)} carries native histogram samples, which pantau "
                                   "does not store (send classic histograms); nothing of this request was stored")
        prefix = b"".join([b"\x0a" + _varint(len(label)) + label for label in ts.labels])
        found = self._by_prefix.get(prefix)
        if found is None:
            found = self._resolve(ts.labels, prefix)
        samples = ts.samples
        n = len(samples)
        if not n:
            return
        ref = local.get(found.sid)
        if ref is None:
            ref = local[found.sid] = batch.add_new_series(found.labels, found.key)
        refs.extend([ref] * n)
        stamps.extend([s.timestamp for s in samples])
        values.extend([s.value for s in samples])

    # --- label sets -----------------------------------------------------------------------

    def _label_pairs(self, raw_labels) -> list[tuple[str, str]]:
        pairs = []
        for raw in raw_labels:
            label = pb.Label()
            label.ParseFromString(raw)
            try:
                pairs.append((label.name.decode(), label.value.decode()))
            except UnicodeDecodeError:
                raise RemoteWriteError(f"label {label.name!r}={label.value!r} is not valid UTF-8; "
                                       "nothing of this request was stored") from None
        return pairs

    def _resolve(self, raw_labels, prefix: bytes) -> _Series:
        """Validate a label set not seen before and remember it under its raw encoding."""
        pairs = self._label_pairs(raw_labels)
        names = [k for k, _ in pairs]
        where = _describe(pairs)
        if len(set(names)) != len(names):
            dup = next(k for k in names if names.count(k) > 1)
            raise RemoteWriteError(f'label name "{dup}" is not unique in series {where}; '
                                   "nothing of this request was stored")
        kept = [(k, v) for k, v in pairs if v != ""]
        name = dict(kept).get(METRIC_NAME)
        if name is None:
            raise RemoteWriteError(f"series {where} has no metric name (__name__); nothing of this request was stored")
        if not _METRIC_NAME.fullmatch(name):
            raise RemoteWriteError(f'invalid metric name "{name}" in series {where}; '
                                   "nothing of this request was stored")
        for k in names:
            if k != METRIC_NAME and not _LABEL_NAME.fullmatch(k):
                raise RemoteWriteError(f'invalid label name "{k}" in series {where}; '
                                       "nothing of this request was stored")
        labels: Labels = tuple(sorted(kept))
        key = series_key(labels)
        found = self._by_labels.get(key)
        if found is None:
            found = self._by_labels[key] = _Series(labels, key, self._next_sid)
            self._next_sid += 1
        self._by_prefix[prefix] = found
        return found
