import time

from pantau.bus import Bus
from pantau.store.base import Event, EventQuery
from pantau.store.sqlite import SQLiteOptions, SQLiteStore


def test_events_and_state_survive_restart(tmp_path) -> None:
    store = SQLiteStore(SQLiteOptions(data_dir=tmp_path / "d"))
    store.start()
    now = time.time_ns()
    eid = store.put_event(Event("anomaly", now, labels={"service": "signer"}, data={"score": 0.9}))
    store.put_event(Event("alert", now - 10, labels={"service": "chain"}))
    store.put_state("anomaly", "series-1", b"\x01\x02")
    store.close()
    again = SQLiteStore(SQLiteOptions(data_dir=tmp_path / "d"))
    again.start()
    try:
        event = again.get_event(eid)
        assert event is not None and event.data == {"score": 0.9} and event.end_ns is None
        event.end_ns = now + 5
        again.put_event(event)
        assert again.find_events(EventQuery(kinds=["anomaly"], open_only=True)) == []
        assert [e.kind for e in again.find_events(EventQuery())] == ["anomaly", "alert"]
        assert [e.kind for e in again.find_events(EventQuery(labels={"service": "chain"}))] == ["alert"]
        assert again.get_state("anomaly", "series-1") == b"\x01\x02"
        assert again.list_state("anomaly") == {"series-1": b"\x01\x02"}
        again.delete_state("anomaly", "series-1")
        assert again.get_state("anomaly", "series-1") is None
    finally:
        again.close()


def test_bus_delivers_and_isolates_failures() -> None:
    bus = Bus()
    got = []
    bus.subscribe("anomaly", lambda t, p: 1 / 0)
    off = bus.subscribe("anomaly", lambda t, p: got.append(p))
    bus.subscribe("*", lambda t, p: got.append((t, p)))
    bus.publish("anomaly", 1)
    off()
    bus.publish("anomaly", 2)
    assert got == [1, ("anomaly", 1), ("anomaly", 2)]
