"""BlueskyServer: the public AppView's `app.bsky.feed.getAuthorFeed` and (optionally
refused, as public.api.bsky.app does without auth) `app.bsky.feed.searchPosts`."""

from __future__ import annotations

from typing import Any

from ._http import LoopbackHandler, LoopbackHTTPServer


class _Handler(LoopbackHandler):
    owner: BlueskyServer

    def do_GET(self) -> None:
        rec = self.record()
        owner = self.owner
        params = {k: v[-1] for k, v in rec.params.items()}
        with owner._lock:
            posts = list(owner.posts)
        if rec.path == "/xrpc/app.bsky.feed.getAuthorFeed":
            actor = params.get("actor", "")
            if actor not in {p["post"]["author"]["handle"] for p in posts}:
                self.send_json(400, {"error": "InvalidRequest", "message": "Profile not found"})
                return
            feed = [p for p in posts if p["post"]["author"]["handle"] == actor]
            self.send_json(200, {"feed": feed[: int(params.get("limit", "50"))]})
        elif rec.path == "/xrpc/app.bsky.feed.searchPosts":
            if owner.search_needs_auth and "authorization" not in rec.headers:
                self.send_json(403, {"error": "Forbidden", "message": "Forbidden"})
                return
            words = params.get("q", "").lower().split()
            since = params.get("since", "")
            found = [
                p["post"]
                for p in posts
                if not p.get("reason")
                and all(w in p["post"]["record"]["text"].lower() for w in words)
                and p["post"]["indexedAt"] > since
            ]
            self.send_json(200, {"posts": found, "hitsTotal": len(found)})
        else:
            self.send_json(501, {"error": "MethodNotImplemented", "message": "not here"})


class BlueskyServer(LoopbackHTTPServer):
    handler_class = _Handler

    def __init__(self, *, search_needs_auth: bool = False) -> None:
        super().__init__()
        self.search_needs_auth = search_needs_auth
        self.posts: list[dict[str, Any]] = []

    def post(
        self,
        handle: str,
        rkey: str,
        text: str,
        *,
        created: str = "2026-11-27T06:00:00.000Z",
        link: str | None = None,
        likes: int = 0,
        reposts: int = 0,
        replies: int = 0,
        repost_by: str | None = None,
    ) -> None:
        did = f"did:plc:{handle.split('.')[0]}"
        view: dict[str, Any] = {
            "uri": f"at://{did}/app.bsky.feed.post/{rkey}",
            "cid": f"bafy{rkey}",
            "author": {"did": did, "handle": handle},
            "record": {"$type": "app.bsky.feed.post", "text": text, "createdAt": created},
            "likeCount": likes,
            "repostCount": reposts,
            "replyCount": replies,
            "quoteCount": 0,
            "indexedAt": created,
        }
        if link:
            view["embed"] = {
                "$type": "app.bsky.embed.external#view",
                "external": {"uri": link, "title": "A linked article", "description": ""},
            }
        entry: dict[str, Any] = {"post": view}
        if repost_by:
            entry["reason"] = {
                "$type": "app.bsky.feed.defs#reasonRepost",
                "by": {"handle": repost_by},
            }
        with self._lock:
            self.posts.insert(0, entry)
