"""Remote-write decoding: the fast path must give exactly what a plain protobuf decode gives."""

from __future__ import annotations

import math
import random
import struct

import cramjam
import pytest

from pantau.ingest import remote_write_pb as pb
from pantau.ingest.remote_write import RemoteWriteDecoder, RemoteWriteError, TooLarge
from pantau.model import is_stale_marker, make_labels, stale_marker

NOW = 1_800_000_000_000
WIDE = (-(2**62), 2**62)


def snappy(raw: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(raw))


def reference(raw: bytes) -> list[tuple[tuple, int, bytes]]:
    """(labels, timestamp, value bits) of every sample, by decoding the full message."""
    request = pb.WriteRequest()
    request.ParseFromString(raw)
    out = []
    for ts in request.timeseries:
        labels = make_labels((lab.name.decode(), lab.value.decode()) for lab in ts.labels)
        out += [(labels, s.timestamp, struct.pack("<d", s.value)) for s in ts.samples]
    return sorted(out)


def decoded(batch) -> list[tuple[tuple, int, bytes]]:
    return sorted((batch.labels_at(i), batch.timestamp_ms[i], struct.pack("<d", batch.value[i]))
                  for i in range(len(batch)))


def random_request(rng: random.Random, names: list[str]) -> bytes:
    series = []
    for _ in range(rng.randrange(0, 40)):
        name = rng.choice(names)
        labels = [("__name__", name), ("instance", f"host-{rng.randrange(3)}:9100"), ("job", "node")]
        if rng.random() < 0.3:
            labels.append(("mode", rng.choice(["idle", "user", ""])))  # empty value: dropped
        rng.shuffle(labels)  # order on the wire must not matter
        n = rng.choice([1, 1, 1, 0, 2, 5])
        stamps = [rng.choice([NOW + rng.randrange(-10**6, 10**6), 0, -5_000, 2**45]) if rng.random() < 0.1
                  else NOW + rng.randrange(-10**6, 10**6) for _ in range(n)]
        values = [rng.choice([0.0, -0.0, 1.5, -2.25, math.inf, -math.inf, math.nan, stale_marker(), 1e300,
                              rng.random() * 1000]) for _ in range(n)]
        series.append((labels, stamps, values))
    return pb.encode_write_request(series)


def test_fast_and_general_paths_agree_with_a_plain_decode() -> None:
    rng = random.Random(7)
    decoder = RemoteWriteDecoder(2**24)
    names = [f"metric_{i}" for i in range(12)]
    for _ in range(400):  # later requests hit the label-set cache: the fast path
        raw = random_request(rng, names)
        batch = decoder.decode(snappy(raw), *WIDE)
        assert decoded(batch) == reference(raw)
        assert len(batch.series) == len(set(batch.series_key))


def test_stale_markers_pass_bit_exactly() -> None:
    decoder = RemoteWriteDecoder(2**20)
    raw = pb.encode_write_request([([("__name__", "up"), ("job", "a")], [NOW], [stale_marker()])])
    for _ in range(2):  # general path, then fast path
        batch = decoder.decode(snappy(raw), *WIDE)
        assert is_stale_marker(batch.value[0])


@pytest.mark.parametrize(("labels", "message"), [
    ([("job", "a")], "no metric name"),
    ([("__name__", "")], "no metric name"),
    ([("__name__", "1bad")], 'invalid metric name "1bad"'),
    ([("__name__", "ok"), ("bad-name", "x")], 'invalid label name "bad-name"'),
    ([("__name__", "ok"), ("a", "1"), ("a", "2")], 'label name "a" is not unique'),
])
def test_invalid_label_sets_refuse_the_whole_request(labels, message) -> None:
    decoder = RemoteWriteDecoder(2**20)
    good = ([("__name__", "fine")], [NOW], [1.0])
    raw = pb.encode_write_request([good, (labels, [NOW], [2.0])])
    with pytest.raises(RemoteWriteError, match=message):
        decoder.decode(snappy(raw), *WIDE)


def test_invalid_utf8_and_native_histograms_are_refused() -> None:
    decoder = RemoteWriteDecoder(2**20)
    request = pb.WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name=b"__name__", value=b"x\xff")
    ts.samples.add(value=1, timestamp=NOW)
    with pytest.raises(RemoteWriteError, match="not valid UTF-8"):
        decoder.decode(snappy(request.SerializeToString()), *WIDE)
    request = pb.WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name=b"__name__", value=b"h")
    ts.histograms.append(b"\x08\x01")
    with pytest.raises(RemoteWriteError, match="native histogram"):
        decoder.decode(snappy(request.SerializeToString()), *WIDE)


def test_bad_bodies() -> None:
    decoder = RemoteWriteDecoder(4096)
    raw = pb.encode_write_request([([("__name__", "x")], [NOW], [1.0])])
    for body in (b"", raw, bytes(cramjam.snappy.compress(raw)), b"\xff\xff\xff garbage"):
        with pytest.raises(RemoteWriteError, match="snappy: corrupt input"):
            decoder.decode(body, *WIDE)
    with pytest.raises(RemoteWriteError, match="malformed protobuf"):
        decoder.decode(snappy(b"\x0a\xff\xff\xff\xff\x0f garbage"), *WIDE)
    with pytest.raises(TooLarge):
        decoder.decode(snappy(b"\x00" * 10_000), *WIDE)  # small compressed, large decompressed
    with pytest.raises(TooLarge):
        decoder.decode(bytes(5000), *WIDE)


def test_samples_out_of_bounds_refuse_the_request() -> None:
    decoder = RemoteWriteDecoder(2**20)
    raw = pb.encode_write_request([([("__name__", "x")], [NOW, NOW - 10], [1.0, 2.0])])
    assert len(decoder.decode(snappy(raw), NOW - 10, NOW)) == 2
    with pytest.raises(RemoteWriteError, match=r'out of bounds: sample at 1799999999990 ms of series \{__name__="x"\}'):
        decoder.decode(snappy(raw), NOW - 5, NOW)


def test_metadata() -> None:
    decoder = RemoteWriteDecoder(2**20)
    raw = pb.encode_write_request([], [("http_requests_total", "counter", "Requests.", ""),
                                       ("temp_celsius", "gauge", "Temperature.", "celsius")])
    batch = decoder.decode(snappy(raw), *WIDE)
    assert len(batch) == 0
    assert batch.metadata["http_requests_total"].type == "counter"
    assert batch.metadata["temp_celsius"].unit == "celsius"
