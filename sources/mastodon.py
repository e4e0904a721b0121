"""Mastodon sources: a hashtag's or an account's public timeline on an instance, no auth.

`/api/v1/timelines/tag/:tag` and `/api/v1/accounts/:id/statuses` (the id found once with
`/api/v1/accounts/lookup`, kept in the cursor), read with `since_id`. Boosts are skipped
(the original is what counts); a status with a link card shares that article. Favourites,
boosts and replies are its engagement. Instances limit clients to about 300 requests per
5 minutes (`x-ratelimit-remaining`, `x-ratelimit-reset` as an ISO time).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from core.config import MastodonSource
from core.items import FetchOutcome, FetchRequest
from sources.context import FetchContext
from sources.social import (
    Post,
    SourceError,
    exhausted,
    failed,
    get_json,
    html_text,
    load_cursor,
    number,
    outcome,
    rate_limited_until,
    timestamp,
)


async def fetch_mastodon(context: FetchContext, request: FetchRequest) -> FetchOutcome:
    source = request.social
    if not isinstance(source, MastodonSource):
        return failed(request, SourceError("not configured as a mastodon source"))
    cursor = load_cursor(request)
    service = f"Mastodon ({source.instance})"
    params = {"limit": str(source.limit)}
    if cursor.get("since_id"):
        params["since_id"] = str(cursor["since_id"])
    try:
        if source.hashtag:
            path = f"/api/v1/timelines/tag/{quote(source.hashtag.lstrip('#'))}"
            author = ""
        else:
            account = (source.account or "").lstrip("@")
            if not cursor.get("account_id"):
                found = await get_json(
                    context,
                    f"{source.instance}/api/v1/accounts/lookup?{urlencode({'acct': account})}",
                    service,
                )
                if not isinstance(found.data, dict) or not found.data.get("id"):
                    raise SourceError(f"{service} has no account @{account}")
                cursor["account_id"] = str(found.data["id"])
            path = f"/api/v1/accounts/{cursor['account_id']}/statuses"
            params.update(exclude_replies="true", exclude_reblogs="true")
            author = account.lower()
        answer = await get_json(context, f"{source.instance}{path}?{urlencode(params)}", service)
    except SourceError as error:
        if error.status == 404 and source.account:
            cursor.pop("account_id", None)
        return failed(request, error, cursor)
    if not isinstance(answer.data, list):
        return failed(request, SourceError(f"{service} sent no list of statuses"), cursor)
    statuses = [s for s in answer.data if isinstance(s, dict) and s.get("id")]
    posts = [
        _post(context, status, author)
        for status in statuses
        if not status.get("reblog") and status.get("url")
    ]
    ids = [int(s["id"]) for s in statuses if str(s["id"]).isdigit()]
    if ids:
        cursor["since_id"] = str(max([*ids, int(cursor.get("since_id") or 0)]))
    retry_at = None
    if exhausted(answer.response.headers):
        retry_at = rate_limited_until(answer.response, context.now)
    return outcome(request, context, posts, cursor, retry_at=retry_at)


def _post(context: FetchContext, status: dict[str, Any], author: str) -> Post:
    account = status.get("account") if isinstance(status.get("account"), dict) else {}
    handle = str(account.get("acct") or "") if isinstance(account, dict) else ""
    card = status.get("card") if isinstance(status.get("card"), dict) else {}
    text = html_text(str(status.get("content") or ""), context.config.max_text_chars)
    shared = str(card.get("url") or "") if isinstance(card, dict) else ""
    title = str(card.get("title") or "") if isinstance(card, dict) and shared else ""
    return Post(
        post_url=str(status["url"]),
        shared=shared,
        title=title or f"@{handle}: {text}",
        text=f"{text}\n\n— @{handle} on Mastodon",
        published=timestamp(status.get("created_at"), context.now),
        author=author,
        likes=number(status.get("favourites_count")),
        reposts=number(status.get("reblogs_count")),
        comments=number(status.get("replies_count")),
    )
