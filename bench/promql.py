"""PromQL benchmark: the same data in Prometheus and pantau, dashboard queries against both.

    python bench/promql.py                 # 1,000 series x 24 h at 15 s (5.76M samples)
    python bench/promql.py --series 200    # quicker

Data: `--series` series (counters with job/instance/route/code labels, a classic histogram,
gauges) every 15 s for 24 h, ending 4 h ago, so Prometheus takes it as backfilled blocks
(`promtool tsdb create-blocks-from openmetrics`). pantau gets the same samples written through
its store API into a fresh data directory. Both then serve HTTP on loopback and answer the
same ten range queries (24 h at 60 s step), each run `--repeat` times; the figure is pantau's
median latency divided by Prometheus's, same run (target <= 2x).

Needs the `prometheus` Debian package (prometheus and promtool on PATH).
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from pantau.model import SampleBatch
from pantau.store.sqlite import SQLiteOptions, SQLiteStore

STEP_S = 15
QUERIES = [
    "sum(rate(http_requests_total[5m]))",
    "sum by (job) (rate(http_requests_total[5m]))",
    'sum by (code) (rate(http_requests_total{job="api"}[5m]))',
    "topk(5, sum by (route) (rate(http_requests_total[5m])))",
    "histogram_quantile(0.99, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.9, sum by (le, job) (rate(request_duration_seconds_bucket[5m])))",
    'sum(rate(http_requests_total{code="500"}[5m])) / sum(rate(http_requests_total[5m]))',
    "avg by (instance) (memory_usage_bytes)",
    "max_over_time(memory_usage_bytes[10m])",
    "rate(request_duration_seconds_sum[5m]) / rate(request_duration_seconds_count[5m])",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate(series: int, hours: int, end: int):
    """Yield (name, labels dict, values list) for the dataset; timestamps are implicit."""
    rng = random.Random(11)
    points = hours * 3600 // STEP_S + 1
    routes = [f"/r{i}" for i in range(25)]
    jobs = ["api", "worker", "signer", "chain"]
    counters = max(1, int(series * 0.7))
    for i in range(counters):
        labels = {"job": jobs[i % 4], "instance": f"host-{i % 40}:9100", "route": routes[(i // 40) % 25],
                  "code": "500" if i % 10 == 0 else "200", "shard": str(i // 1000)}
        value, values = 0.0, []
        rate = rng.uniform(0.5, 20)
        for p in range(points):
            if p and p % 2000 == i % 2000 and i % 7 == 0:
                value = 0.0  # a restart
            value += rate * STEP_S * rng.uniform(0.8, 1.2)
            values.append(round(value, 2))
        yield "http_requests_total", labels, values
    hist_sets = max(1, (series - counters) // 8)
    bounds = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"]
    for h in range(hist_sets):
        labels = {"job": jobs[h % 4], "instance": f"host-{h}:9100"}
        cum = [0.0] * len(bounds)
        total = 0.0
        rows = {b: [] for b in bounds}
        sums, counts = [], []
        for _ in range(points):
            for _ in range(rng.randint(5, 15)):
                x = rng.expovariate(5)
                total += x
                for k, b in enumerate(bounds):
                    if b == "+Inf" or x <= float(b):
                        cum[k] += 1
            for k, b in enumerate(bounds):
                rows[b].append(cum[k])
            sums.append(round(total, 3))
            counts.append(cum[-1])
        for b in bounds:
            yield "request_duration_seconds_bucket", {**labels, "le": b}, rows[b]
        yield "request_duration_seconds_sum", labels, sums
        yield "request_duration_seconds_count", labels, counts
    gauges = series - counters - hist_sets * 8
    for g in range(max(0, gauges)):
        labels = {"job": jobs[g % 4], "instance": f"host-{g}:9100"}
        yield "memory_usage_bytes", labels, [round(1e9 + 2e8 * math.sin(p / 300 + g), 1) for p in range(points)]


def load(workdir: Path, series: int, hours: int, end: int) -> tuple[Path, Path, int]:
    start = end - hours * 3600
    om = workdir / "data.om"
    pantau_dir = workdir / "pantau-data"
    store = SQLiteStore(SQLiteOptions(data_dir=pantau_dir))
    store.start()
    count = 0
    types = {"http_requests": "counter", "request_duration_seconds": "histogram", "memory_usage_bytes": "gauge"}
    written_types: set[str] = set()
    stamps = [start + p * STEP_S for p in range(hours * 3600 // STEP_S + 1)]
    with om.open("w") as out:
        by_family: dict[str, list] = {}
        for name, labels, values in generate(series, hours, end):
            family = ("http_requests" if name == "http_requests_total" else
                      "request_duration_seconds" if name.startswith("request_duration") else name)
            by_family.setdefault(family, []).append((name, labels, values))
            batch = SampleBatch()
            lab = tuple(sorted({**labels, "__name__": name}.items()))
            ref = batch.add_series(lab)
            batch.ref.extend([ref] * len(values))
            batch.timestamp_ms.extend(t * 1000 for t in stamps)
            batch.value.extend(values)
            store.write(batch)
            count += len(values)
        for family, items in by_family.items():
            if family not in written_types:
                out.write(f"# TYPE {family} {types[family]}\n")
                written_types.add(family)
            for name, labels, values in items:
                text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                out.write("".join(f"{name}{{{text}}} {v} {t}\n" for t, v in zip(stamps, values, strict=True)))
        out.write("# EOF\n")
    store.close()
    prom_dir = workdir / "prom-data"
    done = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(prom_dir)],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"promtool failed: {done.stderr[-2000:]}")
    om.unlink()
    return prom_dir, pantau_dir, count


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


def time_queries(base: str, start: int, end: int, repeat: int) -> list[float]:
    client = httpx.Client(base_url=base, timeout=300)
    medians = []
    for q in QUERIES:
        runs = []
        for _ in range(repeat):
            t = time.perf_counter()
            resp = client.get("/api/v1/query_range", params={"query": q, "start": start, "end": end, "step": 60})
            runs.append(time.perf_counter() - t)
            body = resp.json()
            if body["status"] != "success":
                raise RuntimeError(f"{base} {q}: {body}")
        medians.append(statistics.median(runs))
    return medians


LONG_QUERIES = [
    "sum by (job) (rate(http_requests_total[1h]))",
    "max_over_time(memory_usage_bytes[1h])",
    "avg by (job) (memory_usage_bytes)",
]


def long_range(args) -> None:
    """A 30-day range at a 1-hour step, answered from pantau's rollups, against the same query
    forced onto raw samples (max_source_resolution=raw), same run, same hub."""
    import numpy as np

    end = (int(time.time()) // 3600 - 1) * 3600 * 1000
    start = end - args.days * 86_400_000
    with tempfile.TemporaryDirectory(prefix="pantau-longrange-") as tmp:
        data = Path(tmp) / "pantau-data"
        store = SQLiteStore(SQLiteOptions(data_dir=data))
        store.start()
        t = time.perf_counter()
        stamps = np.arange(start, end + 1, STEP_S * 1000, dtype=np.int64)
        rng = np.random.default_rng(5)
        jobs = ["api", "worker", "signer", "chain"]
        total = 0
        for day in range(args.days):
            day_sel = (stamps >= start + day * 86_400_000) & (stamps < start + (day + 1) * 86_400_000)
            batch = SampleBatch()
            for i in range(args.long_series):
                is_counter = i % 2 == 0
                name = "http_requests_total" if is_counter else "memory_usage_bytes"
                lab = tuple(sorted({"__name__": name, "job": jobs[i % 4], "instance": f"host-{i}"}.items()))
                ts = stamps[day_sel]
                if is_counter:
                    values = (day * 86_400 + (ts - ts[0]) / 1000) * (1 + i % 5) + rng.uniform(0, 1, len(ts))
                else:
                    values = 1e9 + 1e8 * np.sin(ts / 3.6e6 + i)
                ref = batch.add_series(lab)
                batch.ref.extend([ref] * len(ts))
                batch.timestamp_ms.extend(ts.tolist())
                batch.value.extend(values.tolist())
                total += len(ts)
            store.write(batch)
            store.maintain_now(final=True)  # seal the day: chunks and rollups, as the head does on its own
        store.close()
        print(f"loaded {total:,} samples ({args.long_series} series x {args.days} days at {STEP_S} s) "
              f"in {time.perf_counter() - t:.0f} s", flush=True)
        api, otlp, grpc_port = free_port(), free_port(), free_port()
        hub = subprocess.Popen([sys.executable, "-m", "pantau", "serve", "--data-dir", str(data), "--port", str(api),
                                "--otlp-http-port", str(otlp), "--otlp-grpc-port", str(grpc_port),
                                "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(f"http://127.0.0.1:{api}/readyz")
            client = httpx.Client(base_url=f"http://127.0.0.1:{api}", timeout=600)
            for q in LONG_QUERIES:
                timings = {}
                for mode in ("auto", "raw"):
                    runs = []
                    for _ in range(args.repeat if mode == "auto" else max(1, args.repeat // 2)):
                        t = time.perf_counter()
                        body = client.get("/api/v1/query_range", params={
                            "query": q, "start": start / 1000, "end": end / 1000, "step": 3600,
                            "max_source_resolution": mode}).json()
                        runs.append(time.perf_counter() - t)
                        assert body["status"] == "success", body
                    timings[mode] = statistics.median(runs)
                print(f"{args.days}-day range, 1 h step: {q:55s} rollups {timings['auto'] * 1000:7.0f} ms, "
                      f"raw {timings['raw'] * 1000:7.0f} ms ({timings['raw'] / timings['auto']:.0f}x faster); "
                      f"target <= 500 ms", flush=True)
        finally:
            hub.terminate()
            hub.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--days", type=int, default=30, help="length of the long-range (rollup) test")
    parser.add_argument("--long-series", type=int, default=100, help="series in the long-range test")
    parser.add_argument("--only", choices=["compare", "long"], help="run one part")
    args = parser.parse_args()
    if args.only != "compare":
        long_range(args)
    if args.only == "long":
        return
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        sys.exit("needs prometheus and promtool (Debian package: prometheus)")
    end = (int(time.time()) // 3600 - 4) * 3600
    start = end - args.hours * 3600
    with tempfile.TemporaryDirectory(prefix="pantau-promql-") as tmp:
        workdir = Path(tmp)
        t = time.perf_counter()
        prom_dir, pantau_dir, count = load(workdir, args.series, args.hours, end)
        print(f"loaded {count:,} samples into both in {time.perf_counter() - t:.0f} s", flush=True)
        prom_port, api, otlp, grpc_port = free_port(), free_port(), free_port(), free_port()
        prom = subprocess.Popen(["prometheus", "--config.file=/dev/null", f"--storage.tsdb.path={prom_dir}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}", "--storage.tsdb.retention.time=60d"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        hub = subprocess.Popen([sys.executable, "-m", "pantau", "serve", "--data-dir", str(pantau_dir),
                                "--port", str(api), "--otlp-http-port", str(otlp), "--otlp-grpc-port", str(grpc_port),
                                "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(f"http://127.0.0.1:{prom_port}/-/ready")
            wait_ready(f"http://127.0.0.1:{api}/readyz")
            prom_t = time_queries(f"http://127.0.0.1:{prom_port}", start, end, args.repeat)
            pantau_t = time_queries(f"http://127.0.0.1:{api}", start, end, args.repeat)
        finally:
            prom.terminate()
            hub.terminate()
            prom.wait(60)
            hub.wait(60)
    print(f"{'query':90s} {'prometheus':>11s} {'pantau':>9s} {'ratio':>6s}")
    for q, p, o in zip(QUERIES, prom_t, pantau_t, strict=True):
        print(f"{q:90s} {p * 1000:9.1f}ms {o * 1000:7.1f}ms {o / p:5.2f}x")
    ratio = statistics.median(o / p for p, o in zip(prom_t, pantau_t, strict=True))
    print(f"median ratio pantau / Prometheus: {ratio:.2f}x (target <= 2x); "
          f"pantau median {statistics.median(pantau_t) * 1000:.0f} ms, "
          f"Prometheus median {statistics.median(prom_t) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
