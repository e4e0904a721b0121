"""One cycle of the daemon: collect, group, digest, deliver. Each step is usable on its own.

The runner owns orchestration and state changes; sources and digests only compute.
Every step records what it did in the store, and a failure in one source, profile or
target never stops the others.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import ParamSpec, TypeVar

from core.clock import utcnow
from core.config import Config, DigestProfile, Target
from core.crashpoints import crash_point
from core.digest import Digest, TokenUsage
from core.errors import TrendfinderError
from core.items import FetchOutcome, StoredItem
from core.retry import backoff
from core.store import Delivery, Store
from daemon.alerts import PlannedAlert, run_alerts
from daemon.child import ChildDied, assign_stories, run_in_child
from daemon.collecting import Collector, Report, run_status
from daemon.cron import last_fire_time
from daemon.select import select
from daemon.web.signing import digest_vote_links
from digests import offline
from digests.ask import Asker, ModelUnavailable
from digests.build import BuiltDigest, build_offline, build_with_model
from digests.deliver import DeliveryError, Progress, send, wants
from digests.grouping import GroupingSettings, GroupInput
from digests.selection import Selection
from digests.tokens import load_counter

log = logging.getLogger("trendfinder")

P = ParamSpec("P")
R = TypeVar("R")

# How far back items anchor storying: tomorrow's item joins a story seen this week.
ANCHOR_WINDOW = timedelta(days=3)
# ...but no more than this many of the latest: each run regroups its anchors, so this bounds
# a run's time and memory (about 1 s and 100 MB at 10,000 items) on a busy store.
MAX_ANCHORS = 10_000
# New items grouped at a time: a collect of 1,000 feeds brings 30,000, and grouping them at
# once peaked at 495 MB; batches of this many beside their anchors stay within the daemon's
# memory, and each batch's items anchor the next ones, so they join the same stories.
GROUP_BATCH = 5_000
GROUPING = GroupingSettings()
# Delivery retries back off exponentially from `delivery.backoff`, up to this.
MAX_BACKOFF = timedelta(hours=6)


class DigestFailed(TrendfinderError):
    """Neither analyzer produced a digest; the message says why."""


class AlertsFailed(TrendfinderError):
    """The alert rules could not be evaluated; the message says why."""


class Runner(Collector):
    """Every step of a cycle; `collect` and the fetch state come from Collector.

    With `isolated`, grouping and offline digests run in a short-lived child process
    (daemon.child), whose memory all returns to the OS when it exits: for the long-running
    roles (`run`, `worker`). A one-shot command computes in its own process, which exits
    anyway, and so starts no fork server."""

    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Callable[[], datetime] = utcnow,
        *,
        isolated: bool = False,
    ) -> None:
        super().__init__(config, store, clock)
        self.isolated = isolated

    def _compute(self, work: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """`work(*args, **kwargs)`, in a child process when this runner is isolated."""
        if self.isolated:
            return run_in_child(work, *args, **kwargs)
        return work(*args, **kwargs)

    # Group -------------------------------------------------------------------------------

    def group(self) -> int:
        """Assign every ungrouped item to a story, once per run for all profiles: at most
        GROUP_BATCH at a time, each batch joining the stories of those before it (its anchors),
        so that a large collect's items are grouped within bounded memory.

        When an isolated runner's grouping process dies (killed, out of memory), this run's
        grouping stops with a one-line error; its items stay ungrouped and the next run groups
        them."""
        grouped = 0
        # One grouping at a time per store, so that workers on several machines agree on
        # story ids: each batch reads the stories the previous one wrote.
        with self.store.sql.exclusive("group", wait=True):
            while new := self.store.ungrouped_items(GROUPING.text_max_chars, GROUP_BATCH):
                try:
                    assigned = self._group_batch(new)
                except ChildDied as error:
                    log.error(
                        "group: not grouped (%s); %d items wait for the next run", error, len(new)
                    )
                    break
                grouped += assigned
                if len(new) < GROUP_BATCH or not assigned:
                    break
        return grouped

    def _group_batch(self, new: list[StoredItem]) -> int:
        now = self.clock()
        # Grouping reads only the start of each text; the rest stays in the store.
        text_chars = GROUPING.text_max_chars
        anchors = self.store.grouped_items_since(now - ANCHOR_WINDOW, text_chars, MAX_ANCHORS)
        assignment = self._compute(
            assign_stories,
            [_group_input(item) for item in new],
            [(_group_input(item), item.story_id or "") for item in anchors],
            settings=GROUPING,
        )
        crash_point("group.assigning")
        # Merges, splits and new items land together: no run leaves half a regrouping.
        with self.store.transaction():
            self.store.assign_stories(assignment.stories, assignment.merged, now)
            self.store.move_items(assignment.moved, now)
        crash_point("group.assigned")
        log.info(
            "grouped %d new items into stories, merged %d stories, moved %d items in splits",
            len(assignment.stories),
            len(assignment.merged),
            len(assignment.moved),
        )
        return len(assignment.stories)

    # Alerts ------------------------------------------------------------------------------

    def alert(self, *, dry_run: bool = False) -> list[PlannedAlert]:
        """Evaluate every profile's alert rules; what fires is queued for the outbox.

        A failure is logged and reported, never fatal: the scheduled digests still go out.
        """
        now = self.clock()
        try:
            planned = run_alerts(self.store, self.config, now, dry_run=dry_run)
        except Exception as error:
            error = self.store.sql.translated(error) or error
            log.exception("alerts: not evaluated (%s: %s)", type(error).__name__, error)
            raise AlertsFailed(
                f"alerts: not evaluated ({type(error).__name__}: {error})"
            ) from error
        return planned

    # Digest ------------------------------------------------------------------------------

    def due_profiles(self, now: datetime) -> list[DigestProfile]:
        """Profiles whose latest scheduled time has passed since their last digest."""
        due = []
        for profile in self.config.digests:
            last = self.store.last_digest(profile.name)
            scheduled = last_fire_time(profile, now)
            if last is None or (scheduled is not None and scheduled > last.created_at):
                due.append(profile)
        return due

    def digest(self, profile: DigestProfile, *, dry_run: bool = False) -> BuiltDigest | None:
        """Build (and unless dry_run, store and queue) one digest for `profile`.

        None when nothing new arrived for it: an empty digest would only be noise. Raises
        DigestFailed when neither analyzer produced one; its items then stay pending.
        """
        now = self.clock()
        selection = select(self.store, self.config, profile, now)
        if not selection.items:
            log.info("digest %s: no new items since the last digest; nothing to send", profile.name)
            return None
        run_id = self.store.start_run(f"digest:{profile.name}", now)
        try:
            built, usage = self._analyze(selection, now)
            built = self._unique_id(built)
            if not dry_run:
                crash_point("digest.saving")
                self.store.save_digest(
                    built.digest,
                    built.covered,
                    [t.label for t in profile.deliver if wants(t, built.digest)],
                    usage,
                    run_id,
                )
                crash_point("digest.saved")
        except Exception as error:
            # Whatever broke, the run says why and the items stay pending for the next run.
            error = self.store.sql.translated(error) or error
            reason = f"digest {profile.name}: no digest ({type(error).__name__}: {error})"
            self.store.finish_run(run_id, self.clock(), "failed", {}, [reason])
            log.exception("%s; %d items stay pending", reason, len(selection.items))
            raise DigestFailed(reason) from error
        self.store.finish_run(
            run_id,
            self.clock(),
            "ok",
            {
                "digest": None if dry_run else built.digest.id,
                "analyzer": built.digest.analyzer,
                "trends": len(built.digest.trends),
                "items": len(built.covered),
            },
            [],
            usage,
        )
        log.info(
            "digest %s: %d trends from %d items (analyzer: %s; %d tokens in, %d out, $%.4f)",
            built.digest.id,
            len(built.digest.trends),
            built.digest.stats.items,
            built.digest.analyzer,
            usage.input,
            usage.output,
            usage.cost,
        )
        return built

    def _unique_id(self, built: BuiltDigest) -> BuiltDigest:
        """Digest ids name the second they were made; a second digest in that second of the
        same profile (a manual `digest` beside the daemon's) gets a suffix, not a clash."""
        digest_id, suffix = built.digest.id, 1
        while self.store.has_digest(digest_id):
            suffix += 1
            digest_id = f"{built.digest.id}-{suffix}"
        if digest_id == built.digest.id:
            return built
        return replace(built, digest=built.digest.model_copy(update={"id": digest_id}))

    def _analyze(self, selection: Selection, now: datetime) -> tuple[BuiltDigest, TokenUsage]:
        """The model's digest with an API key, else the offline one; offline when it fails."""
        llm = self.config.llm
        if not llm.api_key:
            notes = ("Ranked by the offline analyzer (no OPENAI_API_KEY set).",)
            return self._compute(build_offline, selection, now, notes), TokenUsage()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        asker = Asker(
            llm, spent_before=self.store.spend_since(midnight), backoff=llm.backoff.total_seconds()
        )
        try:
            asker.check_spend()
            # The exact encoding is fetched only for OpenAI itself; other endpoints' models
            # are counted approximately anyway.
            counter = load_counter(
                asker.caps.encoding, self.config.storage.state_dir, download=llm.base_url is None
            )
            return build_with_model(selection, now, asker, counter), asker.usage
        except ModelUnavailable as error:
            log.warning(
                "digest %s: model %s unavailable: %s", selection.profile.name, llm.model, error
            )
            notes = (f"The model ({llm.model}) was not used: {error}. Ranked offline instead.",)
            built = self._compute(
                build_offline,
                selection,
                now,
                notes,
                analyzer=f"{offline.ANALYZER} (fallback from {llm.model})",
                usage=asker.usage,
            )
            return built, asker.usage

    # Deliver -----------------------------------------------------------------------------

    def deliver(self) -> Report:
        """Attempt every due delivery; each outcome is recorded before the next one starts.

        Runs under the store's "deliver" lock (a file beside SQLite, an advisory lock on
        Postgres, seen by every machine), so two processes never work the
        outbox at once, and an attempt left 'sending' by a process that stopped is finished.
        """
        report = Report()
        started = self.clock()
        with self.store.sql.exclusive("deliver") as ok:
            if not ok:
                log.info("another trendfinder process is delivering; leaving the outbox to it")
                return report
            targets = {
                (profile.name, target.label): target
                for profile in self.config.digests
                for target in (*profile.deliver, *profile.alert_targets)
            }
            for delivery in self.store.deliveries_due(self.clock()):
                digest = self.store.digest(delivery.digest_id)
                self._attempt(
                    delivery, digest, targets.get((digest.profile, delivery.target)), report
                )
        if report.deliveries_sent or report.deliveries_failed:
            run_id = self.store.start_run("deliver", started)
            summary = report.summary()
            self.store.finish_run(run_id, self.clock(), run_status(report), summary, report.errors)
        return report

    def _attempt(
        self, delivery: Delivery, digest: Digest, target: Target | None, report: Report
    ) -> None:
        max_attempts = self.config.delivery.max_attempts
        if delivery.status == "sending":
            log.warning(
                "delivery of %s to %s was interrupted (the process stopped while sending); "
                "it may have arrived, and is sent again",
                digest.id,
                delivery.target,
            )
            if delivery.attempts >= max_attempts:
                self._failed(delivery, digest, "interrupted while sending", None, report)
                return
        self.store.start_delivery_attempt(delivery.id, self.clock())
        progress = Progress(
            done=delivery.parts_sent,
            record=functools.partial(self.store.record_delivery_progress, delivery.id),
        )
        try:
            if target is None:
                raise DeliveryError(
                    f"target {delivery.target!r} is no longer in the profile's config",
                    permanent=True,
                )
            crash_point("deliver.sending")
            archive = self.config.keeps_archive(digest.profile)
            votes = digest_vote_links(self.config.serve, self.config.storage.state_dir, digest)
            where = send(digest, target, progress, archive=archive, votes=votes)
            crash_point("deliver.sent")
        except Exception as error:
            if not isinstance(error, DeliveryError):
                log.exception("delivery of %s to %s: unexpected error", digest.id, delivery.target)
            reason = str(error) if isinstance(error, DeliveryError) else f"unexpected {error!r}"
            permanent = isinstance(error, DeliveryError) and error.permanent
            retry = None
            if not permanent and delivery.attempts + 1 < max_attempts:
                delay = backoff(self.config.delivery.backoff, delivery.attempts, MAX_BACKOFF)
                wanted = error.retry_delay if isinstance(error, DeliveryError) else None
                retry = self.clock() + max(delay, wanted or timedelta(0))
            self._failed(delivery, digest, reason, retry, report, permanent=permanent)
        else:
            # Recorded first: nothing else may happen between a send and its record.
            self.store.record_delivery_sent(delivery.id, self.clock())
            crash_point("deliver.recorded")
            report.deliveries_sent += 1
            log.info("delivered %s to %s: %s", digest.id, delivery.target, where)

    def _failed(
        self,
        delivery: Delivery,
        digest: Digest,
        reason: str,
        retry: datetime | None,
        report: Report,
        *,
        permanent: bool = False,
    ) -> None:
        self.store.record_delivery_failed(delivery.id, reason, retry)
        report.deliveries_failed += 1
        if retry:
            verdict = f"will retry at {retry:%Y-%m-%d %H:%M:%S} UTC"
        elif permanent:
            verdict = f"not retried; `trendfinder deliveries retry {delivery.id}` sends it again"
        else:
            verdict = f"gave up after {self.config.delivery.max_attempts} attempts"
        report.errors.append(f"delivery {digest.id} to {delivery.target}: {reason} ({verdict})")
        log.warning(
            "delivery of %s to %s failed (%s): %s", digest.id, delivery.target, verdict, reason
        )

    # One cycle ---------------------------------------------------------------------------

    def run_once(
        self,
        *,
        everything: bool = False,
        on_outcome: Callable[[FetchOutcome], None] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> Report:
        report = self.collect(due_only=not everything, on_outcome=on_outcome, on_start=on_start)
        report.grouped_items = self.group()
        try:
            report.alerts = [alert.digest.id for alert in self.alert()]
        except AlertsFailed as error:
            report.errors.append(str(error))
        profiles = self.config.digests if everything else self.due_profiles(self.clock())
        for profile in profiles:
            try:
                built = self.digest(profile)
            except DigestFailed as error:
                report.errors.append(str(error))
                continue
            if built:
                report.digests.append(built.digest.id)
        delivered = self.deliver()
        report.deliveries_sent = delivered.deliveries_sent
        report.deliveries_failed = delivered.deliveries_failed
        report.errors += delivered.errors
        return report


def _group_input(item: StoredItem) -> GroupInput:
    return GroupInput(
        item_id=item.id,
        title=item.title,
        text=item.text,
        source=item.sources[0] if item.sources else "",
        published=item.published,
    )
