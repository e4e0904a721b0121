"""Reddit sources: a subreddit's hot, new, top or rising listing as JSON.

Reddit wants a descriptive User-Agent of its own form (`RedditSource.user_agent`) and
throttles generic ones; it limits unauthenticated clients to about 10 requests a minute
and OAuth clients to 100, announced in `x-ratelimit-remaining`/`x-ratelimit-reset`
(seconds). With `client_id`/`client_secret` the source gets an application-only token
(client credentials grant) and reads through oauth.reddit.com. A link post's item is the
article it links to; a text post's is its discussion. Score and comments are engagement.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from core.config import RedditSource
from core.items import FetchOutcome, FetchRequest
from sources.context import FetchContext
from sources.social import (
    Post,
    SourceError,
    exhausted,
    failed,
    get_json,
    load_cursor,
    number,
    outcome,
    rate_limited_until,
    timestamp,
)

SITE = "https://www.reddit.com"


@dataclass(frozen=True)
class _Token:
    value: str
    expires: float  # time.monotonic()


# Application-only tokens last a day; one per client id is reused while the process lives.
_tokens: dict[str, _Token] = {}


async def _token(context: FetchContext, source: RedditSource) -> str:
    key = source.client_id or ""
    cached = _tokens.get(key)
    if cached and cached.expires > time.monotonic():
        return cached.value
    basic = base64.b64encode(f"{source.client_id}:{source.client_secret}".encode()).decode()
    answer = await get_json(
        context,
        f"{source.auth_url}/api/v1/access_token",
        "Reddit (token)",
        headers={"Authorization": f"Basic {basic}", "User-Agent": source.user_agent},
        form={"grant_type": "client_credentials"},
    )
    data = answer.data if isinstance(answer.data, dict) else {}
    if not isinstance(data.get("access_token"), str):
        detail = data.get("error") or "no access_token in the answer"
        raise SourceError(f"Reddit refused the client credentials: {detail}")
    lifetime = max(60, number(data.get("expires_in")) or 3600)
    _tokens[key] = _Token(data["access_token"], time.monotonic() + lifetime - 60)
    return str(data["access_token"])


async def fetch_reddit(context: FetchContext, request: FetchRequest) -> FetchOutcome:
    source = request.social
    if not isinstance(source, RedditSource):
        return failed(request, SourceError("not configured as a reddit source"))
    cursor = load_cursor(request)
    headers = {"User-Agent": source.user_agent}
    params = {"limit": str(source.limit), "raw_json": "1"}
    if source.listing == "top":
        params["t"] = source.period
    root = source.api_url
    try:
        if source.client_id:
            headers["Authorization"] = f"bearer {await _token(context, source)}"
            root = source.oauth_url
        url = f"{root}/r/{source.name_only}/{source.listing}.json?{urlencode(params)}"
        answer = await get_json(context, url, "Reddit", headers=headers)
    except SourceError as error:
        if error.status == 401:
            _tokens.pop(source.client_id or "", None)
        if error.status == 404 or error.status == 403:
            error = SourceError(
                f"{error} (r/{source.name_only} may be private, banned or misspelt)",
                error.status,
            )
        return failed(request, error)
    data = answer.data.get("data") if isinstance(answer.data, dict) else None
    children = data.get("children") if isinstance(data, dict) else None
    if not isinstance(children, list):
        return failed(request, SourceError("Reddit sent something that is not a listing"))
    newest = float(cursor.get("newest") or 0)
    posts = []
    for child in children:
        post = child.get("data") if isinstance(child, dict) else None
        if not isinstance(post, dict) or child.get("kind") != "t3" or post.get("stickied"):
            continue
        created = float(post.get("created_utc") or 0)
        # `new` is read from where the last poll stopped; the others again for engagement.
        if source.listing == "new" and created <= newest:
            continue
        if number(post.get("score")) < source.min_score:
            continue
        posts.append(_post(context, post))
    created_times = [float(c["data"].get("created_utc") or 0) for c in children if _t3(c)]
    retry_at = None
    if exhausted(answer.response.headers):
        retry_at = rate_limited_until(answer.response, context.now)
    return outcome(
        request, context, posts, {"newest": max([newest, *created_times])}, retry_at=retry_at
    )


def _t3(child: Any) -> bool:
    return (
        isinstance(child, dict)
        and child.get("kind") == "t3"
        and isinstance(child.get("data"), dict)
    )


def _post(context: FetchContext, post: dict[str, Any]) -> Post:
    discussion = f"{SITE}{post.get('permalink') or ''}"
    link = str(post.get("url_overridden_by_dest") or post.get("url") or "")
    shared = "" if post.get("is_self") or link.startswith(SITE) else link
    score, comments = number(post.get("score")), number(post.get("num_comments"))
    summary = f"{score} points and {comments} comments on r/{post.get('subreddit')}: {discussion}"
    body = str(post.get("selftext") or "")[: context.config.max_text_chars]
    return Post(
        post_url=discussion,
        shared=shared,
        title=str(post.get("title") or ""),
        text=f"{body}\n\n{summary}" if body else summary,
        published=timestamp(post.get("created_utc"), context.now),
        author="",
        likes=score,
        comments=comments,
    )
