"""The Slack target against a loopback webhook receiver that validates and answers like Slack."""

from __future__ import annotations

import pytest
import sample_digests as samples
from loopback import SlackReceiver, closed_port

from core.config import SlackTarget
from digests.deliver import DeliveryError, Progress, send


def target(url: str) -> SlackTarget:
    return SlackTarget(kind="slack", name="team", webhook_url=url, timeout=5)


def test_a_digest_posts_as_one_valid_message(slack_receiver: SlackReceiver):
    digest = samples.digest()
    assert send(digest, target(slack_receiver.webhook_url)) == "1 message to Slack (team)"
    [message] = slack_receiver.messages
    blocks = message["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "morning-brief: what matters, 2026-11-27"},
        # Names the digest, so a message in the channel leads back to `digests show ID`.
        "block_id": f"trendfinder:{digest.id}:1/1",
    }
    assert "analyzer: offline" in blocks[1]["elements"][0]["text"]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert len(sections) == len(digest.trends)
    assert "<https://news2.example/story/10|Outlet report number 10 on the story>" in sections[0]
    assert message["text"].startswith("morning-brief: what matters, 2026-11-27: 1. Story 1")


def test_invalid_blocks_is_a_failure_with_slacks_reason(slack_receiver: SlackReceiver):
    slack_receiver.fail(400, "invalid_blocks")
    with pytest.raises(DeliveryError, match="HTTP 400 invalid_blocks"):
        send(samples.digest(), target(slack_receiver.webhook_url))
    assert slack_receiver.messages == []


def test_a_429_is_waited_out_as_retry_after_says(slack_receiver: SlackReceiver):
    slack_receiver.fail_rate_limit(retry_after=1)
    send(samples.digest(), target(slack_receiver.webhook_url))
    assert [d.status for d in slack_receiver.deliveries] == [429, 200]
    # Slack saw the retry no sooner than it asked for.
    limited, retried = slack_receiver.requests
    assert retried.at - limited.at >= 1.0
    assert len(slack_receiver.messages) == 1


def test_a_long_retry_after_is_handed_to_the_outbox(slack_receiver: SlackReceiver):
    slack_receiver.fail_rate_limit(retry_after=600)
    with pytest.raises(DeliveryError, match="retry after 600 s") as failure:
        send(samples.digest(), target(slack_receiver.webhook_url))
    assert failure.value.retry_delay is not None
    assert failure.value.retry_delay.total_seconds() == 600


def test_a_huge_digest_arrives_as_several_valid_messages_in_order(slack_receiver: SlackReceiver):
    digest = samples.huge(trends=60, summary_chars=5000)
    where = send(digest, target(slack_receiver.webhook_url))
    statuses = [d.status for d in slack_receiver.deliveries]
    assert statuses == [200] * len(statuses) and len(statuses) > 1
    assert where.startswith(f"{len(statuses)} messages")
    messages = slack_receiver.messages
    assert messages[0]["blocks"][0]["type"] == "header"
    flat = " ".join(
        b["text"]["text"] for m in messages for b in m["blocks"] if b["type"] == "section"
    )
    positions = [flat.index(f"*{trend.rank}. ") for trend in digest.trends]
    assert positions == sorted(positions)


def test_a_retry_continues_after_the_parts_already_posted(slack_receiver: SlackReceiver):
    digest = samples.huge(trends=30, summary_chars=2000)
    recorded: list[int] = []

    def record(parts: int) -> None:
        recorded.append(parts)
        if parts == 1:
            slack_receiver.fail(500)  # the second message will fail

    with pytest.raises(DeliveryError, match=r"message 2 of .*HTTP 500 internal_error"):
        send(digest, target(slack_receiver.webhook_url), Progress(0, record))
    assert recorded == [1]
    send(digest, target(slack_receiver.webhook_url), Progress(recorded[-1], recorded.append))
    messages = slack_receiver.messages
    assert len(messages) == recorded[-1] > 2
    assert [m["blocks"][0]["type"] for m in messages].count("header") == 1
    assert all(f"part {n} of" in m["text"] for n, m in enumerate(messages[1:], 2))
    total = len(messages)
    assert [m["blocks"][0]["block_id"] for m in messages] == [
        f"trendfinder:{digest.id}:{n}/{total}" for n in range(1, total + 1)
    ]


def test_an_unreachable_webhook_fails_without_showing_its_secret_url():
    url = f"http://127.0.0.1:{closed_port()}/services/T000/B000/SECRETTOKEN"
    with pytest.raises(DeliveryError) as failure:
        send(samples.digest(), target(url))
    assert "SECRETTOKEN" not in str(failure.value)
    assert "cannot reach Slack" in str(failure.value)
