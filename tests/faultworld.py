"""A small world for the reliability tests: feeds that keep publishing, a model that answers
from the ids it is shown, what each receiver got per digest, and the CLI as a subprocess.

Used by test_faulty_world.py, test_hostile.py and test_soak.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from loopback import FeedServer, OpenAIServer, SlackReceiver, SMTPServer
from loopback.invariants import (
    delivered_exactly_once,
    deliveries_all_sent,
    no_item_vanished,
    store_is_healthy,
    stored_digest_ids,
    trends_arrived,
)
from loopback.openai_server import ChatRequest
from processes import cli_env, storage_setting

from core.config import Config
from core.store import Store
from digests import blockkit

_STORY_ID = re.compile(r'<story id="(S\d+)"')

WORDS = [
    "outage",
    "regulator",
    "chipmaker",
    "satellite",
    "election",
    "vaccine",
    "merger",
    "drought",
    "rally",
    "launch",
    "breach",
    "tariff",
    "strike",
    "verdict",
    "summit",
]


def story_ids(chat: ChatRequest) -> list[str]:
    """The story ids in the dump, in the order the model sees them. None found means the
    dump's format changed under the fake models: raise, and the model server fails the
    test, rather than answer "nothing notable" and let empty digests pass."""
    found: list[str] = _STORY_ID.findall(chat.user_text)
    if not found:
        raise AssertionError(f"no story id in the prompt: {chat.user_text[:300]!r}")
    return found


# How every trend good_answer makes is titled: what the receivers must show.
GOOD_TREND = "Trend on S"


def good_answer(chat: ChatRequest) -> dict[str, Any]:
    """A well-behaved model: up to three trends, each citing one story it was shown."""
    trends = [
        {
            "title": f"{GOOD_TREND}{ref.removeprefix('S')}",
            "summary": f"What the items of {ref} report.",
            "why_it_matters": "It matters to this reader.",
            "evidence": [ref],
            "score": 90 - number,
            "status": "new",
        }
        for number, ref in enumerate(story_ids(chat)[:3])
    ]
    return {"nothing_notable": False, "trends": trends}


def invented_answer(chat: ChatRequest) -> dict[str, Any]:
    """A model citing only ids it was never shown."""
    return {
        "nothing_notable": False,
        "trends": [
            {
                "title": "Invented",
                "summary": "Made up.",
                "why_it_matters": "It does not.",
                "evidence": ["S999", "S998.4"],
                "score": 99,
                "status": "new",
            }
        ],
    }


@dataclass
class GrowingFeed:
    """One RSS feed on a FeedServer that gains an item whenever `publish` is called.

    Every item ever published stays in the feed (up to `keep`, the newest), so the store
    must end up holding all of them: `published` is what the world served.
    """

    server: FeedServer
    path: str
    keep: int = 400
    published: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._serve()

    @property
    def url(self) -> str:
        return self.server.url_for(self.path)

    def publish(self, count: int = 1) -> None:
        with self._lock:
            for _ in range(count):
                self.published.append(self.item_link(len(self.published)))
        self._serve()

    def heal(self) -> None:
        """Drop every fault installed at this path and serve the feed again."""
        self.server.remove(self.path)
        self._serve()

    def item_link(self, number: int) -> str:
        return f"https://{self.path.strip('/').replace('/', '-')}.example.org/story/{number}"

    def _serve(self) -> None:
        with self._lock:
            links = list(enumerate(self.published))[-self.keep :]
        now = format_datetime(datetime.now(UTC))
        entries = "".join(
            f"<item><title>{escape(self.title(number))}</title><link>{escape(link)}</link>"
            f"<guid>{escape(link)}</guid><pubDate>{now}</pubDate>"
            f"<description>{escape(self.title(number))}. Details of report {number}."
            "</description></item>"
            for number, link in reversed(links)
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{self.path}</title><link>https://example.org/</link>"
            f"<description>growing</description>{entries}</channel></rss>"
        )
        self.server.add(self.path, body)

    def title(self, number: int) -> str:
        first, second = WORDS[number % len(WORDS)], WORDS[(number * 7 + 3) % len(WORDS)]
        return f"{first.title()} {second} report {number} from {self.path.strip('/')}"


# What each receiver got, per digest -------------------------------------------------------


def email_arrivals(server: SMTPServer) -> list[str]:
    return [str(m.message["X-Trendfinder-Digest"]) for m in server.messages]


def slack_parts(config: Config) -> dict[str, str]:
    """Each stored digest's Slack messages as canonical JSON -> 'digest id#part'."""
    parts: dict[str, str] = {}
    with Store.open_config(config.storage, read_only=True) as store:
        for digest_id in stored_digest_ids(config):
            # The world's profile has a file target: its messages point to the archive.
            messages = blockkit.messages(store.digest(digest_id), archive=True)
            for number, message in enumerate(messages, start=1):
                parts[json.dumps(message.payload(), sort_keys=True)] = f"{digest_id}#{number}"
    return parts


