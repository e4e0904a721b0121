"""Discord, Telegram, the generic webhook and Apprise, each against a loopback server that
validates and answers like the real service: limits, errors, rate limits, secrets."""

from __future__ import annotations

import json
import time

import pytest
import sample_digests as samples
from loopback import DiscordWebhook, TelegramBot, WebhookReceiver, closed_port

from core.config import AppriseTarget, DiscordTarget, TelegramTarget, WebhookTarget
from digests.deliver import DeliveryError, Progress, send, wants

SECRET = "a-long-shared-secret-0123456789"


@pytest.fixture
def discord() -> DiscordWebhook:
    with DiscordWebhook() as server:
        yield server


@pytest.fixture
def telegram() -> TelegramBot:
    with TelegramBot() as server:
        yield server


def discord_target(url: str, **extra: object) -> DiscordTarget:
    return DiscordTarget(kind="discord", name="chan", webhook_url=url, timeout=5, **extra)


def telegram_target(bot: TelegramBot, chat: str = "-1001234567890") -> TelegramTarget:
    return TelegramTarget(
        kind="telegram", bot_token=bot.token, chat_id=chat, api_url=bot.api_url, timeout=5
    )


# Discord ------------------------------------------------------------------------------------


def test_a_digest_posts_to_discord_as_embeds_that_ping_nobody(discord: DiscordWebhook):
    digest = samples.digest()
    assert send(digest, discord_target(discord.webhook_url)) == "1 message to Discord (chan)"
    [message] = discord.messages
    assert message["allowed_mentions"] == {"parse": []}
    assert message["content"].startswith("**morning\\-brief\\: what matters, 2026\\-11\\-27**")
    assert message["embeds"][0]["title"].startswith("1. Story 1")
    assert (
        "[Outlet report number 10 on the story](<https://news2.example/story/10>)"
        in (message["embeds"][0]["description"])
    )


def test_hostile_text_cannot_ping_or_link_on_discord(discord: DiscordWebhook):
    trend = samples.trend(1, title="@everyone look <@&123> [win](https://evil.example/x)")
    send(samples.digest((trend,)), discord_target(discord.webhook_url))
    [message] = discord.messages
    title = message["embeds"][0]["title"]
    assert "@everyone" not in title and "@\u200beveryone" in title
    assert "\\[win\\]\\(https\\://evil.example/x\\)" in title  # shown, not a link
    assert "<@&" not in title


def test_a_huge_digest_is_split_within_discords_limits_in_order(discord: DiscordWebhook):
    digest = samples.huge(trends=40, summary_chars=5000)
    where = send(digest, discord_target(discord.webhook_url))
    statuses = [p.status for p in discord.posts]
    assert statuses == [204] * len(statuses) and len(statuses) > 1
    assert where == f"{len(statuses)} messages to Discord (chan)"
    titles = [e["title"] for m in discord.messages for e in m["embeds"]]
    firsts = [
        next(i for i, t in enumerate(titles) if t.startswith(f"{n}\\. ") or t.startswith(f"{n}. "))
        for n in (1, 2, 40)
    ]
    assert firsts == sorted(firsts)
    assert all(
        f"part {n} of {len(statuses)}" in m["content"] for n, m in enumerate(discord.messages, 1)
    )


def test_invalid_form_body_is_a_permanent_failure_with_discords_reason(discord: DiscordWebhook):
    discord.fail(400, {"code": 50035, "message": "Invalid Form Body", "errors": {"embeds": {}}})
    with pytest.raises(DeliveryError, match="Invalid Form Body \\(code 50035\\)") as failure:
        send(samples.digest(), discord_target(discord.webhook_url))
    assert failure.value.permanent


def test_a_deleted_webhook_fails_permanently_without_showing_its_token(discord: DiscordWebhook):
    url = discord.url_for("/api/webhooks/1/SECRET-other-token")
    with pytest.raises(DeliveryError) as failure:
        send(samples.digest(), discord_target(url))
    assert "Unknown Webhook" in str(failure.value) and failure.value.permanent
    assert "SECRET" not in str(failure.value)


