"""One deterministic metrics dataset, for loading the same data into Prometheus and into pantau.

What it holds (3 hours at a 15 s scrape interval by default; about 60 series, 40,000 samples):

* two jobs, `api` (3 instances, scraped on the 15 s grid) and `worker` (2 instances, scraped
  7.5 s off the grid, so samples do not line up across jobs);
* counters with resets: `http_requests_total{method,status}` (api-1 restarts at 1/3 of the
  range: every counter of it drops back), `process_cpu_seconds_total` (float increments;
  worker-1 restarts at 1/2);
* gauges: `memory_usage_bytes` (large values; api-2 misses scrapes for 10 minutes, longer than
  the 5 m lookback), `temperature_celsius{sensor}` (negative values), `queue_depth` (a NaN now
  and then, as an exporter writes it);
* a classic histogram `http_request_duration_seconds_bucket{le}`, `_sum`, `_count` on the api
  instances, reset with api-1's restart;
* series that stop: `jobs_in_flight` of worker-1 ends at 2/3 of the range, and
  `deploy_info{version="1"}` gives way to `deploy_info{version="2"}` at 1/2 (a series that starts
  in the middle, too).

It comes in two renderings of the same samples:

* `write_requests()`: Prometheus remote-write bodies, in time order, with a staleness marker
  where a series stops (what a scraping Prometheus would have written);
* `openmetrics()`: text for `promtool tsdb create-blocks-from openmetrics`. OpenMetrics cannot
  express a staleness marker (a NaN in the text is an ordinary NaN), so there the stopping
  series simply stop; the markers are the only difference between the two renderings.

Everything derives from `seed` and `end_ms`; the same arguments give the same samples.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import cramjam

from pantau.ingest.remote_write_pb import encode_write_request
from pantau.model import Labels, MetricMetadata, SampleBatch, make_labels, series_key, stale_marker

STEP_MS = 15_000
BUCKETS = ("0.05", "0.1", "0.25", "0.5", "1", "+Inf")


@dataclass
class Series:
    labels: Labels
    timestamps_ms: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    stale_at_ms: int | None = None  # a staleness marker here (remote write rendering only)

    @property
    def name(self) -> str:
        return dict(self.labels)["__name__"]


@dataclass
class Dataset:
    start_ms: int
    end_ms: int
    series: list[Series]
    metadata: dict[str, MetricMetadata]  # by family name, as OpenMetrics writes it

    @property
    def sample_count(self) -> int:
        return sum(len(s.values) for s in self.series)

    def metric_names(self) -> list[str]:
        return sorted({s.name for s in self.series})

    # --- renderings ------------------------------------------------------------------------

    def _points(self) -> list[tuple[int, int, float]]:
        """(timestamp, series index, value) of every sample and marker, in time order."""
        points = [(t, i, v) for i, s in enumerate(self.series) for t, v in zip(s.timestamps_ms, s.values, strict=True)]
        stale = stale_marker()
        points += [(s.stale_at_ms, i, stale) for i, s in enumerate(self.series) if s.stale_at_ms is not None]
        points.sort(key=lambda p: (p[0], p[1]))
        return points

    def write_requests(self, window_ms: int = 10 * 60_000) -> Iterator[bytes]:
        """Snappy-compressed remote-write bodies, each covering `window_ms` of time, oldest first.

        Prometheus's head refuses a sample older than (newest sample - 1 h) and any sample older
        than its series' last one, so the requests must be sent in this order, one at a time."""
        points = self._points()
        metadata = [(m.metric, m.type, m.help, m.unit) for m in self.metadata.values()]
        i = 0
        while i < len(points):
            limit = points[i][0] + window_ms
            j = i
            per_series: dict[int, tuple[list[int], list[float]]] = {}
            while j < len(points) and points[j][0] < limit:
                t, k, v = points[j]
                ts, vs = per_series.setdefault(k, ([], []))
                ts.append(t)
                vs.append(v)
                j += 1
            body = encode_write_request(
                [(self.series[k].labels, ts, vs) for k, (ts, vs) in per_series.items()], metadata if i == 0 else ())
            yield bytes(cramjam.snappy.compress_raw(body))
            i = j

    def sample_batches(self, max_samples: int = 50_000) -> Iterator[SampleBatch]:
        """The same samples (and markers) as pantau write batches, for a store directly."""
        batch = SampleBatch(metadata=dict(self.metadata))
        for t, k, v in self._points():
            labels = self.series[k].labels
            batch.ref.append(batch.add_series(labels, series_key(labels)))
            batch.timestamp_ms.append(t)
            batch.value.append(v)
            if len(batch) >= max_samples:
                yield batch
                batch = SampleBatch()
        if len(batch):
            yield batch

    def openmetrics(self) -> str:
        """OpenMetrics text for promtool: families together, each series oldest first, `# EOF`."""
        lines: list[str] = []
        by_family: dict[str, list[Series]] = {}
        for s in self.series:
            by_family.setdefault(_family(s.name, self.metadata), []).append(s)
        for family, members in by_family.items():
            meta = self.metadata.get(family)
            if meta is not None:
                lines.append(f"# HELP {family} {meta.help}")
                lines.append(f"# TYPE {family} {meta.type}")
            for s in members:
                text = s.name + "{" + ",".join(f'{k}="{v}"' for k, v in s.labels if k != "__name__") + "}"
                lines += [f"{text} {_om_value(v)} {t // 1000}.{t % 1000:03d}"
                          for t, v in zip(s.timestamps_ms, s.values, strict=True)]
        lines.append("# EOF")
        return "\n".join(lines) + "\n"


