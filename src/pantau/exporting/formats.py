"""Record sinks for export and archival: JSON Lines, CSV and Parquet, all streamed.

Each sink turns batches of flat rows into bytes as they come, so an export of millions of
records never holds them all: the HTTP response, the CLI and the archiver just pass the bytes
on. Parquet is written one row group per batch into an in-memory stream that is drained after
every batch; its footer comes with `close()`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

FORMATS = ("jsonl", "csv", "parquet")
MEDIA_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
EXTENSIONS = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}


class Sink(Protocol):
    def write(self, rows: Sequence[dict[str, Any]]) -> bytes: ...
    def close(self) -> bytes: ...


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def rfc3339(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"


def _readable(kind: str, value: Any) -> Any:
    """Timestamps as RFC 3339 text in the text formats (Parquet keeps them typed)."""
    if kind == "timestamp" and isinstance(value, int):
        return rfc3339(value)
    return value


class JsonLinesSink:
    """One JSON object per line; nested attributes stay objects."""

    def __init__(self, columns: Sequence[tuple[str, str]]) -> None:
        self.columns = list(columns)

    def write(self, rows: Sequence[dict[str, Any]]) -> bytes:
        opt = orjson.OPT_NON_STR_KEYS
        return b"".join(
            orjson.dumps({n: _readable(k, r.get(n)) for n, k in self.columns}, option=opt) + b"\n" for r in rows)

    def close(self) -> bytes:
        return b""


class CsvSink:
    """RFC 4180 CSV with a header row; nested values are JSON text in their cell."""

    def __init__(self, columns: Sequence[tuple[str, str]]) -> None:
        self.columns = list(columns)
        self._header = True

    def write(self, rows: Sequence[dict[str, Any]]) -> bytes:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        if self._header:
            writer.writerow([n for n, _ in self.columns])
            self._header = False
        for r in rows:
            writer.writerow([_as_text(_readable(k, r.get(n))) for n, k in self.columns])
        return buf.getvalue().encode()

    def close(self) -> bytes:
        return b"" if not self._header else self.write([])


class _Drain(io.RawIOBase):
    """A write-only stream whose written bytes are taken out after each batch."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        chunk = bytes(data)
        self.chunks.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


class ParquetSink:
    """Parquet with typed columns (timestamps in ns, UTC); one row group per batch, zstd."""

    def __init__(self, columns: Sequence[tuple[str, str]]) -> None:
        import pyarrow as pa  # heavy; only loaded when Parquet is asked for
        import pyarrow.parquet as pq

        self._pa = pa
        types = {"string": pa.string(), "json": pa.string(), "int": pa.int64(),
                 "timestamp": pa.timestamp("ns", tz="UTC"), "float": pa.float64()}
        self.columns = list(columns)
        self.schema = pa.schema([(name, types[kind]) for name, kind in self.columns])
        self._out = _Drain()
        self._writer = pq.ParquetWriter(self._out, self.schema, compression="zstd")

    def write(self, rows: Sequence[dict[str, Any]]) -> bytes:
        if not rows:
            return b""
        arrays = []
        for (name, kind), field in zip(self.columns, self.schema, strict=True):
            values = [r.get(name) for r in rows]
            if kind == "json":
                values = [None if v is None else _as_text(v) for v in values]
            arrays.append(self._pa.array(values, type=field.type))
        self._writer.write_table(self._pa.Table.from_arrays(arrays, schema=self.schema))
        return self._out.take()

    def close(self) -> bytes:
        self._writer.close()
        return self._out.take()


def make_sink(fmt: str, columns: Sequence[tuple[str, str]]) -> Sink:
    if fmt == "jsonl":
        return JsonLinesSink(columns)
    if fmt == "csv":
        return CsvSink(columns)
    if fmt == "parquet":
        return ParquetSink(columns)
    raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
