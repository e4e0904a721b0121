"""Many small RSS feeds on 127.0.0.1 whose content moves on when a test says so.

`/feed/<n>.xml` lists the latest items of feed n; raising `generation` publishes one more
item in every feed. Conditional GET works (ETag), so an unchanged feed costs a 304, as a
real server would. Used by the daemon tests and the memory benchmark.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

TOPICS = (
    "Regulators open an inquiry into cloud outage",
    "Chipmaker reports record quarterly revenue",
    "New Python release speeds up start-up",
    "Central bank holds interest rates steady",
    "Open-source maintainers discuss funding",
    "Satellite launch adds coverage to rural areas",
)


class FeedFarm:
    def __init__(
        self, feeds: int, items_per_feed: int = 10, generation: int = 3, delay: float = 0.0
    ) -> None:
        self.feeds = feeds
        self.items_per_feed = items_per_feed
        self.generation = generation
        self.delay = delay
        self.requests: Counter[int] = Counter()
        # Requests being answered at once, and the most there ever were (politeness tests).
        self.in_flight = 0
        self.most_in_flight = 0
        self._start = datetime.now(UTC).replace(microsecond=0)
        self._lock = threading.Lock()
        farm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                match = re.fullmatch(r"/feed/(\d+)\.xml", self.path)
                if not match or int(match.group(1)) >= farm.feeds:
                    self.send_error(404)
                    return
                number = int(match.group(1))
                with farm._lock:
                    farm.requests[number] += 1
                    generation = farm.generation
                    farm.in_flight += 1
                    farm.most_in_flight = max(farm.most_in_flight, farm.in_flight)
                try:
                    if farm.delay:
                        time.sleep(farm.delay)
                finally:
                    with farm._lock:
                        farm.in_flight -= 1
                etag = f'"{number}-{generation}"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = farm.feed(number, generation)
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # socketserver's listen backlog of 5 drops the SYNs of a client opening dozens of
            # connections at once, which then wait a second to retry; real servers take more.
            request_queue_size = 128

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hung up early is the client's business

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, number: int) -> str:
        return f"{self.base}/feed/{number}.xml"

    def publish(self) -> None:
        """One more item in every feed."""
        with self._lock:
            self.generation += 1

    def feed(self, number: int, generation: int) -> bytes:
        entries = []
        for index in range(generation - 1, max(-1, generation - 1 - self.items_per_feed), -1):
            topic = TOPICS[(number + index) % len(TOPICS)]
            published = self._start + timedelta(seconds=index)
            entries.append(
                f"<item><title>{escape(topic)} (feed {number}, update {index})</title>"
                f"<link>https://news{number}.example.com/{index}</link>"
                f"<guid>https://news{number}.example.com/{index}</guid>"
                f"<pubDate>{format_datetime(published)}</pubDate>"
                f"<description>{escape(topic)}. Report {index} from outlet {number}."
                "</description></item>"
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Outlet {number}</title><link>https://news{number}.example.com/</link>"
            f"<description>Feed {number}</description>{''.join(entries)}</channel></rss>"
        ).encode()

    def __enter__(self) -> FeedFarm:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
