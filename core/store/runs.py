"""Runs (one row per collect, group, digest or deliver step) and the model spend they carry."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from core.clock import to_text
from core.digest import TokenUsage
from core.store.sql import Sql

NO_USAGE = TokenUsage()


class RunTables:
    sql: Sql

    def start_run(self, kind: str, now: datetime) -> int:
        return int(
            self.sql.insert(
                "runs", {"kind": kind, "started_at": to_text(now), "status": "running"}, "id"
            )
        )

    def finish_run(
        self,
        run_id: int,
        now: datetime,
        status: str,
        summary: Mapping[str, Any],
        errors: Sequence[str],
        usage: TokenUsage = NO_USAGE,
    ) -> None:
        self.sql.update(
            "runs",
            ("id", run_id),
            {
                "finished_at": to_text(now),
                "status": status,
                "summary": json.dumps(summary, default=str),
                "errors": json.dumps(list(errors)),
                "input_tokens": usage.input,
                "cached_tokens": usage.cached,
                "reasoning_tokens": usage.reasoning,
                "output_tokens": usage.output,
                "cost": usage.cost,
            },
        )

    def close_unfinished_runs(self, now: datetime) -> int:
        """Mark runs a killed process left 'running' as 'abandoned'; call holding the lock."""
        with self.sql.atomic():
            cursor = self.sql.execute(
                "UPDATE runs SET status = 'abandoned', finished_at = ? WHERE status = 'running'",
                [to_text(now)],
            )
        return int(cursor.rowcount)

    def last_runs(self) -> list[dict[str, Any]]:
        """The latest run of each kind, as stored."""
        return self.sql.query(
            "SELECT * FROM runs WHERE id IN (SELECT max(id) FROM runs GROUP BY kind) ORDER BY kind"
        )

    def spend_since(self, since: datetime) -> float:
        """Model spend of the runs started since `since`, including calls that made no digest."""
        row = self.sql.execute(
            "SELECT coalesce(sum(cost), 0) FROM runs WHERE started_at >= ?", [to_text(since)]
        ).fetchone()
        return float(row[0])
