"""The notification pipeline driven by an injected clock: group_wait, group_interval,
repeat_interval, silences expiring, inhibition, acknowledgement, escalation delays and flap
detection, with no sleeps. Notifications go to real local HTTP receivers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pantau.alerting.alert import Alert
from pantau.alerting.clock import FakeClock
from pantau.alerting.config import AlertingConfig
from pantau.alerting.service import AlertingService
from pantau.alerting.silences import Silence, SilenceMatcher
from pantau.store.sqlite import SQLiteOptions, SQLiteStore
from tests.alerting_receivers import Receiver

AM = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
- name: team
  webhook_configs: [{{url: "{team}"}}]
- name: lead
  webhook_configs: [{{url: "{lead}"}}]
inhibit_rules:
- source_matchers: ['severity="critical"']
  target_matchers: ['severity="warning"']
  equal: [cluster]
"""


@pytest.fixture
def env(tmp_path: Path):
    store = SQLiteStore(SQLiteOptions(data_dir=tmp_path / "data"))
    store.start()
    team, lead = Receiver(), Receiver()
    (tmp_path / "am.yml").write_text(AM.format(team=team.url, lead=lead.url))
    made: list[AlertingService] = []

    def make(**cfg) -> AlertingService:
        clock = FakeClock()
        svc = AlertingService(store, None, AlertingConfig(external_url="http://pantau.test", **cfg), [],
                              str(tmp_path / "am.yml"), clock=clock)
        svc.load()
        made.append(svc)
        return svc

    yield make, team, lead
    for svc in made:
        asyncio.run(svc.http.aclose())
    team.close()
    lead.close()
    store.close()


def run(coro):
    return asyncio.run(coro)


async def step(svc: AlertingService, seconds: float = 0.0) -> None:
    """Move the clock, then let the dispatcher act and its sends finish."""
    svc.clock.advance(seconds)  # type: ignore[attr-defined]
    await svc.pipeline.dispatcher.tick()
    await svc.pipeline.dispatcher.drain()


def fire(svc: AlertingService, name: str, **labels: str) -> Alert:
    now = svc.clock.now()
    return svc.alerts.put([Alert({"alertname": name, **labels}, {}, now, now + 86400)])[0]


def resolve(svc: AlertingService, name: str, **labels: str) -> None:
    now = svc.clock.now()
    old = svc.alerts.get(Alert({"alertname": name, **labels}).fingerprint)
    svc.alerts.put([Alert({"alertname": name, **labels}, {}, old.starts_at, now)])


def test_group_wait_interval_and_repeat(env) -> None:
    make, team, _ = env
    svc = make()

    async def scenario() -> None:
        fire(svc, "Disk", instance="a")
        await step(svc)
        await step(svc, 29)
        assert team.received == []  # group_wait not over
        await step(svc, 1)
        assert team.alerts() == [("firing", "Disk")]
        fire(svc, "Disk", instance="b")
        await step(svc, 60)
        assert len(team.received) == 1  # the next flush is group_interval after the first
        await step(svc, 240)
        assert len(team.received) == 2 and len(team.received[1]["alerts"]) == 2
        assert team.received[1]["groupKey"] == '{}:{alertname="Disk"}'
        for _ in range(3):  # nothing changed: quiet until repeat_interval
            await step(svc, 300)
        assert len(team.received) == 2
        for _ in range(48):
            await step(svc, 300)
        assert len(team.received) == 3  # repeated once after 4h
        resolve(svc, "Disk", instance="a")
        await step(svc, 300)
        assert len(team.received) == 4
        assert sorted(a["status"] for a in team.received[3]["alerts"]) == ["firing", "resolved"]
        assert team.received[3]["status"] == "firing"

    run(scenario())
    assert team.problems == []


