"""`trendfinder demo`: the whole pipeline with no network, on bundled sample feeds.

The feeds are served from a loopback HTTP server so the real fetch path runs; the
analyzer is the offline one, so no account is needed.
"""

from __future__ import annotations

import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from core.clock import utcnow
from core.config import Config, parse_config
from core.store import Store
from daemon.runner import Runner
from digests import render

FEEDS = {
    "meridian-wire": "wire.xml",
    "tech-ledger": "ledger.xml",
    "northern-herald": "herald.xml",
    "devnotes": "devnotes.xml",
}
_STAMP = re.compile(r"@@(iso:)?-(\d+)h@@")


def sample_feed(name: str, now: datetime) -> bytes:
    """A bundled feed with its dates set relative to `now`, so the demo is always fresh."""
    text = resources.files("daemon").joinpath("demo_feeds", name).read_text(encoding="utf-8")

    def stamp(match: re.Match[str]) -> str:
        moment = now - timedelta(hours=int(match.group(2)))
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if match.group(1) else format_datetime(moment)

    return _STAMP.sub(stamp, text).encode()


@contextmanager
def serve_samples(now: datetime) -> Iterator[str]:
    """Serve the sample feeds on 127.0.0.1; yields the base URL."""
    bodies = {f"/{file}": sample_feed(file, now) for file in FEEDS.values()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def demo_config(base_url: str, folder: Path) -> Config:
    sources = "\n".join(
        f"  - {{name: {name}, url: '{base_url}/{file}', tags: [demo]}}"
        for name, file in FEEDS.items()
    )
    text = f"""
storage: {{path: '{folder / "demo.db"}'}}
llm: {{api_key: ''}}
sources:
{sources}
digests:
  - name: demo
    focus: Technology and world news that a software team should know about today.
    tags: [demo]
    max_trends: 5
    deliver:
      - {{kind: file, directory: '{folder / "digests"}'}}
"""
    return parse_config(text, "demo config", env={})


def run_demo(keep: Path | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="trendfinder-demo-") as scratch:
        folder = keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        now = utcnow()
        with serve_samples(now) as base_url:
            config = demo_config(base_url, folder)
            with Store.open(config.storage.database) as store:
                runner = Runner(config, store)
                report = runner.run_once(everything=True)
                digest = store.digest(report.digests[0])
        sys.stdout.write(render.markdown(digest))
        where = folder / "digests" / "demo"
        written = f"written to {where}" if keep else "(use --keep DIR to keep the files)"
        print(
            f"\ndemo: {report.sources_ok} sample feeds, {report.new_items} items, "
            f"{len(digest.trends)} trends; {written}",
            file=sys.stderr,
        )
        return 1 if report.failed else 0
