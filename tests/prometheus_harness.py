"""A real Prometheus (Debian's `prometheus` 2.42) next to a real pantau, for tests and benchmarks.

`PrometheusProcess` runs `/usr/bin/prometheus` on a free loopback port with a temporary
configuration and TSDB directory (optionally with its remote-write receiver), waits for
`/-/ready`, and stops it. Tests that need it call `require("prometheus", "prometheus")`
first (skip outside CI, fail under CI where `.ci/run` installs the package).

Loading the same data into both, two routes (both tried with 2.42, see `tests/promql_dataset.py`):

* **Remote write** (`load_remote_write`; what the `prom_and_pantau` fixture uses): the same
  snappy-compressed `WriteRequest` bodies are posted to Prometheus's receiver
  (`--web.enable-remote-write-receiver`) and to pantau's. This is the faithful route: the
  data may carry **staleness markers** (as a scraping Prometheus writes them), and both sides
  receive byte-identical requests. Prometheus appends into its head, which refuses a sample
  older than its series' previous one and any sample more than 1 h older than the newest
  sample it holds: so the requests go in time order, one at a time, each covering 10 minutes
  of every series (`Dataset.write_requests`). Data of any age inside pantau's retention works.
* **Backfill** (`load_blocks`): `promtool tsdb create-blocks-from openmetrics FILE DIR` writes
  TSDB blocks (2 h ranges) into the directory that Prometheus is then *started* on; it loads
  them at start-up (2.42 accepts blocks overlapping each other or its head: vertical
  compaction is on by default, the old `--storage.tsdb.allow-overlapping-blocks` flag is gone).
  Write the blocks before starting Prometheus: blocks added to a running Prometheus are only
  picked up at its next compaction/reload cycle. OpenMetrics has no staleness marker (a NaN in
  the text is an ordinary NaN), so backfilled series that stop simply stop. promtool accepts
  NaN and negative gauge values, and timestamps with millisecond digits.

Comparing answers: `query_both` runs one query (instant, or range with start/end/step) on both
and returns the two full JSON responses; `normalise` turns a `data` object into a sorted,
directly comparable form (values as the strings both APIs write, Go's shortest 'f' format;
timestamps as numbers); `difference` (also a method of the fixture's object) names the first
difference, comparing values within a relative tolerance and errors by `errorType`.
A compliance test is then one line per query:

    def test_compliance(prom_and_pantau, expr):
        assert prom_and_pantau.difference(expr, start=..., end=..., step=60) is None
Remember Prometheus 2.x's range selectors are closed intervals `[t - range, t]` and the
instant lookback is 5 m; an instant that falls exactly on a sample's timestamp shows any
difference in interval ends.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import HubProcess, free_port, require
from tests.promql_dataset import Dataset, generate

PROMETHEUS = "/usr/bin/prometheus"
RW_HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
              "X-Prometheus-Remote-Write-Version": "0.1.0"}


class PrometheusProcess:
    """`prometheus` in a subprocess: its own port, configuration file and TSDB directory."""

    def __init__(self, workdir: Path, config: dict[str, Any] | None = None, remote_write_receiver: bool = False,
                 tsdb_path: Path | None = None, extra_args: Iterable[str] = (), binary: str = PROMETHEUS) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tsdb_path = tsdb_path or workdir / "tsdb"
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config or {"global": {"scrape_interval": "15s"}}))
        self.log_path = workdir / "prometheus.log"
        self.args = [binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={self.tsdb_path}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=30d",
                     *(["--web.enable-remote-write-receiver"] if remote_write_receiver else []), *extra_args]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> PrometheusProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"prometheus did not become ready:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str, **params) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, timeout=60)


def load_blocks(dataset: Dataset, tsdb_path: Path, promtool: str = "promtool") -> None:
    """Backfill `dataset` into `tsdb_path` as TSDB blocks (start Prometheus on it afterwards)."""
    tsdb_path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".om", delete=False) as f:
        f.write(dataset.openmetrics())
    try:
        subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", f.name, str(tsdb_path)],
                       check=True, capture_output=True, timeout=300)
    finally:
        os.unlink(f.name)


def load_remote_write(url: str, bodies: Iterable[bytes]) -> int:
    """POST remote-write bodies to `url` in order, one at a time; returns how many were sent."""
    sent = 0
    with httpx.Client(timeout=60) as client:
        for body in bodies:
            resp = client.post(url, content=body, headers=RW_HEADERS)
            if resp.status_code != 204:
                raise RuntimeError(f"remote write to {url} answered {resp.status_code}: {resp.text[:500]}")
            sent += 1
    return sent


# --- comparing answers ---------------------------------------------------------------------------


def normalise(data: dict[str, Any]) -> tuple[str, Any]:
    """A query's `data` in a comparable form: (resultType, sorted result)."""
    kind, result = data["resultType"], data["result"]
    if kind == "matrix":
        return kind, sorted((tuple(sorted(r["metric"].items())), tuple((float(t), v) for t, v in r["values"]))
                            for r in result)
    if kind == "vector":
        return kind, sorted((tuple(sorted(r["metric"].items())), float(r["value"][0]), r["value"][1]) for r in result)
    return kind, (float(result[0]), result[1])


