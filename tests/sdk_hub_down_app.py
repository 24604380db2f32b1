"""Run N traced operations (each with a log line) against a hub that is not there.

    python tests/sdk_hub_down_app.py PROTOCOL ENDPOINT N

Prints one JSON line: RSS after 20% and after all operations, shutdown seconds, sdk_stats().
"""

from __future__ import annotations

import json
import logging
import sys
import time

import psutil

import pantau


def main() -> None:
    protocol, endpoint, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pantau.init("hub-down", endpoint=endpoint, protocol=protocol, metrics_interval_s=1.0, timeout_s=2.0)
    log = logging.getLogger("hub-down")
    proc = psutil.Process()

    @pantau.trace("operation", attributes={"kind": "test"})
    def operation(i: int) -> int:
        if i % 100 == 0:
            log.info("operation %d for a@b.co", i)
        pantau.record_signing_operation("sign", "success", "ed25519", 1.5)
        return i

    rss_early = 0
    for i in range(n):
        operation(i)
        if i == n // 5:
            rss_early = proc.memory_info().rss
    rss_end = proc.memory_info().rss
    t = time.monotonic()
    pantau.shutdown()
    print(json.dumps({"rss_early": rss_early, "rss_end": rss_end, "shutdown_s": time.monotonic() - t,
                      "stats": pantau.sdk_stats()}), flush=True)


if __name__ == "__main__":
    main()
