"""Stored digests, the items each one covered, and queueing their deliveries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from core.clock import to_text
from core.crashpoints import crash_point
from core.digest import Digest, TokenUsage
from core.errors import NotFound
from core.store.rows import from_row


@dataclass(frozen=True)
class DigestSummary:
    id: str
    profile: str
    created_at: datetime
    analyzer: str
    trends: int


class DigestTables:
    db: sqlite_utils.Database

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
        with self.db.atomic():
            self._insert_digest(digest, usage, run_id)
            self.db.table("digest_items").insert_all(
                (
                    {
                        "profile": digest.profile,
                        "item_id": item_id,
                        "digest_id": digest.id,
                        "role": role,
                    }
                    for item_id, role in covered.items()
                ),
                ignore=True,
            )
            crash_point("digest.inside_save")
            self._queue_deliveries(digest, targets)

    def _insert_digest(self, digest: Digest, usage: TokenUsage, run_id: int | None) -> None:
        self.db.table("digests").insert(
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
            }
        )

    def _queue_deliveries(self, digest: Digest, targets: Sequence[str]) -> None:
        created = to_text(digest.created_at)
        self.db.table("deliveries").insert_all(
            {
                "digest_id": digest.id,
                "target": target,
                "status": "pending",
                "next_attempt_at": created,
            }
            for target in targets
        )

    def has_digest(self, digest_id: str) -> bool:
        return self.db.table("digests").count_where("id = ?", [digest_id]) > 0

    def digest(self, digest_id: str) -> Digest:
        try:
            row = self.db.table("digests").get(digest_id)
        except sqlite_utils.db.NotFoundError:
            raise NotFound(f"no digest with id {digest_id!r}") from None
        return Digest.model_validate_json(row["body"])

    def last_digest(self, profile: str) -> Digest | None:
        found = self.recent_digests(profile, 1)
        return found[0] if found else None

    def recent_digests(self, profile: str, limit: int) -> list[Digest]:
        """The profile's latest digests and reports; alerts, sent between them, are not."""
        rows = self.db.table("digests").rows_where(
            "profile = ? AND kind != 'alert'",
            [profile],
            select="body",
            order_by="created_at DESC",
            limit=limit,
        )
        return [Digest.model_validate_json(row["body"]) for row in rows]

    def digest_summaries(self, profile: str | None = None, limit: int = 50) -> list[DigestSummary]:
        where, params = ("profile = ?", [profile]) if profile else (None, [])
        rows = self.db.table("digests").rows_where(
            where,
            params,
            select="id, profile, created_at, analyzer, "
            "coalesce(json_array_length(body, '$.trends'), 0) AS trends",
            order_by="created_at DESC",
            limit=limit,
        )
        return [from_row(DigestSummary, row) for row in rows]
