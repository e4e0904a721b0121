"""Long-running mode (`trendfinder run`) and the one-shot cycle (`run --once`).

APScheduler 3's BackgroundScheduler keeps the schedule through its public API: UTC
internally, each digest profile's cron in its own timezone. The schedule is rebuilt from the
config at every start and reload and all state lives in the SQLite store, so APScheduler's
own job store holds nothing worth keeping. Jobs:

- `cycle`: once at start and after a reload, one `run --once` cycle of what is due, which
  also catches up a digest whose time passed while the daemon was stopped;
- `collect`: every sweep gap (an IntervalTrigger), collects the sources that are due (a
  source's `next_fetch_at` carries its interval with jitter, or its backoff after failures,
  so sources in backoff are skipped); a sweep with nothing due touches nothing;
- `digest:<profile>`: on the profile's cron (a CronTrigger): group, build, deliver;
- `deliver`: every sweep gap, retries failed deliveries whose backoff has ended;
- `reload`: once, applies a config accepted on SIGHUP.

Every job runs on one worker thread, one at a time (`max_instances=1`), so the store's single
connection is never used by two threads at once, and a slow job delays the others instead
of piling up; a late job runs once when it can (`coalesce`, no `misfire_grace_time`), so a
machine waking from sleep catches up. The main thread acts on signals and pings systemd's
watchdog.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, timedelta
from functools import partial
from pathlib import Path
from types import FrameType

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from core.clock import utcnow
from core.config import Config, cron_trigger, load_config
from core.errors import ConfigError
from core.store import Store
from daemon import logs, memory
from daemon.cron import next_fire_time
from daemon.lock import locked_store
from daemon.runner import AlertsFailed, Runner
from daemon.systemd import Notifier

log = logging.getLogger("trendfinder")

STOP_TIMEOUT = 30.0
# Collection and delivery look at the store at least this often, so work queued by another
# process (an operator's `trendfinder digest`) is picked up without a restart; sources
# falling due close together are fetched in one sweep instead of one sweep each.
MIN_SWEEP_GAP = timedelta(seconds=1)
MAX_SWEEP_GAP = timedelta(seconds=60)


def sweep_gap(config: Config) -> timedelta:
    """A tenth of the shortest source interval, within [MIN_SWEEP_GAP, MAX_SWEEP_GAP]."""
    shortest = min((s.interval for s in config.sources if s.enabled), default=MAX_SWEEP_GAP)
    return min(max(shortest / 10, MIN_SWEEP_GAP), MAX_SWEEP_GAP)


class _SkippedWhileBusy(logging.Filter):
    """APScheduler warns each time a sweep falls due while the one worker is still busy
    (a long model call); that is the intended serialisation, so the listener notes it at
    debug level instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


