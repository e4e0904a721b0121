"""MastodonServer: an instance's public hashtag and account timelines (`/api/v1/...`),
with `since_id`, account lookup, and Mastodon's rate-limit headers."""

from __future__ import annotations

import re
from typing import Any

from ._http import LoopbackHandler, LoopbackHTTPServer


class _Handler(LoopbackHandler):
    owner: MastodonServer

    def do_GET(self) -> None:
        rec = self.record()
        owner = self.owner
        params = {k: v[-1] for k, v in rec.params.items()}
        headers = {
            "x-ratelimit-limit": "300",
            "x-ratelimit-remaining": "299",
            "x-ratelimit-reset": "2026-11-27T07:05:00.000Z",
        }
        with owner._lock:
            statuses = list(owner.statuses)
            accounts = dict(owner.accounts)
        if rec.path == "/api/v1/accounts/lookup":
            acct = params.get("acct", "")
            if acct in accounts:
                self.send_json(200, {"id": accounts[acct], "acct": acct, "username": acct}, headers)
            else:
                self.send_json(404, {"error": "Record not found"}, headers)
            return
        if match := re.fullmatch(r"/api/v1/timelines/tag/(\w+)", rec.path):
            tag = match.group(1).lower()
            chosen = [s for s in statuses if tag in s["_tags"]]
        elif match := re.fullmatch(r"/api/v1/accounts/(\d+)/statuses", rec.path):
            names = {v: k for k, v in accounts.items()}
            chosen = [s for s in statuses if s["account"]["acct"] == names.get(match.group(1))]
            if params.get("exclude_reblogs") == "true":
                chosen = [s for s in chosen if not s["reblog"]]
        else:
            self.send_json(404, {"error": "Not Found"}, headers)
            return
        since = int(params.get("since_id", "0") or 0)
        chosen = [s for s in chosen if int(s["id"]) > since]
        chosen.sort(key=lambda s: -int(s["id"]))
        limit = min(int(params.get("limit", "20")), 40)
        body = [{k: v for k, v in s.items() if k != "_tags"} for s in chosen[:limit]]
        self.send_json(200, body, headers)


class MastodonServer(LoopbackHTTPServer):
    handler_class = _Handler

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[dict[str, Any]] = []
        self.accounts: dict[str, str] = {}

    def status(
        self,
        status_id: int,
        acct: str,
        content: str,
        *,
        tags: tuple[str, ...] = (),
        card_url: str | None = None,
        favourites: int = 0,
        boosts: int = 0,
        replies: int = 0,
        reblog: bool = False,
        created_at: str = "2026-11-27T06:00:00.000Z",
    ) -> None:
        card = {"url": card_url, "title": f"Card for {card_url}", "type": "link"}
        status = {
            "id": str(status_id),
            "created_at": created_at,
            "url": f"{self.url}/@{acct}/{status_id}",
            "uri": f"{self.url}/users/{acct}/statuses/{status_id}",
            "content": content,
            "account": {"id": self.accounts.get(acct, "0"), "acct": acct, "username": acct},
            "reblogs_count": boosts,
            "favourites_count": favourites,
            "replies_count": replies,
            "reblog": {"id": "1"} if reblog else None,
            "card": card if card_url else None,
            "_tags": [tag.lower() for tag in tags],
        }
        with self._lock:
            self.statuses.append(status)