def slack_arrivals(receiver: SlackReceiver, config: Config) -> list[str]:
    parts = slack_parts(config)
    return [
        parts.get(json.dumps(payload, sort_keys=True), f"unknown payload {payload!r:.200}")
        for payload in receiver.messages
    ]


def file_arrivals(directory: Path) -> list[str]:
    return [json.loads(path.read_text())["id"] for path in sorted(directory.glob("*/*.json"))]


def invariant_problems(
    config: Config,
    served: Iterable[str],
    *,
    smtp: SMTPServer | None = None,
    slack_receiver: SlackReceiver | None = None,
    files: Path | None = None,
    trend: str | None = GOOD_TREND,
) -> list[str]:
    """Invariants 1-3 after a scenario; invariant 2 for every receiver given, no duplicates
    allowed (these scenarios have no crash, so nothing is ever in flight at one); and the
    model's trends (titled `trend...`, unless None) reached every receiver given."""
    problems = store_is_healthy(config) + no_item_vanished(config, served)
    problems += deliveries_all_sent(config)
    ids = stored_digest_ids(config)
    received: dict[str, list[str]] = {}
    if smtp is not None:
        received["email"] = email_arrivals(smtp)
    if files is not None:
        received["file"] = file_arrivals(files)
    problems += delivered_exactly_once(received, ids)
    texts: dict[str, list[str]] = {}
    if smtp is not None:
        texts["email"] = [message.text for message in smtp.messages]
    if files is not None:
        texts["file"] = [path.read_text() for path in sorted(files.glob("*/*.json"))]
    if slack_receiver is not None:
        parts = sorted(set(slack_parts(config).values()))
        problems += delivered_exactly_once({"slack": slack_arrivals(slack_receiver, config)}, parts)
        texts["slack"] = [json.dumps(payload) for payload in slack_receiver.messages]
    if trend is None:
        return problems
    # Offline fallbacks arrive too, with trends of their own: the model's must be among them.
    return problems + trends_arrived(texts, trend, in_every=False)


# The CLI ----------------------------------------------------------------------------------


def cli(config_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`trendfinder --config PATH ARGS` as a process; the test fails if it outlives `timeout`."""
    return subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(config_path), *args],
        cwd=config_path.parent,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def status(config_path: Path) -> dict[str, Any]:
    done = cli(config_path, "status", "--json", timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def write_world_config(
    folder: Path,
    feeds: dict[str, GrowingFeed],
    model: OpenAIServer,
    smtp: SMTPServer,
    hook: str,
    *,
    schedule: str,
    run_budget: str,
    store_url: str | None = None,
) -> Path:
    """A config for the daemon in a failing world: second-scale polling and schedule, short
    timeouts, fast delivery retries, and email, Slack and file targets."""
    sources = "\n".join(
        f"  - {{name: {name}, url: '{feed.url}', interval: 1s}}" for name, feed in feeds.items()
    )
    path = folder / "config.yaml"
    path.write_text(
        f"""
storage: {{{storage_setting(store_url)}}}
collect: {{timeout: 1, connect_timeout: 1, read_timeout: 1}}
llm: {{model: o1, base_url: '{model.base_url}', api_key: sk-test, timeout: 1.5s,
      run_budget: {run_budget}, backoff: 0.2s}}
delivery: {{backoff: 0.2s, max_attempts: 1000}}
sources:
{sources}
digests:
  - name: brief
    focus: Engineers who run web services.
    schedule: "{schedule}"
    deliver:
      - {{kind: email, host: 127.0.0.1, port: {smtp.port}, security: none, timeout: 5,
         sender: trendfinder@example.org, to: [reader@example.org]}}
      - {{kind: slack, webhook_url: '{hook}', timeout: 5}}
      - {{kind: file, directory: out}}
"""
    )
    return path
