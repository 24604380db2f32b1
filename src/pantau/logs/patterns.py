"""Log pattern mining: Drain (via drain3) over every log body, per service.

What it keeps per template: counts per time bucket (1 minute by default), first and last
seen, a few example lines. What it announces: a *new pattern* (a template never seen before,
once the service is past its warm-up) and a *pattern surge* (a template's count in the
current bucket far above its own recent average).

Three choices, each measured on loghub-2k (see `bench/log_patterns.py`, docs/benchmarks.md):

* Masking (`pantau.logs.masking`) turns numbers, ids, addresses, paths, sizes and times
  into one placeholder before Drain sees the line.
* Similarity counts literal words only (`_PantauDrain.get_seq_distance`): positions where both
  sides are masked say nothing about whether two lines are the same event, and a literal that
  differs only by an empty variable ("()" vs "(<V>)") still matches. With that, a strict
  threshold (0.8) separates events that differ by one word without splitting templates that
  differ by their variables.
* A cache from masked line to template: in steady state most lines repeat a masked form seen
  before, and Drain's tree search is then skipped. Drain compares a line only with templates
  of the same length, so when a template of that length changes (or a new one appears), the
  cache of that length is dropped: results are exactly what Drain alone would give.

Not thread-safe by design apart from a lock that lets readers (the API) list patterns while
one writer observes.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
import zstandard
from drain3.drain import Drain, LogCluster
from pydantic import BaseModel, ConfigDict, Field

from pantau.logs.masking import PLACEHOLDER, Masker, display
from pantau.store.base import Event

KIND = "log_pattern"


class PatternConfig(BaseModel):
    """Miner settings. The defaults are the single configuration benchmarked on every
    loghub-2k system (no per-system tuning)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    similarity: float = Field(0.8, gt=0, le=1, description="Drain's similarity threshold, over literal words")
    depth: int = Field(4, ge=3, description="Drain tree depth (4: branch on the first word)")
    max_children: int = Field(100, ge=2)
    max_templates_per_service: int = Field(20_000, ge=10)
    bucket_seconds: int = Field(60, ge=1)
    history_buckets: int = Field(60, ge=2, description="buckets of counts kept per template")
    examples: int = Field(3, ge=0, le=50)
    example_chars: int = Field(500, ge=20)
    warmup_seconds: float = Field(300, ge=0, description="no new-pattern events while a service is this new")
    surge_factor: float = Field(5.0, gt=1)
    surge_min_count: int = Field(50, ge=1, description="a surge needs at least this many lines in one bucket")
    surge_min_history: int = Field(5, ge=1, description="buckets of history a template needs before it can surge")
    cache_size: int = Field(10_000, ge=0, description="masked lines remembered per service (~1.5 MB)")
    max_line_chars: int = Field(1000, ge=20, description="a body is mined by its first line, cut to this length")


class _PantauDrain(Drain):
    """Drain with a similarity over literal words (see the module docstring)."""

    def get_seq_distance(self, seq1, seq2, include_params: bool):
        literal = matched = params = 0
        for a, b in zip(seq1, seq2):  # noqa: B905 (equal lengths: same tree branch)
            if a == "<*>":
                params += 1
            elif a == b:
                if a != PLACEHOLDER:
                    literal += 1
                    matched += 1
            else:
                literal += 1
                if (PLACEHOLDER in a or PLACEHOLDER in b) and a.replace(PLACEHOLDER, "") == b.replace(PLACEHOLDER, ""):
                    matched += 1
        return (matched / literal if literal else 1.0), params


@dataclass(slots=True)
class TemplateStats:
    id: str
    cluster_id: int
    first_ns: int
    last_ns: int
    total: int = 0
    buckets: dict[int, int] = field(default_factory=dict)  # bucket index -> count
    examples: list[str] = field(default_factory=list)
    current: int = -1  # newest bucket index seen
    threshold: int = 0  # surge threshold in `current` (0: cannot surge yet)


@dataclass(slots=True)
class Pattern:
    """One template as the API and CLI show it."""

    id: str
    service: str
    template: str
    count: int
    first_seen_ns: int
    last_seen_ns: int
    examples: list[str]
    buckets: list[tuple[int, int]]  # (bucket start ns, count), oldest first


class _Service:
    __slots__ = ("cache", "cached", "drain", "first_ns", "name", "templates")

    def __init__(self, name: str, cfg: PatternConfig, first_ns: int) -> None:
        self.name = name
        self.drain = _PantauDrain(depth=cfg.depth, sim_th=cfg.similarity, max_children=cfg.max_children,
                                  max_clusters=cfg.max_templates_per_service)
        self.cache: dict[int, dict[str, LogCluster]] = {}  # token count -> masked line -> its cluster
        self.cached = 0  # entries in all of them
        self.first_ns = first_ns
        self.templates: dict[int, TemplateStats] = {}


