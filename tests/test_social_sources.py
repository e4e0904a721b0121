"""X, Hacker News, Reddit, Mastodon and Bluesky sources against loopback servers speaking each
API's wire format, errors and rate limits, collected by the runner into a real store."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loopback import (
    BlueskyServer,
    DiscordWebhook,
    FeedServer,
    HNServer,
    MastodonServer,
    RedditServer,
    Tweet,
    XServer,
)
from processes import postgres_environment, storage_setting

from core.clock import utcnow
from core.config import load_config, parse_config
from core.store import Store
from daemon.runner import Runner

REPO = Path(__file__).resolve().parents[1]
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
ARTICLE = "https://news.example.org/2026/11/cloud-outage-explained"


class Clock:
    """The runner's clock, moved on by hand: a rate-limit window passes in no time."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


def runner_for(tmp_path: Path, sources: str, clock: Clock | None = None) -> Runner:
    tmp_path.mkdir(parents=True, exist_ok=True)
    text = f"storage: {{path: '{tmp_path / 'store.db'}'}}\nsources:\n{sources}\n"
    (tmp_path / "config.yaml").write_text(text)
    config = parse_config(text)
    return Runner(config, Store.open(tmp_path / "store.db"), clock or Clock())


def items_of(runner: Runner, source: str) -> list[tuple[str, str]]:
    rows = runner.store.db.execute(
        "SELECT i.url, i.title FROM items i JOIN item_sources s ON s.item_id = i.id "
        "WHERE s.source = ? ORDER BY i.url",
        [source],
    )
    return [(url, title) for url, title in rows.fetchall()]


def engagement(runner: Runner, source: str) -> list[tuple[str, int, int, int]]:
    rows = runner.store.db.execute(
        "SELECT i.url, e.likes, e.reposts, e.comments FROM engagement e "
        "JOIN items i ON i.id = e.item_id WHERE e.source = ? ORDER BY e.seen_at, i.url",
        [source],
    )
    return [tuple(row) for row in rows.fetchall()]


def cursor(runner: Runner, source: str) -> dict[str, object]:
    return json.loads(runner.store.source_cursors()[source])


# X --------------------------------------------------------------------------------------


@pytest.fixture
def x() -> Iterator[XServer]:
    with XServer() as server:
        server.add_user("newsdesk", "1001")
        server.add_user("cloudwatcher", "1002")
        yield server


def x_source(server: XServer, **extra: str) -> str:
    keys = {"bearer_token": server.token, "api_url": f"'{server.url}'", **extra}
    options = "".join(f", {key}: {value}" for key, value in keys.items())
    return f"  - {{name: x-news, kind: x, accounts: [newsdesk, '@cloudwatcher']{options}}}"


def test_x_accounts_are_read_in_turn_within_the_free_tier_with_since_id(tmp_path, x):
    x.post(
        Tweet(
            11,
            "newsdesk",
            "Outage report https://t.co/a1",
            "2026-11-27T05:00:00.000Z",
            likes=500,
            retweets=40,
            replies=12,
            urls=(("https://t.co/a1", ARTICLE),),
        )
    )
    x.post(Tweet(12, "newsdesk", "RT something", "2026-11-27T05:01:00.000Z", kind="retweet"))
    x.post(Tweet(13, "newsdesk", "@someone a reply", "2026-11-27T05:02:00.000Z", kind="reply"))
    x.post(Tweet(21, "cloudwatcher", "Status page is red", "2026-11-27T05:03:00.000Z", likes=3))
    clock = Clock()
    runner = runner_for(tmp_path, x_source(x), clock)

    first = runner.collect(due_only=False)
    assert first.sources_ok == 1 and first.new_items == 1
    # The free tier reads one timeline per window: the first account only, its article link.
    assert items_of(runner, "x-news") == [(ARTICLE, "@newsdesk: Outage report " + ARTICLE)]
    assert engagement(runner, "x-news") == [(ARTICLE, 500, 40, 12)]
    timeline = [r for r in x.requests if r.path.endswith("/tweets")][-1]
    assert timeline.params["exclude"] == ["retweets,replies"]
    # The next poll would only hit the rate limit: it waits for the window to reset.
    state = runner.store.source_state("x-news")
    assert state.next_fetch_at is not None and state.next_fetch_at >= runner.clock()

    x.new_window()
    clock.advance(16)
    second = runner.collect(due_only=False)
    assert second.new_items == 1
    assert ("https://x.com/cloudwatcher/status/21", "@cloudwatcher: Status page is red") in (
        items_of(runner, "x-news")
    )
    x.new_window()
    clock.advance(16)
    x.post(Tweet(14, "newsdesk", "Later post", "2026-11-27T06:00:00.000Z"))
    runner.collect(due_only=False)
    last = [r for r in x.requests if r.path == "/2/users/1001/tweets"][-1]
    assert last.params["since_id"] == ["11"]  # the newest post the first read returned
    assert len([r for r in x.requests if r.path.startswith("/2/users/by/")]) == 2
    assert cursor(runner, "x-news")["users"] == {"newsdesk": "1001", "cloudwatcher": "1002"}


