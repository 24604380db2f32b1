"""A batch job instrumented with pantau: spans, business metrics, logs, audit, threads.

    pantau serve &
    python examples/plain_script.py          # OTEL_EXPORTER_OTLP_ENDPOINT etc. are honoured
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pantau

log = logging.getLogger("nightly-equity")


@pantau.trace("score_region", record_result=True)
def score_region(region: str) -> float:
    score = round(random.uniform(60, 95), 1)
    pantau.record_equity_score(score, category="access", tier=region)
    log.info("region %s scored %.1f", region, score)
    return score


def main() -> None:
    pantau.init("nightly-equity", version="1.0.0")
    with pantau.correlation() as cid, pantau.trace("nightly_run", attributes={"job.id": cid}):
        with ThreadPoolExecutor(4) as pool:  # pantau.submit carries the trace into the threads
            scores = [f.result() for f in [pantau.submit(pool, score_region, r) for r in ("jawa", "sumatra", "bali")]]
        pantau.record_governance_event("data-retention", "compliant")
        pantau.performance_log("nightly_run", sum(scores), threshold_ms=10_000)
        pantau.audit("equity.publish", actor="scheduler", resource="report/nightly", outcome="success")
        log.info("done; %d regions, mean %.1f", len(scores), sum(scores) / len(scores))
    time.sleep(0.01)
    pantau.shutdown()
    print(f"correlation_id={cid}", pantau.sdk_stats())


if __name__ == "__main__":
    main()
