"""Stored digests, the items each one covered, and queueing their deliveries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.clock import to_text
from core.crashpoints import crash_point
from core.digest import Digest, TokenUsage
from core.errors import NotFound
from core.store.rows import from_row
from core.store.sql import Sql


@dataclass(frozen=True)
class DigestSummary:
    id: str
    profile: str
    created_at: datetime
    analyzer: str
    trends: int


class DigestTables:
    sql: Sql

    def save_digest(
        self,
        digest: Digest,
        covered: Mapping[str, str],
        targets: Sequence[str],
        usage: TokenUsage,
        run_id: int | None = None,
    ) -> None:
        """Store a digest, mark the items it covered, and queue one delivery per target.

        All in one transaction: covered items are marked only if the digest is stored, and a
        stored digest always has its deliveries queued, so a crash loses neither.
        """
        with self.sql.atomic():
            self._insert_digest(digest, usage, run_id)
            self.sql.executemany(
                "INSERT INTO digest_items (profile, item_id, digest_id, role) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(digest.profile, item_id, digest.id, role) for item_id, role in covered.items()],
            )
            crash_point("digest.inside_save")
            self._queue_deliveries(digest, targets)

    def _insert_digest(self, digest: Digest, usage: TokenUsage, run_id: int | None) -> None:
        self.sql.insert(
            "digests",
            {
                "id": digest.id,
                "profile": digest.profile,
                "kind": digest.kind,
                "created_at": to_text(digest.created_at),
                "analyzer": digest.analyzer,
                "window_from": to_text(digest.window.from_),
                "window_to": to_text(digest.window.to),
                "body": digest.to_json(),
                "input_tokens": usage.input,
                "cached_tokens": usage.cached,
                "reasoning_tokens": usage.reasoning,
                "output_tokens": usage.output,
                "cost": usage.cost,
                "run_id": run_id,
            },
        )

    def _queue_deliveries(self, digest: Digest, targets: Sequence[str]) -> None:
        created = to_text(digest.created_at)
        self.sql.executemany(
            "INSERT INTO deliveries (digest_id, target, status, next_attempt_at) "
            "VALUES (?, ?, 'pending', ?)",
            [(digest.id, target, created) for target in targets],
        )

    def has_digest(self, digest_id: str) -> bool:
        found = self.sql.execute("SELECT 1 FROM digests WHERE id = ?", [digest_id]).fetchone()
        return found is not None

    def digest(self, digest_id: str) -> Digest:
        row = self.sql.execute("SELECT body FROM digests WHERE id = ?", [digest_id]).fetchone()
        if row is None:
            raise NotFound(f"no digest with id {digest_id!r}")
        return Digest.model_validate_json(row[0])

    def last_digest(self, profile: str) -> Digest | None:
        found = self.recent_digests(profile, 1)
        return found[0] if found else None

    def recent_digests(self, profile: str, limit: int) -> list[Digest]:
        """The profile's latest digests and reports; alerts, sent between them, are not."""
        rows = self.sql.execute(
            "SELECT body FROM digests WHERE profile = ? AND kind != 'alert' "
            "ORDER BY created_at DESC LIMIT ?",
            [profile, limit],
        )
        return [Digest.model_validate_json(body) for (body,) in rows]

    def last_digest_summary(self, profile: str) -> DigestSummary | None:
        """The profile's latest digest or report (not an alert) without reading its document
        (`status`: no digest models to build, no body to parse)."""
        found = self.digest_summaries(profile, 1, alerts=False)
        return found[0] if found else None

    def digest_summaries(
        self, profile: str | None = None, limit: int = 50, *, alerts: bool = True
    ) -> list[DigestSummary]:
        conditions, params = (["profile = ?"], [profile]) if profile else ([], [])
        conditions += [] if alerts else ["kind != 'alert'"]
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        rows = self.sql.query(
            "SELECT id, profile, created_at, analyzer, "
            f"coalesce({self.sql.json_array_length('body', 'trends')}, 0) AS trends "
            f"FROM digests {where}ORDER BY created_at DESC LIMIT ?",
            [*params, limit],
        )
        return [from_row(DigestSummary, row) for row in rows]
