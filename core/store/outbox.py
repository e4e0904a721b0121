"""The outbox: one delivery per digest and target, marked before and after each attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.clock import to_text
from core.errors import NotFound
from core.store.rows import from_row
from core.store.sql import Sql


@dataclass(frozen=True)
class Delivery:
    id: int
    digest_id: str
    target: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    sent_at: datetime | None
    last_attempt_at: datetime | None = None
    parts_sent: int = 0


class OutboxTables:
    sql: Sql

    def deliveries_due(self, now: datetime) -> list[Delivery]:
        """Pending deliveries whose time has come, and attempts a stopped process left open.

        A 'sending' row is an attempt that never recorded its outcome; only call this while
        holding the delivery lock, so such a row cannot belong to a live process.
        """
        return self._deliveries(
            "status = 'sending' OR (status = 'pending' AND next_attempt_at <= ?)",
            [to_text(now)],
            order_by="next_attempt_at, id",
        )

    def deliveries(self, status: str | None = None) -> list[Delivery]:
        if status is None:
            return self._deliveries(None, [])
        return self._deliveries("status = ?", [status])

    def delivery(self, delivery_id: int) -> Delivery:
        row = self.sql.row("SELECT * FROM deliveries WHERE id = ?", [delivery_id])
        if row is None:
            raise NotFound(f"no delivery with id {delivery_id}")
        return from_row(Delivery, row)

    def _deliveries(
        self, where: str | None, params: list[str], order_by: str = "id"
    ) -> list[Delivery]:
        rows = self.sql.query(
            f"SELECT * FROM deliveries {f'WHERE {where} ' if where else ''}ORDER BY {order_by}",
            params,
        )
        return [from_row(Delivery, row) for row in rows]

    def start_delivery_attempt(self, delivery_id: int, now: datetime) -> None:
        """Mark an attempt as started before anything is sent, so a crash leaves a trace."""
        self.sql.update(
            "deliveries",
            ("id", delivery_id),
            {"status": "sending", "last_attempt_at": to_text(now)},
            "attempts = attempts + 1",
        )

    def record_delivery_progress(self, delivery_id: int, parts_sent: int) -> None:
        self.sql.update("deliveries", ("id", delivery_id), {"parts_sent": parts_sent})

    def record_delivery_sent(self, delivery_id: int, now: datetime) -> None:
        self.sql.update(
            "deliveries",
            ("id", delivery_id),
            {"status": "sent", "sent_at": to_text(now), "last_error": None},
        )

    def requeue_delivery(self, delivery_id: int, now: datetime) -> None:
        """Queue a failed delivery again with all its attempts (`deliveries retry`); parts
        of it that already arrived are not sent again."""
        self.sql.update(
            "deliveries",
            ("id", delivery_id),
            {"status": "pending", "attempts": 0, "next_attempt_at": to_text(now)},
        )

    def record_delivery_failed(
        self, delivery_id: int, error: str, next_attempt_at: datetime | None
    ) -> None:
        """A failed attempt: retried at `next_attempt_at`, or given up when that is None."""
        if next_attempt_at is None:
            updates = {"status": "failed", "last_error": error}
        else:
            updates = {
                "status": "pending",
                "last_error": error,
                "next_attempt_at": to_text(next_attempt_at),
            }
        self.sql.update("deliveries", ("id", delivery_id), updates)