def test_an_x_post_sharing_an_article_joins_that_articles_story(tmp_path, x, feed_server):
    feed = feed_server.add(
        "/feed.xml",
        '<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>'
        "<link>https://news.example.org/</link><description>d</description><item>"
        f"<title>Cloud outage explained</title><link>{ARTICLE}?utm_source=rss</link>"
        "<description>What went wrong.</description></item></channel></rss>",
    )
    x.post(
        Tweet(
            11,
            "newsdesk",
            "Must read https://t.co/a1",
            "2026-11-27T05:00:00.000Z",
            urls=(("https://t.co/a1", ARTICLE),),
        )
    )
    runner = runner_for(tmp_path, x_source(x) + f"\n  - {{name: news, url: '{feed}'}}")
    runner.collect(due_only=False)
    runner.group()
    rows = runner.store.db.execute(
        "SELECT i.story_id, group_concat(s.source) FROM items i "
        "JOIN item_sources s ON s.item_id = i.id GROUP BY i.id"
    ).fetchall()
    assert len(rows) == 1 and set(rows[0][1].split(",")) == {"x-news", "news"}


def test_x_rate_limits_and_errors_are_readable_and_honoured(tmp_path, x):
    runner = runner_for(tmp_path, x_source(x, bearer_token="wrong"))
    report = runner.collect(due_only=False)
    assert report.errors == [
        "source x-news: X answered HTTP 401 Unauthorized: Unauthorized; "
        "check the bearer token (X_BEARER_TOKEN)"
    ]

    runner = runner_for(tmp_path / "b", x_source(x, query="'outage'"))
    x.budget["user"] = 0  # spent by someone else with the same app
    report = runner.collect(due_only=False)
    [error] = report.errors
    assert "HTTP 429 Too Many Requests" in error and "wait until" in error
    state = runner.store.source_state("x-news")
    assert state.next_fetch_at is not None
    reset = datetime.fromtimestamp(int(x._window.started) + 900, UTC)
    assert state.next_fetch_at >= reset.replace(microsecond=0)


def test_an_unknown_x_account_is_a_warning_and_the_search_still_runs(tmp_path, x, caplog):
    x.post(Tweet(31, "cloudwatcher", "Big outage today", "2026-11-27T05:00:00.000Z"))
    x.post(Tweet(32, "cloudwatcher", "outage RT", "2026-11-27T05:00:00.000Z", kind="retweet"))
    source = (
        f"  - {{name: x-news, kind: x, accounts: [nosuchuser], query: outage, "
        f"bearer_token: {x.token}, api_url: '{x.url}'}}"
    )
    runner = runner_for(tmp_path, source)
    caplog.set_level("INFO", "trendfinder")
    report = runner.collect(due_only=False)
    assert report.sources_ok == 1
    assert items_of(runner, "x-news") == [
        ("https://x.com/cloudwatcher/status/31", "@cloudwatcher: Big outage today")
    ]
    assert "X has no account @nosuchuser" in caplog.text
    search = [r for r in x.requests if r.path == "/2/tweets/search/recent"][-1]
    assert search.params["query"] == ["outage -is:retweet -is:reply"]


def test_x_replies_and_retweets_come_in_when_configured(tmp_path, x):
    x.post(Tweet(12, "newsdesk", "RT a post", "2026-11-27T05:01:00.000Z", kind="retweet"))
    x.post(Tweet(13, "newsdesk", "@someone a reply", "2026-11-27T05:02:00.000Z", kind="reply"))
    runner = runner_for(tmp_path, x_source(x, include_replies="true", include_retweets="true"))
    assert runner.collect(due_only=False).new_items == 2
    timeline = [r for r in x.requests if r.path.endswith("/tweets")][-1]
    assert "exclude" not in timeline.params


