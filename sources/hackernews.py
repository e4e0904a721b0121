"""Hacker News sources: a story list (top, new, best, Ask, Show) through the official
Firebase API, or a search through the Algolia HN API.

The linked article is the item's link (so an HN story joins the article's story from the
feeds); the discussion link goes into the text; points and comments are its engagement.
Lists are read again each poll, so their engagement growth is seen; `new` and searches
keep a cursor (the newest id, the newest time) and read only what came since.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from core.config import HackerNewsSource
from core.items import FetchOutcome, FetchRequest
from sources.context import FetchContext
from sources.social import (
    Post,
    SourceError,
    failed,
    get_json,
    html_text,
    load_cursor,
    number,
    outcome,
    timestamp,
)

DISCUSSION = "https://news.ycombinator.com/item?id="


async def fetch_hackernews(context: FetchContext, request: FetchRequest) -> FetchOutcome:
    source = request.social
    if not isinstance(source, HackerNewsSource):
        return failed(request, SourceError("not configured as a hackernews source"))
    cursor = load_cursor(request)
    try:
        if source.query:
            return await _search(context, request, source, cursor)
        return await _list(context, request, source, cursor)
    except SourceError as error:
        return failed(request, error)


async def _list(
    context: FetchContext,
    request: FetchRequest,
    source: HackerNewsSource,
    cursor: dict[str, Any],
) -> FetchOutcome:
    listing = await get_json(context, source.url, "Hacker News")
    ids = [i for i in listing.data if isinstance(i, int)] if isinstance(listing.data, list) else []
    if not isinstance(listing.data, list):
        raise SourceError("Hacker News sent a list that is not a list of ids")
    newest = number(cursor.get("newest"))
    if source.stories == "new":
        ids = [i for i in ids if i > newest]
    ids = ids[: source.limit]
    # A few item requests at a time: the per-host cap applies within this one source too.
    gate = asyncio.Semaphore(context.config.per_host)

    failures: list[SourceError] = []

    async def item(item_id: int) -> Any:
        # One story that cannot be read is skipped (a warning), not the whole list.
        async with gate:
            url = f"{source.api_url}/v0/item/{item_id}.json"
            try:
                return (await get_json(context, url, "Hacker News")).data
            except SourceError as error:
                failures.append(error)
                return None

    stories = await asyncio.gather(*(item(i) for i in ids))
    if ids and len(failures) == len(ids):
        raise failures[0]
    warnings = (f"{len(failures)} stories unreadable: {failures[0]}",) if failures else ()
    posts = []
    for story in stories:
        if not isinstance(story, dict) or story.get("type") != "story":
            continue
        if story.get("dead") or story.get("deleted") or not story.get("title"):
            continue
        if number(story.get("score")) < source.min_points:
            continue
        posts.append(_post(context, story["id"], story, story.get("text") or ""))
    cursor = {"newest": max([newest, *ids])}
    return outcome(request, context, posts, cursor, warnings=warnings)


def _post(context: FetchContext, item_id: Any, story: dict[str, Any], html: str) -> Post:
    discussion = f"{DISCUSSION}{item_id}"
    points = number(story.get("score", story.get("points")))
    comments = number(story.get("descendants", story.get("num_comments")))
    text = html_text(html, context.config.max_text_chars)
    summary = f"{points} points and {comments} comments on Hacker News: {discussion}"
    return Post(
        post_url=discussion,
        shared=story.get("url") or "",
        title=str(story.get("title")),
        text=f"{text}\n\n{summary}" if text else summary,
        published=timestamp(story.get("time", story.get("created_at_i")), context.now),
        author="",
        likes=points,
        comments=comments,
    )


async def _search(
    context: FetchContext,
    request: FetchRequest,
    source: HackerNewsSource,
    cursor: dict[str, Any],
) -> FetchOutcome:
    since = number(cursor.get("since"))
    filters = [f"points>={source.min_points}"]
    if since:
        filters.append(f"created_at_i>{since}")
    query = urlencode(
        {
            "query": source.query or "",
            "tags": "story",
            "hitsPerPage": str(source.limit),
            "numericFilters": ",".join(filters),
        }
    )
    answer = await get_json(
        context, f"{source.search_url}/api/v1/search_by_date?{query}", "Algolia HN search"
    )
    hits = answer.data.get("hits") if isinstance(answer.data, dict) else None
    if not isinstance(hits, list):
        raise SourceError("Algolia HN search sent no list of hits")
    posts = [
        _post(context, hit.get("objectID"), hit, hit.get("story_text") or "")
        for hit in hits
        if isinstance(hit, dict) and hit.get("objectID") and hit.get("title")
    ]
    times = [number(hit.get("created_at_i")) for hit in hits if isinstance(hit, dict)]
    newest = max([since, *times])
    return outcome(request, context, posts, {"since": newest})
