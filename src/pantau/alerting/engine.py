"""PromQL for rule groups: the hub's engine, with two things a rule group needs and an ad-hoc
query does not.

* Parsed expressions are kept: a rule's text does not change between evaluations.
* Rules of a group that select the same metric share one store read per evaluation. Rule
  files commonly hold one rule per instance or per service (`cpu{instance="a"} > 0.9`, then
  `"b"`, ...): reading the metric once and picking each rule's series from memory turns a
  hundred index lookups and chunk reads into one.
"""

from __future__ import annotations

import re

from pantau.query.promql import engine as promql_engine
from pantau.query.promql.engine import Engine, InstantResult, parse, selector_matchers
from pantau.query.promql.values import Matrix, RangeSeries, Scalar, Vector
from pantau.store.base import Matcher, SampleColumns, SeriesSamples


def _selectors(node, out: list) -> None:
    kind = type(node).__name__
    if kind == "VectorSelector":
        out.append(node)
        return
    for attr in ("vector_selector", "expr", "lhs", "rhs", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            _selectors(child, out)
    for child in getattr(node, "args", None) or ():
        _selectors(child, out)


def shared_metrics(queries: list[str], at_least: int = 4) -> dict[str, list[Matcher]]:
    """For each metric that at least `at_least` of the queries select with an equality on a
    common label (`instance="a"`, `instance="b"`, ...): the matchers of one store read that
    covers them all (`__name__="m", instance=~"a|b|..."`)."""
    by_name: dict[str, list[list[Matcher]]] = {}
    for q in queries:
        try:
            found: list = []
            _selectors(parse(q), found)
        except Exception:
            continue
        for sel in found:
            if sel.name and getattr(sel, "offset", None) is None and getattr(sel, "at", None) is None:
                try:
                    by_name.setdefault(sel.name, []).append(selector_matchers(sel))
                except Exception:
                    continue
    out: dict[str, list[Matcher]] = {}
    for name, sets in by_name.items():
        if len(sets) < at_least:
            continue
        common = None
        for ms in sets:
            labels = {m.name for m in ms if m.op == "=" and m.value and m.name != "__name__"}
            common = labels if common is None else common & labels
        if not common:
            continue
        label = sorted(common)[0]
        values = sorted({m.value for ms in sets for m in ms if m.name == label and m.op == "="})
        out[name] = [Matcher("__name__", "=", name), Matcher(label, "=~", "|".join(map(re.escape, values)))]
    return out


class _Shared:
    """All series of one metric in one window, with equality postings built on first use."""

    def __init__(self, series: list[RangeSeries]) -> None:
        self.series = series
        self._postings: dict[str, dict[str, list[int]]] = {}

    def select(self, matchers: list[Matcher]) -> list[RangeSeries]:
        candidates: list[int] | None = None
        for m in matchers:
            if m.op == "=" and m.value and m.name != "__name__":
                post = self._postings.get(m.name)
                if post is None:
                    post = self._postings[m.name] = {}
                    for i, s in enumerate(self.series):
                        for k, v in s.labels:
                            if k == m.name:
                                post.setdefault(v, []).append(i)
                                break
                found = post.get(m.value, [])
                if candidates is None or len(found) < len(candidates):
                    candidates = found
        rows = range(len(self.series)) if candidates is None else candidates
        out = []
        for i in rows:
            s = self.series[i]
            labels = dict(s.labels)
            if all(m.matches(labels.get(m.name, "")) for m in matchers):
                out.append(s)
        return out


class RuleEngine(Engine):
    def __init__(self, store) -> None:
        super().__init__(store, downsampling=False)
        self._parsed: dict[str, object] = {}
        self._shared_reads: dict[str, list[Matcher]] = {}
        self._shared: dict[tuple[str, int, int], _Shared] = {}

    def begin_group(self, shared_reads: dict[str, list[Matcher]]) -> None:
        """Start a group's evaluation: these metrics are read once (with the given matchers)
        and shared until the next call."""
        self._shared_reads = shared_reads
        self._shared = {}

    def fetch(self, selector, ctx, start: int, end: int) -> list[RangeSeries]:
        name = selector.name
        read = self._shared_reads.get(name) if name else None
        if read is None:
            return super().fetch(selector, ctx, start, end)
        key = (name, start, end)
        shared = self._shared.get(key)
        if shared is None:
            shared = self._shared[key] = _Shared(
                [RangeSeries(s.labels, s.timestamps_ms, s.values)
                 for s in self.store.select_samples(read, start, end)])
        found = shared.select(selector_matchers(selector))
        ctx.samples += sum(len(s.values) for s in found)
        return found

    def fetch_columns(self, selector, ctx, start: int, end: int) -> SampleColumns:
        """Instant selectors read columns (see `Engine.fetch_columns`); a shared metric's come
        from the group's one read, as `fetch` gives them."""
        if not selector.name or selector.name not in self._shared_reads:
            return super().fetch_columns(selector, ctx, start, end)
        found = self.fetch(selector, ctx, start, end)
        return SampleColumns.from_series([SeriesSamples(s.labels, s.timestamps, s.values) for s in found])

    def instant(self, query: str, t_ms: int) -> InstantResult:
        """`Engine.instant` with the parsed expression kept between evaluations."""
        node = self._parsed.get(query)
        if node is None:
            node = self._parsed[query] = parse(query)
            if len(self._parsed) > 100_000:
                self._parsed.clear()
        ctx = self._context(promql_engine.np.asarray([t_ms], dtype=promql_engine.np.int64), t_ms, t_ms)
        value = self.eval(node, ctx)
        if isinstance(value, Vector):
            value = value.compact()
            promql_engine.functions.check_result(value)
            if promql_engine._sorted_by(node) is None and len(value):
                value = value.select(sorted(range(len(value.labels)), key=lambda i: value.labels[i]))
            return InstantResult("vector", value, t_ms)
        if isinstance(value, Matrix):
            return InstantResult("matrix", value, t_ms)
        if isinstance(value, Scalar):
            return InstantResult("scalar", float(value.values[0]), t_ms)
        return InstantResult("string", value.value, t_ms)
