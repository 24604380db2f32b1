"""LogQL evaluation over the store interface.

Log queries: the stream selector and the line filters that come before any parser go to the
store (`LogQuery.stream` / `line_filters`), which narrows with the full-text index; the rest
of the pipeline (parsers, label filters, later line filters, `line_format`) runs here on each
candidate record, as Loki's pipeline does.

Metric queries: `count_over_time`, `rate`, `bytes_over_time`, `bytes_rate`,
`absent_over_time` over windows (t - range, t], then `sum/avg/min/max/count/topk/bottomk`
and arithmetic. When the pipeline holds only line filters, the store returns each stream's
timestamps and sizes straight from its blocks, so counting a day of millions of records does
not decode them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from pantau.model import Labels, LogRecord, log_stream_labels
from pantau.otlp.prometheus import label_name
from pantau.otlp.values import as_text
from pantau.query.logql.parser import (
    BinaryOp,
    BoolExpr,
    Comparison,
    LabelFilter,
    LineFilter,
    LineFormat,
    LogQLError,
    LogSelector,
    NumberLiteral,
    ParserStage,
    RangeAggregation,
    VectorAggregation,
    parse,
)
from pantau.store.base import LogQuery, Store

MAX_LINES = 5000
_PAGE = 5000
_FIELD = re.compile(r"\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_LOGFMT = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)')


# --- the pipeline ----------------------------------------------------------------------------


def _record_line(record: LogRecord) -> str:
    return record.body if isinstance(record.body, str) else as_text(record.body)


def _record_labels(record: LogRecord) -> dict[str, str]:
    labels = dict(log_stream_labels(record.resource.attributes, record.severity_text))
    for key, value in record.attributes.items():  # structured metadata, as Loki 3 exposes it
        name = label_name(key)
        if name and name not in labels and value is not None:
            labels[name] = as_text(value)
    return labels


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}_{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        out[label_name(prefix)] = orjson.dumps(value).decode()
    elif value is not None:
        out[label_name(prefix)] = as_text(value)


def _json_path(doc: Any, path: str) -> Any:
    for part in re.findall(r"[^.\[\]]+", path):
        if isinstance(doc, dict):
            doc = doc.get(part)
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None
    return doc


def _pattern_regex(pattern: str) -> re.Pattern:
    """Loki's pattern syntax: literal text with `<name>` captures and `<_>` placeholders."""
    out, pos = ["^"], 0
    for m in re.finditer(r"<([A-Za-z_][A-Za-z0-9_]*)>", pattern):
        out.append(re.escape(pattern[pos:m.start()]))
        name = m.group(1)
        out.append("(?:.*?)" if name == "_" else f"(?P<{name}>.*?)")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    # a trailing capture takes the rest of the line; trailing literal text need not end it
    return re.compile("".join(out) + ("$" if pattern.endswith(">") else ""), re.DOTALL)


@dataclass
class Pipeline:
    stages: list

    def __post_init__(self) -> None:
        self._compiled: list = []
        for stage in self.stages:
            if isinstance(stage, LineFilter) and stage.op in ("|~", "!~"):
                self._compiled.append(re.compile(stage.value))
            elif isinstance(stage, ParserStage) and stage.kind == "pattern":
                self._compiled.append(_pattern_regex(stage.argument))
            elif isinstance(stage, ParserStage) and stage.kind == "regexp":
                self._compiled.append(re.compile(stage.argument))
            elif isinstance(stage, LineFormat):
                leftover = _FIELD.sub("", stage.template)
                if "{{" in leftover:
                    raise LogQLError("unsupported LogQL construct: line_format templates beyond {{.label}} fields")
                self._compiled.append(None)
            else:
                self._compiled.append(None)

    def run(self, record: LogRecord) -> tuple[str, dict[str, str]] | None:
        """The record's output line and labels, or None if a stage drops it."""
        line = _record_line(record)
        labels = _record_labels(record)
        for stage, compiled in zip(self.stages, self._compiled, strict=True):
            if isinstance(stage, LineFilter):
                if stage.op == "|=":
                    ok = stage.value in line
                elif stage.op == "!=":
                    ok = stage.value not in line
                elif stage.op == "|~":
                    ok = compiled.search(line) is not None
                else:
                    ok = compiled.search(line) is None
                if not ok:
                    return None
            elif isinstance(stage, ParserStage):
                self._parse(stage, compiled, line, labels)
            elif isinstance(stage, LabelFilter):
                if not _holds(stage.expr, labels):
                    return None
            elif isinstance(stage, LineFormat):
                line = _FIELD.sub(lambda m: labels.get(m.group(1), ""), stage.template)
        return line, labels

    @staticmethod
    def _add(labels: dict[str, str], extracted: dict[str, str]) -> None:
        for name, value in extracted.items():
            name = label_name(name)
            if not name:
                continue
            labels[f"{name}_extracted" if name in labels else name] = value

    def _parse(self, stage: ParserStage, compiled, line: str, labels: dict[str, str]) -> None:
        if stage.kind == "json":
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                labels["__error__"] = "JSONParserErr"
                return
            extracted: dict[str, str] = {}
            if stage.params:
                for name, path in stage.params:
                    value = _json_path(doc, path)
                    if value is not None:
                        extracted[name] = as_text(value) if not isinstance(value, dict | list) \
                            else orjson.dumps(value).decode()
            elif isinstance(doc, dict):
                _flatten("", doc, extracted)
            self._add(labels, extracted)
        elif stage.kind == "logfmt":
            extracted = {}
            for key, value in _LOGFMT.findall(line):
                if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                    value = value[1:-1].replace('\\"', '"')
                extracted[key] = value
            self._add(labels, extracted)
        else:
            m = compiled.search(line) if stage.kind == "regexp" else compiled.match(line)
            if m:
                self._add(labels, {k: v for k, v in m.groupdict().items() if v is not None})


