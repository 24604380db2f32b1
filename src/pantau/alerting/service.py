"""The alerting service: builds the rule manager and the notification pipeline from the
configuration, runs their loops on the hub's event loop, and reloads rule files and the
Alertmanager file when they change (a broken file is reported and the previous one kept)."""

from __future__ import annotations

import asyncio
import glob
import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pantau.alerting import amconfig
from pantau.alerting.alert import Alert
from pantau.alerting.alerts import AlertStore
from pantau.alerting.amconfig import AlertmanagerConfig, AMConfigError
from pantau.alerting.clock import Clock
from pantau.alerting.config import AlertingConfig
from pantau.alerting.dispatch import Backoff, Dispatcher, Integration
from pantau.alerting.escalation import Escalator
from pantau.alerting.history import History
from pantau.alerting.nlog import NotificationLog
from pantau.alerting.notifiers.base import Notifier
from pantau.alerting.notifiers.console import ConsoleNotifier, FileNotifier
from pantau.alerting.notifiers.defaults import DEFAULT_TEMPLATES
from pantau.alerting.notifiers.email import EmailNotifier
from pantau.alerting.notifiers.pagerduty import PagerDutyNotifier
from pantau.alerting.notifiers.slack import SlackNotifier
from pantau.alerting.notifiers.webhook import WebhookNotifier
from pantau.alerting.routing import Route
from pantau.alerting.rules import RuleFileError, parse_file
from pantau.alerting.silences import Silences
from pantau.alerting.stages import Acks, FlapDetector, Inhibitor
from pantau.alerting.state import RuleManager
from pantau.alerting.templates import Template, TemplateError
from pantau.bus import Bus
from pantau.store.base import Store

log = logging.getLogger("pantau.alerting")
META = "alerting.meta"


@dataclass
class Pipeline:
    """Everything built from one Alertmanager file; replaced whole on reload."""

    config: AlertmanagerConfig
    route: Route
    receivers: dict[str, list[Integration]]
    dispatcher: Dispatcher


