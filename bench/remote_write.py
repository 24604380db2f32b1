"""Remote-write ingest: pantau's receiver against Prometheus's own, same payloads, same run.

    python bench/remote_write.py                 # 3 repeats, about 1 minute
    python bench/remote_write.py --repeat 5 --rounds 200 --shards 4

Both receivers start empty in their own processes: `prometheus --web.enable-remote-write-receiver`
(Debian's 2.42) and `pantau serve`. This process is the sender and plays Prometheus's queue
manager: `--shards` keep-alive connections, each owning its own series and sending its
requests in order, one at a time (a receiver must see each series' samples in time order);
each request holds 500 series with one sample each (2.42's default `max_samples_per_send`),
labelled like a node/kubernetes exporter's series, a tenth of the values 0 (idle counters).
Every payload is encoded and snappy-compressed before the clock starts.

A warm-up round (every series once: creating series is not what a steady stream costs) is
sent first and not timed; then `--rounds` rounds, timed from the first request to the last
204 (each 204 means committed). The figure is samples/s; the ratio pantau / Prometheus is
taken per repeat (the two run back to back, alternating who goes first) and as the ratio of
the medians. Target: >= 0.5x.

The sender is a Python process on the same (2-core) machine, so Prometheus's wall-clock rate
is partly the sender's limit; the samples per CPU-second each server spent (its process and
children, from psutil) is printed too, a ratio the sender does not bend.
"""

from __future__ import annotations

import argparse
import http.client
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cramjam
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import HubProcess  # noqa: E402
from tests.prometheus_harness import RW_HEADERS, PrometheusProcess  # noqa: E402

from pantau.ingest.remote_write_pb import encode_write_request  # noqa: E402

PER_REQUEST = 500
TARGET_RATIO = 0.5


def shard_payloads(shard: int, blocks: int, rounds: int, t0: int, rng: random.Random) -> list[bytes]:
    """The requests of one shard: `blocks` groups of 500 series, each sent once per round."""
    groups = []
    for b in range(blocks):
        group = []
        for i in range(PER_REQUEST):
            n = (shard * blocks + b) * PER_REQUEST + i
            group.append([("__name__", ("node_cpu_seconds_total", "http_requests_total", "container_memory_bytes",
                                        "kube_pod_status_ready")[n % 4]),
                          ("cluster", "prod-1"), ("instance", f"10.0.{n // 250 % 250}.{n % 250}:9100"),
                          ("job", ("node", "api", "cadvisor", "kube-state")[n % 4]),
                          ("namespace", f"team-{n % 17}"), ("pod", f"pod-{n // 4}"),
                          ("mode", ("user", "system")[n % 2])])
        groups.append(group)
    bodies = []
    for r in range(rounds + 1):  # round 0 is the warm-up
        for b, group in enumerate(groups):
            t = t0 + (r * blocks + b) * 1000
            series = [(labels, [t], [0.0 if rng.random() < 0.1 else rng.random() * 1e4]) for labels in group]
            bodies.append(bytes(cramjam.snappy.compress_raw(encode_write_request(series))))
    return bodies


def send(port: int, shards: list[list[bytes]], path: str = "/api/v1/write") -> None:
    failures: list[str] = []

    def worker(bodies: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for body in bodies:
            conn.request("POST", path, body=body, headers=RW_HEADERS)
            resp = conn.getresponse()
            text = resp.read()
            if resp.status != 204:
                failures.append(f"HTTP {resp.status}: {text[:200]!r}")
                break
        conn.close()

    threads = [threading.Thread(target=worker, args=(bodies,)) for bodies in shards]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} shards failed: {failures[:3]}")


def cpu_seconds(proc: psutil.Process) -> float:
    """CPU time of a server and its children (pantau's log indexer)."""
    total = 0.0
    for p in (proc, *proc.children(recursive=True)):
        times = p.cpu_times()
        total += times.user + times.system
    return total


