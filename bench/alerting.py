"""Alerting benchmark: rule evaluation against Prometheus, and the notification pipeline
against Alertmanager, each measured in the same run on the same machine.

    python bench/alerting.py                       # 10,000 rules / series; 10,000 alerts at 1,000/s
    python bench/alerting.py --rules 2000 --alerts 3000   # quicker

Rules: `--rules` alerting rules (`bench_load{instance="host-N"} > 0.95`, `for: 1m`), one per
series, in groups of 100 with `interval: 15s`, over as many gauge series. pantau evaluates every
group in-process on a fresh store holding the series (several cycles; CPU and wall time per
cycle); the target is <= 50% of one core at a 15 s interval. Prometheus (Debian's 2.42) scrapes
the same series from a local exposition endpoint and evaluates the same rule file; its
`/api/v1/rules` evaluation times, summed over groups, are the baseline (target ratio <= 2x).

Pipeline: a real `pantau serve` with an Alertmanager configuration routing everything to a
local webhook (group_by alertname, group_wait 1s, group_interval 1s); `--alerts` alerts are
posted to `/api/v2/alerts` at `--rate` per second (batches of 100). Reported: the rate
sustained, time until the webhook has seen every alert, alerts lost (must be 0) and pantau's
CPU. The same load against a real Alertmanager (Debian's 0.25) with the same configuration is
the baseline.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from pantau.alerting.clock import Clock  # noqa: E402
from pantau.alerting.rules import parse_text  # noqa: E402
from pantau.alerting.state import RuleManager  # noqa: E402
from pantau.model import SampleBatch, make_labels  # noqa: E402
from pantau.store.sqlite import SQLiteOptions, SQLiteStore  # noqa: E402

INTERVAL = 15


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rule_file(n: int) -> str:
    lines = ["groups:"]
    for g in range(0, n, 100):
        lines.append(f"- name: g{g // 100}\n  interval: {INTERVAL}s\n  rules:")
        for i in range(g, min(n, g + 100)):
            lines.append(f'  - alert: Load{i}\n    expr: bench_load{{instance="host-{i}"}} > 0.95\n    for: 1m')
    return "\n".join(lines) + "\n"


def values(n: int, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(n)]


# --- rule evaluation ---------------------------------------------------------------------------

def bench_pantau_rules(n: int, cycles: int, work: Path) -> dict:
    store = SQLiteStore(SQLiteOptions(data_dir=work / "pantau-rules"))
    store.start()
    now = time.time()
    vals = values(n)
    batch = SampleBatch()
    for k in range(4):
        for i in range(n):
            batch.append(make_labels({"__name__": "bench_load", "job": "bench", "instance": f"host-{i}"}),
                         int((now - 45 + 15 * k) * 1000), vals[i])
    store.write(batch, timeout=600)
    sent: list = []
    mgr = RuleManager(store, Clock(), sent.extend)
    mgr.update(parse_text(rule_file(n), "bench.yml", INTERVAL))
    walls, cpus = [], []
    for c in range(cycles):
        t0, c0 = time.perf_counter(), time.process_time()
        for gs in mgr.groups.values():
            mgr.evaluate_group(gs, now + c * INTERVAL)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    pending = sum(1 for gs in mgr.groups.values() for rs in gs.rules for a in rs.active.values())
    store.close()
    # the first cycle creates the pending alerts and their series; the steady state is the rest
    steady_wall = sorted(walls[1:] or walls)[len(walls[1:] or walls) // 2]
    steady_cpu = sorted(cpus[1:] or cpus)[len(cpus[1:] or cpus) // 2]
    return {"wall": steady_wall, "cpu": steady_cpu, "first_wall": walls[0], "active_alerts": pending}


class _Exposition(BaseHTTPRequestHandler):
    body = b""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


def bench_prometheus_rules(n: int, work: Path) -> dict | None:
    binary = shutil.which("prometheus")
    if binary is None:
        print("  prometheus not installed (Debian package `prometheus`): no baseline")
        return None
    vals = values(n)
    _Exposition.body = ("# TYPE bench_load gauge\n" + "".join(
        f'bench_load{{instance="host-{i}"}} {vals[i]!r}\n' for i in range(n))).encode()
    exp = ThreadingHTTPServer(("127.0.0.1", 0), _Exposition)
    threading.Thread(target=exp.serve_forever, daemon=True).start()
    d = work / "prom"
    d.mkdir()
    (d / "rules.yml").write_text(rule_file(n))
    import yaml

    # honor_labels keeps instance="host-N" from the exposition, as the pantau store has it
    (d / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "5s", "evaluation_interval": f"{INTERVAL}s"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [{"job_name": "bench", "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{exp.server_address[1]}"]}]}]}))
    port = free_port()
    proc = subprocess.Popen([binary, "--config.file=prometheus.yml", "--storage.tsdb.path=tsdb",
                             f"--web.listen-address=127.0.0.1:{port}"], cwd=d,
                            stdout=(d / "log").open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        first: dict[str, str] = {}
        while time.monotonic() < deadline:
            time.sleep(1)
            try:
                groups = httpx.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
            except (httpx.HTTPError, ValueError, KeyError):
                continue
            if not groups:
                continue
            # wait for two evaluations of every group after the data arrived
            loaded = httpx.get(f"{url}/api/v1/query", params={"query": "count(bench_load)"}).json()
            if not loaded["data"]["result"] or int(loaded["data"]["result"][0]["value"][1]) < n:
                continue
            for g in groups:
                first.setdefault(g["name"], g["lastEvaluation"])
            if all(g["lastEvaluation"] != first[g["name"]] for g in groups):
                total = sum(g["evaluationTime"] for g in groups)
                return {"wall": total, "groups": len(groups)}
        print("  prometheus did not evaluate every group in time")
        return None
    finally:
        proc.terminate()
        proc.wait(30)
        exp.shutdown()


# --- notification pipeline ------------------------------------------------------------------------

class Sink:
    """The webhook receiver: counts notifications and the distinct alerts they carried."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.notifications = 0
        self.last = 0.0
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.notifications += 1
                    for a in body["alerts"]:
                        outer.seen.add(a["labels"]["instance"])
                    outer.last = time.monotonic()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"