def _family(name: str, metadata: dict[str, MetricMetadata]) -> str:
    for suffix in ("_total", "_bucket", "_sum", "_count", "_info"):
        if name.endswith(suffix) and name[: -len(suffix)] in metadata:
            return name[: -len(suffix)]
    return name


def _om_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


# --- generation --------------------------------------------------------------------------------


def generate(end_ms: int, hours: float = 3.0, seed: int = 4) -> Dataset:
    rng = random.Random(seed)
    start_ms = end_ms - int(hours * 3600_000)
    out: list[Series] = []
    api = [f"api-{i}:8080" for i in range(3)]
    workers = [f"worker-{i}:9000" for i in range(2)]

    def grid(job: str) -> list[int]:
        offset = 7_500 if job == "worker" else 0
        return list(range(start_ms + offset, end_ms + 1, STEP_MS))

    def add(labels: dict[str, str], stamps: list[int], values: list[float], stale_at: int | None = None) -> None:
        out.append(Series(make_labels(labels), list(stamps), list(values), stale_at))

    third, half, two_thirds = (start_ms + (end_ms - start_ms) * k // 6 for k in (2, 3, 4))

    # counters with resets
    for inst in api:
        stamps = grid("api")
        restart = third if inst == "api-1:8080" else None
        for method in ("GET", "POST"):
            for status in ("200", "500"):
                rate = (40 if method == "GET" else 9) * (1 if status == "200" else 0.05)
                add({"__name__": "http_requests_total", "job": "api", "instance": inst, "method": method,
                     "status": status}, stamps, _counter(rng, stamps, rate, restart))
    for job, instances in (("api", api), ("worker", workers)):
        for inst in instances:
            stamps = grid(job)
            restart = half if inst == "worker-1:9000" else (third if inst == "api-1:8080" else None)
            add({"__name__": "process_cpu_seconds_total", "job": job, "instance": inst}, stamps,
                _counter(rng, stamps, 0.37, restart, integer=False))

    # gauges
    for inst in api:
        stamps = grid("api")
        if inst == "api-2:8080":  # missed scrapes for 10 minutes: longer than the lookback
            stamps = [t for t in stamps if not half <= t < half + 600_000]
        base = rng.uniform(2e8, 8e8)
        add({"__name__": "memory_usage_bytes", "job": "api", "instance": inst}, stamps,
            [round(base + 5e7 * math.sin((t - start_ms) / 1.7e6) + rng.uniform(-1e6, 1e6)) for t in stamps])
    for inst in workers:
        stamps = grid("worker")
        for sensor in ("inlet", "outlet"):
            shift = 0 if sensor == "inlet" else 6
            add({"__name__": "temperature_celsius", "job": "worker", "instance": inst, "sensor": sensor}, stamps,
                [round(-4 + shift + 8 * math.sin((t - start_ms) / 2.3e6) + rng.uniform(-0.5, 0.5), 2) for t in stamps])
        add({"__name__": "queue_depth", "job": "worker", "instance": inst}, stamps,
            [math.nan if k % 37 == 5 else float(rng.randrange(0, 50)) for k, _ in enumerate(stamps)])

    # a classic histogram
    for inst in api:
        stamps = grid("api")
        restart = third if inst == "api-1:8080" else None
        counts = [0] * len(BUCKETS)
        total = 0.0
        values: dict[str, list[float]] = {b: [] for b in BUCKETS}
        sums: list[float] = []
        count: list[float] = []
        for t in stamps:
            if restart is not None and t >= restart:
                counts, total, restart = [0] * len(BUCKETS), 0.0, None
            for _ in range(rng.randrange(5, 30)):
                latency = rng.lognormvariate(-2.3, 0.9)
                total += latency
                for b, bound in enumerate(BUCKETS):
                    if bound == "+Inf" or latency <= float(bound):
                        counts[b] += 1
            for b, bound in enumerate(BUCKETS):
                values[bound].append(float(counts[b]))
            sums.append(round(total, 6))
            count.append(float(counts[-1]))
        for bound in BUCKETS:
            add({"__name__": "http_request_duration_seconds_bucket", "job": "api", "instance": inst, "le": bound},
                stamps, values[bound])
        add({"__name__": "http_request_duration_seconds_sum", "job": "api", "instance": inst}, stamps, sums)
        add({"__name__": "http_request_duration_seconds_count", "job": "api", "instance": inst}, stamps, count)

    # series that stop (and one that starts in the middle)
    for inst in workers:
        stamps = grid("worker")
        stop = two_thirds if inst == "worker-1:9000" else None
        kept = [t for t in stamps if stop is None or t < stop]
        stale_at = next((t for t in stamps if t >= stop), None) if stop is not None else None
        add({"__name__": "jobs_in_flight", "job": "worker", "instance": inst}, kept,
            [float(rng.randrange(0, 8)) for _ in kept], stale_at)
    stamps = grid("api")
    first = [t for t in stamps if t < half]
    second = [t for t in stamps if t >= half]
    add({"__name__": "deploy_info", "job": "api", "instance": api[0], "version": "1"}, first, [1.0] * len(first),
        second[0] if second else None)
    add({"__name__": "deploy_info", "job": "api", "instance": api[0], "version": "2"}, second, [1.0] * len(second))

    metadata = {m.metric: m for m in (
        MetricMetadata("http_requests", "counter", "HTTP requests handled."),
        MetricMetadata("process_cpu_seconds", "counter", "CPU time used."),
        MetricMetadata("memory_usage_bytes", "gauge", "Resident memory."),
        MetricMetadata("temperature_celsius", "gauge", "Temperature by sensor."),
        MetricMetadata("queue_depth", "gauge", "Jobs waiting."),
        MetricMetadata("http_request_duration_seconds", "histogram", "Request latency."),
        MetricMetadata("jobs_in_flight", "gauge", "Jobs being worked on."),
        MetricMetadata("deploy_info", "gauge", "Deployed version."),
    )}
    return Dataset(start_ms, end_ms, out, metadata)


def _counter(rng: random.Random, stamps: list[int], rate: float, restart_ms: int | None,
             integer: bool = True) -> list[float]:
    """Cumulative values growing by about `rate` per second; back to a small value at a restart."""
    out, value, restarted = [], 0.0, False
    for t in stamps:
        if restart_ms is not None and not restarted and t >= restart_ms:
            value, restarted = 0.0, True
        step = rng.uniform(0, 2 * rate * STEP_MS / 1000)
        value += round(step) if integer else round(step, 3)
        out.append(float(value) if integer else round(value, 3))
    return out
