"""Log intelligence inside the hub: the pattern miner and the detectors, fed from the bus.

Ingest must never wait for it. Committed log batches arrive on bus topic `data.log` (on the
store's writer thread); the handler only puts the batch on a bounded queue and returns. A
thread of the service hands each batch to a child process (`pantau.logs.worker`) that mines
and detects on the other core, and waits for the answer with the interpreter lock released:
on a thread of the hub the same work cost ingest a third of its rate. If the child falls
behind by more than `queue_records`, batches are skipped and counted (`skipped_batches`),
never blocking the writer. Template ids go to the store with the records
(`set_log_templates`); events go to the store (`put_event`) and the bus (`log_pattern`); the
miner's state is saved to the store (`put_state("log_patterns", "miner")`) every
`persist_seconds` and on stop, and restored on start, so templates and their ids survive
restarts. With `worker_process: false` the work runs on the service's thread instead, resting
under a backlog (`max_busy_share`) so ingest keeps part of its pace.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from pantau.bus import Bus
from pantau.logs.detectors import DetectorsConfig, DetectorSet
from pantau.logs.patterns import PatternConfig, PatternMiner
from pantau.logs.worker import LogWorker, inspect
from pantau.model import LogBatch
from pantau.store.base import Event, Store

log = logging.getLogger("pantau.logs")

STATE_NAMESPACE = "log_patterns"
STATE_KEY = "miner"
TOPIC = "log_pattern"


class LogsConfig(BaseModel):
    """`logs:` in pantau.yaml."""

    model_config = ConfigDict(extra="forbid")

    patterns: PatternConfig = PatternConfig()
    detectors: DetectorsConfig = DetectorsConfig()
    detectors_enabled: bool = True
    queue_records: int = Field(200_000, ge=1, description="committed records waiting to be mined; beyond, "
                               "batches are skipped (counted), never blocking ingest")
    max_busy_share: float = Field(0.5, gt=0, le=1, description="while batches wait, the share of time the "
                                  "miner may work (it rests the rest, leaving the interpreter to ingest)")
    worker_process: bool = Field(True, description="mine and detect in a child process, on another core, so "
                                 "ingest keeps the interpreter lock (false: on a thread of the hub)")
    worker_nice: int = Field(19, ge=0, le=19, description="the child's niceness: under load the cores go to "
                             "ingest and queries first")
    snapshot_seconds: float = Field(2, gt=0, description="how often the hub refreshes its copy of the child's "
                                    "templates (what the API lists)")
    tick_seconds: float = Field(5, gt=0, description="how often time-based detectors (silence, window ends) run")
    persist_seconds: float = Field(60, gt=0, description="how often the miner's state is saved")


class LogPatternService:
    def __init__(self, store: Store, bus: Bus, config: LogsConfig | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.store, self.bus = store, bus
        self.config = config or LogsConfig()
        self.clock = clock
        self.miner = self._restore()
        self._detectors: DetectorSet | None = None
        self._queue: queue.Queue[LogBatch | None] = queue.Queue()
        self._queued = 0  # records in the queue (bounded by queue_records)
        self._queued_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._worker: LogWorker | None = None
        self.skipped_batches = 0
        self.processed_records = 0
        self.events_emitted: dict[tuple[str, str], int] = {}  # (kind, detector or reason) -> count

    @property
    def detectors(self) -> DetectorSet | None:
        """The detectors, when they run here (no worker process); made on first use, so that a
        hub whose detectors run in the worker never builds a copy (or its Hyperscan database)."""
        if self._detectors is None and self.config.detectors_enabled:
            self._detectors = DetectorSet(self.config.detectors)
        return self._detectors

    def _restore(self) -> PatternMiner:
        data = self.store.get_state(STATE_NAMESPACE, STATE_KEY)
        if data:
            try:
                return PatternMiner.from_bytes(data, self.config.patterns)
            except Exception:  # a corrupt or incompatible state must not stop the hub
                log.exception("log patterns: saved state unreadable, starting afresh")
        return PatternMiner(self.config.patterns)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if not self.config.patterns.enabled and not self.config.detectors_enabled:
            return
        if self.config.worker_process:
            self._worker = LogWorker(self.config.model_dump_json(), self.miner.to_bytes())
        self._thread = threading.Thread(target=self._run, name="pantau-log-patterns", daemon=True)
        self._thread.start()
        self._unsubscribe = self.bus.subscribe("data.log", self._on_batch)

    def stop(self, timeout: float = 30.0) -> None:
        """Mine what is queued, then save the state. Call before the store closes."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
            if self._worker is not None:
                state = self._worker.stop()
                self._worker = None
                if state:
                    self.miner = PatternMiner.from_bytes(state, self.config.patterns)
            self.persist()

    def _on_batch(self, topic: str, batch: LogBatch) -> None:
        n = len(batch)
        with self._queued_lock:
            if self._queued + n > self.config.queue_records and self._queued:
                self.skipped_batches += 1
                return
            self._queued += n
        self._queue.put_nowait(batch)

    # --- work --------------------------------------------------------------------------

    def _run(self) -> None:
        cfg = self.config
        next_tick = time.monotonic() + cfg.tick_seconds
        next_save = time.monotonic() + cfg.persist_seconds
        next_snapshot = time.monotonic() + cfg.snapshot_seconds
        while True:
            try:
                batch = self._queue.get(timeout=min(cfg.tick_seconds, 1.0))
            except queue.Empty:
                batch = ...
            if batch is None:
                break
            try:
                if batch is not ...:
                    started = time.perf_counter()
                    self.process(batch)
                    with self._queued_lock:
                        self._queued -= len(batch)
                        backlog = self._queued
                    if backlog and cfg.max_busy_share < 1 and self._worker is None:
                        # Mining shares one interpreter with ingest: under a backlog (ingest is
                        # busy), rest in proportion to the work done so ingest keeps its pace.
                        time.sleep((time.perf_counter() - started) * (1 - cfg.max_busy_share) / cfg.max_busy_share)
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + cfg.tick_seconds
                    self.tick()
                if self._worker is not None and now >= next_snapshot:
                    next_snapshot = now + cfg.snapshot_seconds
                    self._refresh()
                if now >= next_save:
                    next_save = now + cfg.persist_seconds
                    self._refresh()
                    self.persist()
            except Exception:
                log.exception("log patterns: a batch failed")

    def process(self, batch: LogBatch) -> None:
        """Mine and inspect one committed batch (on the service's thread, or a test's): in the
        child process when there is one, else here."""
        if self._worker is not None:
            try:
                ids, events = self._worker.inspect(batch)
            except (EOFError, OSError):
                self._restart_worker()
                self.skipped_batches += 1
                return
        else:
            ids, events = inspect(self.miner, self.detectors, self.config.patterns.enabled, batch)
        if ids is not None:
            self.store.set_log_templates(batch, ids)  # each stored record gets its template id
        self.processed_records += len(batch)
        self._emit(events)

    def _refresh(self) -> None:
        """Take the child's current templates as the hub's copy (for the API and for saving)."""
        if self._worker is None:
            return
        try:
            self.miner = PatternMiner.from_bytes(self._worker.snapshot(), self.config.patterns)
        except (EOFError, OSError):
            self._restart_worker()

    def _restart_worker(self) -> None:
        log.error("log patterns: the worker process died; restarting it from the last snapshot")
        if self._worker is not None:
            self._worker.kill()
        self._worker = LogWorker(self.config.model_dump_json(), self.miner.to_bytes())

    def tick(self, now_ns: int | None = None) -> None:
        now = self.clock() if now_ns is None else now_ns
        if self._worker is not None:
            try:
                self._emit(self._worker.tick(now))
            except (EOFError, OSError):
                self._restart_worker()
        elif self.detectors is not None:
            self._emit(self.detectors.tick(now))

    def persist(self) -> None:
        try:
            self.store.put_state(STATE_NAMESPACE, STATE_KEY, self.miner.to_bytes())
        except Exception:
            log.exception("log patterns: cannot save the miner's state")

    def collector(self) -> _Collector:
        """Self-monitoring for the hub's /metrics (register it on a prometheus_client registry)."""
        return _Collector(self)

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            key = (event.kind, event.labels.get("detector") or event.labels.get("reason", ""))
            self.events_emitted[key] = self.events_emitted.get(key, 0) + 1
            try:
                event.id = self.store.put_event(event)
            except Exception:
                log.exception("log patterns: cannot store event %s", event.id)
            self.bus.publish(TOPIC, event)


class _Collector:
    def __init__(self, service: LogPatternService) -> None:
        self.service = service

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.service
        yield CounterMetricFamily("pantau_log_patterns_records", "Log records mined and inspected.",
                                  value=s.processed_records)
        yield CounterMetricFamily("pantau_log_patterns_skipped_batches",
                                  "Committed log batches not mined: the miner was too far behind.",
                                  value=s.skipped_batches)
        yield GaugeMetricFamily("pantau_log_patterns_queue_records", "Committed log records waiting to be mined.",
                                value=s._queued)
        yield GaugeMetricFamily("pantau_log_patterns_templates", "Log templates known, all services.",
                                value=s.miner.template_count())
        events = CounterMetricFamily("pantau_log_events", "Events raised by the miner and the log detectors.",
                                     labels=["kind", "source"])
        for (kind, source), n in sorted(s.events_emitted.items()):
            events.add_metric([kind, source], n)
        yield events