AM_CONFIG = """
route: {{receiver: hook, group_by: [alertname], group_wait: 1s, group_interval: 1s, repeat_interval: 1h}}
receivers: [{{name: hook, webhook_configs: [{{url: "{url}"}}]}}]
"""


def drive(base: str, pid: int, total: int, rate: float, sink: Sink) -> dict:
    proc = psutil.Process(pid)
    cpu0 = sum(proc.cpu_times()[:2])
    client = httpx.Client(timeout=30)
    started = time.monotonic()
    sent = 0
    batch = 100
    while sent < total:
        due = started + sent / rate
        if (delay := due - time.monotonic()) > 0:
            time.sleep(delay)
        alerts = [{"labels": {"alertname": f"Bench{i % 50}", "instance": f"i{i}", "severity": "warning"},
                   "annotations": {"summary": f"alert {i}"}} for i in range(sent, min(total, sent + batch))]
        r = client.post(f"{base}/api/v2/alerts", json=alerts)
        r.raise_for_status()
        sent += len(alerts)
    post_time = time.monotonic() - started
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(sink.seen) < total:
        time.sleep(0.1)
    done = sink.last - started
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    client.close()
    return {"rate": total / post_time, "delivered": len(sink.seen), "lost": total - len(sink.seen),
            "all_delivered_s": done, "notifications": sink.notifications, "cpu_s": cpu,
            "cpu_share": cpu / max(done, post_time)}


def bench_pantau_pipeline(total: int, rate: float, work: Path) -> dict:
    sink = Sink()
    d = work / "pantau-pipe"
    d.mkdir()
    (d / "am.yml").write_text(AM_CONFIG.format(url=sink.url))
    (d / "pantau.yaml").write_text(f"alertmanager_config: {d}/am.yml\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pantau", "serve", "--config", str(d / "pantau.yaml"),
                             "--data-dir", str(d / "data"), "--port", str(port), "--otlp-http-port",
                             str(free_port()), "--otlp-grpc-port", str(free_port()), "--log-level", "warning"],
                            stdout=(d / "log").open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{base}/readyz")
        return drive(base, proc.pid, total, rate, sink)
    finally:
        proc.terminate()
        proc.wait(60)
        sink.server.shutdown()


def bench_alertmanager_pipeline(total: int, rate: float, work: Path) -> dict | None:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        print("  alertmanager not installed (Debian package `prometheus-alertmanager`): no baseline")
        return None
    sink = Sink()
    d = work / "am"
    d.mkdir()
    (d / "am.yml").write_text(AM_CONFIG.format(url=sink.url))
    port = free_port()
    proc = subprocess.Popen([binary, f"--config.file={d}/am.yml", f"--storage.path={d}/data",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=(d / "log").open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{base}/-/ready")
        return drive(base, proc.pid, total, rate, sink)
    finally:
        proc.terminate()
        proc.wait(60)
        sink.server.shutdown()


def _wait(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", type=int, default=10_000)
    ap.add_argument("--cycles", type=int, default=4)
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--skip-baselines", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pantau-bench-alerting-"))
    try:
        print(f"rule evaluation: {args.rules} alerting rules over {args.rules} series, groups of 100, "
              f"every {INTERVAL}s")
        ours = bench_pantau_rules(args.rules, args.cycles, work)
        print(f"  pantau:     {ours['wall']:.3f} s wall, {ours['cpu']:.3f} s CPU per cycle "
              f"(first cycle {ours['first_wall']:.3f} s; {ours['active_alerts']} alerts pending)"
              f" -> {ours['cpu'] / INTERVAL:.1%} of one core at a {INTERVAL}s interval (target <= 50%)")
        theirs = None if args.skip_baselines else bench_prometheus_rules(args.rules, work)
        if theirs:
            print(f"  prometheus: {theirs['wall']:.3f} s per cycle (sum of {theirs['groups']} groups' "
                  f"evaluationTime) -> pantau / prometheus = {ours['wall'] / theirs['wall']:.2f}x (target <= 2x)")
        print(f"pipeline: {args.alerts} alerts posted to /api/v2/alerts at {args.rate:g}/s, webhook receiver")
        p = bench_pantau_pipeline(args.alerts, args.rate, work)
        print(f"  pantau:       {p['rate']:.0f} alerts/s accepted, {p['delivered']} delivered, {p['lost']} lost, "
              f"all delivered {p['all_delivered_s']:.1f} s after the first post, {p['notifications']} notifications,"
              f" CPU {p['cpu_s']:.1f} s ({p['cpu_share']:.0%} of one core)")
        a = None if args.skip_baselines else bench_alertmanager_pipeline(args.alerts, args.rate, work)
        if a:
            print(f"  alertmanager: {a['rate']:.0f} alerts/s accepted, {a['delivered']} delivered, {a['lost']} lost, "
                  f"all delivered {a['all_delivered_s']:.1f} s after the first post, {a['notifications']} "
                  f"notifications, CPU {a['cpu_s']:.1f} s ({a['cpu_share']:.0%} of one core)")
            print(f"  ratios pantau / alertmanager: CPU {p['cpu_s'] / max(a['cpu_s'], 1e-9):.2f}x, "
                  f"time to deliver all {p['all_delivered_s'] / a['all_delivered_s']:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