class Daemon:
    def __init__(
        self,
        path: Path,
        config: Config,
        store: Store,
        notifier: Notifier,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.path = path
        self.config = config
        self.store = store
        self.runner = Runner(config, store, isolated=True)
        self.notifier = notifier
        self.stop_timeout = stop_timeout
        watchdog = notifier.watchdog.total_seconds() if notifier.watchdog else None
        self._tick = min(1.0, watchdog / 4) if watchdog else 1.0
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            # Never drop a run for being late (the machine slept, a sweep ran long): run it
            # once when possible, however many times it was missed.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        logging.getLogger("apscheduler.scheduler").addFilter(_SkippedWhileBusy())
        self._ping_every = watchdog / 2 if watchdog else None
        self._last_ping = 0.0
        self._reload_requested = False
        self._stop_signal: int | None = None
        self._stop_deadline = 0.0
        self._stopping = threading.Event()
        # Held while a job runs: shutdown waits on it before closing the store.
        self._busy = threading.Lock()

    # Running and stopping ------------------------------------------------------------------

    def run(self) -> int:
        memory.keep_heap_small()
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, self._on_signal)
        self._add_digest_jobs()
        self._add_sweeps()
        self._add_once("cycle", self._cycle)
        log.info(
            "trendfinder running: %d sources, %d digest profiles, store %s",
            len(self.config.sources),
            len(self.config.digests),
            self.store.sql.location,
        )
        # Paused until systemd has heard we are ready, so no job uses the store meanwhile.
        self.scheduler.start(paused=True)
        self.notifier.ready(self._summary_line())
        self.scheduler.resume()
        # Signal handlers only set flags; acting on them here, in the main thread, never
        # takes the scheduler's locks inside a signal handler.
        while self.scheduler.running:
            self._watch()
            time.sleep(self._tick)
        return self._finish()

    def _on_skipped(self, event: JobSubmissionEvent) -> None:
        log.debug("%s: still busy with the previous job; this run is skipped", event.job_id)

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        if number == signal.SIGHUP:
            self._reload_requested = True
        elif self._stop_signal is None:
            self._stop_signal = number
            self._stop_deadline = time.monotonic() + self.stop_timeout

    def _watch(self) -> None:
        """Every tick, in the main thread: the watchdog, and the signals received."""
        if self._ping_every and time.monotonic() - self._last_ping >= self._ping_every:
            self.notifier.ping()
            self._last_ping = time.monotonic()
        if self._stop_signal is not None:
            name = signal.Signals(self._stop_signal).name
            log.info("%s received: stopping (finishing the current step)", name)
            self.notifier.stopping(f"stopping on {name}")
            self._stopping.set()
            self.scheduler.shutdown(wait=False)
        elif self._reload_requested:
            self._reload_requested = False
            self._accept_reload()

    def _finish(self) -> int:
        """Wait (bounded) for the current step, close the store, and return the exit code."""
        deadline = self._stop_deadline or time.monotonic() + self.stop_timeout
        # Keep a second for closing and exiting inside the promised time.
        if self._busy.acquire(timeout=max(0.0, deadline - time.monotonic() - 1.0)):
            try:
                self.store.close()
            finally:
                self._busy.release()
            log.info("stopped")
            return 0
        # Every write is its own SQLite transaction, so leaving mid-step loses nothing that
        # was committed and the next start picks the step up again.
        log.warning("the current step did not finish in %.0f s; abandoning it", self.stop_timeout)
        logging.shutdown()
        os._exit(0)

    # Jobs ------------------------------------------------------------------------------------

    def _add_once(self, job_id: str, work: Callable[[], str | None]) -> None:
        """A job that runs once, as soon as the worker is free (no trigger: now)."""
        self.scheduler.add_job(
            self._run_job, args=(job_id, work), id=job_id, name=job_id, replace_existing=True
        )

    def _add_sweeps(self) -> None:
        gap = IntervalTrigger(seconds=sweep_gap(self.config).total_seconds(), timezone=UTC)
        for job_id, work in (("collect", self._collect), ("deliver", self._deliver)):
            self.scheduler.add_job(
                self._run_job,
                trigger=gap,
                args=(job_id, work),
                id=job_id,
                name=job_id,
                replace_existing=True,
            )

    def _add_digest_jobs(self) -> None:
        wanted = {f"digest:{profile.name}": profile for profile in self.config.digests}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("digest:") and job.id not in wanted:
                job.remove()
        for job_id, profile in wanted.items():
            self.scheduler.add_job(
                self._run_job,
                trigger=cron_trigger(profile.schedule, profile.timezone),
                args=(job_id, partial(self._digest, profile.name)),
                id=job_id,
                name=job_id,
                replace_existing=True,
            )

    def _run_job(self, job_id: str, work: Callable[[], str | None]) -> None:
        with self._busy:
            if self._stopping.is_set():
                return
            started = time.monotonic()
            try:
                outcome = work()
            except Exception as error:
                # A full disk or a lock held elsewhere: the reason, not a traceback.
                if (trouble := self.store.sql.translated(error)) is not None:
                    log.error("%s: failed: %s", job_id, trouble)
                else:
                    log.exception("%s: failed", job_id)
                outcome = "failed"
            memory.release()
            if outcome is not None:
                log.info("%s: %s (%.1f s)", job_id, outcome, time.monotonic() - started)
            if not self._stopping.is_set():
                self.notifier.status(self._summary_line())

    def _cycle(self) -> str:
        return self.runner.run_once().describe()

    def _collect(self) -> str | None:
        if not self._sources_due():
            return None
        report = self.runner.collect(due_only=True)
        if report.new_items and any(profile.alerts for profile in self.config.digests):
            # Alerts go out between digests: group what arrived and judge it at once.
            report.grouped_items = self.runner.group()
            report.alerts = [alert.digest.id for alert in self.runner.alert()]
            if report.alerts:
                self._deliver()
        fetched = report.sources_ok + report.sources_unchanged + report.sources_failed
        return report.describe() if fetched else None

    def _digest(self, name: str) -> str:
        profile = next((p for p in self.config.digests if p.name == name), None)
        if profile is None:
            return "no longer configured"
        self.runner.group()
        # Keeps the burst baselines learning (and topic trends current) without alerts; a
        # failure is logged by the runner, and the digest still goes out.
        with contextlib.suppress(AlertsFailed):
            self.runner.alert()
        built = self.runner.digest(profile)
        self._deliver()
        return f"built {built.digest.id}" if built else "nothing new"

    def _deliver(self) -> str | None:
        report = self.runner.deliver()
        if not (report.deliveries_sent or report.deliveries_failed):
            return None
        return f"{report.deliveries_sent} delivered, {report.deliveries_failed} failed"

    def _sources_due(self) -> bool:
        now = utcnow()
        enabled = {s.name for s in self.config.sources if s.enabled}
        return any(
            state.next_fetch_at is None or state.next_fetch_at <= now
            for state in self.store.source_states()
            if state.name in enabled and not state.disabled_reason
        )

    # Reloading ---------------------------------------------------------------------------------

    def _accept_reload(self) -> None:
        """Validate the new config here; the worker applies it between two jobs."""
        config = reloaded_config(self.path, self.config)
        if config is not None:
            self._add_once("reload", lambda: self._apply(config))

    def _apply(self, config: Config) -> str:
        self.config = config
        self.runner = Runner(config, self.store, isolated=True)
        self._add_digest_jobs()
        self._add_sweeps()
        log.info(
            "config reloaded from %s: %d sources, %d digest profiles",
            self.path,
            len(config.sources),
            len(config.digests),
        )
        return self._cycle()

    # What systemd shows ------------------------------------------------------------------------

    def _summary_line(self) -> str:
        states = self.store.source_states()
        names = {s.name for s in self.config.sources if s.enabled}
        failing = sum(1 for s in states if s.name in names and (s.last_error or s.disabled_reason))
        pending = len(self.store.deliveries("pending"))
        parts = [f"{len(names)} sources ({failing} failing)", f"{pending} deliveries pending"]
        if self.config.digests:
            upcoming = min((next_fire_time(p), p.name) for p in self.config.digests)
            parts.append(f"next digest {upcoming[1]} at {upcoming[0]:%Y-%m-%d %H:%M %Z}")
        return "; ".join(parts)


def reloaded_config(path: Path, current: Config) -> Config | None:
    """The config at `path` (secrets hidden from the log), if it may replace `current` on
    SIGHUP: valid, and naming the same store. Else None, the reason logged in one line."""
    try:
        config = load_config(path)
    except ConfigError as error:
        log.error(
            "config reload rejected, still running the previous config: %s: %s",
            error.source,
            "; ".join(error.problems),
        )
        return None
    if config.storage.location != current.storage.location:
        log.error(
            "config reload rejected, still running the previous config: the store "
            "changed from %s to %s; restart trendfinder to move the store",
            current.storage.location,
            config.storage.location,
        )
        return None
    logs.hide_secrets(config)
    return config


def run_forever(path: Path, stop_timeout: float = STOP_TIMEOUT) -> int:
    config = load_config(path)
    logs.hide_secrets(config)
    with locked_store(config.storage, lambda: Store.open_config(config.storage)) as store:
        store.close_unfinished_runs(utcnow())
        notifier = Notifier()
        try:
            return Daemon(path, config, store, notifier, stop_timeout).run()
        finally:
            notifier.close()
