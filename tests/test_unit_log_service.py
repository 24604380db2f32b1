"""The hub's log pattern service over a real store and bus, without HTTP."""

from __future__ import annotations

import time

import pytest

from pantau.bus import Bus
from pantau.logs.service import STATE_KEY, STATE_NAMESPACE, LogPatternService, LogsConfig
from pantau.otlp.decode import OtlpDecoder
from pantau.store.base import EventQuery
from pantau.store.sqlite import SQLiteOptions, SQLiteStore

from .otlp_factory import log_request


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(SQLiteOptions(data_dir=tmp_path / "d"))
    s.start()
    yield s
    s.close()


def batch(n: int, service: str, body: str, attrs: dict | None = None):
    return OtlpDecoder().logs(log_request(n, service=service, body=body, attrs=attrs).SerializeToString()).batch


def test_process_store_publish_and_restore(store) -> None:
    bus = Bus()
    published = []
    bus.subscribe("log_pattern", lambda t, e: published.append(e))
    service = LogPatternService(store, bus, LogsConfig())
    service.process(batch(30, "api", "user u{i} logged in from 10.0.0.{i}"))
    service.process(batch(12, "sshd", "Failed password for root from 198.51.100.7 port 4{i} ssh2"))
    [pattern] = service.miner.patterns("api")
    assert pattern.template == "user <*> logged in from <*>" and pattern.count == 30
    stored = store.find_events(EventQuery(kinds=["security"]))
    assert {e.labels.get("actor") or e.labels.get("source_ip") for e in stored} == {"root", "198.51.100.7"}
    assert {e.id for e in published} == {e.id for e in stored}
    service.persist()
    assert store.get_state(STATE_NAMESPACE, STATE_KEY)
    again = LogPatternService(store, Bus(), LogsConfig())
    assert [(p.id, p.count) for p in again.miner.patterns("api")] == [(pattern.id, 30)]


def test_bus_delivery_never_blocks_and_skips_beyond_the_bound(store) -> None:
    bus = Bus()
    service = LogPatternService(store, bus, LogsConfig(queue_records=50))
    for _ in range(3):  # the bus handler, before the thread runs: it only queues
        service._on_batch("data.log", batch(20, "api", "tick {i}"))
    assert service.skipped_batches == 1  # 20 + 20 fit, the third would exceed 50
    service.start()
    deadline = time.monotonic() + 10
    while service.processed_records < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    service.stop()
    assert service.processed_records == 40
    assert store.get_state(STATE_NAMESPACE, STATE_KEY)  # saved on stop


def test_worker_process_mines_like_the_thread_and_survives_being_killed(store) -> None:
    from pantau.store.base import LogQuery

    bus = Bus()
    published = []
    bus.subscribe("log_pattern", lambda t, e: published.append(e))
    service = LogPatternService(store, bus, LogsConfig(worker_process=True))
    local = LogPatternService(store, Bus(), LogsConfig(worker_process=False))
    service.start()
    assert service._worker is not None and service._worker.proc.pid != __import__("os").getpid()
    batches = [batch(25, "api", "user u{i} logged in from 10.0.0.{i}"),
               batch(12, "sshd", "Failed password for root from 198.51.100.7 port 4{i} ssh2")]
    for b in batches:
        store.write(b)
        service._on_batch("data.log", b)
        local.process(b)
    deadline = time.monotonic() + 20
    while service.processed_records < 37 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert service.processed_records == 37
    store.maintain_now()  # the queued template writes are done
    stored = store.search_logs(LogQuery(limit=100, services=["api"])).records
    [expected] = local.miner.patterns("api")
    assert {r.template_id for r in stored} == {expected.id}  # the same id as mined in process
    assert any(e.kind == "security" for e in published)  # detector events come back from the child
    service._worker.proc.kill()  # the child dies: the next batch restarts it
    service._worker.proc.wait()
    for b in (batch(5, "api", "user u{i} logged in from 10.0.0.{i}"), batch(5, "api", "second {i}")):
        service._on_batch("data.log", b)
    deadline = time.monotonic() + 20
    while service.processed_records < 42 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert service.processed_records >= 42 and service._worker.proc.poll() is None
    service.stop()
    saved = LogPatternService(store, Bus(), LogsConfig(worker_process=False))
    assert expected.id in {p.id for p in saved.miner.patterns("api")}  # the child's state was saved
