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


class JobTables:
    sql: Sql

    def enqueue_job(self, kind: str, key: str, due_at: datetime) -> None:
        """Make `kind`/`key` due at `due_at`; a job already there keeps its own time (a
        scheduler run twice, or two schedulers, enqueue one job)."""
        self.sql.execute(
            "INSERT INTO jobs (kind, key, due_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [kind, key, to_text(due_at)],
        )

    def claim_job(
        self, worker: str, kinds: tuple[str, ...], now: datetime, lease: timedelta
    ) -> Job | None:
        """The earliest job of these kinds due by `now` that no live lease holds, now leased
        to `worker` until `now + lease`; None when there is none."""
        stamp = to_text(now)
        marks = ",".join("?" * len(kinds))
        with self.sql.atomic():
            rows = self.sql.query(
                "UPDATE jobs SET claimed_by = ?, claim = ?, lease_until = ?, "
                "attempts = attempts + 1 WHERE id = (SELECT id FROM jobs "
                f"WHERE kind IN ({marks}) AND due_at <= ? "
                "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY due_at, id LIMIT 1"
                f"{self.sql.skip_locked()}) RETURNING *",
                [worker, secrets.token_hex(8), to_text(now + lease), *kinds, stamp, stamp],
            )
        return from_row(Job, rows[0]) if rows else None

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
