"""The routing tree: which receivers an alert goes to, and how it is grouped there.

Same semantics as Alertmanager's `dispatch/route.go`: a route matches when its matchers do;
children are tried in order, the first match wins unless it has `continue: true`; a route
with no matching child takes the alert itself. Options are inherited from the parent. The
route key (matchers of every ancestor) prefixes each group key, so pantau's group keys are
the strings Alertmanager puts in webhook payloads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pantau.alerting import matchers as mm
from pantau.alerting.amconfig import RouteConfig
from pantau.store.base import Matcher

DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0


@dataclass
class Route:
    receiver: str
    group_by: frozenset[str]
    group_by_all: bool
    group_wait: float
    group_interval: float
    repeat_interval: float
    matchers: list[Matcher]
    continue_: bool
    mute_time_intervals: list[str]
    active_time_intervals: list[str]
    parent: Route | None = None
    index: int = 0
    routes: list[Route] = field(default_factory=list)

    @classmethod
    def build(cls, cfg: RouteConfig, parent: Route | None = None, index: int = 0) -> Route:
        if cfg.group_by is None:
            group_by = parent.group_by if parent else frozenset()
            group_all = parent.group_by_all if parent else False
        else:
            group_all = "..." in cfg.group_by
            group_by = frozenset(g for g in cfg.group_by if g != "...")

        def inherit(value: float | None, name: str, default: float) -> float:
            if value is not None:
                return value
            return getattr(parent, name) if parent else default

        route = cls(
            receiver=cfg.receiver or (parent.receiver if parent else ""),
            group_by=group_by, group_by_all=group_all,
            group_wait=inherit(cfg.group_wait, "group_wait", DEFAULT_GROUP_WAIT),
            group_interval=inherit(cfg.group_interval, "group_interval", DEFAULT_GROUP_INTERVAL),
            repeat_interval=inherit(cfg.repeat_interval, "repeat_interval", DEFAULT_REPEAT_INTERVAL),
            matchers=mm.from_config(cfg.matchers, cfg.match, cfg.match_re),
            continue_=cfg.continue_,
            mute_time_intervals=cfg.mute_time_intervals,
            active_time_intervals=cfg.active_time_intervals,
            parent=parent, index=index)
        route.routes = [cls.build(c, route, i) for i, c in enumerate(cfg.routes)]
        return route

    def key(self) -> str:
        own = mm.matchers_string(self.matchers)
        return f"{self.parent.key()}/{own}" if self.parent else own

    def id(self) -> str:
        """Unique even for siblings with equal matchers (Alertmanager's route ID)."""
        own = mm.matchers_string(self.matchers)
        if self.parent is None:
            return own
        return f"{self.parent.id()}/{own}/{self.index}"

    def match(self, labels: dict[str, str]) -> list[Route]:
        if not mm.matches(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            hits = child.match(labels)
            found += hits
            if hits and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        if self.group_by_all:
            return dict(labels)
        return {k: v for k, v in labels.items() if k in self.group_by}

    def walk(self):
        yield self
        for child in self.routes:
            yield from child.walk()


def label_set_string(labels: dict[str, str]) -> str:
    """Prometheus's `LabelSet.String()`: `{a="1", b="2"}`, sorted by name."""
    import json

    return "{" + ", ".join(f"{k}={json.dumps(labels[k], ensure_ascii=False)}" for k in sorted(labels)) + "}"


def group_key(route: Route, group_labels: dict[str, str]) -> str:
    return f"{route.key()}:{label_set_string(group_labels)}"