def _close(a: str, b: str, rel_tol: float) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=rel_tol, abs_tol=rel_tol * 1e-3)


def difference(prom: dict[str, Any], ours: dict[str, Any], rel_tol: float = 1e-9) -> str | None:
    """The first difference between two full query responses (None: the same answer).

    Errors must agree in `errorType`; results in type, series (labels), timestamps, and values
    within `rel_tol` (computed values may differ in their last bits: Go and NumPy sum in
    different orders)."""
    if prom.get("status") != ours.get("status"):
        return f"status: prometheus {prom.get('status')} {prom.get('error', '')!r}, " \
               f"pantau {ours.get('status')} {ours.get('error', '')!r}"
    if prom["status"] != "success":
        if prom.get("errorType") != ours.get("errorType"):
            return f"errorType: prometheus {prom.get('errorType')}, pantau {ours.get('errorType')}"
        return None
    (pk, pr), (ok, orr) = normalise(prom["data"]), normalise(ours["data"])
    if pk != ok:
        return f"resultType: prometheus {pk}, pantau {ok}"
    if pk in ("scalar", "string"):
        pr, orr = [((), pr[0], pr[1])], [((), orr[0], orr[1])]
    if pk == "matrix":
        pr = [(labels, t, v) for labels, points in pr for t, v in points]
        orr = [(labels, t, v) for labels, points in orr for t, v in points]
    psets, osets = {r[0] for r in pr}, {r[0] for r in orr}
    if psets != osets:
        return f"series only in prometheus: {sorted(psets - osets)[:3]}; only in pantau: {sorted(osets - psets)[:3]}"
    if len(pr) != len(orr):
        return f"{len(pr)} points in prometheus, {len(orr)} in pantau"
    for a, b in zip(pr, orr, strict=True):
        if a[:2] != b[:2] or not _close(a[2], b[2], rel_tol):
            return f"prometheus {a}, pantau {b}"
    return None


@dataclass
class PromAndPantau:
    """A Prometheus and a pantau holding the same dataset."""

    prometheus: PrometheusProcess
    pantau: HubProcess
    dataset: Dataset

    @property
    def prometheus_url(self) -> str:
        return self.prometheus.url

    def query_both(self, expr: str, time: float | None = None, *, start: float | None = None,
                   end: float | None = None, step: float | None = None) -> tuple[dict, dict]:
        """Run `expr` on both: an instant query at `time` (unix seconds), or a range query when
        `start`, `end` and `step` are given. Returns each side's full JSON response."""
        if start is not None:
            path, params = "/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step}
        else:
            at = time if time is not None else self.dataset.end_ms / 1000
            path, params = "/api/v1/query", {"query": expr, "time": at}
        prom = httpx.get(f"{self.prometheus.url}{path}", params=params, timeout=60).json()
        ours = httpx.get(f"{self.pantau.api}{path}", params=params, timeout=60).json()
        return prom, ours

    def difference(self, expr: str, time: float | None = None, *, start: float | None = None,
                   end: float | None = None, step: float | None = None, rel_tol: float = 1e-9) -> str | None:
        """`query_both` then `difference`: None when pantau answers as Prometheus does."""
        prom, ours = self.query_both(expr, time, start=start, end=end, step=step)
        return difference(prom, ours, rel_tol)

    def series_both(self, match: str) -> tuple[list[dict], list[dict]]:
        params = {"match[]": match, "start": self.dataset.start_ms / 1000 - 60, "end": self.dataset.end_ms / 1000 + 600}
        prom = httpx.get(f"{self.prometheus.url}/api/v1/series", params=params, timeout=60).json()["data"]
        ours = httpx.get(f"{self.pantau.api}/api/v1/series", params=params, timeout=60).json()["data"]
        key = lambda s: sorted(s.items())  # noqa: E731
        return sorted(prom, key=key), sorted(ours, key=key)


def dataset_end_ms(now: float | None = None) -> int:
    """The dataset's end: the last full hour (stable through a test module, inside retention)."""
    now = time.time() if now is None else now
    return int(now // 3600 * 3600 * 1000)


@pytest.fixture(scope="module")
def prom_and_pantau(tmp_path_factory) -> Iterator[PromAndPantau]:
    """One Prometheus and one pantau for a test module, both loaded by remote write with
    `tests.promql_dataset.generate(dataset_end_ms())` (about 40,000 samples, a few seconds)."""
    binary = require("prometheus", "prometheus")
    workdir = tmp_path_factory.mktemp("prom-and-pantau")
    dataset = generate(dataset_end_ms())
    prometheus = PrometheusProcess(workdir / "prometheus", remote_write_receiver=True, binary=binary)
    hub = HubProcess(workdir / "pantau-data")
    try:
        prometheus.start()
        hub.start()
        bodies = list(dataset.write_requests())
        load_remote_write(f"{prometheus.url}/api/v1/write", bodies)
        load_remote_write(f"{hub.api}/api/v1/write", bodies)
        yield PromAndPantau(prometheus, hub, dataset)
    finally:
        hub.kill()
        prometheus.stop()
        shutil.rmtree(workdir, ignore_errors=True)