def test_discords_429_retry_after_is_waited_out(discord: DiscordWebhook):
    discord.rate_limit(0.5)
    started = time.monotonic()
    send(samples.digest(), discord_target(discord.webhook_url))
    assert time.monotonic() - started >= 0.5
    assert [p.status for p in discord.posts] == [429, 204]


def test_a_long_discord_rate_limit_goes_back_to_the_outbox(discord: DiscordWebhook):
    discord.rate_limit(120)
    with pytest.raises(DeliveryError, match="retry after 120 s") as failure:
        send(samples.digest(), discord_target(discord.webhook_url))
    assert failure.value.retry_delay is not None
    assert failure.value.retry_delay.total_seconds() == 120
    assert not failure.value.permanent


def test_a_discord_retry_continues_after_the_parts_already_posted(discord: DiscordWebhook):
    digest = samples.huge(trends=30, summary_chars=3000)
    recorded: list[int] = []

    def record(parts: int) -> None:
        recorded.append(parts)
        if parts == 1:
            discord.fail(500, {"message": "Internal Server Error"})

    with pytest.raises(DeliveryError, match="message 2 of"):
        send(digest, discord_target(discord.webhook_url), Progress(0, record))
    send(digest, discord_target(discord.webhook_url), Progress(recorded[-1], recorded.append))
    footers = [m["embeds"][-1]["footer"]["text"] for m in discord.messages]
    total = len(footers)
    assert footers == [f"trendfinder {digest.id} · {n}/{total}" for n in range(1, total + 1)]


def test_an_unreachable_discord_fails_without_its_token():
    url = f"http://127.0.0.1:{closed_port()}/api/webhooks/1/SECRETTOKEN"
    with pytest.raises(DeliveryError) as failure:
        send(samples.digest(), discord_target(url))
    assert "SECRETTOKEN" not in str(failure.value)
    assert "cannot reach Discord" in str(failure.value)


# Telegram -----------------------------------------------------------------------------------


def test_a_digest_arrives_in_telegram_as_valid_html(telegram: TelegramBot):
    assert send(samples.digest(), telegram_target(telegram)).startswith("1 message to Telegram")
    [sent] = telegram.sent
    assert sent.text.startswith("morning-brief: what matters, 2026-11-27")
    assert "https://news2.example/story/10" in sent.links


def test_hostile_text_stays_text_in_telegram(telegram: TelegramBot):
    trend = samples.trend(1, title=f"{samples.SCRIPT} @admin & <b>bold</b>")
    send(samples.digest((trend,)), telegram_target(telegram))
    [sent] = telegram.sent
    assert "<script>alert('x')</script>" in sent.text  # shown as text
    assert "@\u200badmin" in sent.text and "@admin" not in sent.text
    assert "<script>" not in sent.html


