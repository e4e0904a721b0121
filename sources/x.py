"""X (Twitter) sources: accounts' timelines and/or a recent search, through the X API v2.

Endpoints: `/2/users/by/username/:username` (an account's id, looked up once and kept in
the cursor), `/2/users/:id/tweets` and `/2/tweets/search/recent`, with the bearer token.
Each poll reads as many timelines as the tier allows per 15-minute window, taking the
accounts in turn (`XSource.account_period` says how often each comes round), and one
search. `since_id` per account and for the search means only new posts come back.
`x-rate-limit-remaining: 0` and 429s park that endpoint until `x-rate-limit-reset`.
A post sharing an article becomes that article's item (its expanded link), so it joins
the article's story; its `public_metrics` are its engagement.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from core.clock import from_text, to_text
from core.config import X_TIERS, X_WINDOW, XSource
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
    reset_time,
    timestamp,
)

TWEET_FIELDS = "created_at,public_metrics,entities,author_id"
# Links to X itself (quoted posts, media) are not articles a post shares.
_OWN_HOSTS = frozenset({"x.com", "twitter.com", "t.co", "mobile.twitter.com", "www.x.com"})
MAX_RESULTS = 100
FIRST_RESULTS = 20  # the first poll of an account or search: its latest posts only


class _Api:
    """Requests to one X API root, parking an endpoint whose window is used up."""

    def __init__(self, context: FetchContext, source: XSource, cursor: dict[str, Any]) -> None:
        self.context = context
        self.source = source
        blocked = cursor.get("blocked")
        self.blocked: dict[str, str] = dict(blocked) if isinstance(blocked, dict) else {}
        self.used: dict[str, int] = {}

    def open(self, endpoint: str) -> bool:
        until = self.blocked.get(endpoint)
        if until and from_text(until) > self.context.now:
            return False
        budget = X_TIERS[self.source.tier][endpoint]
        return self.used.get(endpoint, 0) < budget

    async def get(self, endpoint: str, path: str, params: dict[str, str]) -> Any:
        self.used[endpoint] = self.used.get(endpoint, 0) + 1
        url = f"{self.source.api_url}{path}" + (f"?{urlencode(params)}" if params else "")
        headers = {"Authorization": f"Bearer {self.source.bearer_token}"}
        try:
            answer = await get_json(self.context, url, "X", headers=headers)
        except SourceError as error:
            if error.status == 429 and error.retry_at:
                self.blocked[endpoint] = to_text(error.retry_at)
            if error.status == 401:
                raise SourceError(
                    f"{error}; check the bearer token (X_BEARER_TOKEN)", 401
                ) from None
            raise
        if exhausted(answer.response.headers):
            reset = reset_time(answer.response.headers, self.context.now)
            self.blocked[endpoint] = to_text(reset or self.context.now + X_WINDOW)
        return answer.data

    def next_poll(self) -> datetime | None:
        """The earliest sensible next poll: when a used-up window resets."""
        now = self.context.now
        times = [from_text(until) for until in self.blocked.values() if from_text(until) > now]
        budget = X_TIERS[self.source.tier]
        if any(self.used.get(endpoint, 0) >= budget[endpoint] for endpoint in self.used):
            times.append(now + X_WINDOW)
        return min(times) if times else None


async def fetch_x(context: FetchContext, request: FetchRequest) -> FetchOutcome:
    source = request.social
    if not isinstance(source, XSource):
        return failed(request, SourceError("not configured as an x source"))
    cursor = load_cursor(request)
    users: dict[str, str] = dict(cursor.get("users") or {})
    since: dict[str, str] = dict(cursor.get("since") or {})
    start = int(cursor.get("turn") or 0)
    done = 0  # accounts this poll got to, in turn from `start`
    api = _Api(context, source, cursor)
    posts: list[Post] = []
    warnings: list[str] = []
    stale_search = False
    handles = source.handles
    try:
        for step in range(len(handles)):
            if not api.open("timeline"):
                break
            handle = handles[(start + step) % len(handles)]
            user_id = users.get(handle.lower())
            if user_id is None:
                if not api.open("user"):
                    break
                user_id = await _lookup(api, handle, warnings)
                if user_id is None:
                    done += 1
                    continue
                users[handle.lower()] = user_id
            params = {"max_results": str(MAX_RESULTS), "tweet.fields": TWEET_FIELDS}
            excluded = [
                kind
                for kind, wanted in (
                    ("retweets", source.include_retweets),
                    ("replies", source.include_replies),
                )
                if not wanted
            ]
            if excluded:
                params["exclude"] = ",".join(excluded)
            key = f"@{handle.lower()}"
            if key in since:
                params["since_id"] = since[key]
            else:
                params["max_results"] = str(FIRST_RESULTS)
            data = await api.get("timeline", f"/2/users/{user_id}/tweets", params)
            posts += _posts(data, {user_id: handle}, handle, context.now)
            since[key] = _newest(data) or since.get(key, "")
            done += 1
        if source.query and api.open("search"):
            query = source.query
            if not source.include_retweets:
                query += " -is:retweet"
            if not source.include_replies:
                query += " -is:reply"
            params = {
                "query": query,
                "max_results": str(MAX_RESULTS if "?query" in since else FIRST_RESULTS),
                "tweet.fields": TWEET_FIELDS,
                "expansions": "author_id",
                "user.fields": "username",
            }
            if since.get("?query"):
                params["since_id"] = since["?query"]
            try:
                data = await api.get("search", "/2/tweets/search/recent", params)
            except SourceError as error:
                # Recent search covers 7 days: after a longer pause the since_id is refused
                # (400), and the search starts afresh (now, or next poll when the window's
                # budget is spent) instead of failing from then on.
                if error.status != 400 or "since_id" not in params:
                    raise
                stale_search = True
                if not api.open("search"):
                    raise
                del params["since_id"]
                data = await api.get("search", "/2/tweets/search/recent", params)
            posts += _posts(data, _authors(data), "", context.now)
            since["?query"] = _newest(data) or since.get("?query", "")
    except SourceError as error:
        # What arrived before a rate limit is kept; anything else fails the poll.
        problem: SourceError | None = error
        if error.status == 429 and posts:
            warnings.append(str(error))
            problem = None
    else:
        problem = None
    new_cursor = {
        "users": users,
        "since": {key: value for key, value in since.items() if value},
        "turn": (start + done) % len(handles) if handles else 0,
        "blocked": {
            endpoint: until
            for endpoint, until in api.blocked.items()
            if from_text(until) > context.now
        },
    }
    if problem is not None:
        # Nothing of this poll is stored, so its posts are read again next time.
        retry = SourceError(str(problem), problem.status, api.next_poll())
        old = dict(cursor.get("since") or {})
        if stale_search:
            old.pop("?query", None)
        return failed(request, retry, {**new_cursor, "since": old})
    return outcome(
        request,
        context,
        posts,
        new_cursor,
        warnings=tuple(warnings),
        retry_at=api.next_poll(),
    )


async def _lookup(api: _Api, handle: str, warnings: list[str]) -> str | None:
    data = await api.get("user", f"/2/users/by/username/{handle}", {})
    user = data.get("data") if isinstance(data, dict) else None
    if isinstance(user, dict) and isinstance(user.get("id"), str):
        return str(user["id"])
    errors = data.get("errors") if isinstance(data, dict) else None
    detail = errors[0].get("detail") if errors and isinstance(errors[0], dict) else None
    warnings.append(f"X has no account @{handle}" + (f" ({detail})" if detail else ""))
    return None


def _authors(data: Any) -> dict[str, str]:
    includes = data.get("includes") if isinstance(data, dict) else None
    users = includes.get("users", []) if isinstance(includes, dict) else []
    return {
        str(user["id"]): str(user["username"])
        for user in users
        if isinstance(user, dict) and user.get("id") and user.get("username")
    }


def _newest(data: Any) -> str | None:
    meta = data.get("meta") if isinstance(data, dict) else None
    newest = meta.get("newest_id") if isinstance(meta, dict) else None
    return str(newest) if newest else None


def _posts(data: Any, authors: dict[str, str], account: str, now: datetime) -> list[Post]:
    tweets = data.get("data") if isinstance(data, dict) else None
    if not isinstance(tweets, list):
        return []
    posts = []
    for tweet in tweets:
        if not isinstance(tweet, dict) or not tweet.get("id") or not tweet.get("text"):
            continue
        handle = authors.get(str(tweet.get("author_id")), account) or "i"
        text, shared = _expand(str(tweet["text"]), tweet.get("entities"))
        metrics = tweet.get("public_metrics")
        metrics = metrics if isinstance(metrics, dict) else {}
        posts.append(
            Post(
                post_url=f"https://x.com/{handle}/status/{tweet['id']}",
                shared=shared,
                title=f"@{handle}: {text}",
                text=f"{text}\n\n— @{handle} on X",
                published=timestamp(tweet.get("created_at"), now),
                author=account.lower(),
                likes=number(metrics.get("like_count")),
                reposts=number(metrics.get("retweet_count")) + number(metrics.get("quote_count")),
                comments=number(metrics.get("reply_count")),
                views=metrics.get("impression_count")
                if isinstance(metrics.get("impression_count"), int)
                else None,
            )
        )
    return posts


def _expand(text: str, entities: Any) -> tuple[str, str]:
    """The text with t.co links expanded, and the first article link it shares."""
    urls = entities.get("urls") if isinstance(entities, dict) else None
    shared = ""
    for entry in urls if isinstance(urls, list) else []:
        if not isinstance(entry, dict):
            continue
        short = entry.get("url")
        full = entry.get("unwound_url") or entry.get("expanded_url")
        if not isinstance(full, str):
            continue
        if isinstance(short, str):
            text = text.replace(short, full)
        host = (urlsplit(full).hostname or "").lower()
        if not shared and host not in _OWN_HOSTS:
            shared = full
    return text, shared
