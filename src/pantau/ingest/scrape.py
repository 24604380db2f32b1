"""Scraping configured targets, the way Prometheus's scrape loop does it.

One asyncio task per target scrapes every `scrape_interval` (each target at its own offset
within the interval, so many targets do not all fire at once), with `scrape_timeout` for the
whole request. What Prometheus writes, pantau writes:

* every exposed sample under its exposed name, with the target's labels attached (`job`,
  `instance`, the static labels); on a conflict `honor_labels: true` keeps the scraped value,
  otherwise the scraped label is renamed `exported_<name>`;
* timestamps: the scrape's start, or the exposed timestamp (`honor_timestamps`, default true);
* staleness markers at the scrape's time for every series of the previous scrape that is gone
  from this one, and for all of them when the scrape fails (a failed scrape counts as an
  empty one); series exposed with their own timestamps are not tracked, as in Prometheus;
* per target `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
  `scrape_samples_post_metric_relabeling` and `scrape_series_added`;
* `# TYPE`/`# HELP`/`# UNIT` as metric metadata.

Not done (not configurable here): relabeling, sample and body-size limits per job, service
discovery other than static targets, and Prometheus's end-of-run staleness markers when a
target goes away on a configuration reload (there is no reload yet). A failing target never
stops the others or the hub: every scrape is guarded and logged on a change of health.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from pantau import __version__
from pantau.config import ScrapeConfig
from pantau.ingest.exposition import ExpositionError, parse, parse_series
from pantau.model import METRIC_NAME, Labels, SampleBatch, make_labels, series_key, stale_marker
from pantau.store.base import Overloaded, Store, StoreError

log = logging.getLogger("pantau.scrape")

# What Prometheus 2.42 asks for: OpenMetrics first, then the text format.
ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
_STALE = stale_marker()


@dataclass(frozen=True, slots=True)
class Target:
    job: str
    url: str
    labels: Labels  # job, instance and static labels: what every series of the target carries
    interval_s: float
    timeout_s: float
    honor_labels: bool = False
    honor_timestamps: bool = True


def targets_from_config(jobs: list[ScrapeConfig]) -> list[Target]:
    """Static targets with their labels, as Prometheus's `PopulateLabels` makes them: the static
    labels, then `job` and `instance` (= the address) where the static labels do not set them."""
    out = []
    for job in jobs:
        for group in job.static_configs:
            for address in group.targets:
                labels = dict(group.labels)
                labels.setdefault("job", job.job_name)
                labels.setdefault("instance", address)
                labels = {k: v for k, v in labels.items() if not k.startswith("__")}
                out.append(Target(
                    job=job.job_name, url=f"{job.scheme}://{address}{job.metrics_path}",
                    labels=make_labels(labels), interval_s=float(job.scrape_interval or 60),
                    timeout_s=float(job.scrape_timeout or 10), honor_labels=job.honor_labels,
                    honor_timestamps=job.honor_timestamps))
    return out


def attach_target_labels(exposed: list[tuple[str, str]], target: Labels, honor: bool) -> Labels:
    """A scraped sample's final labels (Prometheus's `mutateSampleLabels`)."""
    labels = dict(exposed)
    if len(labels) != len(exposed):
        dup = next(k for k, _ in exposed if [n for n, _ in exposed].count(k) > 1)
        raise ExpositionError(f'label name "{dup}" is not unique in {exposed}')
    if honor:
        for name, value in target:
            if name not in labels:
                labels[name] = value
        return make_labels(labels)
    conflicts = sorted(((name, labels[name]) for name, _ in target if labels.get(name, "") != ""),
                       key=lambda kv: len(kv[0]))
    exposed_names = set(labels)
    target_names = {name for name, _ in target}
    labels.update(target)
    taken: set[str] = set()
    for name, value in conflicts:
        new = name
        while True:
            new = "exported_" + new
            if new not in exposed_names and new not in target_names and new not in taken:
                break
        taken.add(new)
        labels[new] = value
    return make_labels(labels)


@dataclass(slots=True)
class ScrapeResult:
    """What one scrape wrote, for logs and tests."""

    batch: SampleBatch
    error: str | None


class TargetScraper:
    """Scrapes one target and remembers what the previous scrape exposed (for staleness)."""

    def __init__(self, target: Target, store: Store, client: httpx.AsyncClient, max_body_bytes: int,
                 clock: Callable[[], float] = time.time, max_age_s: float = 30 * 86400,
                 max_future_s: float = 86400) -> None:
        self.target = target
        self.store = store
        self.client = client
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        # exposed timestamps outside this window are dropped, as Prometheus drops "out of bounds"
        self.window_ms = (int(max_age_s * 1000), int(max_future_s * 1000))
        self.last_error: str | None = None
        self._series: dict[str, tuple[Labels, str]] = {}  # series text as exposed -> (labels, key)
        self._previous: dict[str, Labels] = {}  # series key -> labels, of the last scrape
        self._healthy: bool | None = None
        self._counts = (0, 0, 0)  # samples scraped, kept, series added: of the last scrape

    # --- the loop ---------------------------------------------------------------------------

    def offset(self) -> float:
        """Seconds to wait before the first scrape: a stable spot within the interval per target,
        so the targets of a job spread out instead of firing together."""
        interval = self.target.interval_s
        spot = (zlib.crc32(f"{self.target.url}{self.target.labels}".encode()) % 1_000_000) / 1_000_000 * interval
        return (spot - self.clock() % interval) % interval

    async def run(self) -> None:
        await asyncio.sleep(self.offset())
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            await self.scrape_once()
            due += self.target.interval_s
            now = loop.time()
            if due < now:  # a slow scrape or a stalled loop: skip the missed ticks
                due += ((now - due) // self.target.interval_s + 1) * self.target.interval_s
            await asyncio.sleep(due - now)

    async def scrape_once(self) -> ScrapeResult | None:
        """Scrape, store, and never raise (except for cancellation)."""
        try:
            result = await self._scrape()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scraping %s failed unexpectedly", self.target.url)
            return None
        healthy = result.error is None
        if healthy != self._healthy:
            if healthy:
                log.info("target %s is up", self.target.url)
            else:
                log.warning("target %s is down: %s", self.target.url, result.error)
        self._healthy, self.last_error = healthy, result.error
        try:
            await asyncio.wrap_future(self.store.submit(result.batch))
        except Overloaded:
            log.warning("scrape of %s dropped: the write queue is full", self.target.url)
        except StoreError as exc:
            log.warning("scrape of %s not stored: %s", self.target.url, exc)
        return result

    # --- one scrape -------------------------------------------------------------------------

    async def _fetch(self) -> tuple[bytes, str]:
        t = self.target
        headers = {"Accept": ACCEPT, "X-Prometheus-Scrape-Timeout-Seconds": f"{t.timeout_s:g}"}
        async with asyncio.timeout(t.timeout_s):
            async with self.client.stream("GET", t.url, headers=headers) as resp:
                if resp.status_code != 200:
                    raise ScrapeError(f"server returned HTTP status {resp.status_code} {resp.reason_phrase}")
                chunks, size = [], 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise ScrapeError(f"body larger than {self.max_body_bytes} bytes (limits.max_request_bytes)")
                    chunks.append(chunk)
                return b"".join(chunks), resp.headers.get("content-type", "")

    async def _scrape(self) -> ScrapeResult:
        t_ms = int(self.clock() * 1000)
        started = time.perf_counter()
        error: str | None = None
        batch: SampleBatch | None = None
        try:
            body, content_type = await self._fetch()
            batch = await asyncio.to_thread(self.build, body, content_type, t_ms)
        except TimeoutError:
            error = f"scrape timed out after {self.target.timeout_s:g}s"
        except (ScrapeError, ExpositionError, UnicodeDecodeError) as exc:
            error = str(exc)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration = time.perf_counter() - started
        if batch is None:
            batch = self.build_failed(t_ms)
        self.report(batch, t_ms, duration, error is None)
        return ScrapeResult(batch, error)

    def build(self, body: bytes, content_type: str, t_ms: int) -> SampleBatch:
        """Samples of a successful scrape plus staleness markers for series that went away."""
        exposition = parse(body.decode("utf-8"), content_type)
        target = self.target
        cache = self._series
        batch = SampleBatch(metadata=exposition.metadata)
        refs, stamps, values = batch.ref, batch.timestamp_ms, batch.value
        current: dict[str, Labels] = {}
        seen: dict[str, None] = {}
        added = 0
        oldest, newest = t_ms - self.window_ms[0], t_ms + self.window_ms[1]
        for text, value, ts in exposition.samples:
            hit = cache.get(text)
            if hit is None:
                labels = attach_target_labels(parse_series(text), target.labels, target.honor_labels)
                if not any(k == METRIC_NAME for k, _ in labels):
                    raise ExpositionError(f"sample {text!r} has no metric name")
                hit = cache[text] = (labels, series_key(labels))
                added += 1
            labels, key = hit
            if key in seen:  # the same series twice: Prometheus keeps the first
                continue
            if ts is not None and target.honor_timestamps and not oldest <= ts <= newest:
                continue
            seen[key] = None
            refs.append(batch.add_new_series(labels, key))
            values.append(value)
            if ts is None or not target.honor_timestamps:
                stamps.append(t_ms)
                current[key] = labels
            else:
                stamps.append(ts)
        self._mark_stale(batch, current, t_ms)
        if len(cache) > 2 * len(exposition.samples) + 1000:  # forget series no longer exposed
            self._series = {text: cache[text] for text, _, _ in exposition.samples if text in cache}
        self._counts = (len(exposition.samples), len(seen), added)
        return batch

    def build_failed(self, t_ms: int) -> SampleBatch:
        """A failed scrape is an empty one: every series of the previous scrape goes stale."""
        batch = SampleBatch()
        self._mark_stale(batch, {}, t_ms)
        self._counts = (0, 0, 0)
        return batch

    def _mark_stale(self, batch: SampleBatch, current: dict[str, Labels], t_ms: int) -> None:
        gone = [(key, labels) for key, labels in self._previous.items() if key not in current]
        for key, labels in gone:
            batch.ref.append(batch.add_series(labels, key))
            batch.timestamp_ms.append(t_ms)
            batch.value.append(_STALE)
        self._previous = current

    def report(self, batch: SampleBatch, t_ms: int, duration: float, up: bool) -> None:
        """The five series Prometheus writes for every scrape of a target."""
        scraped, post, added = self._counts
        for name, value in (("up", 1.0 if up else 0.0), ("scrape_duration_seconds", duration),
                            ("scrape_samples_scraped", float(scraped)),
                            ("scrape_samples_post_metric_relabeling", float(post)),
                            ("scrape_series_added", float(added))):
            labels = make_labels([*self.target.labels, (METRIC_NAME, name)])
            batch.append(labels, t_ms, value)


class ScrapeError(Exception):
    """The target answered, but not with a scrape (HTTP status, body too large)."""


class ScrapeManager:
    """Runs one `TargetScraper` per configured target; started after the store, stopped before it."""

    def __init__(self, store: Store, jobs: list[ScrapeConfig], max_body_bytes: int, max_age_s: float = 30 * 86400,
                 max_future_s: float = 86400) -> None:
        self.store = store
        self.targets = targets_from_config(jobs)
        self.max_body_bytes = max_body_bytes
        self.window_s = (max_age_s, max_future_s)
        self.scrapers: list[TargetScraper] = []
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        if not self.targets:
            return
        self._client = httpx.AsyncClient(headers={"User-Agent": f"pantau/{__version__}"}, follow_redirects=True,
                                         timeout=None)
        for target in self.targets:
            scraper = TargetScraper(target, self.store, self._client, self.max_body_bytes,
                                    max_age_s=self.window_s[0], max_future_s=self.window_s[1])
            self.scrapers.append(scraper)
            self._tasks.append(asyncio.create_task(scraper.run(), name=f"scrape {target.url}"))
        log.info("scraping %d targets", len(self.targets))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
