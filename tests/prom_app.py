"""A small service instrumented with OpenTelemetry metrics and served at /metrics for Prometheus.

    python tests/prom_app.py PORT

Run by the end-to-end tests as a real scrape target. `instrument()` is the only place that
knows how the metrics reach /metrics: `pantau.init(prometheus_port=...)` (OpenTelemetry's
Prometheus exporter on prometheus_client's HTTP server underneath); no OTLP endpoint, so the
scrape is the only way out.
"""

from __future__ import annotations

import random
import sys
import time

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation


def instrument(port: int) -> metrics.Meter:
    import pantau

    pantau.init("document-signer", version="1.8.0", endpoint="none", prometheus_port=port,
                prometheus_addr="127.0.0.1")
    return metrics.get_meter("document-signer")


def main() -> None:
    port = int(sys.argv[1])
    meter = instrument(port)
    rng = random.Random(1)
    signed = meter.create_counter("documents.signed", unit="{document}", description="Documents signed.")
    latency = meter.create_histogram("signing.duration", unit="s", description="Time to sign one document.")
    queue = meter.create_up_down_counter("signing.queue.size", unit="{document}", description="Documents waiting.")

    def temperature(options: CallbackOptions):
        yield Observation(-3.5 + rng.random(), {"sensor": "hsm"})

    meter.create_observable_gauge("hsm.temperature", [temperature], unit="Cel", description="HSM temperature.")
    print("ready", flush=True)
    while True:
        for algorithm in ("ed25519", "rsa"):
            signed.add(1, {"algorithm": algorithm, "tenant": f"t{rng.randrange(2)}"})
            latency.record(rng.lognormvariate(-3, 0.7), {"algorithm": algorithm})
        queue.add(rng.choice((-1, 1)), {"priority": "high"})
        time.sleep(0.05)


if __name__ == "__main__":
    main()
