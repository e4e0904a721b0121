"""HNServer: Hacker News's Firebase API (`/v0/<list>stories.json`, `/v0/item/<id>.json`)
and the Algolia HN search (`/api/v1/search_by_date`), on one loopback port."""

from __future__ import annotations

import re
from typing import Any

from ._http import LoopbackHandler, LoopbackHTTPServer

LISTS = ("top", "new", "best", "ask", "show", "job")


class _Handler(LoopbackHandler):
    owner: HNServer

    def do_GET(self) -> None:
        rec = self.record()
        owner = self.owner
        if match := re.fullmatch(r"/v0/(\w+)stories\.json", rec.path):
            with owner._lock:
                ids = owner.lists.get(match.group(1))
            if ids is None:
                self.send_json(401, {"error": "Permission denied"})  # Firebase's answer
            else:
                self.send_json(200, ids)
        elif match := re.fullmatch(r"/v0/item/(\d+)\.json", rec.path):
            with owner._lock:
                self.send_json(200, owner.items.get(int(match.group(1))))  # null if unknown
        elif rec.path == "/api/v1/search_by_date":
            self.send_json(200, owner._search({k: v[-1] for k, v in rec.params.items()}))
        else:
            self.send_json(404, {"error": "not found"})


class HNServer(LoopbackHTTPServer):
    handler_class = _Handler

    def __init__(self) -> None:
        super().__init__()
        self.lists: dict[str, list[int]] = {name: [] for name in LISTS}
        self.items: dict[int, dict[str, Any]] = {}

    def story(
        self,
        item_id: int,
        title: str,
        url: str | None,
        *,
        score: int = 10,
        comments: int = 0,
        time: int = 1_764_000_000,
        lists: tuple[str, ...] = ("top", "new"),
        text: str | None = None,
        kind: str = "story",
    ) -> None:
        item: dict[str, Any] = {
            "by": "someone",
            "descendants": comments,
            "id": item_id,
            "kids": [],
            "score": score,
            "time": time,
            "title": title,
            "type": kind,
        }
        if url:
            item["url"] = url
        if text:
            item["text"] = text
        with self._lock:
            self.items[item_id] = item
            for name in lists:
                if item_id not in self.lists[name]:
                    self.lists[name].insert(0, item_id)

    def _search(self, params: dict[str, str]) -> dict[str, Any]:
        words = params.get("query", "").lower().split()
        since, points = 0, 0
        for condition in params.get("numericFilters", "").split(","):
            if condition.startswith("created_at_i>"):
                since = int(condition.split(">")[1])
            if condition.startswith("points>="):
                points = int(condition.split(">=")[1])
        with self._lock:
            stories = sorted(self.items.values(), key=lambda item: -item["time"])
        hits = [
            {
                "objectID": str(item["id"]),
                "title": item["title"],
                "url": item.get("url"),
                "author": item["by"],
                "points": item["score"],
                "num_comments": item["descendants"],
                "created_at_i": item["time"],
                "story_text": item.get("text"),
                "_tags": ["story", f"author_{item['by']}", f"story_{item['id']}"],
            }
            for item in stories
            if item["type"] == "story"
            and all(word in item["title"].lower() for word in words)
            and item["time"] > since
            and item["score"] >= points
        ][: int(params.get("hitsPerPage", "20"))]
        return {"hits": hits, "nbHits": len(hits), "page": 0, "hitsPerPage": len(hits)}