def _holds(expr, labels: dict[str, str]) -> bool:
    if isinstance(expr, BoolExpr):
        if expr.op == "and":
            return _holds(expr.left, labels) and _holds(expr.right, labels)
        return _holds(expr.left, labels) or _holds(expr.right, labels)
    c: Comparison = expr
    actual = labels.get(c.label, "")
    if c.kind == "string":
        if c.op == "=":
            return actual == c.value
        if c.op == "!=":
            return actual != c.value
        hit = re.fullmatch(c.value, actual, re.DOTALL) is not None  # type: ignore[arg-type]
        return hit if c.op == "=~" else not hit
    try:
        number = _duration_seconds(actual) if c.kind == "duration" else float(actual)
    except ValueError:
        return False
    target = float(c.value)
    return {"=": number == target, "==": number == target, "!=": number != target, ">": number > target,
            ">=": number >= target, "<": number < target, "<=": number <= target}[c.op]


def _duration_seconds(text: str) -> float:
    from pantau.config import parse_duration

    return parse_duration(text)


# --- queries ------------------------------------------------------------------------------------


def _split(selector: LogSelector) -> tuple[LogQuery, list]:
    """What the store can do (matchers, leading line filters) and the rest of the pipeline."""
    query = LogQuery(stream=list(selector.matchers))
    for m in selector.matchers:
        if m.name == "service_name" and m.op == "=":
            query.services.append(m.value)
    rest = list(selector.stages)
    while rest and isinstance(rest[0], LineFilter):
        query.line_filters.append((rest[0].op, rest[0].value))
        rest.pop(0)
    return query, rest


@dataclass
class Stream:
    labels: dict[str, str]
    entries: list[tuple[int, str]]  # (timestamp ns, line)


@dataclass
class Series:
    labels: Labels
    values: np.ndarray  # per step
    present: np.ndarray


