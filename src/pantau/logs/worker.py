"""The pattern miner and the log detectors in a process of their own.

Mining is pure Python (Drain's tree, the masker, the detectors' windows). On a thread of the
hub it shares one interpreter lock with ingest, and measured on this 2-core machine any busy
third thread cost ingest about a third of its rate, however little it was allowed to work
(the lock changes hands every millisecond). In a child process it runs on the other core: the
hub only pickles each committed batch into a socket and waits for the template ids with the
lock released.

The child owns the miner; the hub keeps a copy refreshed from the child's snapshots for the
API and for saving the state. Messages are `(verb, *args)` tuples over a
`multiprocessing.connection.Connection` on a socketpair.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection

from pantau.model import LogBatch, LogRecord, Resource, Scope
from pantau.store.base import Event

log = logging.getLogger("pantau.logs")


def inspect(miner, detectors, mine: bool, batch: LogBatch) -> tuple[list[str] | None, list[Event]]:
    """Template ids of a batch's records (None when mining is off) and the events it raises."""
    events: list[Event] = []
    ids = None
    if mine:
        ids = miner.observe_many(zip(batch.service, batch.body, batch.time_ns, strict=True))
        events += miner.pop_events()
    if detectors is not None:
        from pantau.logs.detectors.prefilter import DETECTOR_KEYS
        from pantau.otlp.convert import log_from_payload, resource_from_bytes, scope_from_bytes

        resources: dict[int, Resource] = {}
        scopes: dict[int, Scope] = {}

        def record(i: int) -> LogRecord:
            r, s = batch.resource_ref[i], batch.scope_ref[i]
            resource = resources.get(r)
            if resource is None:
                resource = resources[r] = resource_from_bytes(batch.resources[r])
            scope = scopes.get(s)
            if scope is None:
                scope = scopes[s] = scope_from_bytes(batch.scopes[s])
            payload = batch.payload[i]
            if DETECTOR_KEYS.search(payload):
                rec = log_from_payload(payload, batch.body[i], batch.service[i], resource, scope)
                rec.time_ns = batch.time_ns[i]
                return rec
            # no attribute any detector reads: skip decoding them
            return LogRecord(batch.time_ns[i], batch.observed_ns[i], batch.severity_number[i],
                             batch.severity_text[i], batch.body[i], batch.service[i], resource=resource,
                             scope=scope)

        events += detectors.observe_batch(batch, record)
    return ids, events


def _slim(batch: LogBatch) -> LogBatch:
    """What the child needs of a batch (not its audit entries nor where it was stored)."""
    return LogBatch(resources=batch.resources, scopes=batch.scopes, time_ns=batch.time_ns,
                    observed_ns=batch.observed_ns, severity_number=batch.severity_number,
                    severity_text=batch.severity_text, body=batch.body, service=batch.service,
                    resource_ref=batch.resource_ref, scope_ref=batch.scope_ref, payload=batch.payload)


class LogWorker:
    """The hub's side of the child process. Calls come from one thread (the service's)."""

    def __init__(self, config_json: str, state: bytes | None) -> None:
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from pantau.logs.worker import child_main; child_main()", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send(("init", config_json, state))

    def _call(self, *message):
        self.conn.send(message)
        return self.conn.recv()

    def inspect(self, batch: LogBatch) -> tuple[list[str] | None, list[Event]]:
        return self._call("batch", _slim(batch))

    def tick(self, now_ns: int) -> list[Event]:
        return self._call("tick", now_ns)

    def snapshot(self) -> bytes:
        return self._call("snapshot")

    def stop(self, timeout: float = 30.0) -> bytes | None:
        """The final state, then the child exits."""
        state = None
        try:
            state = self._call("stop")
        except (EOFError, OSError):
            log.warning("log worker had already exited")
        self.conn.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return state

    def kill(self) -> None:
        self.conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def child_main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pantau.logs.detectors import DetectorSet
    from pantau.logs.patterns import PatternMiner
    from pantau.logs.service import LogsConfig

    conn = Connection(int(sys.argv[1]))
    _, config_json, state = conn.recv()
    cfg = LogsConfig.model_validate_json(config_json)
    if cfg.worker_nice:
        # background work: when the cores are busy, ingest and queries go first and the
        # miner catches up after the burst (beyond `queue_records` it skips, counted)
        os.nice(cfg.worker_nice)
    miner = PatternMiner(cfg.patterns)
    if state:
        try:
            miner = PatternMiner.from_bytes(state, cfg.patterns)
        except Exception:
            log.exception("log patterns: saved state unreadable, starting afresh")
    detectors = DetectorSet(cfg.detectors) if cfg.detectors_enabled else None
    while True:
        try:
            verb, *args = conn.recv()
        except (EOFError, OSError):
            break  # the hub went away
        if verb == "batch":
            try:
                conn.send(inspect(miner, detectors, cfg.patterns.enabled, args[0]))
            except Exception:
                log.exception("log patterns: a batch failed")
                conn.send((None, []))
        elif verb == "tick":
            conn.send(detectors.tick(args[0]) if detectors is not None else [])
        elif verb == "snapshot":
            conn.send(miner.to_bytes())
        elif verb == "stop":
            conn.send(miner.to_bytes())
            break
    os._exit(0)