def template_id(service: str, cluster_id: int) -> str:
    """Stable id of a template: it names the cluster, not its text, which generalises over time."""
    return hashlib.blake2b(f"{service}\x00{cluster_id}".encode(), digest_size=8).hexdigest()


class PatternMiner:
    def __init__(self, config: PatternConfig | None = None) -> None:
        self.config = config or PatternConfig()
        self._mask = Masker()
        self._services: dict[str, _Service] = {}
        self._events: list[Event] = []
        self._lock = threading.RLock()
        self._bucket_ns = self.config.bucket_seconds * 1_000_000_000
        self._max_line = self.config.max_line_chars

    # --- mining ------------------------------------------------------------------------

    def observe(self, service: str, body: str, t_ns: int) -> str:
        """Add one log line; returns the id of its template."""
        with self._lock:
            return self._observe(service or "unknown_service", body, t_ns)

    def observe_many(self, items: Iterable[tuple[str, str, int]]) -> list[str]:
        """`observe` for many (service, body, t_ns), under one lock."""
        with self._lock:
            return [self._observe(s or "unknown_service", b, t) for s, b, t in items]

    def _observe(self, service: str, body: str, t_ns: int) -> str:
        cfg = self.config
        svc = self._services.get(service)
        if svc is None:
            svc = self._services[service] = _Service(service, cfg, t_ns)
        line = body
        if len(line) > self._max_line or "\n" in line:  # a stack trace is mined by its message
            line = line.split("\n", 1)[0]
            if len(line) > self._max_line:  # cut at a space: no half token
                head = line[: self._max_line].rsplit(None, 1)
                line = head[0] if head else ""
        tokens = self._mask.tokens(line)
        masked = " ".join(tokens)
        # Drain compares a line only with templates of its length, so a template change can only
        # alter the outcome for lines of that length: the cache is kept per length.
        cache = svc.cache.get(len(tokens))
        if cache is None:
            cache = svc.cache[len(tokens)] = {}
        cluster = cache.get(masked)
        if cluster is None:
            cluster, change = svc.drain.add_log_message(masked)
            if change != "none":
                svc.cached -= len(cache)
                cache.clear()
            if svc.cached >= cfg.cache_size or (  # full: Drain evicts a template, of any length
                    change == "cluster_created" and len(svc.drain.id_to_cluster) >= cfg.max_templates_per_service):
                svc.cache.clear()
                svc.cached = 0
                cache = svc.cache[len(tokens)] = {}
            if cfg.cache_size:
                cache[masked] = cluster
                svc.cached += 1
        else:
            cluster.size += 1
        stats = svc.templates.get(cluster.cluster_id)
        if stats is None:
            stats = self._new_template(svc, cluster, body, t_ns)
        self._count(svc, stats, cluster, body, t_ns)
        return stats.id

    def _new_template(self, svc: _Service, cluster: LogCluster, body: str, t_ns: int) -> TemplateStats:
        if len(svc.templates) > self.config.max_templates_per_service:
            live = svc.drain.id_to_cluster
            for cid in [c for c in svc.templates if c not in live]:
                del svc.templates[cid]
        stats = svc.templates[cluster.cluster_id] = TemplateStats(
            template_id(svc.name, cluster.cluster_id), cluster.cluster_id, t_ns, t_ns)
        if t_ns - svc.first_ns >= self.config.warmup_seconds * 1e9:
            template = display(cluster.get_template())
            self._events.append(Event(
                KIND, t_ns, id=f"logpattern-new-{stats.id}", severity="info",
                title=f"New log pattern in {svc.name}: {_short(template)}",
                labels={"service": svc.name, "pattern_id": stats.id, "reason": "new_pattern"},
                data={"template": template, "example": body[: self.config.example_chars],
                      "service_age_s": round((t_ns - svc.first_ns) / 1e9, 3)}))
        return stats

    def _count(self, svc: _Service, stats: TemplateStats, cluster: LogCluster, body: str, t_ns: int) -> None:
        cfg = self.config
        stats.total += 1
        if t_ns > stats.last_ns:
            stats.last_ns = t_ns
        elif t_ns < stats.first_ns:
            stats.first_ns = t_ns
        if len(stats.examples) < cfg.examples and body not in stats.examples:
            stats.examples.append(body[: cfg.example_chars])
        bucket = t_ns // self._bucket_ns
        if bucket > stats.current:
            self._roll(stats, bucket)
        count = stats.buckets[bucket] = stats.buckets.get(bucket, 0) + 1
        if count == stats.threshold and bucket == stats.current:
            self._surge(svc, stats, cluster, bucket, count)

    def _roll(self, stats: TemplateStats, bucket: int) -> None:
        """A template's first line in a newer bucket: drop old buckets, set the surge threshold
        from its own history (zeros included for quiet buckets)."""
        cfg = self.config
        oldest = bucket - cfg.history_buckets
        for b in [b for b in stats.buckets if b < oldest]:
            del stats.buckets[b]
        first = max(stats.first_ns // self._bucket_ns, oldest)
        history = bucket - first
        stats.current = bucket
        if history < cfg.surge_min_history:
            stats.threshold = 0
            return
        mean = sum(c for b, c in stats.buckets.items() if first <= b < bucket) / history
        stats.threshold = max(cfg.surge_min_count, math.ceil(cfg.surge_factor * mean))

    def _surge(self, svc: _Service, stats: TemplateStats, cluster: LogCluster, bucket: int, count: int) -> None:
        cfg = self.config
        first = max(stats.first_ns // self._bucket_ns, bucket - cfg.history_buckets)
        history = max(bucket - first, 1)
        baseline = sum(c for b, c in stats.buckets.items() if first <= b < bucket) / history
        template = display(cluster.get_template())
        start = bucket * self._bucket_ns
        self._events.append(Event(
            KIND, start, id=f"logpattern-surge-{stats.id}-{bucket}", end_ns=start + self._bucket_ns,
            severity="warning",
            title=f"Log pattern surge in {svc.name}: {count}+ lines/{cfg.bucket_seconds}s "
                  f"(usual {baseline:.1f}): {_short(template)}",
            labels={"service": svc.name, "pattern_id": stats.id, "reason": "surge"},
            data={"template": template, "count": count, "baseline_per_bucket": round(baseline, 3),
                  "threshold": stats.threshold, "bucket_seconds": cfg.bucket_seconds,
                  "window": {"start_ns": start, "end_ns": start + self._bucket_ns},
                  "history_buckets": history, "examples": list(stats.examples)}))

    def pop_events(self) -> list[Event]:
        """Events since the last call (new patterns, surges), oldest first."""
        with self._lock:
            events, self._events = self._events, []
            return events

    # --- reading -----------------------------------------------------------------------

    def template_count(self) -> int:
        with self._lock:
            return sum(len(svc.templates) for svc in self._services.values())

    def services(self) -> list[str]:
        with self._lock:
            return sorted(self._services)

    def template_text(self, service: str, tid: str) -> str | None:
        """The current template (with `<*>`) of a template id."""
        with self._lock:
            svc = self._services.get(service or "unknown_service")
            if svc is None:
                return None
            for stats in svc.templates.values():
                if stats.id == tid:
                    cluster = svc.drain.id_to_cluster.get(stats.cluster_id)
                    return display(cluster.get_template()) if cluster else None
            return None

    def patterns(self, service: str | None = None) -> list[Pattern]:
        """Every template (of one service, or all), most frequent first."""
        out: list[Pattern] = []
        with self._lock:
            for svc in self._services.values():
                if service is not None and svc.name != service:
                    continue
                for stats in svc.templates.values():
                    cluster = svc.drain.id_to_cluster.get(stats.cluster_id)
                    if cluster is None:
                        continue
                    out.append(Pattern(
                        stats.id, svc.name, display(cluster.get_template()), stats.total, stats.first_ns,
                        stats.last_ns, list(stats.examples),
                        [(b * self._bucket_ns, c) for b, c in sorted(stats.buckets.items())]))
        out.sort(key=lambda p: (-p.count, p.service, p.template))
        return out

    # --- persistence -------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole state (templates, counts, examples), zstd-compressed JSON."""
        with self._lock:
            doc = {"version": 1, "services": {}}
            for name, svc in self._services.items():
                doc["services"][name] = {
                    "first_ns": svc.first_ns,
                    "counter": svc.drain.clusters_counter,
                    "clusters": [[c.cluster_id, list(c.log_template_tokens), c.size]
                                 for c in svc.drain.id_to_cluster.values()],
                    "templates": [[s.cluster_id, s.first_ns, s.last_ns, s.total,
                                   sorted(s.buckets.items()), s.examples] for s in svc.templates.values()],
                }
            return zstandard.ZstdCompressor(level=3).compress(orjson.dumps(doc))

    @classmethod
    def from_bytes(cls, data: bytes, config: PatternConfig | None = None) -> PatternMiner:
        miner = cls(config)
        doc = orjson.loads(zstandard.ZstdDecompressor().decompress(data))
        if doc.get("version") != 1:
            raise ValueError(f"unknown pattern state version {doc.get('version')!r}")
        for name, s in doc["services"].items():
            svc = miner._services[name] = _Service(name, miner.config, s["first_ns"])
            for cid, tokens, size in s["clusters"]:
                cluster = LogCluster(tokens, cid)
                cluster.size = size
                svc.drain.id_to_cluster[cid] = cluster
                svc.drain.add_seq_to_prefix_tree(svc.drain.root_node, cluster)
            svc.drain.clusters_counter = s["counter"]
            for cid, first, last, total, buckets, examples in s["templates"]:
                stats = TemplateStats(template_id(name, cid), cid, first, last, total,
                                      {int(b): c for b, c in buckets}, examples)
                if stats.buckets:
                    miner._roll(stats, max(stats.buckets))  # the surge threshold of the newest bucket
                svc.templates[cid] = stats
        return miner


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
