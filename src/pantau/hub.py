"""The hub: builds every component from the configuration, runs them, stops them cleanly.

Start-up checks everything that can fail before anything starts (ports free, data directory
writable and not used by another pantau), so a mistake ends with one clear message instead
of a half-started process. Shutdown (SIGTERM/SIGINT) stops accepting requests, lets the ones
in flight finish, then commits every accepted batch before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
import uvicorn

from pantau.alerting import api as alerting_api
from pantau.alerting.service import AlertingService
from pantau.anomaly import api as anomaly_api
from pantau.anomaly.engine import AnomalyEngine
from pantau.bus import Bus
from pantau.config import PantauConfig
from pantau.ingest import otlp_grpc, otlp_http
from pantau.ingest.receiver import Receiver
from pantau.ingest.scrape import ScrapeManager
from pantau.logs import api as log_patterns_api
from pantau.logs.redact_ingest import IngestRedactor
from pantau.logs.service import LogPatternService
from pantau.otlp.decode import Limits, OtlpDecoder
from pantau.selfmon import SelfMetrics
from pantau.store.base import Store
from pantau.store.sqlite import SQLiteOptions, SQLiteStore
from pantau.web import remote_write
from pantau.web.app import create_app

log = logging.getLogger("pantau.hub")


class HubError(RuntimeError):
    """A start-up problem the user must fix (port in use, unwritable data directory, ...)."""


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the hub (several servers share a loop)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


@dataclass
class Endpoints:
    api: str
    otlp_http: str
    otlp_grpc: str


def _bind(host: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP: asyncio only disables Nagle's algorithm on accepted sockets
    # whose proto says TCP; with the default 0 every keep-alive response waited ~40 ms for
    # the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise HubError(f"cannot listen for {what} on {host}:{port}: the port is already in use "
                           "(another pantau, or an OpenTelemetry Collector?). Stop it or choose "
                           "another port.") from None
        raise HubError(f"cannot listen for {what} on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _lock_data_dir(path: Path) -> int:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise HubError(f"data directory {path} is not writable: {exc.strerror or exc}") from None
    fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise HubError(f"data directory {path} is in use by another pantau (pid {other})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


class Hub:
    def __init__(self, config: PantauConfig) -> None:
        self.config = config
        self.metrics = SelfMetrics()
        self.store: Store | None = None
        # Components announce what happened here ("data.logs", "anomaly", "alert", ...).
        self.bus = Bus()
        self.log_patterns: LogPatternService | None = None
        self._stop = asyncio.Event()
        self._ready = False

    def request_stop(self) -> None:
        self._stop.set()

    def _build_store(self) -> Store:
        st = self.config.storage
        retention = st.retention.model_dump()
        by_severity = retention.pop("logs_by_severity")
        return SQLiteStore(SQLiteOptions(
            data_dir=st.data_dir,
            partition_seconds=int(st.partition),
            retention_seconds={k: int(v) for k, v in retention.items()},
            queue_capacity=self.config.limits.write_queue_items,
            synchronous="FULL" if st.fsync else "NORMAL",
            archive_dir=st.archive_dir,
            log_retention_by_severity={k: int(v) for k, v in by_severity.items()},
        ))

    def _build_redactor(self) -> IngestRedactor | None:
        rc = self.config.redaction
        if not rc.enabled:
            return None
        redactor = IngestRedactor.from_config(rc.disable_rules, rc.exempt_attributes, rc.force_attributes,
                                              rc.secret_keys)
        self.metrics.watch_redaction(redactor.counts)
        return redactor

    async def serve(self) -> None:
        # The event loop decodes while the writer thread commits; both need the interpreter
        # lock. With the default 5 ms switch interval the writer waits up to 5 ms each time it
        # comes back from SQLite, so commits stretch; 1 ms measured ~25% more ingest.
        sys.setswitchinterval(0.001)
        # Query endpoints run in worker threads; each keeps its own SQLite read connections.
        # Eight threads serve a dashboard's parallel queries without a connection set per
        # thread of anyio's default forty.
        anyio.to_thread.current_default_thread_limiter().total_tokens = 8
        cfg = self.config
        srv, lim = cfg.server, cfg.limits
        sockets: list[socket.socket] = []
        lock_fd = _lock_data_dir(Path(cfg.storage.data_dir))
        try:
            api_sock = _bind(srv.bind, srv.port, "the API and UI")
            sockets.append(api_sock)
            otlp_sock = _bind(srv.bind, srv.otlp_http_port, "OTLP/HTTP")
            sockets.append(otlp_sock)
            grpc_probe = _bind(srv.bind, srv.otlp_grpc_port, "OTLP/gRPC")
            grpc_port = grpc_probe.getsockname()[1]
            grpc_probe.close()

            store = self.store = self._build_store()
            store.start()
            max_age = int(max(cfg.storage.retention.spans, cfg.storage.retention.logs,
                              cfg.storage.retention.metrics) * 1e9)
            decoder = OtlpDecoder(Limits(
                max_attribute_value_bytes=lim.max_attribute_value_bytes,
                max_log_body_bytes=lim.max_log_body_bytes,
                max_age_ns=max_age,
                max_future_ns=int(lim.future_tolerance * 1e9),
            ), redactor=self._build_redactor())
            receiver = Receiver(store, decoder, self.metrics)
            self.metrics.watch_store(store.stats)
            store.add_commit_listener(
                lambda batch: self.bus.publish(f"data.{type(batch).__name__.removesuffix('Batch').lower()}", batch))

            self.log_patterns = LogPatternService(store, self.bus, cfg.logs)
            self.log_patterns.start()
            self.metrics.registry.register(self.log_patterns.collector())
            api = create_app(store, self.metrics, lambda: self._ready, self.bus)
            api.include_router(log_patterns_api.create_router(self.log_patterns))
            api.include_router(remote_write.create_router(
                store, self.metrics, lim.max_request_bytes, cfg.storage.retention.metrics, lim.future_tolerance))
            anomaly = AnomalyEngine(store, self.bus, cfg.anomaly) if cfg.anomaly.enabled else None
            api.include_router(anomaly_api.create_router(store, anomaly))
            alerting = AlertingService(store, self.bus, cfg.alerting, cfg.rule_files, cfg.alertmanager_config)
            api.include_router(alerting_api.create_router(alerting))
            self.metrics.registry.register(alerting.collector())
            otlp = otlp_http.create_app(receiver, lim.max_request_bytes)
            servers = [
                _Server(uvicorn.Config(api, lifespan="off", log_level="warning", access_log=False,
                                       timeout_graceful_shutdown=int(srv.shutdown_grace))),
                _Server(uvicorn.Config(otlp, lifespan="off", log_level="warning", access_log=False,
                                       timeout_graceful_shutdown=int(srv.shutdown_grace))),
            ]
            gserver = otlp_grpc.create_server(receiver, lim.max_request_bytes)
            host = f"[{srv.bind}]" if ":" in srv.bind else srv.bind
            try:
                bound = gserver.add_insecure_port(f"{host}:{grpc_port}")
            except RuntimeError:
                bound = 0
            if not bound:
                raise HubError(f"cannot listen for OTLP/gRPC on {srv.bind}:{grpc_port}: the port is "
                               "already in use")
            await gserver.start()
            tasks = [asyncio.create_task(servers[0].serve(sockets=[api_sock])),
                     asyncio.create_task(servers[1].serve(sockets=[otlp_sock]))]
            while not all(s.started for s in servers):
                if any(t.done() for t in tasks):
                    for t in tasks:
                        if t.done() and t.exception():
                            raise HubError(f"an HTTP server failed to start: {t.exception()}")
                await asyncio.sleep(0.01)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
            self.endpoints = Endpoints(
                api=f"http://{host}:{api_sock.getsockname()[1]}",
                otlp_http=f"http://{host}:{otlp_sock.getsockname()[1]}",
                otlp_grpc=f"{host}:{bound}")
            scraping = ScrapeManager(store, cfg.scrape_configs, lim.max_request_bytes,
                                     cfg.storage.retention.metrics, lim.future_tolerance)
            await scraping.start()
            if anomaly is not None:
                await anomaly.start()
            try:
                await alerting.start(self.endpoints.api)
            except (OSError, ValueError) as exc:
                raise HubError(f"alerting: {exc}") from None
            self._ready = True
            log.info("pantau ready: API/UI %s, OTLP/HTTP %s, OTLP/gRPC %s, data in %s",
                     self.endpoints.api, self.endpoints.otlp_http, self.endpoints.otlp_grpc,
                     cfg.storage.data_dir)
            await self._stop.wait()
            log.info("pantau stopping: finishing requests in flight, then storing every accepted batch")
            self._ready = False
            await scraping.stop()
            if anomaly is not None:
                await anomaly.stop()
            await alerting.stop()
            for s in servers:
                s.should_exit = True
            await gserver.stop(srv.shutdown_grace)
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            if self.log_patterns is not None:  # mines what is queued, saves its state: before the store closes
                await asyncio.to_thread(self.log_patterns.stop)
            if self.store is not None:
                await asyncio.to_thread(self.store.close)
            for s in sockets:
                s.close()
            os.close(lock_fd)
        log.info("pantau stopped")