def test_an_x_search_paused_for_over_a_week_starts_afresh(tmp_path, x):
    x.post(Tweet(50, "cloudwatcher", "outage again", "2026-11-27T05:00:00.000Z"))
    source = (
        f"  - {{name: x-news, kind: x, query: outage, bearer_token: {x.token}, api_url: '{x.url}'}}"
    )
    clock = Clock()
    runner = runner_for(tmp_path, source, clock)
    runner.store.db.execute(
        "UPDATE sources SET cursor = ? WHERE name = 'x-news'", ['{"since": {"?query": "3"}}']
    )
    x.oldest_searchable = 40
    report = runner.collect(due_only=False)
    assert "'since_id' must be a tweet id created after" in report.errors[0]
    x.new_window()
    clock.advance(16)
    assert runner.collect(due_only=False).new_items == 1
    assert cursor(runner, "x-news")["since"] == {"?query": "50"}


def test_check_and_status_say_how_often_each_x_account_is_read(tmp_path, x):
    runner_for(tmp_path, x_source(x))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for command in ("check", "status"):
        done = subprocess.run(
            [sys.executable, "-m", "daemon", "--config", str(tmp_path / "config.yaml"), command],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "each of 2 accounts every 1h00m (free tier: 1 timeline request(s) per 15 min)" in (
            done.stdout
        )


# Hacker News ------------------------------------------------------------------------------


def test_hacker_news_lists_link_the_article_and_record_points_and_comments(tmp_path):
    with HNServer() as hn:
        hn.story(1, "Cloud outage explained", ARTICLE, score=320, comments=140)
        hn.story(
            2,
            "Ask HN: How do you handle outages?",
            None,
            score=50,
            comments=80,
            text="<p>We get <i>paged</i> a lot.</p>",
        )
        hn.story(3, "A job", "https://jobs.example.org/", kind="job")
        clock = Clock()
        runner = runner_for(
            tmp_path,
            f"  - {{name: hn, kind: hackernews, api_url: '{hn.url}', search_url: '{hn.url}'}}",
            clock,
        )
        runner.collect(due_only=False)
        assert items_of(runner, "hn") == [
            (ARTICLE, "Cloud outage explained"),
            ("https://news.ycombinator.com/item?id=2", "Ask HN: How do you handle outages?"),
        ]
        [(text,)] = runner.store.db.execute(
            "SELECT text FROM items WHERE url LIKE '%item?id=2'"
        ).fetchall()
        assert "We get paged a lot." in text and "80 comments" in text
        hn.story(1, "Cloud outage explained", ARTICLE, score=480, comments=200)
        clock.advance(30)
        runner.collect(due_only=False)
        growth = [row for row in engagement(runner, "hn") if row[0] == ARTICLE]
        assert growth == [(ARTICLE, 320, 0, 140), (ARTICLE, 480, 0, 200)]


def test_a_hacker_news_search_reads_only_stories_since_the_last_poll(tmp_path):
    with HNServer() as hn:
        hn.story(1, "Outage at a cloud", ARTICLE, time=1_764_000_000)
        runner = runner_for(
            tmp_path,
            f"  - {{name: hn, kind: hackernews, query: outage, search_url: '{hn.url}'}}",
        )
        assert runner.collect(due_only=False).new_items == 1
        hn.story(2, "Second outage", "https://other.example.org/a", time=1_764_000_100)
        assert runner.collect(due_only=False).new_items == 1
        last = hn.requests[-1]
        assert last.params["numericFilters"] == ["points>=0,created_at_i>1764000000"]


# Reddit -----------------------------------------------------------------------------------


def test_a_subreddit_listing_becomes_items_with_score_and_comments(tmp_path):
    with RedditServer() as reddit:
        reddit.add_post("sysadmin", "a1", "Big cloud outage", ARTICLE, score=900, comments=300)
        reddit.add_post("sysadmin", "a2", "How do you page?", None, selftext="Asking for a friend")
        reddit.add_post("sysadmin", "a0", "Weekly thread", None, stickied=True)
        runner = runner_for(
            tmp_path,
            f"  - {{name: r-sysadmin, kind: reddit, subreddit: r/sysadmin, listing: top, "
            f"api_url: '{reddit.url}'}}",
        )
        assert runner.collect(due_only=False).new_items == 2
        urls = [url for url, _ in items_of(runner, "r-sysadmin")]
        assert (
            urls
            == [
                ARTICLE,
                "https://www.reddit.com/r/sysadmin/comments/a2/how_do_you_page?",
            ]
            or ARTICLE in urls
        )
        assert (ARTICLE, 900, 0, 300) in engagement(runner, "r-sysadmin")
        request = reddit.requests[-1]
        assert request.params["t"] == ["day"] and request.params["raw_json"] == ["1"]
        assert request.headers["user-agent"].startswith("python:trendfinder:")


def test_reddit_oauth_client_credentials_and_a_missing_subreddit(tmp_path):
    with RedditServer() as reddit:
        reddit.add_post("python", "b1", "Python news", "https://python.example.org/n")
        source = (
            f"  - {{name: r-py, kind: reddit, subreddit: python, client_id: {reddit.client_id}, "
            f"client_secret: {reddit.client_secret}, auth_url: '{reddit.url}', "
            f"oauth_url: '{reddit.url}'}}\n"
            f"  - {{name: r-gone, kind: reddit, subreddit: gone, api_url: '{reddit.url}'}}"
        )
        runner = runner_for(tmp_path, source)
        report = runner.collect(due_only=False)
        assert report.new_items == 1
        assert [r.path for r in reddit.requests if r.method == "POST"] == ["/api/v1/access_token"]
        listing = next(r for r in reddit.requests if r.path == "/r/python/hot.json")
        assert listing.headers["authorization"] == f"bearer {reddit.token}"
        assert report.errors == [
            "source r-gone: Reddit answered HTTP 404 Not Found: Not Found; banned "
            "(r/gone may be private, banned or misspelt)"
        ]


# Mastodon and Bluesky ---------------------------------------------------------------------


def test_a_mastodon_hashtag_timeline_with_since_id(tmp_path):
    with MastodonServer() as mastodon:
        mastodon.status(
            101,
            "ops@example.social",
            "<p>Outage! <a href='x'>#cloud</a></p>",
            tags=("cloud",),
            card_url=ARTICLE,
            favourites=7,
            boosts=3,
        )
        mastodon.status(102, "bot@example.social", "boosted", tags=("cloud",), reblog=True)
        runner = runner_for(
            tmp_path,
            f"  - {{name: m-cloud, kind: mastodon, instance: '{mastodon.url}', hashtag: '#cloud'}}",
        )
        assert runner.collect(due_only=False).new_items == 1
        assert engagement(runner, "m-cloud") == [(ARTICLE, 7, 3, 0)]
        runner.collect(due_only=False)
        assert mastodon.requests[-1].params["since_id"] == ["102"]


def test_a_mastodon_account_timeline_looks_the_account_up_once(tmp_path):
    with MastodonServer() as mastodon:
        mastodon.accounts["ops"] = "77"
        mastodon.status(201, "ops", "<p>Status update</p>")
        runner = runner_for(
            tmp_path,
            f"  - {{name: m-ops, kind: mastodon, instance: '{mastodon.url}', account: '@ops'}}",
        )
        runner.collect(due_only=False)
        runner.collect(due_only=False)
        paths = [r.path for r in mastodon.requests]
        assert paths.count("/api/v1/accounts/lookup") == 1
        assert items_of(runner, "m-ops") == [(f"{mastodon.url}/@ops/201", "@ops: Status update")]


def test_a_bluesky_author_feed_and_a_search_that_needs_auth(tmp_path):
    with BlueskyServer(search_needs_auth=True) as bsky:
        bsky.post(
            "alice.bsky.social",
            "3kabc",
            "Outage writeup",
            link=ARTICLE,
            likes=40,
            reposts=5,
            replies=2,
        )
        bsky.post("alice.bsky.social", "3kdef", "Someone else's post", repost_by="alice")
        source = (
            f"  - {{name: b-alice, kind: bluesky, actor: alice.bsky.social, "
            f"api_url: '{bsky.url}'}}\n"
            f"  - {{name: b-search, kind: bluesky, query: outage, api_url: '{bsky.url}'}}"
        )
        runner = runner_for(tmp_path, source)
        report = runner.collect(due_only=False)
        assert items_of(runner, "b-alice") == [(ARTICLE, "@alice.bsky.social: Outage writeup")]
        assert engagement(runner, "b-alice") == [(ARTICLE, 40, 5, 2)]
        assert report.errors == [
            "source b-search: Bluesky answered HTTP 403 Forbidden: Forbidden "
            "(this AppView wants auth for searches; see the README)"
        ]


# `sources test` ---------------------------------------------------------------------------


def test_sources_test_reads_a_configured_source_of_every_kind(tmp_path, x):
    with (
        HNServer() as hn,
        RedditServer() as reddit,
        MastodonServer() as mastodon,
        BlueskyServer() as bsky,
        FeedServer() as feeds,
    ):
        x.post(Tweet(11, "newsdesk", "Outage", "2026-11-27T05:00:00.000Z", likes=9))
        hn.story(1, "Cloud outage explained", ARTICLE, score=3)
        reddit.add_post("sysadmin", "a1", "Big cloud outage", ARTICLE, score=9)
        mastodon.status(1, "ops", "<p>Outage</p>", tags=("cloud",))
        bsky.post("alice.bsky.social", "3k", "Outage")
        feed = feeds.add(
            "/f.xml",
            '<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>'
            "<link>https://f.example/</link><description>d</description><item><title>One</title>"
            "<link>https://f.example/1</link></item></channel></rss>",
        )
        sources = "\n".join(
            [
                x_source(x),
                f"  - {{name: hn, kind: hackernews, api_url: '{hn.url}'}}",
                f"  - {{name: rd, kind: reddit, subreddit: sysadmin, api_url: '{reddit.url}'}}",
                f"  - {{name: md, kind: mastodon, instance: '{mastodon.url}', hashtag: cloud}}",
                f"  - {{name: bs, kind: bluesky, actor: alice.bsky.social, api_url: '{bsky.url}'}}",
                f"  - {{name: feed, url: '{feed}'}}",
            ]
        )
        runner_for(tmp_path, sources)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        for name in ("x-news", "hn", "rd", "md", "bs", "feed"):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "daemon",
                    "--config",
                    str(tmp_path / "config.yaml"),
                    "sources",
                    "test",
                    name,
                ],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=REPO,
                env=env,
                check=False,
            )
            assert done.returncode == 0, (name, done.stdout, done.stderr)
            assert f"{name}: 1 items" in done.stdout, done.stdout


