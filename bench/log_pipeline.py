"""Log ingest with the log-intelligence stages on, against the hub core's plain log ingest.

    python bench/log_pipeline.py [--requests 200] [--repeat 3]

Each variant is a fresh `pantau serve` fed the same pre-encoded OTLP/HTTP log requests
(batches of 512, 8 in flight; 2% of the lines carry an e-mail address, a phone number or a
card number, as real logs do now and then). Variants run interleaved, one of each per round,
so drift on this shared machine hits them alike; each figure is the median over rounds and
is printed with its ratio to the plain rate of the same run (the hub core with redaction,
pattern mining and detectors off). Target: with all of them on (the defaults) >= 0.70x.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest
from ingest import BATCH, Hub, log_request, send_all

PLAIN = "plain (core only)"
VARIANTS = {
    PLAIN: "redaction:\n  enabled: false\nlogs:\n  patterns:\n    enabled: false\n  detectors_enabled: false\n",
    "redaction at ingest": "logs:\n  patterns:\n    enabled: false\n  detectors_enabled: false\n",
    "redaction + mining + detectors (defaults)": None,
}
PII = ["contact budi.santoso@merajutasa.id", "callback +62 812-3456-7890", "card 4111 1111 1111 1111"]


def _line_with_pii(rng: random.Random, k: int) -> str:
    line = _plain_line(rng, k)
    return f"{line} {rng.choice(PII)}" if rng.random() < 0.02 else line


_plain_line = ingest.log_line
ingest.log_line = _line_with_pii  # log_request builds its lines through this name


def requests(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    t0 = time.time_ns() - 600 * 10**9
    return [log_request(rng, BATCH, t0 + k * BATCH * 1000, f"svc-{k % 4}", k * BATCH, None) for k in range(count)]


def mining_progress(api: str) -> tuple[float, float, float]:
    """Records mined, batches skipped, records waiting: from the hub's /metrics."""
    text = httpx.get(f"{api}/metrics", timeout=30).text

    def value(name: str) -> float:
        return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")), 0.0)

    return (value("pantau_log_patterns_records_total"), value("pantau_log_patterns_skipped_batches_total"),
            value("pantau_log_patterns_queue_records"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="pantau-logbench-") as tmp:
        for rnd in range(args.repeat):
            bodies = requests(args.requests, seed=rnd)
            for name, config in VARIANTS.items():
                workdir = Path(tmp) / f"{rnd}-{len(rates[name])}-{abs(hash(name))}"
                hub = Hub(workdir, config)
                try:
                    elapsed = send_all(hub.ports[1], "logs", bodies, 8)
                    if config is None:
                        mined, skipped, _ = mining_progress(hub.api)
                        waited = time.monotonic()
                        while mining_progress(hub.api)[2] and time.monotonic() - waited < 300:
                            time.sleep(0.5)
                        total = len(bodies) * BATCH
                        _, skipped, _ = mining_progress(hub.api)
                        print(f"  round {rnd + 1}: mined by the end of ingest {mined / total:.0%}; all mined "
                              f"{time.monotonic() - waited:.0f} s later; batches skipped {skipped:.0f}", flush=True)
                finally:
                    hub.stop()
                    shutil.rmtree(workdir, ignore_errors=True)
                rates[name].append(len(bodies) * BATCH / elapsed)
                print(f"  round {rnd + 1}: {name}: {rates[name][-1]:,.0f} records/s", flush=True)
    base = statistics.median(rates[PLAIN])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:42s} {rate:>10,.0f} records/s   ratio {rate / base:4.2f}x   "
              f"runs: {', '.join(f'{v:,.0f}' for v in values)}")


if __name__ == "__main__":
    main()
