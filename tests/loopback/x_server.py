"""XServer: the X API v2 endpoints trendfinder reads, with X's errors and rate limits.

`GET /2/users/by/username/:username`, `/2/users/:id/tweets` and `/2/tweets/search/recent`
with a bearer token. Every answer carries `x-rate-limit-limit`, `-remaining` and `-reset`
(Unix seconds) for its endpoint; past the budget of the window, 429 with X's problem JSON.
`new_window()` starts the next 15-minute window (tests do not wait for it). Errors are X's
shapes: 401 `{"title": "Unauthorized", ...}`, 400 "Invalid Request" for a `max_results`
out of range, and a 200 with `errors` for an unknown username.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from ._http import LoopbackHandler, LoopbackHTTPServer

WINDOW = 900
FREE = {"user": 3, "timeline": 1, "search": 1}


@dataclass(frozen=True)
class Tweet:
    id: int
    author: str
    text: str
    created_at: str
    likes: int = 0
    retweets: int = 0
    replies: int = 0
    quotes: int = 0
    impressions: int = 0
    urls: tuple[tuple[str, str], ...] = ()  # (t.co link in the text, expanded URL)
    kind: str = "post"  # post, retweet or reply

    def json(self, user_id: str) -> dict[str, Any]:
        entities = {
            "urls": [
                {
                    "start": self.text.find(short),
                    "end": self.text.find(short) + len(short),
                    "url": short,
                    "expanded_url": full,
                    "display_url": full.split("//")[-1][:20],
                }
                for short, full in self.urls
            ]
        }
        return {
            "id": str(self.id),
            "text": self.text,
            "author_id": user_id,
            "created_at": self.created_at,
            "edit_history_tweet_ids": [str(self.id)],
            "public_metrics": {
                "retweet_count": self.retweets,
                "reply_count": self.replies,
                "like_count": self.likes,
                "quote_count": self.quotes,
                "bookmark_count": 0,
                "impression_count": self.impressions,
            },
            **({"entities": entities} if self.urls else {}),
        }


def _problem(status: int, title: str, detail: str, kind: str = "about:blank") -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": kind, "status": status}


@dataclass
class _Window:
    started: float = field(default_factory=time.time)
    used: dict[str, int] = field(default_factory=dict)


class _Handler(LoopbackHandler):
    owner: XServer

    def do_GET(self) -> None:
        rec = self.record()
        owner = self.owner
        if rec.headers.get("authorization") != f"Bearer {owner.token}":
            self.send_json(401, _problem(401, "Unauthorized", "Unauthorized"))
            return
        params = {key: values[-1] for key, values in rec.params.items()}
        if match := re.fullmatch(r"/2/users/by/username/(\w+)", rec.path):
            endpoint, answer = "user", lambda: owner._user(match.group(1))
        elif match := re.fullmatch(r"/2/users/(\d+)/tweets", rec.path):
            endpoint, answer = "timeline", lambda: owner._timeline(match.group(1), params)
        elif rec.path == "/2/tweets/search/recent":
            endpoint, answer = "search", lambda: owner._search(params)
        else:
            self.send_json(404, _problem(404, "Not Found Error", "no such endpoint"))
            return
        with owner._lock:
            window = owner._window
            used = window.used.get(endpoint, 0) + 1
            window.used[endpoint] = used
            limit = owner.budget[endpoint]
            reset = int(window.started + WINDOW)
        headers = {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(max(limit - used, 0)),
            "x-rate-limit-reset": str(reset),
        }
        if used > limit:
            self.send_json(429, _problem(429, "Too Many Requests", "Too Many Requests"), headers)
            return
        status, body = answer()
        self.send_json(status, body, headers)


class XServer(LoopbackHTTPServer):
    handler_class = _Handler

    def __init__(self, token: str = "x-test-bearer", budget: dict[str, int] | None = None):
        super().__init__()
        self.token = token
        self.budget = dict(budget or FREE)
        self._window = _Window()
        self._users: dict[str, str] = {}  # username (lower) -> id
        self._names: dict[str, str] = {}  # id -> username as written
        self._tweets: list[Tweet] = []
        # Recent search reaches back 7 days: a since_id older than this is refused.
        self.oldest_searchable = 0

    def add_user(self, username: str, user_id: str) -> None:
        with self._lock:
            self._users[username.lower()] = user_id
            self._names[user_id] = username

    def post(self, tweet: Tweet) -> None:
        with self._lock:
            self._tweets.append(tweet)

    def new_window(self) -> None:
        """Time has moved on by a window: every endpoint's budget is whole again."""
        with self._lock:
            self._window = _Window()

    def _user(self, username: str) -> tuple[int, dict[str, Any]]:
        user_id = self._users.get(username.lower())
        if user_id is None:
            return 200, {
                "errors": [
                    {
                        "value": username,
                        "detail": f"Could not find user with username: [{username}].",
                        "title": "Not Found Error",
                        "resource_type": "user",
                        "parameter": "username",
                        "resource_id": username,
                        "type": "https://api.twitter.com/2/problems/resource-not-found",
                    }
                ]
            }
        return 200, {"data": {"id": user_id, "name": username.title(), "username": username}}

    def _max_results(self, params: dict[str, str], low: int) -> int | dict[str, Any]:
        value = params.get("max_results", "10")
        if not value.isdigit() or not low <= int(value) <= 100:
            return {
                "errors": [
                    {
                        "parameters": {"max_results": [value]},
                        "message": f"The `max_results` query parameter value [{value}] "
                        f"is not between {low} and 100",
                    }
                ],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request",
            }
        return int(value)

    def _page(self, tweets: list[Tweet], params: dict[str, str], count: int) -> dict[str, Any]:
        since = int(params.get("since_id", "0") or 0)
        chosen = sorted((t for t in tweets if t.id > since), key=lambda t: -t.id)[:count]
        if not chosen:
            return {"meta": {"result_count": 0}}
        ids = {name: uid for uid, name in self._names.items()}
        return {
            "data": [t.json(ids.get(t.author, "0")) for t in chosen],
            "includes": {
                "users": [
                    {"id": ids.get(a, "0"), "username": a, "name": a}
                    for a in sorted({t.author for t in chosen})
                ]
            },
            "meta": {
                "result_count": len(chosen),
                "newest_id": str(chosen[0].id),
                "oldest_id": str(chosen[-1].id),
            },
        }

    def _timeline(self, user_id: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        count = self._max_results(params, 5)
        if isinstance(count, dict):
            return 400, count
        excluded = set(params.get("exclude", "").split(","))
        with self._lock:
            name = self._names.get(user_id, "")
            tweets = [
                t
                for t in self._tweets
                if t.author == name
                and not (t.kind == "retweet" and "retweets" in excluded)
                and not (t.kind == "reply" and "replies" in excluded)
            ]
            return 200, self._page(tweets, params, count)

    def _search(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        count = self._max_results(params, 10)
        if isinstance(count, dict):
            return 400, count
        since = params.get("since_id", "")
        if since and int(since) < self.oldest_searchable:
            detail = (
                f"Invalid 'since_id':'{since}'. 'since_id' must be a tweet id created after "
                "the start of the last 7 days."
            )
            return 400, {
                "errors": [{"parameters": {"since_id": [since]}, "message": detail}],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request",
            }
        terms = params.get("query", "").split()
        wanted = [t.lower() for t in terms if not t.startswith("-")]
        with self._lock:
            tweets = [
                t
                for t in self._tweets
                if all(word in t.text.lower() for word in wanted)
                and not (t.kind == "retweet" and "-is:retweet" in terms)
                and not (t.kind == "reply" and "-is:reply" in terms)
            ]
            return 200, self._page(tweets, params, count)
