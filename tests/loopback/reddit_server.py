"""RedditServer: subreddit listings as Reddit's JSON (`Listing` of `t3` children), its
User-Agent rule (a generic agent gets 429), its rate-limit headers, and the client
credentials grant (`POST /api/v1/access_token`, then `bearer` on the same server)."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import parse_qs

from ._http import LoopbackHandler, LoopbackHTTPServer

# Reddit throttles agents like these hard; it asks for "<platform>:<app id>:<version>".
GENERIC_AGENTS = re.compile(r"^(python-requests|python-httpx|curl|Mozilla)", re.IGNORECASE)


class _Handler(LoopbackHandler):
    owner: RedditServer

    def do_POST(self) -> None:
        rec = self.record(self.read_body())
        owner = self.owner
        expected = base64.b64encode(f"{owner.client_id}:{owner.client_secret}".encode()).decode()
        form = {k: v[-1] for k, v in parse_qs(rec.body.decode()).items()}
        if rec.path != "/api/v1/access_token":
            self.send_json(404, {"message": "Not Found", "error": 404})
        elif rec.headers.get("authorization") != f"Basic {expected}":
            self.send_json(401, {"message": "Unauthorized", "error": 401})
        elif form.get("grant_type") != "client_credentials":
            self.send_json(200, {"error": "unsupported_grant_type"})
        else:
            self.send_json(
                200,
                {
                    "access_token": owner.token,
                    "token_type": "bearer",
                    "expires_in": 86400,
                    "scope": "*",
                },
            )

    def do_GET(self) -> None:
        rec = self.record()
        owner = self.owner
        agent = rec.headers.get("user-agent", "")
        if not agent or GENERIC_AGENTS.match(agent):
            self.send_json(429, {"message": "Too Many Requests", "error": 429})
            return
        auth = rec.headers.get("authorization")
        if auth is not None and auth != f"bearer {owner.token}":
            self.send_json(401, {"message": "Unauthorized", "error": 401})
            return
        match = re.fullmatch(r"/r/(\w+)/(hot|new|top|rising)\.json", rec.path)
        if not match:
            self.send_json(404, {"message": "Not Found", "error": 404})
            return
        with owner._lock:
            owner.used += 1
            remaining = max(owner.limit - owner.used, 0)
            posts = owner.subreddits.get(match.group(1).lower())
        headers = {
            "x-ratelimit-used": str(owner.used),
            "x-ratelimit-remaining": f"{remaining:.1f}",
            "x-ratelimit-reset": "42",
        }
        if posts is None:
            self.send_json(404, {"reason": "banned", "message": "Not Found", "error": 404}, headers)
            return
        limit = int(rec.params.get("limit", ["25"])[-1])
        children = [{"kind": "t3", "data": post} for post in posts[:limit]]
        listing = {
            "kind": "Listing",
            "data": {
                "after": None,
                "dist": len(children),
                "modhash": "",
                "before": None,
                "children": children,
            },
        }
        self.send_json(200, listing, headers)


class RedditServer(LoopbackHTTPServer):
    handler_class = _Handler
    client_id = "loopback-client"
    client_secret = "loopback-secret"
    token = "loopback-access-token"

    def __init__(self, limit: int = 100) -> None:
        super().__init__()
        self.limit = limit
        self.used = 0
        self.subreddits: dict[str, list[dict[str, Any]]] = {}

    def add_post(
        self,
        subreddit: str,
        post_id: str,
        title: str,
        url: str | None = None,
        *,
        score: int = 1,
        comments: int = 0,
        created: float = 1_764_000_000.0,
        selftext: str = "",
        stickied: bool = False,
    ) -> None:
        permalink = f"/r/{subreddit}/comments/{post_id}/{title.lower().replace(' ', '_')[:30]}/"
        post = {
            "id": post_id,
            "name": f"t3_{post_id}",
            "subreddit": subreddit,
            "title": title,
            "selftext": selftext,
            "is_self": url is None,
            "url": url or f"https://www.reddit.com{permalink}",
            "permalink": permalink,
            "score": score,
            "ups": score,
            "num_comments": comments,
            "created_utc": created,
            "stickied": stickied,
            "over_18": False,
            "author": "someone",
            "domain": (url or "self.x").split("/")[2] if url else f"self.{subreddit}",
        }
        with self._lock:
            self.subreddits.setdefault(subreddit.lower(), []).insert(0, post)