def test_silence_mutes_until_it_expires(env) -> None:
    make, team, _ = env
    svc = make()

    async def scenario() -> None:
        now = svc.clock.now()
        svc.silences.put(Silence("", [SilenceMatcher("alertname", "Noisy")], now, now + 600, "me", "deploy", now))
        fire(svc, "Noisy")
        await step(svc, 30)
        await step(svc, 300)
        assert team.received == []
        await step(svc, 300)  # the silence ended at +600s; the flush at +630s notifies
        assert team.alerts() == [("firing", "Noisy")]

    run(scenario())


def test_inhibition_by_equal_labels(env) -> None:
    make, team, _ = env
    svc = make()

    async def scenario() -> None:
        fire(svc, "Down", severity="critical", cluster="c1")
        fire(svc, "Slow", severity="warning", cluster="c1")  # inhibited
        fire(svc, "Slow", severity="warning", cluster="c2")  # other cluster: not inhibited
        await step(svc, 31)
        got = sorted((b["groupLabels"]["alertname"], a["labels"]["cluster"]) for b in team.received
                     for a in b["alerts"])
        assert got == [("Down", "c1"), ("Slow", "c2")]

    run(scenario())


def test_acknowledged_alert_is_not_repeated(env) -> None:
    make, team, _ = env
    svc = make()

    async def scenario() -> None:
        a = fire(svc, "Disk")
        await step(svc, 31)
        assert len(team.received) == 1
        svc.ack(a.fingerprint, "ayu", "looking")
        for _ in range(50):  # past the 4h repeat interval
            await step(svc, 300)
        assert len(team.received) == 1
        svc.unack(a.fingerprint, "ayu")
        fire(svc, "Disk")
        for _ in range(2):
            await step(svc, 300)
        assert len(team.received) == 2

    run(scenario())


def test_escalation_steps_stop_when_acknowledged(env) -> None:
    make, team, lead = env
    svc = make(escalations=[{"name": "page", "matchers": ['severity="critical"'],
                             "steps": [{"after": "0s", "receivers": ["team"]},
                                       {"after": "10m", "receivers": ["lead"]}]}])

    async def scenario() -> None:
        fire(svc, "Down", severity="critical", instance="a")
        b = fire(svc, "Down", severity="critical", instance="b")
        await svc.maintenance()
        await svc.pipeline.dispatcher.drain()
        assert sorted(x["alerts"][0]["labels"]["instance"] for x in team.received) == ["a", "b"]
        svc.clock.advance(540)
        await svc.maintenance()
        assert lead.received == []
        svc.ack(b.fingerprint, "ayu")
        svc.clock.advance(60)
        await svc.maintenance()
        await svc.pipeline.dispatcher.drain()
        assert [x["alerts"][0]["labels"]["instance"] for x in lead.received] == ["a"]  # b was acknowledged
        svc.clock.advance(3600)
        await svc.maintenance()
        await svc.pipeline.dispatcher.drain()
        assert len(lead.received) == 1  # each step once

    run(scenario())


def test_flapping_alert_is_held_back(env) -> None:
    make, team, _ = env
    svc = make(flap_threshold=4)

    async def scenario() -> None:
        fire(svc, "Flappy")
        await step(svc, 31)
        assert len(team.received) == 1
        for _ in range(2):  # firing -> resolved -> firing, twice within a minute: 4 changes
            await step(svc, 10)
            resolve(svc, "Flappy")
            await step(svc, 10)
            fire(svc, "Flappy")
        a = svc.alerts.get(Alert({"alertname": "Flappy"}).fingerprint)
        assert svc.flaps.flapping(a.fingerprint, svc.clock.now())
        await step(svc, 300)
        assert len(team.received) == 1
        for _ in range(2):  # stable for a whole window: notified again as usual
            await step(svc, 300)
        assert not svc.flaps.flapping(a.fingerprint, svc.clock.now())

    run(scenario())


