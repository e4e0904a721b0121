"""Jobs that worker processes claim (issue 16): a row per kind and key (a feed's fetch),
claimed under a lease that runs out by itself, so a killed worker's job returns to the pool
without anyone cleaning up after it.

A claim is one UPDATE of the first due, unleased row: on Postgres its SELECT skips rows
another worker is claiming at that moment (FOR UPDATE SKIP LOCKED); on SQLite writers take
turns on the whole file. A worker finishes only its own claim (its random token), so one
whose lease ran out and whose job another worker took cannot finish that one's claim.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.clock import to_text
from core.store.rows import from_row
from core.store.sql import Sql


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    key: str
    due_at: datetime
    claim: str
    lease_until: datetime
    attempts: int


@dataclass(frozen=True)
class WorkerBeat:
    name: str
    role: str
    started_at: datetime
    heartbeat_at: datetime


@dataclass(frozen=True)
class JobQueue:
    kind: str
    due: int
    claimed: int
    oldest_due_at: datetime | None
    total: int


class JobTables:
    sql: Sql

    def enqueue_job(self, kind: str, key: str, due_at: datetime) -> None:
        """Make `kind`/`key` due at `due_at`; a job already there keeps its own time (a
        scheduler run twice, or two schedulers, enqueue one job)."""
        self.enqueue_jobs(kind, [(key, due_at)])

    def enqueue_jobs(self, kind: str, jobs: Sequence[tuple[str, datetime]]) -> None:
        """enqueue_job for many keys, in one transaction."""
        self.sql.executemany(
            "INSERT INTO jobs (kind, key, due_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [(kind, key, to_text(due_at)) for key, due_at in jobs],
        )

    def claim_job(
        self, worker: str, kinds: tuple[str, ...], now: datetime, lease: timedelta
    ) -> Job | None:
        """The earliest job of these kinds due by `now` that no live lease holds, now leased
        to `worker` until `now + lease`; None when there is none."""
        jobs = self.claim_jobs(worker, kinds, now, lease, 1)
        return jobs[0] if jobs else None

    def claim_jobs(
        self, worker: str, kinds: tuple[str, ...], now: datetime, lease: timedelta, limit: int
    ) -> list[Job]:
        """Up to `limit` of the earliest such jobs in one statement (a worker's batch of
        fetches costs one commit to claim, not one each)."""
        stamp = to_text(now)
        marks = ",".join("?" * len(kinds))
        with self.sql.atomic():
            rows = self.sql.query(
                "UPDATE jobs SET claimed_by = ?, claim = ?, lease_until = ?, "
                "attempts = attempts + 1 WHERE id IN (SELECT id FROM jobs "
                f"WHERE kind IN ({marks}) AND due_at <= ? "
                "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY due_at, id LIMIT ?"
                f"{self.sql.skip_locked()}) RETURNING *",
                [worker, secrets.token_hex(8), to_text(now + lease), *kinds, stamp, stamp, limit],
            )
        return sorted((from_row(Job, row) for row in rows), key=lambda job: (job.due_at, job.id))

    def extend_leases(self, worker: str, until: datetime) -> None:
        """A live worker's heartbeat: its job claims and host slots stay its own until
        `until`, however long a job takes; a killed worker's run out by themselves."""
        # Rows the worker's own transaction is finishing at this moment are skipped (they
        # are being released anyway): waiting for them would deadlock with that transaction.
        key = {"jobs": "id", "host_slots": "host, slot"}
        with self.sql.atomic():
            for table, columns in key.items():
                self.sql.execute(
                    f"UPDATE {table} SET lease_until = ? WHERE ({columns}) IN (SELECT {columns} "
                    f"FROM {table} WHERE claimed_by = ?{self.sql.skip_locked()})",
                    [to_text(until), worker],
                )

    def claim_host_slots(
        self, host: str, slots: int, wanted: int, worker: str, now: datetime, lease: timedelta
    ) -> int:
        """Claim up to `wanted` of `host`'s `slots` fetch slots for `worker` (per-host
        politeness across workers: at most `slots` requests to a host at a time, whichever
        workers make them); how many it got."""
        stamp = to_text(now)
        with self.sql.atomic():
            self.sql.executemany(
                "INSERT INTO host_slots (host, slot) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(host, slot) for slot in range(slots)],
            )
            rows = self.sql.query(
                "UPDATE host_slots SET claimed_by = ?, lease_until = ? WHERE host = ? AND slot IN "
                "(SELECT slot FROM host_slots WHERE host = ? AND slot < ? AND "
                "(lease_until IS NULL OR lease_until <= ?) ORDER BY slot LIMIT ?"
                f"{self.sql.skip_locked()}) RETURNING slot",
                [worker, to_text(now + lease), host, host, slots, stamp, wanted],
            )
        return len(rows)

    def release_host_slots(self, worker: str) -> None:
        self.sql.execute(
            "UPDATE host_slots SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = ?",
            [worker],
        )

    def heartbeat(self, worker: str, role: str, now: datetime) -> None:
        self.sql.execute(
            "INSERT INTO workers (name, role, started_at, heartbeat_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            [worker, role, to_text(now), to_text(now)],
        )

    def workers(self) -> list[WorkerBeat]:
        rows = self.sql.query("SELECT * FROM workers ORDER BY role, name")
        return [from_row(WorkerBeat, row) for row in rows]

    def forget_worker(self, worker: str) -> None:
        """A worker that stopped cleanly leaves `status`'s list."""
        self.sql.execute("DELETE FROM workers WHERE name = ?", [worker])

    def job_queues(self, now: datetime) -> list[JobQueue]:
        """Per kind: jobs due and unclaimed, jobs claimed, and the oldest due one's time."""
        stamp = to_text(now)
        rows = self.sql.query(
            "SELECT kind, "
            "sum(CASE WHEN due_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
            "THEN 1 ELSE 0 END) AS due, "
            "sum(CASE WHEN lease_until > ? THEN 1 ELSE 0 END) AS claimed, "
            "min(CASE WHEN due_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
            "THEN due_at END) AS oldest_due_at, count(*) AS total "
            "FROM jobs GROUP BY kind ORDER BY kind",
            [stamp, stamp, stamp, stamp, stamp],
        )
        return [from_row(JobQueue, row) for row in rows]

    def finish_job(self, job: Job, next_due_at: datetime | None) -> bool:
        """Release a claim: the job is due again at `next_due_at` (a feed's next fetch), or
        gone when None. False when the claim was no longer this worker's (its lease ran out
        and another worker claimed the job): then nothing changes."""
        if next_due_at is None:
            cursor = self.sql.execute(
                "DELETE FROM jobs WHERE id = ? AND claim = ?", [job.id, job.claim]
            )
        else:
            cursor = self.sql.execute(
                "UPDATE jobs SET due_at = ?, claimed_by = NULL, claim = NULL, "
                "lease_until = NULL WHERE id = ? AND claim = ?",
                [to_text(next_due_at), job.id, job.claim],
            )
        return cursor.rowcount == 1
