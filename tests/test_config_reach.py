"""The social source kinds and chat targets in config.yaml: what is accepted, and errors that
name the key and what to do."""

from __future__ import annotations

import pytest

from core.config import ConfigError, XSource, parse_config

DIGEST = "digests: [{name: p, focus: x, deliver: [{kind: file}]}]"


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as failure:
        parse_config(text, env=env or {})
    return failure.value.problems


def test_every_kind_parses_from_the_readme_examples():
    config = parse_config(
        """
sources:
  - {name: x-ai, kind: x, accounts: [OpenAI, '@AnthropicAI'], query: "AI lang:en",
     bearer_token: "${X_BEARER_TOKEN}"}
  - {name: hn, kind: hackernews, stories: best}
  - {name: r, kind: reddit, subreddit: r/sysadmin, listing: top, period: week}
  - {name: m, kind: mastodon, instance: https://fosstodon.org, hashtag: python}
  - {name: b, kind: bluesky, actor: bsky.app}
  - {name: yt, url: "https://www.youtube.com/feeds/videos.xml?channel_id=UC_x5XG1OV2P6uZZ5FSM9Ttw"}
digests:
  - name: p
    focus: x
    deliver:
      - {kind: discord, webhook_url: "${DISCORD_WEBHOOK_URL}", min_trends: 3}
      - {kind: telegram, bot_token: "123:abc-DEF_9", chat_id: -1001234567890}
      - {kind: webhook, url: https://hooks.example/x, secret: 0123456789abcdef}
      - {kind: apprise, urls: ["ntfy://ntfy.sh/mytopic"], only_alerts: true}
""",
        env={"X_BEARER_TOKEN": "t", "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/a"},
    )
    x = config.sources[0]
    assert isinstance(x, XSource) and x.handles == ("OpenAI", "AnthropicAI")
    assert [s.kind for s in config.sources] == [
        "x",
        "hackernews",
        "reddit",
        "mastodon",
        "bluesky",
        "feed",
    ]
    assert [t.label for t in config.digests[0].deliver] == [
        "discord",
        "telegram:-1001234567890",
        "webhook",
        "apprise",
    ]


def test_errors_name_the_source_and_the_key():
    found = problems(
        f"""
sources:
  - {{name: a, kind: twitter, accounts: [x]}}
  - {{name: b, kind: x, bearer_token: t}}
  - {{name: c, kind: reddit, subreddit: "no spaces please"}}
  - {{name: d, kind: reddit, subreddit: ok_name, client_id: only-the-id}}
  - {{name: e, kind: x, accounts: [x], bearer_token: "${{X_BEARER_TOKEN}}"}}
{DIGEST}
"""
    )
    assert found == ["sources[4].bearer_token: environment variable X_BEARER_TOKEN is not set"]
    found = problems(
        f"""
sources:
  - {{name: a, kind: twitter, accounts: [x]}}
  - {{name: b, kind: x, bearer_token: t}}
  - {{name: c, kind: reddit, subreddit: "no spaces please"}}
  - {{name: d, kind: reddit, subreddit: ok_name, client_id: only-the-id}}
{DIGEST}
"""
    )
    assert found[0].startswith("sources[0]: Input tag 'twitter' found")
    assert "'x', 'hackernews', 'reddit', 'mastodon', 'bluesky'" in found[0]
    assert found[1] == "sources[1]: an x source needs `accounts`, a `query`, or both"
    assert found[2].startswith("sources[2].subreddit: String should match pattern")
    assert found[3] == "sources[3]: give both `client_id` and `client_secret`, or neither"


def test_a_chat_target_with_a_bad_key_is_named():
    found = problems(
        """
sources: [{name: s, url: https://s.example/feed}]
digests:
  - name: p
    focus: x
    deliver:
      - {kind: telegram, bot_token: not-a-token, chat_id: 1}
      - {kind: discord, webhook_url: discord.com/api/webhooks/1/a}
      - {kind: webhook, url: https://h.example/, secret: short}
"""
    )
    assert found[0].startswith("digests[0].deliver[0].bot_token: String should match")
    assert found[1] == "digests[0].deliver[1].webhook_url: expected an https:// URL"
    assert found[2].startswith("digests[0].deliver[2].secret: String should have at least 16")


def test_x_says_how_often_each_account_is_really_read():
    source = XSource(kind="x", name="x", accounts=("a", "b", "c", "d"), bearer_token="t")
    assert source.cadence == (
        "each of 4 accounts every 2h00m (free tier: 1 timeline request(s) per 15 min)"
    )
    basic = source.model_copy(update={"tier": "basic"})
    assert basic.account_period.total_seconds() == 1800  # all four in one poll of 30m


def test_the_new_secrets_never_reach_a_log_line():
    from daemon import logs

    config = parse_config(
        """
sources:
  - {name: x, kind: x, accounts: [a], bearer_token: AAAAbearer-token-of-x}
  - {name: r, kind: reddit, subreddit: python, client_id: id, client_secret: reddit-secret-1}
digests:
  - name: p
    focus: x
    deliver:
      - {kind: telegram, bot_token: "123:telegram-token", chat_id: 1}
      - {kind: webhook, url: "https://h.example/hook?key=webhook-key", secret: hmac-secret-0123456}
      - {kind: apprise, urls: ["ntfy://user:pass@ntfy.example/topic"]}
""",
        env={},
    )
    logs.hide_secrets(config)
    line = logs.redact(
        "AAAAbearer-token-of-x reddit-secret-1 123:telegram-token hmac-secret-0123456 "
        "https://h.example/hook?key=webhook-key ntfy://user:pass@ntfy.example/topic"
    )
    assert set(line.split()) == {"***"}