def measure(pid: int, port: int, warmup: list[list[bytes]], timed: list[list[bytes]]) -> tuple[float, float]:
    """(samples/s over the wall clock, samples per CPU-second the server spent)."""
    send(port, warmup)
    proc = psutil.Process(pid)
    cpu = cpu_seconds(proc)
    started = time.perf_counter()
    send(port, timed)
    elapsed = time.perf_counter() - started
    samples = sum(len(b) for b in timed) * PER_REQUEST
    return samples / elapsed, samples / max(cpu_seconds(proc) - cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=100, help="timed rounds (each shard sends --blocks requests)")
    parser.add_argument("--shards", type=int, default=4, help="concurrent connections, each with its own series")
    parser.add_argument("--blocks", type=int, default=2, help="groups of 500 series per shard")
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    args = parser.parse_args()

    rng = random.Random(11)
    t0 = int(time.time() * 1000) - 3600_000
    shards = [shard_payloads(s, args.blocks, args.rounds, t0, rng) for s in range(args.shards)]
    warmup = [bodies[: args.blocks] for bodies in shards]
    timed = [bodies[args.blocks:] for bodies in shards]
    samples = sum(len(b) for b in timed) * PER_REQUEST
    print(f"payloads: {args.shards} shards x {args.blocks * PER_REQUEST} series, {samples:,} timed samples in "
          f"{sum(len(b) for b in timed)} requests of {PER_REQUEST} "
          f"({statistics.mean(len(b) for s in timed for b in s):,.0f} bytes each, snappy)", flush=True)

    prom_rates: list[float] = []
    pantau_rates: list[float] = []
    prom_cpu: list[float] = []
    pantau_cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="pantau-bench-rw-") as tmp:
        for rep in range(args.repeat):
            order = ("prometheus", "pantau") if rep % 2 == 0 else ("pantau", "prometheus")
            for who in order:
                workdir = Path(tmp) / f"{who}-{rep}"
                if who == "prometheus":
                    server = PrometheusProcess(workdir, remote_write_receiver=True, binary=args.prometheus).start()
                    port = server.port
                else:
                    workdir.mkdir(parents=True)
                    server = HubProcess(workdir / "data").start()
                    port = server.port
                try:
                    rate, per_cpu = measure(server.proc.pid, port, warmup, timed)
                finally:
                    server.stop()
                (prom_rates if who == "prometheus" else pantau_rates).append(rate)
                (prom_cpu if who == "prometheus" else pantau_cpu).append(per_cpu)
                print(f"  run {rep + 1} {who:10s} {rate:>10,.0f} samples/s   {per_cpu:>10,.0f} samples per server "
                      "CPU-second", flush=True)
            shutil.rmtree(Path(tmp) / f"prometheus-{rep}", ignore_errors=True)
            shutil.rmtree(Path(tmp) / f"pantau-{rep}", ignore_errors=True)
    prom, ours = statistics.median(prom_rates), statistics.median(pantau_rates)
    ratios = [p / q for p, q in zip(pantau_rates, prom_rates, strict=True)]
    verdict = "met" if ours / prom >= TARGET_RATIO else "MISSED"
    print(f"remote write  pantau {ours:>10,.0f} samples/s   prometheus {prom:>10,.0f} samples/s   "
          f"ratio {ours / prom:4.2f}x (per run: {', '.join(f'{r:.2f}' for r in ratios)})   "
          f"target >= {TARGET_RATIO}x   [{verdict}]", flush=True)
    cpu_prom, cpu_ours = statistics.median(prom_cpu), statistics.median(pantau_cpu)
    print(f"per server CPU-second  pantau {cpu_ours:>10,.0f}   prometheus {cpu_prom:>10,.0f}   "
          f"ratio {cpu_ours / cpu_prom:4.2f}x (the sender shares the machine: this one does not depend on it)",
          flush=True)


if __name__ == "__main__":
    main()
