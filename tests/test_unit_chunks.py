import numpy as np

from pantau.model import STALE_NAN_BITS, stale_marker
from pantau.store.sqlite import chunks


def test_roundtrip_is_bit_exact_including_stale_markers():
    rng = np.random.default_rng(7)
    ts = np.cumsum(rng.integers(1, 30_000, 1000)).astype(np.int64) + 1_700_000_000_000
    values = rng.normal(size=1000)
    values[10] = np.nan
    values[11] = stale_marker()
    values[12] = np.inf
    values[13:100] = 42.0
    out_ts, out_values = chunks.decode(chunks.encode(ts, values))
    assert (out_ts == ts).all()
    assert (out_values.view(np.uint64) == values.view(np.uint64)).all()
    assert out_values.view(np.uint64)[11] == STALE_NAN_BITS


def test_regular_series_compress_well():
    ts = np.arange(1_700_000_000_000, 1_700_000_000_000 + 15_000 * 1000, 15_000, dtype=np.int64)
    values = np.cumsum(np.ones(1000))
    blob = chunks.encode(ts, values)
    assert len(blob) < 1000 * 2  # under 2 bytes per sample
    assert (chunks.decode(blob)[0] == ts).all()


def test_tiny_chunks():
    for n in (0, 1, 2):
        ts = np.arange(n, dtype=np.int64)
        values = np.arange(n, dtype=np.float64)
        out_ts, out_values = chunks.decode(chunks.encode(ts, values))
        assert list(out_ts) == list(ts) and list(out_values) == list(values)


def _awkward_series(seed: int, lengths: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Series of the given lengths with stale markers, NaN and timestamps going backwards."""
    rng = np.random.default_rng(seed)
    series = []
    for n in lengths:
        ts = np.cumsum(rng.integers(-5, 30_000, n)).astype(np.int64) + 1_700_000_000_000
        values = rng.normal(size=n)
        if n > 3:
            values[1] = stale_marker()
            values[2] = np.nan
        series.append((ts, values))
    return series


def test_decode_many_equals_decode_one_by_one():
    """Chunks of mixed lengths (empty ones first, last and between), stale markers, NaN,
    timestamps going backwards: laid end to end, bit for bit what `decode` gives."""
    ref = [chunks.encode(ts, values) for ts, values in _awkward_series(11, (0, 3, 1, 40, 40, 0, 2, 40, 7, 0))]
    lens, ts, values = chunks.decode_many(ref)
    offset = 0
    for blob, n in zip(ref, lens.tolist(), strict=True):
        one_ts, one_values = chunks.decode(blob)
        assert n == len(one_ts)
        assert (ts[offset:offset + n] == one_ts).all()
        assert (values[offset:offset + n].view(np.uint64) == one_values.view(np.uint64)).all()
        offset += n
    assert offset == len(ts) == len(values)
    assert [len(a) for a in chunks.decode_many([])] == [0, 0, 0]


def test_encode_many_is_byte_for_byte_encode():
    series = _awkward_series(12, (0, 1, 2, 3, 10, 10, 0, 10, 1, 57))
    lens = np.array([len(t) for t, _ in series])
    ends = np.cumsum(lens)
    blobs = chunks.encode_many(np.concatenate([t for t, _ in series]), np.concatenate([v for _, v in series]),
                               ends - lens, ends)
    assert blobs == [chunks.encode(t, v) for t, v in series]


def test_decode_many_of_long_chunks():
    """Long chunks (a long range read) take the one-by-one path: the same answer."""
    rng = np.random.default_rng(13)
    ref = [chunks.encode(np.cumsum(rng.integers(1, 30_000, n)).astype(np.int64), rng.normal(size=n))
           for n in (1000, 0, 700, 2)]
    lens, ts, values = chunks.decode_many(ref)
    assert lens.tolist() == [1000, 0, 700, 2]
    assert (ts == np.concatenate([chunks.decode(b)[0] for b in ref])).all()
    assert (values == np.concatenate([chunks.decode(b)[1] for b in ref])).all()