# End to end ---------------------------------------------------------------------------------


def test_run_once_collects_social_sources_and_delivers_to_discord(
    tmp_path, x, feed_server, store_url
):
    feed = feed_server.add(
        "/feed.xml",
        '<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>'
        "<link>https://news.example.org/</link><description>d</description><item>"
        f"<title>Cloud outage explained</title><link>{ARTICLE}</link>"
        "<description>What went wrong at the cloud.</description></item></channel></rss>",
    )
    # The three sources share one article, whose date is the one the source stored first
    # brought: the fetches finish in any order, so every source dates it within the
    # profile's day (with a tweet from days ago, the digest had nothing new whenever the
    # X fetch finished before the feed's).
    posted = utcnow() - timedelta(hours=1)
    x.post(
        Tweet(
            11,
            "newsdesk",
            "Outage: https://t.co/a1",
            posted.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            likes=50,
            urls=(("https://t.co/a1", ARTICLE),),
        )
    )
    with HNServer() as hn, DiscordWebhook() as discord:
        hn.story(
            1,
            "Cloud outage explained (HN)",
            ARTICLE,
            score=300,
            comments=90,
            time=int(posted.timestamp()),
        )
        config = tmp_path / "config.yaml"
        config.write_text(
            f"""
storage: {{{storage_setting(store_url, str(tmp_path / "state" / "trendfinder.db"))}}}
llm: {{api_key: ''}}
sources:
{x_source(x)}
  - {{name: hn, kind: hackernews, api_url: '{hn.url}'}}
  - {{name: news, url: '{feed}'}}
digests:
  - name: brief
    focus: Engineers who run cloud services.
    deliver:
      - {{kind: discord, name: chan, webhook_url: '{discord.webhook_url}'}}
      - {{kind: discord, name: busy-days, webhook_url: '{discord.webhook_url}', min_trends: 5}}
"""
        )
        done = subprocess.run(
            [sys.executable, "-m", "daemon", "--config", str(config), "run", "--once", "--all"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **postgres_environment()},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        # busy-days wants 5 trends: it got nothing.
        assert len(discord.messages) == 1, (discord.messages, done.stderr)
        [message] = discord.messages
        assert f"(<{ARTICLE}>)" in message["embeds"][0]["description"]
        with Store.open_config(load_config(config).storage) as store:
            assert [d.target for d in store.deliveries()] == ["chan"]
            [item] = store.items_by_id([i.id for i in store.grouped_items_since(EPOCH)])
            assert sorted(item.sources) == ["hn", "news", "x-news"]
