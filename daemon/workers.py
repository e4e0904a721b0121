"""The scale-out roles on a Postgres store (issue 16): `trendfinder scheduler` enqueues what
is due, `trendfinder worker` claims jobs and does them with the daemon's own steps (the
Collector's fetch and store, the Runner's grouping, digests and outbox).

Jobs (core/store/jobs.py), one row per kind and key, so enqueueing is idempotent and any
number of schedulers enqueue each job once:

- `fetch`/<source>: due at the source's next fetch time; a worker fetches it and, in the
  same transaction as its items, moves the job to the source's next due time, so a feed is
  fetched at most once per interval whatever the number of workers;
- `digest`/<profile>: due at the profile's schedule fire; the worker builds the digest
  unless one was made since that fire, then moves the job to the next fire;
- `group`/`stories` and `deliver`/`outbox`: recurring, every sweep gap.

A worker's claims are leased; a heartbeat thread extends the leases of a live worker, so a
long digest keeps its claim and a SIGKILLed worker's jobs return to the pool within one
lease. Per-host politeness holds across workers through host slots claimed in the store.
Both roles read the config again on SIGHUP (a bad one is refused and the old one kept).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType

from core.clock import to_text, utcnow
from core.config import Config, load_config
from core.errors import UsageError
from core.items import FetchOutcome, FetchRequest
from core.store import Job, Store
from daemon import logs
from daemon.collecting import Report
from daemon.cron import last_fire_time, next_fire_time
from daemon.lock import AlreadyRunning
from daemon.runner import AlertsFailed, DigestFailed, Runner
from daemon.scheduler import reloaded_config, sweep_gap
from sources.collect import collect, host_key

log = logging.getLogger("trendfinder")

# A scheduler holds no claims; its lease only sets how often its heartbeat is written.
SCHEDULER_LEASE = timedelta(seconds=60)
# A fetch whose host has no free slot goes back to the pool for this long.
HOST_BUSY_WAIT = timedelta(seconds=1)
IDLE_POLL = 0.5  # seconds between claims when nothing is due
SCHEDULER_TICK = 5.0  # seconds between a scheduler's rounds


def needs_postgres(config: Config, role: str) -> None:
    if config.storage.url is None:
        raise UsageError(
            f"`trendfinder {role}` shares a Postgres store with other processes: set "
            "storage.url (on one machine, `trendfinder run` does every role on SQLite)"
        )


def refuse_beside_the_daemon(store: Store, role: str) -> None:
    """A `trendfinder run` collects outside the job queue: a role beside it would fetch the
    same feeds again."""
    with store.sql.exclusive("daemon") as free:
        if not free:
            raise AlreadyRunning(
                f"a `trendfinder run` daemon is working on the store at {store.sql.location}; "
                f"stop it before starting `trendfinder {role}` (it does every role itself)"
            )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Signals:
    """SIGTERM and SIGINT end the loop after the current job; SIGHUP has the config read
    again between two jobs, as `trendfinder run` does."""

    def __init__(self) -> None:
        self.stopping = False
        self.reload = False
        self._wake = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, self._on_signal)

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        if number == signal.SIGHUP:
            self.reload = True
        else:
            self.stopping = True
        self._wake.set()

    def sleep(self, seconds: float) -> None:
        """Wait, cut short by a signal."""
        self._wake.wait(seconds)
        self._wake.clear()

    def reloaded(self, path: Path, config: Config) -> Config:
        """The config to go on with: a new one if SIGHUP asked for it and it is acceptable
        (else the reason is logged and `config` is kept)."""
        if not self.reload:
            return config
        self.reload = False
        new = reloaded_config(path, config)
        if new is None:
            return config
        log.info(
            "config reloaded from %s: %d sources, %d digest profiles",
            path,
            len(new.sources),
            len(new.digests),
        )
        return new


class _Heartbeat:
    """A thread with its own connection: the process's row in `workers` and its leases,
    renewed every third of a lease."""

    def __init__(self, open_store: Callable[[], Store], name: str, role: str, lease: timedelta):
        self.store = open_store()
        self.name, self.role, self.lease = name, role, lease
        self._stop = threading.Event()
        self.beat()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def beat(self) -> None:
        now = utcnow()
        self.store.heartbeat(self.name, self.role, now)
        self.store.extend_leases(self.name, now + self.lease)

    def _run(self) -> None:
        while not self._stop.wait(self.lease.total_seconds() / 3):
            try:
                self.beat()
            except Exception as error:  # the next beat tries again; leases are long enough
                log.warning("heartbeat: %s", self.store.sql.translated(error) or error)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self.store.forget_worker(self.name)
        self.store.close()


class Worker:
    def __init__(self, config: Config, store: Store, name: str, lease: timedelta, batch: int):
        self.config = config
        self.store = store
        self.name = name
        self.lease = lease
        self.batch = batch
        self.runner = Runner(config, store, isolated=True)
        self.gap = sweep_gap(config)

    def work_once(self) -> int:
        """Claim and do what is due: one job, or a batch of fetches; how many jobs."""
        now = utcnow()
        jobs = self.store.claim_jobs(
            self.name, ("deliver", "digest", "group"), now, self.lease, 1
        ) or self.store.claim_jobs(self.name, ("fetch",), now, self.lease, self.batch)
        if not jobs:
            return 0
        if jobs[0].kind == "fetch":
            self.fetch(jobs)
        else:
            (job,) = jobs
            {"deliver": self.deliver, "digest": self.digest, "group": self.group}[job.kind](job)
        return len(jobs)

    # Fetch -----------------------------------------------------------------------------

    def fetch(self, jobs: list[Job]) -> None:
        now = utcnow()
        configs = {s.name: s for s in self.config.sources if s.enabled}
        cursors = self.store.source_cursors()
        requests: dict[str, tuple[Job, FetchRequest]] = {}
        by_host: dict[str, list[str]] = defaultdict(list)
        states = {}
        for job in jobs:
            source = configs.get(job.key)
            if source is None:
                self.store.finish_job(job, None)  # no longer configured
                continue
            state = states[job.key] = self.store.source_state(job.key)
            if state.disabled_reason:
                self.store.finish_job(job, None)
                continue
            if state.next_fetch_at and state.next_fetch_at > now:
                # Fetched already: a worker stored it, then lost its claim before finishing.
                self.store.finish_job(job, state.next_fetch_at)
                continue
            requests[job.key] = (job, self.runner.request(source, state, cursors))
            by_host[host_key(requests[job.key][1].url)].append(job.key)
        per_host = self.config.collect.per_host
        for host, names in by_host.items():
            granted = self.store.claim_host_slots(
                host, per_host, len(names), self.name, now, self.lease
            )
            for name in names[granted:]:
                self.store.finish_job(requests.pop(name)[0], now + HOST_BUSY_WAIT)
        if not requests:
            return
        report = Report()
        run_id = self.store.start_run("collect", now)
        fetched: list[tuple[FetchOutcome, datetime]] = []
        try:
            collect(
                [request for _, request in requests.values()],
                self.config.collect,
                now,
                on_outcome=lambda outcome: fetched.append((outcome, utcnow())),
                firecrawl=self.config.firecrawl,
            )
            # The batch's items, fetch states and the jobs' next due times land together, in
            # one commit (a crash before it refetches the batch, which nothing recorded).
            with self.store.transaction():
                dues = self.runner.store_outcomes(fetched, configs, states, report)
                for (outcome, _), due in zip(fetched, dues, strict=True):
                    self.store.finish_job(requests[outcome.source][0], due)
        finally:
            self.store.release_host_slots(self.name)
        status = "failed" if report.failed else "ok"
        self.store.finish_run(run_id, utcnow(), status, report.summary(), report.errors)
        log.info("fetch: %s", report.describe())

    # Group, digest, deliver --------------------------------------------------------------

    def group(self, job: Job) -> None:
        grouped = self.runner.group()
        if grouped and any(profile.alerts for profile in self.config.digests):
            with contextlib.suppress(AlertsFailed):  # logged by the runner
                if self.runner.alert():
                    self.runner.deliver()
        self.store.finish_job(job, utcnow() + self.gap)

    def digest(self, job: Job) -> None:
        profile = next((p for p in self.config.digests if p.name == job.key), None)
        if profile is None:
            self.store.finish_job(job, None)
            return
        last = self.store.last_digest(profile.name)
        if last is None or last.created_at < job.due_at:
            self.runner.group()
            with contextlib.suppress(AlertsFailed):
                self.runner.alert()
            try:
                built = self.runner.digest(profile)
            except DigestFailed:
                built = None  # logged, and its items stay pending for the next fire
            made = built.digest.id if built else "no digest"
            log.info("digest %s for the fire at %s: %s", profile.name, to_text(job.due_at), made)
            self.runner.deliver()
        self.store.finish_job(job, next_fire_time(profile, utcnow()))

    def deliver(self, job: Job) -> None:
        self.runner.deliver()
        self.store.finish_job(job, utcnow() + self.gap)


def schedule(config: Config, store: Store, now: datetime) -> None:
    """Enqueue every job that should exist; those already there keep their due times, so
    running this twice, or in two schedulers at once, enqueues each job once."""
    store.sync_sources((s.name, s.kind, s.url) for s in config.sources if s.enabled)
    enabled = {s.name for s in config.sources if s.enabled}
    store.enqueue_jobs(
        "fetch",
        [
            (state.name, state.next_fetch_at or now)
            for state in store.source_states()
            if state.name in enabled and not state.disabled_reason
        ],
    )
    digests = []
    for profile in config.digests:
        last = store.last_digest(profile.name)
        fired = last_fire_time(profile, now)
        missed = fired is not None and (last is None or last.created_at < fired)
        digests.append((profile.name, fired if missed and fired else next_fire_time(profile, now)))
    store.enqueue_jobs("digest", digests)
    store.enqueue_jobs("group", [("stories", now)])
    store.enqueue_jobs("deliver", [("outbox", now)])


def run_worker(path: Path, lease: timedelta, batch: int) -> int:
    config = _start_config(path, "worker")
    signals = _Signals()
    name = worker_name()
    with Store.open_config(config.storage) as store:
        refuse_beside_the_daemon(store, "worker")
        heartbeat = _Heartbeat(lambda: Store.open_config(config.storage), name, "worker", lease)
        log.info("worker %s: claiming jobs from %s", name, store.sql.location)
        try:
            worker = Worker(config, store, name, lease, batch)
            while not signals.stopping:
                if (new := signals.reloaded(path, worker.config)) is not worker.config:
                    worker = Worker(new, store, name, lease, batch)
                try:
                    done = worker.work_once()
                except Exception as error:
                    # One job's trouble (a lost connection, a bug): said, and the job's lease
                    # returns it to the pool; the worker carries on.
                    log.exception("worker: %s", store.sql.translated(error) or error)
                    done = 0
                if not done:
                    signals.sleep(IDLE_POLL)
        finally:
            heartbeat.close()
    log.info("worker %s: stopped", name)
    return 0


def run_scheduler(path: Path) -> int:
    config = _start_config(path, "scheduler")
    signals = _Signals()
    name = worker_name()
    with Store.open_config(config.storage) as store:
        refuse_beside_the_daemon(store, "scheduler")
        heartbeat = _Heartbeat(
            lambda: Store.open_config(config.storage), name, "scheduler", SCHEDULER_LEASE
        )
        log.info("scheduler %s: enqueueing on %s", name, store.sql.location)
        try:
            while not signals.stopping:
                config = signals.reloaded(path, config)
                try:
                    schedule(config, store, utcnow())
                except Exception as error:
                    log.error("scheduler: %s", store.sql.translated(error) or error)
                signals.sleep(SCHEDULER_TICK)
        finally:
            heartbeat.close()
    return 0


def _start_config(path: Path, role: str) -> Config:
    config = load_config(path)
    logs.hide_secrets(config)
    needs_postgres(config, role)
    return config
