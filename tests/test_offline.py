"""The offline digest as a reader sees it: titles, summaries, why it matters, what is left out."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from bench.offline_showcase import collected
from loopback import FeedServer

from core.config import parse_config
from core.items import StoredItem
from core.store import Store
from daemon.runner import Runner
from digests.build import build_offline, scored_stories
from digests.newsworthy import kind_of
from digests.pack import pack
from digests.selection import Selection
from digests.tokens import load_counter
from digests.validate import scrub

NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
WORLD = "World news: wars and conflicts, diplomacy, elections and governments around the world."


def profile(focus: str = WORLD):
    config = parse_config(
        "sources: [{name: a, url: 'https://a.example/feed'}]\n"
        f"digests: [{{name: d, focus: '{focus}', deliver: [{{kind: file}}]}}]\n",
        env={},
    )
    return config.digests[0]


def news_item(
    number: int,
    source: str,
    title: str,
    text: str = "",
    *,
    story: str | None = None,
    hours_ago: float = 2.0,
) -> StoredItem:
    published = NOW - timedelta(hours=hours_ago)
    return StoredItem(
        id=f"{source}-{number}",
        url=f"https://{source}.example/{number}",
        title=title,
        text=text,
        published=published,
        fetched=NOW - timedelta(minutes=30),
        sources=(source,),
        story_id=story or f"{source}-{number}",
    )


def selection(
    items: list[StoredItem],
    *,
    focus: str = WORLD,
    reported: dict[str, frozenset[str]] | None = None,
) -> Selection:
    return Selection(
        profile=profile(focus),
        window_from=NOW - timedelta(days=1),
        window_to=NOW,
        items=tuple(items),
        previous=(),
        reported=reported or {},
        source_weights={},
        usual_rates={},
    )


AGREED = "Shanghai has put all 26 million residents under lockdown as Omicron cases surge."


def lockdown_day() -> list[StoredItem]:
    """A three-outlet story, each outlet also carrying its own furniture on other items."""
    items = [
        news_item(
            1,
            "guardian",
            "Shanghai puts whole city on lockdown as Covid cases surge",
            "Residents complain of a lack of organisation\n\nCoronavirus – latest updates\n\n"
            f"See all our coronavirus coverage\n\n{AGREED} Food deliveries are delayed.\n"
            "Continue reading...",
            story="shanghai",
            hours_ago=5,
        ),
        news_item(
            2,
            "buzzfeed",
            "Shanghai's 26 million residents are now in lockdown",
            "All 26 million residents of Shanghai are under lockdown as Omicron cases surge.\n\n"
            "View Entire Post ›",
            story="shanghai",
            hours_ago=4,
        ),
        news_item(
            3,
            "nyt",
            "Inside Shanghai's Covid lockdown",
            "Shanghai put its 26 million residents under lockdown as Omicron cases surged. "
            "Officials admitted the difficulty of containing the variant.",
            story="shanghai",
            hours_ago=3,
        ),
    ]
    for n, topic in enumerate(("vaccines", "hospitals", "schools"), start=10):
        items.append(
            news_item(
                n,
                "guardian",
                f"Covid news on {topic}",
                f"A report on {topic}.\n\nCoronavirus – latest updates\n\n"
                "See all our coronavirus coverage\n\nContinue reading...",
            )
        )
    for n, topic in enumerate(("Bridgerton", "Disney", "Marvel"), start=20):
        items.append(
            news_item(n, "buzzfeed", f"Everything about {topic}", "So good.\n\nView Entire Post ›")
        )
    return items


def test_summary_is_what_the_outlets_agree_on_without_any_feed_furniture(tmp_path):
    chosen = selection(lockdown_day())
    digest = build_offline(chosen, NOW).digest
    top = digest.trends[0]
    assert "Shanghai" in top.title and "lockdown" in top.title.lower()
    assert "26 million residents" in top.summary and "Omicron" in top.summary
    furniture = ("See all our", "latest updates", "View Entire Post", "Continue reading")
    for trend in digest.trends:
        assert not any(words in trend.summary for words in furniture), trend.summary
    # ...and the model's dump never carries it either.
    counter = load_counter("o200k_base", tmp_path, download=False)
    dump = pack(scored_stories(chosen), counter, 20_000).dump
    assert "Shanghai" in dump
    assert not any(words in dump for words in furniture)


def test_why_it_matters_says_who_broke_it_when_and_how_fast_it_spread():
    outlets = ["wire", "bbc", "guardian", "nyt", "ft", "sky", "verge"]
    items = [
        news_item(
            n,
            source,
            f"Zelensky tells UN Security Council Russia must face justice for Bucha ({source})",
            "Ukraine's president told the UN Security Council that Russian leaders must be "
            "brought to justice for war crimes in Bucha.",
            story="bucha",
            hours_ago=6 - n * 0.5,
        )
        for n, source in enumerate(outlets)
    ]
    items += [
        news_item(
            10 + n,
            source,
            "Local bakery wins award",
            "A bakery won.",
            story="bakery",
            hours_ago=hours,
        )
        for n, (source, hours) in enumerate([("bbc", 12), ("sky", 6), ("nyt", 2)])
    ]
    digest = build_offline(selection(items), NOW).digest
    top = digest.trends[0]
    assert "Zelensky" in top.title
    assert top.why_it_matters.startswith(
        "First reported by wire at 01:00 UTC on 27 November; 6 more outlets in 3 hours, "
        "the fastest-spreading story of this digest."
    )
    assert "Matches your focus on" in top.why_it_matters
    assert "governments around the world" in top.why_it_matters or "wars" in top.why_it_matters
    bakery = next(t for t in digest.trends if "bakery" in t.title)
    assert "fastest" not in bakery.why_it_matters and "focus" not in bakery.why_it_matters


def test_a_developing_story_says_what_is_new_since_the_last_digest():
    items = [
        news_item(1, "bbc", "Ceasefire talks resume in Istanbul", "Talks resumed.", story="talks"),
        news_item(2, "ft", "Ceasefire talks resume in Istanbul", "Talks resumed.", story="talks"),
        news_item(
            3, "sky", "Ceasefire talks in Istanbul end without a deal", "No deal.", story="talks"
        ),
    ]
    chosen = selection(items, reported={"talks": frozenset({"bbc"})})
    trend = build_offline(chosen, NOW).digest.trends[0]
    assert trend.status == "developing"
    assert "Developing since an earlier digest: 3 new items, now also reported by ft and sky" in (
        trend.why_it_matters
    )
    assert "latest: “Ceasefire talks in Istanbul end without a deal”" in trend.why_it_matters


def test_focus_is_earned_by_meaning_not_by_a_shared_word():
    items = [
        news_item(
            1,
            "nasa",
            "NASA astronaut sets a world record for time in space",
            "Mark Vande Hei returned to Earth after 355 days on the International Space Station.",
        ),
        news_item(
            2,
            "ft",
            "Zelensky tells the UN Security Council Russia must face justice",
            "Ukraine's president told the Security Council that Russian leaders must be brought "
            "to justice for war crimes in Bucha.",
        ),
    ]
    trends = {t.title: t for t in build_offline(selection(items), NOW).digest.trends}
    astronaut = trends["NASA astronaut sets a world record for time in space"]
    assert "focus" not in astronaut.why_it_matters
    speech = trends["Zelensky tells the UN Security Council Russia must face justice"]
    assert "Matches your focus on" in speech.why_it_matters
    assert next(iter(trends)) == speech.title


def test_listicles_tips_deals_and_episode_lists_do_not_become_trends():
    shared = [
        ("Grand National 2022 tips, latest odds and best bets", "tips"),
        ("20 Of The Best TV Shows To Stream On Apple TV+ In April", "listicle"),
        ("Deals: Get Apple's 14-Inch MacBook Pro for Up to $250 Off", "deal"),
        ("Which Golden Girl Are You Based On Your Food Preferences?", "quiz"),
    ]
    items = [
        news_item(n * 10 + k, source, title, "Read on.", story=story)
        for n, (title, story) in enumerate(shared)
        for k, source in enumerate(["telegraph", "guardian", "buzzfeed"])
    ]
    items += [
        news_item(100 + n, "offmenu", title, "Hosted on Acast.", story=f"ep{n}")
        for n, title in enumerate(
            [
                "Ep 135: Tom Davis",
                "Ep 136: Amy Gledhill",
                "Ep 137: Phil Wang",
                "Best of 2022: Part 2",
            ]
        )
    ]
    # Video episodes and a news outlet's podcast, each one title among a feed's news.
    items += [
        news_item(150 + n, source, title, "Watch now.", story=f"video{n}")
        for n, (source, title) in enumerate(
            [
                ("youtube", "Critical Role: Campaign 3, Episode 47"),
                ("youtube", "Critical Role: Campaign 3, Episode 48"),
                ("guardian", "The race to mine the deep sea – podcast"),
            ]
        )
    ]
    items += [
        news_item(200 + k, source, "Tiger Woods will play the Masters", "He will.", story="tiger")
        for k, source in enumerate(["nyt", "guardian"])
    ]
    digest = build_offline(selection(items), NOW).digest
    assert [trend.title for trend in digest.trends] == ["Tiger Woods will play the Masters"]
    assert digest.stats.items == len(items)  # considered, and covered, all the same


def test_the_lead_is_never_older_than_the_window():
    items = [
        news_item(
            1,
            "bbc",
            "War in Ukraine: Zelensky calls on people to support freedom",
            "Zelensky made his appeal one month after Russia invaded Ukraine.",
            story="ukraine",
            hours_ago=24 * 12,
        ),
        news_item(
            2,
            "ft",
            "Zelensky calls on UN to act on Russian war crimes",
            "Zelensky addressed the UN Security Council on Tuesday.",
            story="ukraine",
        ),
    ]
    trend = build_offline(selection(items), NOW).digest.trends[0]
    assert trend.title == "Zelensky calls on UN to act on Russian war crimes"
    assert "one month after" not in trend.summary


def test_every_bare_domain_is_defanged_whatever_its_tld():
    text = scrub("Log in at evil.example/login, sub.domain.co.uk or evil.zip before Python 3.15.")
    assert "evil[.]example" in text and "sub[.]domain[.]co[.]uk" in text and "evil[.]zip" in text
    assert "evil.example" not in text and "/login" not in text and "Python 3.15" in text
    items = [
        news_item(n, s, "Phishers copy evil.example/login pages", story="p")
        for n, s in enumerate(["a", "b"])
    ]
    trend = build_offline(selection(items), NOW).digest.trends[0]
    assert trend.title == "Phishers copy evil[.]example pages"


def rss(items: list[tuple[str, datetime]]) -> str:
    entries = "".join(
        f"<item><title>{title}</title><link>https://pod.example/{n}</link>"
        f"<guid>https://pod.example/{n}</guid><pubDate>{format_datetime(when)}</pubDate>"
        "<description>An episode.</description></item>"
        for n, (title, when) in enumerate(items)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<link>https://pod.example/</link><description>d</description>{entries}</channel></rss>"
    )


def test_a_feeds_back_catalogue_on_its_first_collection_is_stored_but_not_new():
    now = datetime.now(UTC).replace(microsecond=0)
    catalogue = [
        (f"Interview with guest number {n}", now - timedelta(days=3 + n)) for n in range(40)
    ]
    fresh = [("Guest number 41 joins the show", now - timedelta(hours=2))]
    with FeedServer() as server, tempfile.TemporaryDirectory() as scratch:
        url = server.add("/pod.xml", rss(catalogue + fresh), "application/rss+xml")
        folder = Path(scratch)
        config = parse_config(
            f"storage: {{path: '{folder / 'state.db'}'}}\nllm: {{api_key: ''}}\n"
            f"sources: [{{name: pod, url: '{url}'}}]\n"
            "digests: [{name: d, focus: talk shows, deliver: [{kind: file, "
            f"directory: '{folder / 'out'}'}}]}}]\n",
            env={},
        )
        with Store.open(config.storage.database) as store:
            report = Runner(config, store, clock=lambda: now).run_once(everything=True)
            assert report.new_items == 41  # every episode is stored
            digest = store.digest(report.digests[0])
    assert digest.stats.items == 1
    assert [trend.title for trend in digest.trends] == ["Guest number 41 joins the show"]


def test_the_digest_of_the_shared_captures_reads_like_news(shared_data, tmp_path):
    """The 24 real captures, collected and digested as a new user would (the README's table)."""
    with collected(shared_data / "feeds" / "real-world", tmp_path) as (_, digest):
        trends = digest.trends
    assert len(trends) == 8
    assert digest.stats.items < 700  # 1,047 stored; the back catalogues are not new
    titles = [trend.title for trend in trends]
    assert any("Zelensky" in title or "Bucha" in title for title in titles[:3])
    assert any("Musk" in title and "Twitter" in title for title in titles[:3])
    for trend in trends:
        assert kind_of(trend.title) is None, trend.title
        assert trend.items[0].published >= digest.window.from_, trend.title
        for furniture in ("See all our", "View Entire Post", "Continue reading", "Hosted on"):
            assert furniture not in trend.summary, (trend.title, trend.summary)
        assert trend.why_it_matters.startswith(("First reported by", "Only ")), trend
    # One story of the window is the fastest-spreading; it is said of that one only (it may
    # rank below the eighth).
    fastest = [
        t for t in trends if "the fastest-spreading story of this digest" in t.why_it_matters
    ]
    assert len(fastest) <= 1
    assert not any("NASA" in t.title and "focus" in t.why_it_matters for t in trends)


def test_the_models_dump_puts_the_story_that_matches_the_focus_first(tmp_path):
    items = [
        news_item(n, source, title, text, story=story)
        for story, title, text in [
            ("cake", "Village fete crowns the best sponge cake", "The judges tasted forty cakes."),
            (
                "un",
                "Zelensky tells the UN Security Council Russia must face justice",
                "Ukraine's president addressed the Security Council on Tuesday.",
            ),
        ]
        for n, source in enumerate(["bbc", "sky"], start=1 if story == "cake" else 5)
    ]
    counter = load_counter("o200k_base", tmp_path, download=False)
    dump = pack(scored_stories(selection(items)), counter, 20_000).dump
    assert dump.index("Zelensky") < dump.index("sponge cake")
