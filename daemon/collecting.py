"""Collection as one step: due sources fetched, their items and fetch state stored.

Split from daemon.runner so that `trendfinder collect` imports only the collecting side:
the runner's digests, model client and delivery targets cost more CPU to import than a
cycle of unchanged feeds takes to collect. New items are stored ungrouped; the next step
that needs stories (a digest, the alert rules, `run`) groups them (Runner.group).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from core.clock import utcnow
from core.config import AnySource, Config, SourceConfig
from core.crashpoints import crash_point
from core.items import FetchOutcome, FetchRequest
from core.store import AddedItems, SourceItems, SourceState, Store
from sources.collect import collect
from sources.policy import next_attempt

log = logging.getLogger("trendfinder")

# Fetched sources are written up to this many to a transaction: one commit per source would
# dominate a thousand-source cycle, and a crash only refetches an unwritten batch.
STORE_BATCH = 100
# And at least this many, unless they are the cycle's last: the writer takes what has come
# while it wrote the last batch, so what is left to write after the last fetch is small.
STORE_BATCH_MIN = 25


@dataclass
class Report:
    """What a run did, for the log, the exit code and the runs table."""

    sources_ok: int = 0
    sources_unchanged: int = 0
    sources_failed: int = 0
    sources_waiting: int = 0  # skipped: in backoff, or their server asked to wait
    new_items: int = 0
    updated_items: int = 0
    grouped_items: int = 0
    digests: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    deliveries_sent: int = 0
    deliveries_failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def describe(self) -> str:
        """One line for the operator: what the run did."""
        parts = [
            f"{self.sources_ok} sources ok",
            f"{self.sources_unchanged} unchanged",
            f"{self.sources_failed} failed",
            f"{self.new_items} new items",
        ]
        if self.sources_waiting:
            parts.append(f"{self.sources_waiting} waiting (backoff or Retry-After)")
        if self.digests:
            parts.append(f"digests: {', '.join(self.digests)}")
        if self.alerts:
            parts.append(f"alerts: {', '.join(self.alerts)}")
        if self.deliveries_sent or self.deliveries_failed:
            parts.append(f"{self.deliveries_sent} delivered, {self.deliveries_failed} failed")
        return "; ".join(parts)

    def summary(self) -> dict[str, object]:
        return {
            "sources_ok": self.sources_ok,
            "sources_unchanged": self.sources_unchanged,
            "sources_failed": self.sources_failed,
            "new_items": self.new_items,
            "updated_items": self.updated_items,
            "grouped_items": self.grouped_items,
            "digests": self.digests,
            "alerts": self.alerts,
            "deliveries_sent": self.deliveries_sent,
            "deliveries_failed": self.deliveries_failed,
        }


class Collector:
    """Collects the configured sources into the store; the Runner is one, with the other steps."""

    def __init__(self, config: Config, store: Store, clock: Callable[[], datetime] = utcnow):
        self.config = config
        self.store = store
        self.clock = clock
        store.sync_sources((s.name, s.kind, s.url) for s in config.sources if s.enabled)

    # Collect -----------------------------------------------------------------------------

    def collect(
        self,
        *,
        due_only: bool = True,
        honour_backoff: bool = False,
        names: Sequence[str] | None = None,
        on_outcome: Callable[[FetchOutcome], None] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> Report:
        report = Report()
        now = self.clock()
        configs = {s.name: s for s in self.config.sources if s.enabled}
        states = {state.name: state for state in self.store.source_states()}
        cursors = self.store.source_cursors()
        requests = []
        for name, source in configs.items():
            state = states[name]
            if names is not None and name not in names:
                continue
            if state.disabled_reason:
                continue
            if state.next_fetch_at and state.next_fetch_at > now:
                if due_only:
                    continue
                if honour_backoff and state.failures:
                    # Failing sources back off, and 429/503 answers set when to come back.
                    report.sources_waiting += 1
                    continue
            requests.append(self.request(source, state, cursors))
        if on_start:
            on_start(len(requests))
        run_id = self.store.start_run("collect", now)

        writer = _Writer(lambda fetched: self.store_outcomes(fetched, configs, states, report))

        def on_fetched(outcome: FetchOutcome) -> None:
            crash_point("collect.fetched")
            writer.put((outcome, self.clock()))
            if on_outcome:
                on_outcome(outcome)

        try:
            collect(
                requests,
                self.config.collect,
                now,
                on_outcome=on_fetched,
                firecrawl=self.config.firecrawl,
            )
        except BaseException:
            writer.close(flush=False)  # what is not stored yet is fetched again next time
            raise
        writer.close(flush=True)
        self.store.finish_run(
            run_id, self.clock(), run_status(report), report.summary(), report.errors
        )
        return report

    def request(
        self, source: AnySource, state: SourceState, cursors: dict[str, str]
    ) -> FetchRequest:
        """What fetching `source` needs: its URL, its validators and what it has seen."""
        return FetchRequest(
            name=source.name,
            kind=source.kind,
            url=state.fetch_url,
            etag=state.etag,
            last_modified=state.last_modified,
            body_hash=state.body_hash,
            seen_links=self.store.site_links(source.name) if source.kind == "site" else frozenset(),
            social=None if isinstance(source, SourceConfig) else source,
            cursor=cursors.get(source.name),
        )

    def store_outcomes(
        self,
        fetched: Sequence[tuple[FetchOutcome, datetime]],
        configs: dict[str, AnySource],
        states: dict[str, SourceState],
        report: Report,
    ) -> list[datetime]:
        """Store fetches' items and states (each fetch with when it finished), in one
        transaction; when each source is due again."""
        with self.store.transaction():
            added = self.store.add_sources_items(
                [
                    SourceItems(outcome.source, outcome.items, finished)
                    for outcome, finished in fetched
                ]
            )
            dues = []
            for (outcome, finished), items in zip(fetched, added, strict=True):
                dues.append(self._store_state(outcome, finished, items, configs, states, report))
                crash_point("collect.storing")
        return dues

    def _store_state(
        self,
        outcome: FetchOutcome,
        finished: datetime,
        added: AddedItems,
        configs: dict[str, AnySource],
        states: dict[str, SourceState],
        report: Report,
    ) -> datetime:
        """Store what one fetch learned besides its items; when the source is due again."""
        source = configs[outcome.source]
        failures = states[outcome.source].failures
        if outcome.seen_links:
            self.store.remember_links(outcome.source, outcome.seen_links, finished)
        if outcome.cursor is not None or outcome.engagement:
            self.store.record_social(outcome, finished)
        due = next_attempt(outcome, source.interval, failures, finished)
        self.store.record_fetch(outcome, finished, due)
        if outcome.status == "error":
            report.sources_failed += 1
            report.errors.append(f"source {outcome.source}: {outcome.error}")
            log.warning("source %s failed: %s", outcome.source, outcome.error)
        elif outcome.status == "unchanged":
            report.sources_unchanged += 1
            log.info("source %s unchanged", outcome.source)
        else:
            report.sources_ok += 1
            log.info(
                "source %s: %d new, %d updated, %d seen",
                outcome.source,
                added.new,
                added.updated,
                added.seen,
            )
        report.new_items += added.new
        report.updated_items += added.updated
        for warning in outcome.warnings:
            log.info("source %s: %s", outcome.source, warning)
        return due


class _Writer:
    """Stores fetched sources in a thread of its own, batch by batch, while the event loop
    goes on fetching and feeding the parsing processes: SQLite lets go of the GIL while it
    writes (the search index most of all), and a batch written in the loop's thread left
    the parsing processes idle for as long."""

    def __init__(self, write: Callable[[list[tuple[FetchOutcome, datetime]]], object]) -> None:
        self._write = write
        self._pending: list[tuple[FetchOutcome, datetime]] = []
        self._closing = False
        self._flush = True
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="store-writer")
        self._thread.start()

    def put(self, fetched: tuple[FetchOutcome, datetime]) -> None:
        if self._error is not None:
            raise self._error  # stops the collection, as a failed write in the loop did
        with self._changed:
            self._pending.append(fetched)
            self._changed.notify()

    def close(self, *, flush: bool) -> None:
        """Write what is pending (unless not `flush`), stop, and raise what a write raised."""
        with self._changed:
            self._closing, self._flush = True, flush
            self._changed.notify()
        self._thread.join()
        if self._error is not None and flush:
            raise self._error

    def _run(self) -> None:
        while batch := self._next():
            try:
                self._write(batch)
                crash_point("collect.stored")
            except BaseException as error:
                self._error = error
                return

    def _next(self) -> list[tuple[FetchOutcome, datetime]]:
        """The next batch: STORE_BATCH_MIN fetches or more, or the last ones."""
        with self._changed:
            while not self._closing and len(self._pending) < STORE_BATCH_MIN:
                self._changed.wait()
            if self._closing and not self._flush:
                return []
            batch, self._pending = self._pending[:STORE_BATCH], self._pending[STORE_BATCH:]
            return batch


def run_status(report: Report) -> str:
    return "failed" if report.failed else "ok"
