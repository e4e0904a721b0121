"""The hostile-input corpus of test_hostile.py, and a model obeying its injection, through
Discord, Telegram, the generic webhook and Apprise: no active content, no mention, no link
that did not come from the store, in what each of them receives."""

from __future__ import annotations

import re
import sqlite3
from html import unescape
from typing import Any
from urllib.parse import unquote

import pytest
import test_hostile as hostile
from faultworld import cli
from loopback import DiscordWebhook, FeedServer, OpenAIServer, TelegramBot, WebhookReceiver

from core.config import load_config
from core.store import Store

# Mentions each service acts on; with the zero-width space after "@" they are inert text.
MENTIONS = re.compile(r"@(everyone|here|channel|room|all)\b|<@[!&]?\d+>|<#\d+>")
# Telegram, Matrix, Mattermost: any "@name" notifies; an inert one has a zero-width space.
AT_NAME = re.compile(r"@\w+")


def discord_problems(payload: dict[str, Any], store_urls: frozenset[str]) -> list[str]:
    problems = []
    if payload.get("allowed_mentions") != {"parse": []}:
        problems.append("discord: allowed_mentions does not forbid pings")
    texts = [payload["content"]]
    for embed in payload["embeds"]:
        texts += [embed.get("title", ""), embed.get("description", "")]
        texts.append(embed.get("footer", {}).get("text", ""))
    for text in texts:
        for target in re.findall(r"\]\(<([^>]*)>\)", text):
            if unquote(target) not in {unquote(url) for url in store_urls}:
                problems.append(f"discord: link to {target[:80]!r}")
        rest = re.sub(r"\]\(<[^>]*>\)", "] (a store link)", text)
        problems += [f"discord: mention {m.group(0)!r}" for m in MENTIONS.finditer(rest)]
        # Unescaped Markdown link syntax would be a masked link Discord renders.
        problems += [
            f"discord: masked link in {rest[:60]!r}" for _ in re.findall(r"(?<!\\)\]\(", rest)
        ]
        problems += hostile.text_problems(rest, store_urls, "discord")
    return problems


def telegram_problems(sent: Any, store_urls: frozenset[str]) -> list[str]:
    problems = [f"telegram: link to {link[:80]!r}" for link in sent.links if link not in store_urls]
    problems += [f"telegram: mention {m.group(0)!r}" for m in AT_NAME.finditer(sent.text)]
    problems += [
        f"telegram: tag {tag!r}"
        for tag in re.findall(r"<(\w+)", sent.html)
        if tag not in ("b", "i", "a", "blockquote")
    ]
    return problems + hostile.text_problems(sent.text, store_urls, "telegram")


@pytest.mark.parametrize("analyzer", ["model", "offline"])
def test_hostile_feeds_reach_chat_targets_inert(tmp_path, analyzer):
    with (
        FeedServer() as feeds,
        OpenAIServer() as model,
        DiscordWebhook() as discord,
        TelegramBot() as telegram,
        WebhookReceiver() as hook,
        WebhookReceiver() as apprise_end,
    ):
        urls = hostile.hostile_feeds(feeds)
        urls["mentions"] = feeds.add(
            "/mentions.xml",
            hostile.rss(
                [
                    {
                        "title": hostile.xml_text(
                            "Breach report: @everyone @here <@&123> <#456> @room"
                        ),
                        "link": "https://mentions.example.org/1",
                        "description": "Pings @channel and [masked](https://evil.com/x) links.",
                        "pubDate": "Fri, 27 Nov 2026 06:00:00 GMT",
                    }
                ]
            ),
        )
        model.set_default(hostile.obey_injection)
        deliver = (
            f"      - {{kind: discord, webhook_url: '{discord.webhook_url}'}}\n"
            f"      - {{kind: telegram, bot_token: '{telegram.token}', chat_id: '-1001234567890',"
            f" api_url: '{telegram.api_url}'}}\n"
            f"      - {{kind: webhook, url: '{hook.url_for('/hook')}'}}\n"
            f"      - {{kind: apprise, urls: ['json://127.0.0.1:{apprise_end.port}/a']}}"
        )
        llm = (
            f"{{model: o1, base_url: '{model.base_url}', api_key: sk-test, backoff: 0.1s}}"
            if analyzer == "model"
            else "{api_key: ''}"
        )
        config_path = hostile.write_config(tmp_path, urls, deliver, llm)
        done = cli(config_path, "run", "--once", "--all", timeout=hostile.RUN_BOUND)
        assert done.returncode == 0, done.stderr
        config = load_config(config_path)
        with sqlite3.connect(config.storage.database) as db:
            store_urls = frozenset(row[0] for row in db.execute("SELECT url FROM items"))
        with Store.open(config.storage.database) as store:
            [summary] = store.digest_summaries()
        problems: list[str] = []
        assert discord.messages and telegram.sent and hook.accepted and apprise_end.accepted
        for payload in discord.messages:
            problems += discord_problems(payload, store_urls)
        for sent in telegram.sent:
            problems += telegram_problems(sent, store_urls)
        for received in hook.accepted:
            data = received.json()
            assert data["id"] == summary.id
            problems += [
                f"webhook: {i['url']}"
                for t in data["trends"]
                for i in t["items"]
                if i["url"] not in store_urls
            ]
        for received in apprise_end.accepted:
            message = unescape(received.json()["message"])
            problems += [f"apprise: mention {m.group(0)!r}" for m in AT_NAME.finditer(message)]
            problems += hostile.markdown_problems(message, store_urls, "apprise")
        assert problems == [], problems[:20]