def test_time_intervals_templates_and_reload(tmp_path: Path) -> None:

    store = SQLiteStore(SQLiteOptions(data_dir=tmp_path / "data"))
    store.start()
    (tmp_path / "my.tmpl").write_text('{{ define "pantau.test" }}custom {{ .CommonLabels.alertname }}{{ end }}')
    am = tmp_path / "am.yml"
    # 2023-11-14 is a Tuesday; the FakeClock starts at 22:13 UTC
    am.write_text("""
templates: ['*.tmpl']
route:
  receiver: out
  group_by: [alertname]
  group_wait: 10s
  group_interval: 1m
  routes:
  - matchers: ['team="night"']
    receiver: out
    active_time_intervals: [night]
  - matchers: ['team="tuesday"']
    receiver: out
    mute_time_intervals: [tuesdays]
receivers:
- name: out
  file_configs: [{path: out.jsonl}]
time_intervals:
- name: night
  time_intervals: [{times: [{start_time: "23:00", end_time: "24:00"}]}]
- name: tuesdays
  time_intervals: [{weekdays: [tuesday]}]
""")
    svc = AlertingService(store, None, AlertingConfig(), [], str(am), clock=FakeClock())
    svc.load()
    out = tmp_path / "out.jsonl"

    def names() -> list[str]:
        import json

        return [json.loads(line)["groupLabels"]["alertname"] for line in out.read_text().splitlines()] \
            if out.exists() else []

    async def scenario() -> None:
        assert svc.pipeline.dispatcher.templates.render('{{ template "pantau.test" . }}',
                                                        {"CommonLabels": {"alertname": "X"}}) == "custom X"
        fire(svc, "AtNight", team="night")
        fire(svc, "OnTuesday", team="tuesday")
        fire(svc, "Always", team="day")
        await step(svc, 11)
        assert names() == ["Always"]  # 22:13 on a Tuesday: not night yet, muted on Tuesdays
        for _ in range(47):  # until 23:00
            await step(svc, 60)
        assert sorted(names()) == ["Always", "AtNight"]
        for _ in range(61):  # past midnight: Wednesday
            await step(svc, 60)
        assert sorted(names()) == ["Always", "AtNight", "OnTuesday"]

        # a broken Alertmanager file is refused and the running pipeline stays
        before = svc.pipeline
        am.write_text(am.read_text().replace("receiver: out\n  group_by", "receiver: nobody\n  group_by"))
        assert not svc.reload_am() and svc.pipeline is before and "undefined receiver" in svc.am_error
        am.write_text(am.read_text().replace("receiver: nobody", "receiver: out").replace("10s", "20s"))
        assert svc.reload_am() and svc.pipeline is not before and svc.am_error is None
        assert svc.pipeline.route.group_wait == 20

    try:
        run(scenario())
    finally:
        run(svc.http.aclose())
        store.close()


def test_background_reload_waits_for_a_rule_file_to_settle(tmp_path: Path) -> None:
    """A check between an editor's truncate and write must not load the empty file: that
    would drop every rule (and resolve what fires) until the next check."""
    store = SQLiteStore(SQLiteOptions(data_dir=tmp_path / "data"))
    store.start()
    rules = tmp_path / "rules.yml"
    full = "groups:\n- name: g\n  rules:\n  - alert: Up\n    expr: vector(1)\n"
    rules.write_text(full)
    svc = AlertingService(store, None, AlertingConfig(), [str(rules)], None, clock=FakeClock())
    try:
        svc.load()

        def names() -> list[str]:
            return [r.name for g in svc.rules.groups.values() for r in g.group.rules]

        assert names() == ["Up"]
        rules.write_text("")  # truncated, not yet written
        assert not svc.reload_rules(settle=True) and names() == ["Up"]
        rules.write_text(full + "  - alert: Down\n    expr: vector(0)\n")  # written: changed again
        assert not svc.reload_rules(settle=True) and names() == ["Up"]
        assert svc.reload_rules(settle=True) and names() == ["Up", "Down"]  # unchanged since: loaded
        assert not svc.reload_rules(settle=True)
    finally:
        run(svc.http.aclose())
        store.close()
