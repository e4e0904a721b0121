"""Bluesky sources: an account's posts or a search, through the public AppView API.

`app.bsky.feed.getAuthorFeed` (handle or DID, replies left out) needs no auth on
public.api.bsky.app. `app.bsky.feed.searchPosts` is the same lexicon, but Bluesky's public
AppView has answered unauthenticated searches with 403 since 2025: point `api_url` at an
AppView or PDS proxy that serves it, or the error says so. Reposts are skipped; a post
with an external embed shares that article. Likes, reposts (and quotes) and replies are
its engagement. The cursor is the newest post time seen.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from core.clock import to_text
from core.config import BlueskySource
from core.items import FetchOutcome, FetchRequest
from sources.context import FetchContext
from sources.social import (
    Post,
    SourceError,
    failed,
    get_json,
    load_cursor,
    number,
    outcome,
    timestamp,
)


async def fetch_bluesky(context: FetchContext, request: FetchRequest) -> FetchOutcome:
    source = request.social
    if not isinstance(source, BlueskySource):
        return failed(request, SourceError("not configured as a bluesky source"))
    cursor = load_cursor(request)
    since = str(cursor.get("since") or "")
    if source.actor:
        method = "app.bsky.feed.getAuthorFeed"
        params = {"actor": source.actor, "limit": str(source.limit), "filter": "posts_no_replies"}
    else:
        method = "app.bsky.feed.searchPosts"
        params = {"q": source.query or "", "limit": str(source.limit), "sort": "latest"}
        if since:
            params["since"] = since
    url = f"{source.api_url}/xrpc/{method}?{urlencode(params)}"
    try:
        answer = await get_json(context, url, "Bluesky")
    except SourceError as error:
        if error.status in (401, 403) and not source.actor:
            error = SourceError(
                f"{error} (this AppView wants auth for searches; see the README)", error.status
            )
        return failed(request, error)
    data = answer.data if isinstance(answer.data, dict) else {}
    if source.actor:
        entries = data.get("feed")
        views = (
            [e.get("post") for e in entries if isinstance(e, dict) and not e.get("reason")]
            if isinstance(entries, list)
            else None
        )
    else:
        views = data.get("posts")
    if not isinstance(views, list):
        return failed(request, SourceError(f"Bluesky sent no posts for {method}"))
    posts = []
    newest = since
    for view in views:
        if not isinstance(view, dict) or not isinstance(view.get("record"), dict):
            continue
        post = _post(context, view, source.actor or "")
        if post is None:
            continue
        stamp = to_text(post.published)
        if since and stamp <= since:
            continue
        newest = max(newest, stamp)
        posts.append(post)
    return outcome(request, context, posts, {"since": newest})


def _post(context: FetchContext, view: dict[str, Any], actor: str) -> Post | None:
    record = view["record"]
    author = view.get("author") if isinstance(view.get("author"), dict) else {}
    handle = str(author.get("handle") or "") if isinstance(author, dict) else ""
    uri = str(view.get("uri") or "")
    if not handle or not uri.startswith("at://") or "/app.bsky.feed.post/" not in uri:
        return None
    rkey = uri.rsplit("/", 1)[-1]
    text = str(record.get("text") or "")[: context.config.max_text_chars]
    embed = view.get("embed") if isinstance(view.get("embed"), dict) else {}
    external = embed.get("external") if isinstance(embed, dict) else None
    shared = str(external.get("uri") or "") if isinstance(external, dict) else ""
    return Post(
        post_url=f"https://bsky.app/profile/{handle}/post/{rkey}",
        shared=shared,
        title=f"@{handle}: {text}",
        text=f"{text}\n\n— @{handle} on Bluesky",
        published=timestamp(record.get("createdAt") or view.get("indexedAt"), context.now),
        author=actor.lower(),
        likes=number(view.get("likeCount")),
        reposts=number(view.get("repostCount")) + number(view.get("quoteCount")),
        comments=number(view.get("replyCount")),
    )
