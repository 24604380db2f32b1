"""A small columnar block format: named NumPy arrays and variable-length byte strings,
compressed together with zstd.

Spans and log records are stored in blocks (one row per received batch, as Tempo, Loki and
ClickHouse store them) rather than one SQLite row per item: binding a dozen parameters per
row from Python costs more than everything else on the write path, while packing a column is
one C call. Scans decode only the columns they read.
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Sequence

import numpy as np
import zstandard

_MAGIC = 0x50  # 'P', format 0
_FIXED, _VAR = 0, 1
_local = threading.local()


def _codecs() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    codecs = getattr(_local, "codecs", None)
    if codecs is None:
        codecs = _local.codecs = (zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor())
    return codecs


class VarColumn:
    """Variable-length values, sliced out of one buffer on demand."""

    __slots__ = ("data", "offsets")

    def __init__(self, offsets: np.ndarray, data: bytes | memoryview) -> None:
        self.offsets = offsets
        self.data = data

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> bytes:
        return bytes(self.data[self.offsets[i]:self.offsets[i + 1]])

    def text(self, i: int) -> str:
        return self[i].decode("utf-8", "replace")

    def texts(self) -> list[str]:
        data = bytes(self.data)
        offs = self.offsets.tolist()
        return [data[offs[i]:offs[i + 1]].decode("utf-8", "replace") for i in range(len(offs) - 1)]


def var(values: Sequence[bytes]) -> tuple[np.ndarray, bytes]:
    """Pack byte strings as (offsets, data)."""
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    if values:
        np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=len(values)), out=offsets[1:])
    return offsets, b"".join(values)


def encode(columns: dict[str, np.ndarray | tuple[np.ndarray, bytes]]) -> bytes:
    """Columns are NumPy arrays (any fixed dtype, any shape) or `var(...)` packs."""
    header = [struct.pack("<BH", _MAGIC, len(columns))]
    body: list[bytes] = []
    for name, col in columns.items():
        raw_name = name.encode()
        if isinstance(col, tuple):
            offsets, data = col
            off_bytes = offsets.astype(np.int64, copy=False).tobytes()
            header.append(struct.pack("<B", len(raw_name)) + raw_name
                          + struct.pack("<BQQ", _VAR, len(off_bytes), len(data)))
            body.append(off_bytes)
            body.append(data)
        else:
            arr = np.ascontiguousarray(col)
            dtype = arr.dtype.str.encode()
            shape = arr.shape
            header.append(struct.pack("<B", len(raw_name)) + raw_name + struct.pack("<BB", _FIXED, len(dtype))
                          + dtype + struct.pack("<B", len(shape)) + struct.pack(f"<{len(shape)}Q", *shape))
            body.append(arr.tobytes())
    head = b"".join(header)
    return _codecs()[0].compress(struct.pack("<I", len(head)) + head + b"".join(body))


def decode(blob: bytes, only: set[str] | None = None) -> dict[str, np.ndarray | VarColumn]:
    raw = memoryview(_codecs()[1].decompress(blob))
    (head_len,) = struct.unpack_from("<I", raw, 0)
    pos = 4
    magic, count = struct.unpack_from("<BH", raw, pos)
    if magic != _MAGIC:
        raise ValueError("not a pantau column block")
    pos += 3
    data_pos = 4 + head_len
    out: dict[str, np.ndarray | VarColumn] = {}
    for _ in range(count):
        (nlen,) = struct.unpack_from("<B", raw, pos)
        name = bytes(raw[pos + 1:pos + 1 + nlen]).decode()
        pos += 1 + nlen
        (kind,) = struct.unpack_from("<B", raw, pos)
        if kind == _VAR:
            off_len, data_len = struct.unpack_from("<QQ", raw, pos + 1)
            pos += 17
            if only is None or name in only:
                offsets = np.frombuffer(raw, dtype=np.int64, count=off_len // 8, offset=data_pos)
                out[name] = VarColumn(offsets, raw[data_pos + off_len:data_pos + off_len + data_len])
            data_pos += off_len + data_len
        else:
            (dlen,) = struct.unpack_from("<B", raw, pos + 1)
            dtype = np.dtype(bytes(raw[pos + 2:pos + 2 + dlen]).decode())
            pos += 2 + dlen
            (ndim,) = struct.unpack_from("<B", raw, pos)
            shape = struct.unpack_from(f"<{ndim}Q", raw, pos + 1)
            pos += 1 + 8 * ndim
            size = math.prod(shape)
            if only is None or name in only:
                out[name] = np.frombuffer(raw, dtype=dtype, count=size, offset=data_pos).reshape(shape)
            data_pos += size * dtype.itemsize
    return out


def fixed_bytes(values: Sequence[bytes], width: int) -> np.ndarray:
    """Fixed-width ids (trace ids, span ids) as an (n, width) uint8 matrix; empty ids become zeros."""
    if not values:
        return np.zeros((0, width), dtype=np.uint8)
    try:
        return np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), width)
    except ValueError:
        zero = bytes(width)
        return np.frombuffer(b"".join(v or zero for v in values), dtype=np.uint8).reshape(len(values), width)


def id_keys(ids: np.ndarray) -> np.ndarray:
    """int64 keys of an (n, 16) trace-id matrix: the first 8 bytes, big-endian."""
    return np.ascontiguousarray(ids[:, :8]).view(">i8").ravel().astype(np.int64)


def id_ints(ids: np.ndarray) -> np.ndarray:
    """uint64 of an (n, 8) span-id matrix (big-endian)."""
    return np.ascontiguousarray(ids).view(">u8").ravel().astype(np.uint64)
