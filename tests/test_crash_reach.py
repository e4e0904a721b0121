"""Crash during delivery to Discord, Telegram, the webhook and Apprise: `run --once` killed
with SIGKILL after a message was accepted and before it was recorded, then run again.
Every message arrives, and only the one in flight at the kill arrives twice."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import DiscordWebhook, FeedServer, TelegramBot, WebhookReceiver
from processes import storage_setting
from reliability import Trendfinder

from core.config import load_config
from core.store import Store
from digests import discord_embeds, telegram_html

TOPICS = (
    "volcano",
    "election",
    "satellite",
    "vaccine",
    "merger",
    "drought",
    "earthquake",
    "strike",
    "tariff",
    "wildfire",
    "telescope",
    "court",
    "pipeline",
    "hurricane",
    "chip",
    "museum",
    "festival",
    "glacier",
    "airline",
    "reactor",
)

PLACES = (
    "Oslo",
    "Lima",
    "Accra",
    "Hanoi",
    "Quito",
    "Tunis",
    "Riga",
    "Perth",
    "Dakar",
    "Porto",
    "Sofia",
    "Kyoto",
    "Lagos",
    "Minsk",
    "Cusco",
    "Turku",
    "Omaha",
    "Basel",
    "Malmo",
    "Izmir",
)


@pytest.fixture
def world(
    tmp_path: Path, store_url: str | None
) -> Iterator[tuple[Trendfinder, DiscordWebhook, TelegramBot, WebhookReceiver, WebhookReceiver]]:
    with (
        FeedServer() as feeds,
        DiscordWebhook() as discord,
        TelegramBot() as telegram,
        WebhookReceiver() as hook,
        WebhookReceiver() as apprise_end,
    ):
        entries = "".join(
            f"<item><title>{topic.title()} news from {place}: {topic} {place} report {n}</title>"
            f"<link>https://news.example.org/{topic}/{n}</link>"
            f"<description>{(topic + ' ' + place + ' ') * 60}</description></item>"
            for topic, place in zip(TOPICS, PLACES, strict=True)
            for n in range(2)
        )
        feed = feeds.add(
            "/feed.xml",
            '<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>'
            f"<link>https://news.example.org/</link><description>d</description>{entries}"
            "</channel></rss>",
        )
        (tmp_path / "config.yaml").write_text(
            f"""
storage: {{{storage_setting(store_url)}}}
llm: {{api_key: ''}}
delivery: {{backoff: 1s}}
sources:
  - {{name: news, url: '{feed}'}}
digests:
  - name: brief
    focus: Readers who follow world news.
    max_trends: 20
    deliver:
      - {{kind: discord, webhook_url: '{discord.webhook_url}', timeout: 10}}
      - {{kind: telegram, bot_token: '{telegram.token}', chat_id: '-1001234567890',
          api_url: '{telegram.api_url}', timeout: 10}}
      - {{kind: webhook, url: '{hook.url_for("/hook")}', timeout: 10}}
      - {{kind: apprise, urls: ['json://127.0.0.1:{apprise_end.port}/a']}}
"""
        )
        yield Trendfinder(tmp_path / "config.yaml", store_url), discord, telegram, hook, apprise_end


# Which accepted message the kill follows, counting over the targets in order: Discord's
# three messages, then Telegram's, then the webhook's one and Apprise's one.
@pytest.mark.parametrize("arrival", [1, 2, 4, 5, 7])
def test_a_kill_after_a_part_is_accepted_resends_only_that_part(world, arrival):
    app, discord, telegram, hook, apprise_end = world
    crashed = app.run("run", "--once", crash_at=f"deliver.part_sent:{arrival}")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    recovery = app.recover()
    assert "was interrupted" in recovery[0].stderr

    with Store.open_config(load_config(app.config_path).storage) as store:
        [summary] = store.digest_summaries()
        digest = store.digest(summary.id)
    expected_discord = [
        m.payload()["embeds"][-1]["footer"]["text"] for m in discord_embeds.messages(digest)
    ]
    assert len(expected_discord) == 3  # the scenario numbers assume three Discord messages
    arrived = Counter(m["embeds"][-1]["footer"]["text"] for m in discord.messages)
    arrived.update(sent.html for sent in telegram.sent)
    arrived.update(r.headers["x-trendfinder-digest"] for r in hook.accepted)
    arrived.update(r.json()["title"] for r in apprise_end.accepted)
    expected = [
        *expected_discord,
        *telegram_html.messages(digest),
        digest.id,
        "brief: what matters, " + f"{digest.created_at:%Y-%m-%d}",
    ]
    assert set(arrived) == set(expected)
    assert sum(arrived.values()) - len(expected) == 1  # the one message in flight