class AlertingService:
    def __init__(self, store: Store, bus: Bus | None, cfg: AlertingConfig, rule_files: list[str],
                 alertmanager_config: str | None, clock: Clock | None = None, base_dir: str = ".") -> None:
        self.store = store
        self.bus = bus
        self.cfg = cfg
        self.rule_patterns = rule_files
        self.am_path = alertmanager_config
        self.base_dir = base_dir
        self.clock = clock or Clock()
        self.started_at = self.clock.now()
        self.external_url = (cfg.external_url or "").rstrip("/")
        self._http: httpx.AsyncClient | None = None
        self.alerts = AlertStore(store, self.clock)
        self.silences = Silences(store, self.clock)
        self.nlog = NotificationLog(store)
        self.acks = Acks(store)
        self.flaps = FlapDetector(cfg.flap_window, cfg.flap_threshold)
        self.history = History(store)
        self.escalator = Escalator(cfg.escalations, store)
        self.rules = RuleManager(store, self.clock, self._from_rules, external_url=self.external_url,
                                 external_labels=cfg.external_labels, resend_delay=cfg.resend_delay,
                                 outage_tolerance=cfg.outage_tolerance, logql=self._logql)
        self.rule_errors: dict[str, list[str]] = {}
        self.am_error: str | None = None
        self._mtimes: dict[str, tuple[float, int]] = {}
        self._am_mtime: tuple[float, int] | None = None
        # signatures of changed files seen once by the background check, not yet loaded
        self._pending: dict[str, tuple[float, int]] = {}
        self._key = b""
        self._tasks: list[asyncio.Task] = []
        self.pipeline: Pipeline | None = None
        self.alerts.subscribe(self._on_alert)

    # --- set-up ------------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        """The client of the HTTP notifiers, made when the first one is: with only e-mail or no
        receivers, the hub never loads an HTTP client stack or a CA bundle (~1.4 MB)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0)
        return self._http

    def load(self) -> None:
        """Read durable state and configuration (blocking; call from a worker thread).
        A broken Alertmanager file at start-up raises: the hub should not start silently
        without notifications."""
        self._key = self._signing_key()
        self.silences.load()
        self.nlog.load()
        self.acks.load()
        self.escalator.load()
        self.reload_rules()
        am = self._read_am()
        self.pipeline = self._build(am)
        for a in self.alerts.load():
            self.pipeline.dispatcher.on_alert(a)

    def _signing_key(self) -> bytes:
        if self.cfg.signing_key:
            return self.cfg.signing_key.encode()
        if self.cfg.signing_key_file:
            return Path(self.cfg.signing_key_file).read_bytes().strip()
        key = self.store.get_state(META, "signing_key")
        if key is None:
            key = secrets.token_hex(32).encode()
            self.store.put_state(META, "signing_key", key)
        return key

    def _resolve(self, path: str) -> str:
        return path if os.path.isabs(path) else os.path.join(self.base_dir, path)

    def _read_am(self) -> AlertmanagerConfig:
        if not self.am_path:
            return amconfig.default()
        path = self._resolve(self.am_path)
        st = os.stat(path)
        self._am_mtime = (st.st_mtime, st.st_size)
        return amconfig.load(path)

    def _templates(self, am: AlertmanagerConfig) -> Template:
        t = Template("", None)
        t.add(DEFAULT_TEMPLATES)
        for f in am.template_files():
            try:
                t.add(f.read_text())
            except (OSError, TemplateError) as exc:
                raise AMConfigError(f"template file {f}: {exc}") from None
        return t

    def notifier(self, kind: str, cfg, base_dir: str = ".") -> Notifier:
        if kind == "email_configs":
            return EmailNotifier(cfg)
        if kind == "slack_configs":
            return SlackNotifier(cfg, self.http)
        if kind == "pagerduty_configs":
            return PagerDutyNotifier(cfg, self.http)
        if kind == "webhook_configs":
            return WebhookNotifier(cfg, self.http)
        if kind == "console_configs":
            return ConsoleNotifier(cfg.send_resolved)
        if kind == "file_configs":
            return FileNotifier(os.path.join(base_dir, cfg.path), cfg.send_resolved)
        raise ValueError(kind)

    def _build(self, am: AlertmanagerConfig) -> Pipeline:
        route = Route.build(am.route)  # type: ignore[arg-type]
        receivers: dict[str, list[Integration]] = {}
        for r in am.receivers:
            integrations = []
            for kind in ("email_configs", "slack_configs", "pagerduty_configs", "webhook_configs",
                         "console_configs", "file_configs"):
                for i, c in enumerate(getattr(r, kind)):
                    integrations.append(Integration(r.name, self.notifier(kind, c, am.base_dir), i))
            for kind in r.unsupported():
                log.warning("receiver %r: %s are not supported by pantau; they will not be notified", r.name, kind)
            receivers[r.name] = integrations
        for p in self.cfg.escalations:
            for step in p.steps:
                for name in step.receivers:
                    if name not in receivers:
                        raise AMConfigError(f"escalation policy {p.name!r} names receiver {name!r}, "
                                            "which the Alertmanager configuration does not define")
        intervals = {t.name: t for t in am.time_intervals + am.mute_time_intervals}
        dispatcher = Dispatcher(
            route, receivers, clock=self.clock, nlog=self.nlog, silences=self.silences,
            inhibitor=Inhibitor(am.inhibit_rules), intervals=intervals, acks=self.acks, flaps=self.flaps,
            history=self.history, templates=self._templates(am), external_url=self.external_url,
            links=self.links, alerts_source=self.alerts.all,
            backoff=Backoff(self.cfg.retry_initial, self.cfg.retry_max))
        return Pipeline(am, route, receivers, dispatcher)

    # --- reload ------------------------------------------------------------------------------

    def rule_paths(self) -> list[str]:
        out: list[str] = []
        for pattern in self.rule_patterns:
            out += sorted(glob.glob(self._resolve(pattern)))
        return list(dict.fromkeys(out))

    def _settled(self, path: str, sig: tuple[float, int]) -> bool:
        """Whether a changed file looked the same at the previous background check. Editors and
        `write_text` truncate and then write: a check in between must not load the empty or
        half-written file (an empty rule file would drop every rule and resolve what fires)."""
        if self._pending.get(path) == sig:
            del self._pending[path]
            return True
        self._pending[path] = sig
        return False

    def reload_rules(self, force: bool = False, settle: bool = False) -> bool:
        """Re-read changed rule files; a file with errors keeps its previous rules. With `settle`
        (the background check) a change is loaded once it has stayed the same for one interval."""
        paths = self.rule_paths()
        changed: dict[str, list] = {}
        seen = set(paths)
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                continue
            sig = (st.st_mtime, st.st_size)
            if not force and self._mtimes.get(path) == sig:
                self._pending.pop(path, None)
                continue
            if settle and not force and not self._settled(path, sig):
                continue
            self._mtimes[path] = sig
            try:
                changed[path] = parse_file(path, self.cfg.evaluation_interval)
                self.rule_errors.pop(path, None)
                log.info("loaded rule file %s (%d groups)", path, len(changed[path]))
            except RuleFileError as exc:
                self.rule_errors[path] = exc.problems
                for p in exc.problems:
                    log.error("rule file rejected, previous rules keep running: %s", p)
        removed = {f for f in self._mtimes if f not in seen}
        for f in removed:
            del self._mtimes[f]
            self._pending.pop(f, None)
            self.rule_errors.pop(f, None)
        if not changed and not removed:
            return False
        groups = [g for gs in changed.values() for g in gs]
        self.rules.update(groups, set(changed) | removed)
        return True

    def reload_am(self, settle: bool = False) -> bool:
        """Re-read the Alertmanager file if it changed; a file with errors keeps the running
        configuration. `settle` as for `reload_rules`."""
        if not self.am_path:
            return False
        path = self._resolve(self.am_path)
        try:
            st = os.stat(path)
        except OSError as exc:
            self.am_error = f"{path}: {exc.strerror}"
            return False
        sig = (st.st_mtime, st.st_size)
        if self._am_mtime == sig:
            self._pending.pop(path, None)
            return False
        if settle and not self._settled(path, sig):
            return False
        self._am_mtime = sig
        try:
            am = amconfig.load(path)
            pipeline = self._build(am)
        except (AMConfigError, ValueError) as exc:
            self.am_error = str(exc)
            log.error("Alertmanager configuration rejected, the previous one stays in force: %s", exc)
            return False
        self.am_error = None
        for a in self.alerts.all():
            pipeline.dispatcher.on_alert(a)
        old = self.pipeline
        self.pipeline = pipeline
        if old is not None:
            # groups of the new tree start over; the notification log keeps them from repeating
            for t in list(old.dispatcher._tasks):
                pipeline.dispatcher._tasks.add(t)
        log.info("loaded Alertmanager configuration %s", path)
        return True

    # --- alerts in ---------------------------------------------------------------------------

    def _from_rules(self, alerts: list[Alert]) -> None:
        self.alerts.put(alerts)
        self.alerts.persist()

    def _on_alert(self, alert: Alert) -> None:
        now = self.clock.now()
        self.flaps.observe(alert, now)
        if self.pipeline is not None:
            self.pipeline.dispatcher.on_alert(alert)
        self.history.alert(alert, now)
        if self.bus is not None:
            self.bus.publish("alert", {"fingerprint": alert.fingerprint, "labels": alert.labels,
                                       "annotations": alert.annotations, "status": alert.status(now),
                                       "startsAt": alert.starts_at, "endsAt": alert.ends_at})

    def _logql(self, query: str, t_ms: int):
        from pantau.query import logql

        return logql.instant(self.store, query, t_ms)

    # --- acknowledgement and links ------------------------------------------------------------

    def sign(self, action: str, fp: str, expires: int) -> str:
        return hmac.new(self._key, f"{action}:{fp}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def verify(self, action: str, fp: str, expires: int, sig: str) -> bool:
        return expires >= self.clock.now() and hmac.compare_digest(self.sign(action, fp, expires), sig)

    def links(self, fp: str) -> tuple[str, str]:
        expires = int(self.clock.now() + self.cfg.link_ttl)
        base = f"{self.external_url}/api/pantau/alerts/{fp}"
        return (f"{base}/ack?expires={expires}&sig={self.sign('ack', fp, expires)}",
                f"{base}/resolve?expires={expires}&sig={self.sign('resolve', fp, expires)}")

    def ack(self, fp: str, by: str, comment: str = "") -> dict | None:
        a = self.alerts.get(fp)
        if a is None:
            return None
        now = self.clock.now()
        rec = self.acks.ack(a, by, comment, now)
        self.history.annotate(a, acknowledged={"by": by, "at": now, "comment": comment})
        if self.pipeline is not None:
            d = self.pipeline.dispatcher
            self.escalator.acknowledged(a, now, d)
            # PagerDuty incidents of the groups holding this alert are acknowledged too, once
            # every firing alert of the group is
            for ag in list(d.groups.values()):
                if fp not in ag.alerts:
                    continue
                if any(not x.resolved_at(now) and self.acks.get(x) is None for x in ag.alerts.values()):
                    continue
                for integ in d.receivers.get(ag.route.receiver, []):
                    if integ.notifier.kind == "pagerduty" and self.nlog.query(ag.key, integ.id) is not None:
                        ctx = d.context(integ.receiver, ag.key, ag.labels, now, "acknowledge")
                        d._spawn(d.deliver(integ, ctx, list(ag.alerts.values())))
        if self.bus is not None:
            self.bus.publish("alert.ack", {"fingerprint": fp, "by": by})
        return rec

    def unack(self, fp: str, by: str = "") -> bool | None:
        a = self.alerts.get(fp)
        if a is None:
            return None
        done = self.acks.unack(a)
        if done:
            self.history.annotate(a, unacknowledged={"by": by, "at": self.clock.now()})
        return done

    def resolve(self, fp: str, by: str = "") -> Alert | None:
        a = self.alerts.resolve(fp)
        if a is not None:
            self.alerts.persist()
            self.history.annotate(a, resolved_manually={"by": by, "at": self.clock.now()})
        return a

    def suppressed(self, a: Alert) -> bool:
        now = self.clock.now()
        d = self.pipeline.dispatcher if self.pipeline else None
        return bool(self.acks.get(a) or self.silences.mutes(a.labels, now)
                    or (d is not None and d.inhibitor.rules and d.inhibitor.inhibited_by(a)))

    # --- self-monitoring -----------------------------------------------------------------------

    def collector(self) -> _Collector:
        """A prometheus_client collector for the hub's /metrics."""
        return _Collector(self)

    # --- loops -------------------------------------------------------------------------------

    async def start(self, external_url: str | None = None) -> None:
        if external_url and not self.cfg.external_url:
            self.external_url = external_url.rstrip("/")
            self.rules.external_url = self.external_url
        await asyncio.to_thread(self.load)
        if self.bus is not None:
            self.bus.subscribe("anomaly", lambda _t, p: self.rules.note_anomaly(p))
        self._tasks = [asyncio.create_task(self._dispatch_loop()), asyncio.create_task(self._rules_loop()),
                       asyncio.create_task(self._maintenance_loop())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.pipeline is not None:
            tasks = list(self.pipeline.dispatcher._tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self._final_flush)
        if self._http is not None:
            await self._http.aclose()

    def _final_flush(self) -> None:
        self.alerts.persist()
        self.history.flush()

    async def _dispatch_loop(self) -> None:
        while True:
            try:
                if self.pipeline is not None:
                    await self.pipeline.dispatcher.tick()
            except Exception:
                log.exception("alert dispatch failed")
            await asyncio.sleep(0.05)

    async def _rules_loop(self) -> None:
        while True:
            wait = min(1.0, max(0.0, self.rules.next_due() - self.clock.now()))
            await asyncio.sleep(wait if wait > 0 else 0)
            try:
                if self.rules.due(self.clock.now()):
                    await asyncio.to_thread(self.rules.evaluate_due)
            except Exception:
                log.exception("rule evaluation failed")

    async def maintenance(self) -> None:
        """Once a second: reload changed files, take due escalation steps, persist and GC."""
        await asyncio.to_thread(self.reload_rules, settle=True)
        await asyncio.to_thread(self.reload_am, settle=True)
        if self.pipeline is not None:
            d = self.pipeline.dispatcher
            await self.escalator.tick(self.alerts.all(), self.clock.now(), d, self.suppressed)
            held = {fp for ag in list(d.groups.values()) for fp in ag.alerts}
            gone = self.alerts.gc(lambda fp: fp in held)
            for fp in gone:
                self.flaps.forget(fp)
            if gone:
                self.escalator.gc({a.fingerprint for a in self.alerts.all()})
        await asyncio.to_thread(self._persist)

    def _persist(self) -> None:
        self.alerts.persist()
        self.history.flush()
        now = self.clock.now()
        if int(now) % 60 == 0:
            self.nlog.gc(now)
            self.silences.gc()

    async def _maintenance_loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.maintenance()
            except Exception:
                log.exception("alerting maintenance failed")
            await asyncio.sleep(max(0.05, self.cfg.reload_interval - (time.monotonic() - started)))


class _Collector:
    def __init__(self, svc: AlertingService) -> None:
        self.svc = svc

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        svc = self.svc
        now = svc.clock.now()
        d = svc.pipeline.dispatcher if svc.pipeline else None
        alerts = GaugeMetricFamily("pantau_alerting_alerts", "Alerts held, by state.", labels=["state"])
        counts = {"active": 0, "suppressed": 0, "resolved": 0}
        for a in svc.alerts.all():
            if a.resolved_at(now):
                counts["resolved"] += 1
            elif d is not None and any(d.status(a, now)):
                counts["suppressed"] += 1
            else:
                counts["active"] += 1
        for state, n in counts.items():
            alerts.add_metric([state], n)
        yield alerts
        notes = CounterMetricFamily("pantau_alerting_notification_attempts", "Notification attempts.",
                                    labels=["integration", "outcome"])
        for (kind, outcome), n in sorted((d.attempts if d else {}).items()):
            notes.add_metric([kind, outcome], n)
        yield notes
        yield CounterMetricFamily("pantau_alerting_rule_evaluations", "Rule evaluations.",
                                  value=svc.rules.evaluations)
        yield CounterMetricFamily("pantau_alerting_rule_evaluation_seconds", "Time spent evaluating rule groups.",
                                  value=svc.rules.eval_seconds)
        failing = sum(1 for gs in svc.rules.snapshot() for rs in gs.rules if rs.health == "err")
        yield GaugeMetricFamily("pantau_alerting_rules_failing", "Rules whose last evaluation failed.",
                                value=failing)
        ok = GaugeMetricFamily("pantau_alerting_config_last_reload_successful",
                               "Whether the last reload of each kind of file succeeded.", labels=["file"])
        ok.add_metric(["rules"], 0 if svc.rule_errors else 1)
        ok.add_metric(["alertmanager"], 0 if svc.am_error else 1)
        yield ok