def test_a_huge_digest_is_split_under_4096_characters(telegram: TelegramBot):
    digest = samples.huge(trends=40, summary_chars=5000)
    send(digest, telegram_target(telegram))
    sent = telegram.sent
    assert len(sent) > 2
    assert all(len(s.text.encode("utf-16-le")) // 2 <= 4096 for s in sent)
    assert sent[-1].text.endswith(f"part {len(sent)} of {len(sent)}")


def test_a_wrong_chat_is_a_permanent_failure_with_telegrams_words(telegram: TelegramBot):
    with pytest.raises(DeliveryError, match="chat not found") as failure:
        send(samples.digest(), telegram_target(telegram, chat="-100999"))
    assert failure.value.permanent
    assert telegram.token not in str(failure.value)


def test_telegrams_429_parameters_retry_after_is_honoured(telegram: TelegramBot):
    telegram.rate_limit(1)
    started = time.monotonic()
    send(samples.digest(), telegram_target(telegram))
    assert time.monotonic() - started >= 1
    assert len(telegram.sent) == 1
    telegram.rate_limit(90)
    with pytest.raises(DeliveryError, match="retry after 90 s") as failure:
        send(samples.digest(), telegram_target(telegram))
    assert failure.value.retry_delay is not None and not failure.value.permanent


# Generic webhook ----------------------------------------------------------------------------


def test_a_signed_webhook_carries_the_digest_json_and_a_verifiable_signature():
    with WebhookReceiver(secret=SECRET) as receiver:
        target = WebhookTarget(kind="webhook", url=receiver.url_for("/hook"), secret=SECRET)
        digest = samples.digest()
        send(digest, target)
        [got] = receiver.accepted
        assert got.json()["id"] == digest.id
        assert got.headers["x-trendfinder-digest"] == digest.id
        assert got.headers["x-trendfinder-signature"].startswith("sha256=")


def test_a_wrong_secret_is_refused_by_the_receiver_and_permanent():
    with WebhookReceiver(secret=SECRET) as receiver:
        target = WebhookTarget(kind="webhook", url=receiver.url_for("/hook"), secret="x" * 20)
        with pytest.raises(DeliveryError, match="HTTP 401") as failure:
            send(samples.digest(), target)
        assert failure.value.permanent and receiver.accepted == []


def test_a_webhook_5xx_is_retried_later_and_503_retry_after_is_honoured():
    with WebhookReceiver() as receiver:
        target = WebhookTarget(kind="webhook", url=receiver.url_for("/hook"), timeout=5)
        receiver.fail(500)
        with pytest.raises(DeliveryError, match="HTTP 500") as failure:
            send(samples.digest(), target)
        assert not failure.value.permanent
        receiver.fail(503, retry_after=1)
        send(samples.digest(), target)
        assert [r.status for r in receiver.received] == [500, 503, 200]


# Apprise ------------------------------------------------------------------------------------


def test_apprise_notifies_each_url_with_the_markdown_digest():
    with WebhookReceiver() as one, WebhookReceiver() as two:
        urls = tuple(f"json://127.0.0.1:{s.port}/notify" for s in (one, two))
        target = AppriseTarget(kind="apprise", urls=urls)
        assert send(samples.digest(), target) == "2 Apprise notifications (apprise)"
        for receiver in (one, two):
            [got] = receiver.accepted
            body = got.json()
            assert body["title"] == "morning-brief: what matters, 2026-11-27"
            assert (
                "[outlet-2: Outlet report number 10 on the story](<https://news2.example/story/10>)"
                in body["message"]
            )


def test_apprise_retries_only_the_urls_not_yet_notified():
    with WebhookReceiver() as one, WebhookReceiver() as two:
        urls = tuple(f"json://127.0.0.1:{s.port}/notify" for s in (one, two))
        target = AppriseTarget(kind="apprise", urls=urls)
        two.fail(500)
        recorded: list[int] = []
        with pytest.raises(DeliveryError, match="URL 2 of 2"):
            send(samples.digest(), target, Progress(0, recorded.append))
        send(samples.digest(), target, Progress(recorded[-1], recorded.append))
        assert len(one.accepted) == 1 and len(two.accepted) == 1


def test_an_apprise_url_it_cannot_read_is_permanent():
    target = AppriseTarget(kind="apprise", urls=("nosuchscheme://x",))
    with pytest.raises(DeliveryError, match="does not understand") as failure:
        send(samples.digest(), target)
    assert failure.value.permanent


# Filters ------------------------------------------------------------------------------------


def test_min_trends_and_only_alerts_choose_which_digests_a_target_gets():
    digest = samples.digest()  # four trends, a scheduled digest
    assert wants(discord_target("https://d.example/x", min_trends=4), digest)
    assert not wants(discord_target("https://d.example/x", min_trends=5), digest)
    assert not wants(discord_target("https://d.example/x", only_alerts=True), digest)
    assert json.loads(digest.to_json())["id"] == digest.id