class LogQLEngine:
    def __init__(self, store: Store) -> None:
        self.store = store

    # log queries ---------------------------------------------------------------------------

    def select_logs(self, query: str, start_ns: int, end_ns: int, limit: int = 100,
                    forward: bool = False) -> list[Stream]:
        node = parse(query)
        if not isinstance(node, LogSelector):
            raise LogQLError("expected a log query (a stream selector and its pipeline)")
        return self._select(node, start_ns, end_ns, limit, forward)

    def _select(self, selector: LogSelector, start_ns: int, end_ns: int, limit: int, forward: bool) -> list[Stream]:
        q, rest = _split(selector)
        pipeline = Pipeline(rest)
        if rest:
            q.predicate = lambda record: pipeline.run(record) is not None
        q.start_ns, q.end_ns = start_ns, end_ns
        q.limit = max(1, min(limit, MAX_LINES))
        q.newest_first = not forward
        try:
            page = self.store.search_logs(q)
        except ValueError as exc:
            raise LogQLError(str(exc)) from None
        streams: dict[Labels, Stream] = {}
        for record in page.records:
            out = pipeline.run(record)
            if out is None:
                continue
            line, labels = out
            key = tuple(sorted(labels.items()))
            stream = streams.get(key)
            if stream is None:
                stream = streams[key] = Stream(labels, [])
            stream.entries.append((record.timestamp_ns, line))
        return list(streams.values())

    # metric queries ------------------------------------------------------------------------

    def range(self, query: str, start_ns: int, end_ns: int, step_ns: int) -> list[Series]:
        node = parse(query)
        if isinstance(node, LogSelector):
            raise LogQLError("expected a metric query, got a log query")
        steps = np.arange(start_ns, end_ns + 1, step_ns, dtype=np.int64)
        value = self._eval(node, steps)
        if isinstance(value, np.ndarray):  # a scalar expression
            return [Series((), value, np.ones(len(steps), dtype=bool))]
        return [s for s in value if s.present.any()]

    def instant(self, query: str, t_ns: int) -> list[Series] | float:
        node = parse(query)
        if isinstance(node, LogSelector):
            raise LogQLError("log queries are not supported as an instant query type, please change your query "
                             "to a range query type")
        value = self._eval(node, np.asarray([t_ns], dtype=np.int64))
        if isinstance(value, np.ndarray):
            return float(value[0])
        return [s for s in value if s.present[0]]

    def _eval(self, node, steps: np.ndarray):
        if isinstance(node, NumberLiteral):
            return np.full(len(steps), node.value)
        if isinstance(node, RangeAggregation):
            return self._range_aggregation(node, steps)
        if isinstance(node, VectorAggregation):
            return self._vector_aggregation(node, steps)
        if isinstance(node, BinaryOp):
            return self._binary(node, steps)
        raise LogQLError(f"unsupported LogQL construct: {type(node).__name__}")

    def _stream_times(self, selector: LogSelector, start_ns: int, end_ns: int) -> list[tuple[Labels, np.ndarray,
                                                                                         np.ndarray]]:
        q, rest = _split(selector)
        q.start_ns, q.end_ns = start_ns, end_ns
        if not rest:
            return [(st.labels, st.times_ns, st.sizes) for st in self.store.log_stream_times(q)]
        # A pipeline with parsers or label filters: the labels come from each record.
        pipeline = Pipeline(rest)
        groups: dict[Labels, tuple[list[int], list[int]]] = {}
        q.limit, q.newest_first = _PAGE, False
        while True:
            page = self.store.search_logs(q)
            for record in page.records:
                out = pipeline.run(record)
                if out is None:
                    continue
                line, labels = out
                times, sizes = groups.setdefault(tuple(sorted(labels.items())), ([], []))
                times.append(record.timestamp_ns)
                sizes.append(len(line.encode()))
            if page.next_cursor is None:
                break
            q.cursor = page.next_cursor
        return [(labels, np.asarray(t, dtype=np.int64), np.asarray(s, dtype=np.int64))
                for labels, (t, s) in groups.items()]

    def _range_aggregation(self, node: RangeAggregation, steps: np.ndarray) -> list[Series]:
        ends = steps - node.offset_ms * 1_000_000
        range_ns = node.range_ms * 1_000_000
        if not node.selector.stages and node.function != "absent_over_time":
            # no filters: count from block summaries without opening most blocks
            out = []
            seconds = node.range_ms / 1000
            for wc in self.store.log_window_counts(node.selector.matchers, ends, range_ns):
                values = wc.counts if node.function in ("count_over_time", "rate") else wc.sizes
                if node.function in ("rate", "bytes_rate"):
                    values = values / seconds
                out.append(Series(wc.labels, values.astype(float), wc.counts > 0))
            return out
        found = self._stream_times(node.selector, int(ends.min()) - range_ns + 1, int(ends.max()))
        if node.function == "absent_over_time":
            present = np.zeros(len(steps), dtype=bool)
            for _, times, _ in found:
                lo = np.searchsorted(times, ends - range_ns, side="right")
                hi = np.searchsorted(times, ends, side="right")
                present |= hi > lo
            labels = tuple(sorted((m.name, m.value) for m in node.selector.matchers if m.op == "="))
            return [Series(labels, np.ones(len(steps)), ~present)]
        out = []
        seconds = node.range_ms / 1000
        for labels, times, sizes in found:
            lo = np.searchsorted(times, ends - range_ns, side="right")
            hi = np.searchsorted(times, ends, side="right")
            count = (hi - lo).astype(float)
            if node.function in ("count_over_time", "rate"):
                values = count if node.function == "count_over_time" else count / seconds
            else:
                prefix = np.r_[0, np.cumsum(sizes)].astype(float)
                values = prefix[hi] - prefix[lo]
                if node.function == "bytes_rate":
                    values = values / seconds
            out.append(Series(labels, values, count > 0))
        return out

    def _vector_aggregation(self, node: VectorAggregation, steps: np.ndarray) -> list[Series]:
        inner = self._eval(node.expr, steps)
        if isinstance(inner, np.ndarray):
            raise LogQLError(f"{node.op}() needs a vector, got a scalar")
        names = set(node.grouping or [])

        def key(labels: Labels) -> Labels:
            if node.grouping is None:
                return ()
            return tuple(p for p in labels if (p[0] in names) != node.without)

        groups: dict[Labels, list[Series]] = {}
        for s in inner:
            groups.setdefault(key(s.labels), []).append(s)
        out: list[Series] = []
        if node.op in ("topk", "bottomk"):
            k = int(node.param or 0)
            for members in groups.values():
                values = np.vstack([m.values for m in members])
                present = np.vstack([m.present for m in members])
                keep = np.zeros(present.shape, dtype=bool)
                for t in range(len(steps)):
                    rows = np.flatnonzero(present[:, t])
                    if not len(rows) or k < 1:
                        continue
                    order = np.argsort(-values[rows, t] if node.op == "topk" else values[rows, t], kind="stable")
                    keep[rows[order[:k]], t] = True
                for i, m in enumerate(members):
                    if keep[i].any():
                        out.append(Series(m.labels, m.values, keep[i]))
            return out
        for group, members in groups.items():
            values = np.vstack([m.values for m in members])
            present = np.vstack([m.present for m in members])
            count = present.sum(axis=0)
            masked = np.where(present, values, 0.0)
            with np.errstate(all="ignore"):
                if node.op == "sum":
                    result = masked.sum(axis=0)
                elif node.op == "count":
                    result = count.astype(float)
                elif node.op == "avg":
                    result = masked.sum(axis=0) / np.maximum(count, 1)
                elif node.op == "min":
                    result = np.where(present, values, np.inf).min(axis=0)
                elif node.op == "max":
                    result = np.where(present, values, -np.inf).max(axis=0)
                else:
                    mean = masked.sum(axis=0) / np.maximum(count, 1)
                    var = np.where(present, (values - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count, 1)
                    result = np.sqrt(var) if node.op == "stddev" else var
            out.append(Series(group, result, count > 0))
        return out

    def _binary(self, node: BinaryOp, steps: np.ndarray):
        left, right = self._eval(node.left, steps), self._eval(node.right, steps)
        op = node.op

        def apply(a, b):
            with np.errstate(all="ignore"):
                if op in ("==", "!=", ">", "<", ">=", "<="):
                    return {"==": np.equal, "!=": np.not_equal, ">": np.greater, "<": np.less,
                            ">=": np.greater_equal, "<=": np.less_equal}[op](a, b)
                return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide,
                        "%": np.fmod, "^": np.power}[op](a, b)

        comparison = op in ("==", "!=", ">", "<", ">=", "<=")
        if isinstance(left, np.ndarray) and isinstance(right, np.ndarray):
            result = apply(left, right)
            return result.astype(float) if comparison else result
        if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
            vector, scalar_left = (right, True) if isinstance(left, np.ndarray) else (left, False)
            scalar = left if scalar_left else right
            out = []
            for s in vector:
                a, b = (scalar, s.values) if scalar_left else (s.values, scalar)
                r = apply(a, b)
                if comparison and not node.return_bool:
                    out.append(Series(s.labels, s.values, s.present & r))
                else:
                    out.append(Series(s.labels, r.astype(float) if comparison else r, s.present.copy()))
            return out
        by_labels = {s.labels: s for s in right}
        out = []
        for s in left:
            other = by_labels.get(s.labels)
            if other is None:
                continue
            r = apply(s.values, other.values)
            present = s.present & other.present
            if comparison and not node.return_bool:
                out.append(Series(s.labels, s.values, present & r))
            else:
                out.append(Series(s.labels, r.astype(float) if comparison else r, present))
        return out


def format_number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return np.format_float_positional(v, trim="-")
