"""Escalation policies (pantau): ordered steps with delays and receivers, e.g. Slack at
once, PagerDuty after 10 minutes unacknowledged, e-mail to the lead after 30.

Each step fires once per alert occurrence, when the alert has been firing for the step's
`after` and is neither acknowledged, silenced nor inhibited. Which steps were taken is kept
in the store, so a restart neither repeats nor skips a step. When the alert resolves, every
receiver that was paged hears about it (if it sends resolved notifications); when it is
acknowledged, PagerDuty receivers that were paged get an `acknowledge` event.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import orjson
from pydantic import BaseModel, ConfigDict, field_validator

from pantau.alerting import matchers as mm
from pantau.alerting.alert import Alert
from pantau.alerting.durations import Duration
from pantau.store.base import Matcher, Store

log = logging.getLogger("pantau.alerting.escalation")
NAMESPACE = "alerting.escalation"


class EscalationStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after: Duration = 0.0
    receivers: list[str]


class EscalationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    matchers: list[str] = []
    steps: list[EscalationStep]

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, v: list[str]) -> list[str]:
        for text in v:
            mm.parse_matchers(text)
        return v

    @field_validator("steps")
    @classmethod
    def _ordered(cls, v: list[EscalationStep]) -> list[EscalationStep]:
        if not v:
            raise ValueError("an escalation policy needs at least one step")
        if any(b.after < a.after for a, b in itertools.pairwise(v)):
            raise ValueError("escalation steps must be in order of their delay")
        return v


@dataclass
class _Policy:
    cfg: EscalationPolicy
    matchers: list[Matcher]


class Escalator:
    def __init__(self, policies: list[EscalationPolicy], store: Store) -> None:
        self.policies = [_Policy(p, mm.from_config(p.matchers)) for p in policies]
        self.store = store
        # "<policy>|<fingerprint>|<startsAt>" -> {"steps": [taken indices], "resolved": bool}
        self._state: dict[str, dict] = {}

    def load(self) -> None:
        for key, raw in self.store.list_state(NAMESPACE).items():
            self._state[key] = orjson.loads(raw)

    def _save(self, key: str) -> None:
        self.store.put_state(NAMESPACE, key, orjson.dumps(self._state[key]))

    def state_of(self, alert: Alert) -> list[dict]:
        """Escalation progress of one alert occurrence, for the API."""
        out = []
        for p in self.policies:
            st = self._state.get(f"{p.cfg.name}|{alert.fingerprint}|{alert.starts_at}")
            if st is not None:
                out.append({"policy": p.cfg.name, "steps_taken": st["steps"],
                            "steps": len(p.cfg.steps)})
        return out

    async def tick(self, alerts: list[Alert], now: float, dispatcher, suppressed) -> int:
        """Take the steps that are due; returns how many notifications were started.
        `suppressed(alert)` is true for silenced, inhibited or acknowledged alerts."""
        if not self.policies:
            return 0
        started = 0
        jobs = []
        for a in alerts:
            for p in self.policies:
                if not mm.matches(p.matchers, a.labels):
                    continue
                key = f"{p.cfg.name}|{a.fingerprint}|{a.starts_at}"
                st = self._state.get(key)
                if a.resolved_at(now):
                    if st is not None and not st.get("resolved"):
                        st["resolved"] = True
                        self._save(key)
                        receivers = {r for i in st["steps"] for r in p.cfg.steps[i].receivers}
                        jobs += [(r, p, a, "notify") for r in sorted(receivers)]
                    continue
                if suppressed(a):
                    continue
                if st is None:
                    st = self._state[key] = {"steps": [], "resolved": False}
                for i, step in enumerate(p.cfg.steps):
                    if i in st["steps"] or now < a.starts_at + step.after:
                        continue
                    st["steps"].append(i)
                    self._save(key)
                    jobs += [(r, p, a, "notify") for r in step.receivers]
        for receiver, policy, alert, action in jobs:
            started += self._notify(dispatcher, receiver, policy, alert, now, action)
        return started

    def acknowledged(self, alert: Alert, now: float, dispatcher) -> int:
        """Relay an acknowledgement to the PagerDuty receivers that were paged."""
        n = 0
        for p in self.policies:
            st = self._state.get(f"{p.cfg.name}|{alert.fingerprint}|{alert.starts_at}")
            if st is None:
                continue
            for r in sorted({r for i in st["steps"] for r in p.cfg.steps[i].receivers}):
                n += self._notify(dispatcher, r, p, alert, now, "acknowledge", kinds={"pagerduty"})
        return n

    def _notify(self, dispatcher, receiver: str, policy: _Policy, alert: Alert, now: float, action: str,
                kinds: set[str] | None = None) -> int:
        n = 0
        gk = f"escalation/{policy.cfg.name}:{{alertname={orjson.dumps(alert.name).decode()}, " \
             f"fingerprint=\"{alert.fingerprint}\"}}"
        for integ in dispatcher.receivers.get(receiver, []):
            if kinds and integ.notifier.kind not in kinds:
                continue
            if alert.resolved_at(now) and not integ.notifier.send_resolved:
                continue
            ctx = dispatcher.context(receiver, gk, {"alertname": alert.name}, now, action)
            dispatcher._spawn(dispatcher.deliver(integ, ctx, [alert]))
            n += 1
        if not dispatcher.receivers.get(receiver):
            log.warning("escalation policy %s names receiver %r, which has no integrations", policy.cfg.name, receiver)
        return n

    def gc(self, live: set[str]) -> None:
        """Drop progress of occurrences that are resolved and no longer held."""
        for key in [k for k, st in self._state.items() if st.get("resolved") and k.split("|")[1] not in live]:
            del self._state[key]
            self.store.delete_state(NAMESPACE, key)
