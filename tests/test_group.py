"""Story grouping, as a reader of the digest would notice it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

import pytest
from bench.scoring import bcubed, pairwise
from bench.synthetic import synthetic_day
from bench.uci import UCI_PATH, load_uci, small_sparse_days, stored_headline
from processes import storage_setting

from core.clock import to_text
from core.config import parse_config
from core.items import NewItem
from core.store import Store
from daemon.runner import Runner
from digests.group import assign_stories
from digests.grouping import GroupingSettings, GroupInput

MONDAY = datetime(2024, 5, 6, 9, tzinfo=UTC)
TUESDAY = datetime(2024, 5, 7, 9, tzinfo=UTC)
WEDNESDAY = datetime(2024, 5, 8, 9, tzinfo=UTC)

needs_uci = pytest.mark.skipif(not UCI_PATH.is_file(), reason=f"no UCI data at {UCI_PATH}")


def item(item_id: str, title: str, source: str = "Wire", text: str = "", when=MONDAY) -> GroupInput:
    return GroupInput(item_id=item_id, title=title, text=text, source=source, published=when)


def groups(assignment: dict[str, str]) -> set[frozenset[str]]:
    members: dict[str, set[str]] = defaultdict(set)
    for item_id, story in assignment.items():
        members[story].add(item_id)
    return {frozenset(ids) for ids in members.values()}


def test_the_same_story_from_three_outlets_becomes_one_group() -> None:
    new = [
        item("bbc-1", "Snowden tells SXSW crowd to encrypt everything", "BBC"),
        item("ap-7", "Edward Snowden at SXSW: encrypt everything", "AP"),
        item("ft-3", "Snowden's SXSW talk urges tech crowd to encrypt", "FT"),
        item("ft-4", "Chiquita and Fyffes agree merger to create banana giant", "FT"),
    ]
    assert groups(assign_stories(new).stories) == {
        frozenset({"bbc-1", "ap-7", "ft-3"}),
        frozenset({"ft-4"}),
    }


def test_unrelated_headlines_that_share_common_words_stay_apart() -> None:
    new = [
        item("a", "Apple shares fall after weak iPhone sales", "Reuters"),
        item("b", "Apple pie recipe wins county fair contest", "Food & Wine"),
        item("c", "Shares fall as oil prices climb", "Bloomberg"),
        item("d", "Weak sales hit toy maker profits", "WSJ"),
        item("e", "County fair opens with record crowds", "Local News"),
        item("f", "New York marathon draws record field", "NYT"),
        item("g", "New York pizza shop wins award", "Eater"),
    ]
    assert all(len(group) == 1 for group in groups(assign_stories(new).stories))


# The demo's CloudNimbus outage as its four sample feeds tell it (daemon/demo_feeds/).
CLOUDNIMBUS = [
    item(
        "wire",
        "CloudNimbus outage knocks thousands of websites offline",
        "meridian-wire",
        "A CloudNimbus outage in its eastern data centre region knocked thousands of websites "
        "and apps offline for more than four hours on Tuesday. The company blamed a faulty "
        "configuration change to its load balancers.",
    ),
    item(
        "ledger",
        "CloudNimbus outage: thousands of websites offline after config change",
        "tech-ledger",
        "Thousands of websites went offline during a four-hour CloudNimbus outage. Engineers "
        "traced the failure to a configuration change pushed to load balancers in one region, "
        "and customers are asking why it spread so far.",
    ),
    item(
        "herald",
        "Websites down across the world as CloudNimbus outage hits",
        "northern-herald",
        "Banks, shops and news websites went offline as a CloudNimbus outage spread across its "
        "eastern region. Thousands of websites were affected.",
    ),
    item(
        "devnotes",
        "CloudNimbus outage post-mortem: a load balancer config change took thousands of "
        "websites offline",
        "devnotes",
        "CloudNimbus published a post-mortem of the outage: a configuration change to its load "
        "balancers cascaded across the region.",
    ),
]


def test_four_outlets_on_one_outage_are_one_story_in_a_small_batch() -> None:
    assert groups(assign_stories(CLOUDNIMBUS).stories) == {
        frozenset(i.item_id for i in CLOUDNIMBUS)
    }


def test_any_two_reports_of_the_outage_group_even_as_a_batch_of_two() -> None:
    # Words the two share ("outage", "websites") are rare in English, so they weigh heavily
    # even though every item in this tiny batch has them.
    for first, second in combinations(CLOUDNIMBUS, 2):
        assert len(groups(assign_stories([first, second]).stories)) == 1, (
            first.title,
            second.title,
        )


def test_a_late_report_of_the_outage_joins_the_story_its_anchors_already_have() -> None:
    [herald] = [i for i in CLOUDNIMBUS if i.item_id == "herald"]
    earlier = [i for i in CLOUDNIMBUS if i is not herald]
    earlier_stories = assign_stories(earlier).stories
    [outage_story] = set(earlier_stories.values())
    anchors = [(i, earlier_stories[i.item_id]) for i in earlier]
    late = [
        herald,
        item("rates", "Central bank raises interest rates again as inflation stays high"),
    ]
    stories = assign_stories(late, anchors).stories
    assert stories["herald"] == outage_story != stories["rates"]


def test_near_duplicates_collapse_even_with_rewritten_headlines() -> None:
    wire_text = (
        "WASHINGTON (AP) - The Federal Reserve left interest rates unchanged on Wednesday and "
        "signalled it expects to cut them later this year if inflation keeps easing, a move "
        "investors had widely expected after weeks of mixed economic data from the labour market."
    )
    new = [
        item("1", "Fed holds rates steady", "AP", wire_text),
        item("2", "Central bank pauses again", "Yahoo", wire_text + " More to follow."),
        item("3", "FED HOLDS RATES STEADY...", "MSN"),
        item("4", "Fed holds rates steady", "Seattle Times"),
        item("5", "Local team wins championship", "AP"),
    ]
    assert groups(assign_stories(new).stories) == {
        frozenset({"1", "2", "3", "4"}),
        frozenset({"5"}),
    }


def test_a_story_continuing_from_yesterday_keeps_its_id_and_a_new_story_gets_a_new_one() -> None:
    monday = [
        item("m1", "GM recalls 1.6 million cars over ignition switch flaw", "Reuters"),
        item("m2", "GM ignition switch recall widens to 1.6 million cars", "AP"),
        item("m3", "Flappy Bird creator pulls hit game from app stores", "Verge"),
    ]
    monday_stories = assign_stories(monday).stories
    gm_story = monday_stories["m1"]
    assert monday_stories["m2"] == gm_story != monday_stories["m3"]

    tuesday = [
        item("t1", "Justice Department probes GM ignition switch recall", "WSJ", when=TUESDAY),
        item("t2", "Chiquita and Fyffes agree merger to create banana giant", "FT", when=TUESDAY),
    ]
    anchors = [(i, monday_stories[i.item_id]) for i in monday]
    tuesday_stories = assign_stories(tuesday, anchors).stories
    assert tuesday_stories.keys() == {"t1", "t2"}
    assert tuesday_stories["t1"] == gm_story
    assert tuesday_stories["t2"] not in set(monday_stories.values())


def test_a_story_split_over_two_runs_merges_when_a_bridging_report_arrives() -> None:
    recall = item("a", "GM recalls 1.6 million cars over faulty ignition switches")
    probe = item("b", "Congress opens probe into GM's delayed recall", when=TUESDAY)
    # Two headlines alone are too thin to call the same story: two runs, two stories.
    recall_story = assign_stories([recall]).stories["a"]
    probe_story = assign_stories([probe], [(recall, recall_story)]).stories["b"]
    assert probe_story != recall_story

    bridge = item(
        "c", "GM ignition switch recall: Congress probes why GM waited years", when=WEDNESDAY
    )
    run = assign_stories([bridge], [(recall, recall_story), (probe, probe_story)])
    # The older story keeps its id, so what a reader has seen stays one story.
    assert run.merged == {probe_story: recall_story}
    assert run.stories == {"c": recall_story}


def test_unrelated_anchor_stories_never_merge_even_when_new_items_share_their_words() -> None:
    anchors = [
        (item("x1", "Apple shares fall after weak iPhone sales"), "st_iphone"),
        (item("x2", "Apple pie recipe wins county fair contest"), "st_pie"),
        (item("x3", "Shares fall as oil prices climb"), "st_oil"),
    ]
    new = [
        item("n1", "Apple shares slide as iPhone sales disappoint investors", when=TUESDAY),
        item("n2", "County fair crowns best apple pie recipe", when=TUESDAY),
        item("n3", "Oil prices climb to a six-month high, dragging shares lower", when=TUESDAY),
    ]
    run = assign_stories(new, anchors)
    assert run.merged == {}
    assert [run.stories[i] for i in ("n1", "n2", "n3")] == ["st_iphone", "st_pie", "st_oil"]


def test_story_merges_do_not_depend_on_input_order_and_keep_the_older_id() -> None:
    older = [
        (item("p1", "Mt. Gox bitcoin exchange files for bankruptcy protection"), "st_young"),
    ]
    younger = [
        (item("p0", "Bitcoin exchange Mt. Gox seeks bankruptcy protection", when=TUESDAY), "st_aa"),
    ]
    new = [
        item("n1", "Mt. Gox files for bankruptcy as bitcoin exchange collapses", when=WEDNESDAY),
        item("n2", "Bitcoin exchange Mt. Gox bankruptcy: what users lose", when=WEDNESDAY),
    ]
    runs = [
        assign_stories(new, older + younger),
        assign_stories(list(reversed(new)), younger + older),
    ]
    assert runs[0] == runs[1]
    # "st_aa" sorts first, but "st_young" was published first, so it survives.
    assert runs[0].merged == {"st_aa": "st_young"}
    assert set(runs[0].stories.values()) == {"st_young"}


def test_story_ids_do_not_depend_on_input_order() -> None:
    new = [
        item("b", "Twitter outage locks out users worldwide", "CNN"),
        item("a", "Twitter outage: users worldwide locked out for an hour", "BBC"),
        item("c", "Elephants can tell human languages apart, study finds", "Guardian"),
    ]
    forward = assign_stories(new).stories
    assert forward == assign_stories(list(reversed(new))).stories
    assert forward["a"] == forward["b"] and forward["a"].startswith("st_")


def test_no_items_and_items_without_words() -> None:
    assert assign_stories([]).stories == {}
    lonely = assign_stories([item("1", "..."), item("2", "")]).stories
    assert lonely.keys() == {"1", "2"} and lonely["1"] != lonely["2"]


def test_shared_boilerplate_text_does_not_join_unrelated_stories() -> None:
    furniture = "Details follow. " * 30 + "Sign up for the Wire newsletter for breaking alerts."
    notice = (
        "Copyright Thomson Reuters. All rights reserved. Republication or redistribution of "
        "this content is expressly prohibited without prior written consent. "
    )
    titles = [
        "Chipmaker reports record quarterly revenue",
        "Central bank holds interest rates steady",
        "Satellite launch adds coverage to rural areas",
        "Open-source maintainers discuss funding",
        "Museum returns looted bronzes to Nigeria",
    ]
    own_source = [
        item(f"w{n}", title, "Wire", f"{title}. {furniture}") for n, title in enumerate(titles)
    ]
    across_sources = [
        item(f"r{n}", title, f"Outlet {n}", notice + title) for n, title in enumerate(titles)
    ]
    for batch in (own_source, across_sources):
        assert all(len(group) == 1 for group in groups(assign_stories(batch).stories))


def test_only_the_start_of_a_text_counts_so_callers_may_cut_texts() -> None:
    settings = GroupingSettings()
    words = ["outage", "regulators", "cloud", "datacenter", "inquiry", "refunds", "engineers"]
    new = [
        item(
            f"n{n}",
            f"Report {n} on the cloud outage",
            f"Outlet {n % 7}",
            " ".join(words[n % 7 :] * 40),
        )
        for n in range(40)
    ]
    cut = [replace(entry, text=entry.text[: settings.text_max_chars]) for entry in new]
    assert assign_stories(new).stories == assign_stories(cut).stories


def test_thousands_of_reports_of_six_stories_are_six_stories_quickly() -> None:
    # Every report shares words with a sixth of the batch: the similarity product is dense.
    topics = [
        "Regulators open an inquiry into cloud outage",
        "Chipmaker reports record quarterly revenue",
        "New Python release speeds up start-up",
        "Central bank holds interest rates steady",
        "Open-source maintainers discuss funding",
        "Satellite launch adds coverage to rural areas",
    ]
    new = [
        item(
            f"{feed}-{update}",
            f"{topics[(feed + update) % 6]} (feed {feed}, update {update})",
            f"feed{feed}",
            f"{topics[(feed + update) % 6]}. Report {update} from outlet {feed}.",
        )
        for feed in range(600)
        for update in range(5)
    ]
    assert len(groups(assign_stories(new).stories)) == 6


@needs_uci
def test_uci_headlines_group_with_bcubed_f1_at_least_085() -> None:
    labelled = load_uci()
    predicted = assign_stories([entry.item for entry in labelled]).stories
    truth = {entry.item.item_id: entry.story for entry in labelled}
    score = bcubed(predicted, truth)
    assert score.f1 >= 0.85, f"BCubed {score}, pairwise {pairwise(predicted, truth)}"


@needs_uci
def test_small_sparse_days_rarely_merge_unrelated_stories() -> None:
    precisions = []
    for day in small_sparse_days(load_uci(), days=20):
        predicted = assign_stories([entry.item for entry in day]).stories
        precisions.append(bcubed(predicted, {e.item.item_id: e.story for e in day}).precision)
    assert min(precisions) >= 0.9
    assert sum(precisions) / len(precisions) >= 0.95


@needs_uci
# How fast: tests/bench/bench_grouping.py.
def test_ten_thousand_items_group_well() -> None:
    day = synthetic_day(load_uci(), 10_000, seed=3)
    predicted = assign_stories([entry.item for entry in day]).stories
    truth = {entry.item.item_id: entry.story for entry in day}
    assert bcubed(predicted, truth).f1 >= 0.75


# --- issue #11: specific evidence, no chaining, splits ---------------------------------------


def test_a_bucket_of_one_generic_word_breaks_into_its_stories() -> None:
    # Every headline shares "gas" (or "best"), a common English word that is no story.
    gas = [
        item("g1", "Ohio gas prices steady ahead of holiday weekend", "Dayton Daily"),
        item("g2", "Ohio gas prices hold steady, AAA says", "WKYC"),
        item("g3", "US average gas price up 10 cents in two weeks", "AP"),
        item("g4", "Lundberg survey: US average gas price jumps 10 cents", "Reuters"),
        item("g5", "Europe calls for more US natural gas exports", "FT"),
        item(
            "g6", "EU leaders urge Washington to speed natural gas exports to Europe", "Bloomberg"
        ),
        item("g7", "EC to delay South Stream gas pipeline talks", "Reuters"),
        item("g8", "South Stream pipeline talks put on hold by European Commission", "Euractiv"),
    ]
    best = [
        item("b1", "Grand National 2022 tips, latest odds and best bets", "Mirror"),
        item("b2", "Grand National 2022: tips and odds for Aintree", "Sun"),
        item("b3", "Best of 2022: Part 2", "Podcast"),
        item("b4", "20 Of The Best TV Shows To Stream On Apple TV+", "Buzz"),
        item("b5", "The best Apple TV+ shows to stream right now", "Verge"),
        item("b6", "Annuity or drawdown: which is best for your pension?", "Money"),
        item("b7", "Pension choices: annuity or drawdown explained", "FT"),
    ]
    assert groups(assign_stories(gas + best).stories) == {
        frozenset({"g1", "g2"}),
        frozenset({"g3", "g4"}),
        frozenset({"g5", "g6"}),
        frozenset({"g7", "g8"}),
        frozenset({"b1", "b2"}),
        frozenset({"b3"}),
        frozenset({"b4", "b5"}),
        frozenset({"b6", "b7"}),
    }


@pytest.mark.parametrize(
    "first, bridge, last",
    [
        (
            "Tesla recalls Model S over seat belt fault",
            "Tesla Model S recall comes as Musk unveils new Roadster battery",
            "Musk unveils Roadster battery upgrade with 400-mile range",
        ),
        (
            "Snowden tells SXSW crowd to encrypt everything",
            "Julian Assange joins Snowden at SXSW by video link from Ecuador embassy",
            "Julian Assange to stay in Ecuador embassy, lawyers say",
        ),
        (
            "Neil Young unveils PonoPlayer high-resolution music player",
            "Neil Young's Pono music player raises millions on Kickstarter in a day",
            "Kickstarter campaign for Pebble smartwatch raises millions in a day",
        ),
    ],
)
def test_a_bridging_headline_does_not_chain_two_stories_together(
    first: str, bridge: str, last: str
) -> None:
    a, b, c = item("a", first), item("b", bridge), item("c", last)
    # Each neighbouring pair alone is one story; the two ends are not...
    assert len(groups(assign_stories([a, b]).stories)) == 1
    assert len(groups(assign_stories([b, c]).stories)) == 1
    assert len(groups(assign_stories([a, c]).stories)) == 2
    # ...and the bridge does not join them: a story is compared with its members as a whole.
    together = assign_stories([a, b, c]).stories
    assert together["a"] != together["c"]


SNOWDEN = [
    item("s1", "Snowden tells SXSW crowd to encrypt everything", "BBC"),
    item("s2", "Edward Snowden at SXSW: encrypt everything", "AP"),
    item("s3", "Snowden's SXSW talk urges tech crowd to encrypt", "FT"),
]
BANANAS = [
    item("f1", "Chiquita and Fyffes agree merger to create banana giant", "FT"),
    item("f2", "Chiquita, Fyffes merger creates world's biggest banana company", "Reuters"),
]


def test_a_story_that_stops_cohering_splits_and_its_largest_part_keeps_the_id() -> None:
    # An early, thin run put the banana merger into the Snowden story; more reports of both
    # arrive and the story is re-examined.
    anchors = [(entry, "st_early") for entry in SNOWDEN + BANANAS]
    new = [
        item("s4", "Snowden at SXSW: NSA leaker urges encryption", "CNN", when=TUESDAY),
        item("f3", "Chiquita Fyffes banana merger gets shareholder backing", "WSJ", when=TUESDAY),
    ]
    run = assign_stories(new, anchors)
    assert run.merged == {}
    assert run.stories["s4"] == "st_early"
    split_id = run.stories["f3"]
    assert split_id != "st_early" and split_id.startswith("st_")
    assert run.moved == {"f1": split_id, "f2": split_id}
    # Determinism: the same run in any order gives the same ids.
    assert assign_stories(list(reversed(new)), list(reversed(anchors))) == run


def test_one_stray_anchor_stays_in_its_story_rather_than_flickering_out() -> None:
    stray = item("x1", "Chiquita and Fyffes agree merger to create banana giant", "FT")
    run = assign_stories(
        [item("s4", "Snowden at SXSW: NSA leaker urges encryption", "CNN", when=TUESDAY)],
        [(entry, "st_early") for entry in [*SNOWDEN, stray]],
    )
    assert run.moved == {} and run.stories == {"s4": "st_early"}


def test_a_split_in_a_daemon_run_is_recorded_in_the_store(
    tmp_path: Path, store_url: str | None
) -> None:
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    early, later = now - timedelta(hours=2), now - timedelta(minutes=5)

    config = parse_config(
        f"storage: {{{storage_setting(store_url, str(tmp_path / 'store.db'))}}}\n"
        "sources:\n  - {name: wire, url: 'https://wire.example/feed'}\n"
    )
    newcomers = [
        item("s4", "Snowden at SXSW: NSA leaker urges encryption"),
        item("f3", "Chiquita Fyffes banana merger gets shareholder backing"),
    ]
    with Store.open_config(config.storage) as store:
        store.add_items(
            "wire", [stored_headline(entry, early) for entry in SNOWDEN + BANANAS], early
        )
        # An early, thin run's mistake: the banana merger filed under the Snowden story.
        store.assign_stories({entry.item_id: "st_early" for entry in SNOWDEN + BANANAS}, {}, early)
        store.add_items("wire", [stored_headline(entry, early) for entry in newcomers], later)

        assert Runner(config, store, clock=lambda: now).group() == 2

        ids = [entry.item_id for entry in SNOWDEN + BANANAS + newcomers]
        story_of = {entry.id: entry.story_id for entry in store.items_by_id(ids)}
        assert {story_of[i] for i in ("s1", "s2", "s3", "s4")} == {"st_early"}
        [split_id] = {story_of[i] for i in ("f1", "f2", "f3")}
        assert split_id != "st_early"
        rows = store.sql.execute("SELECT id, first_seen FROM stories").fetchall()
        # The split-off story dates from its oldest item, not from the run that split it.
        assert {tuple(row) for row in rows} == {
            ("st_early", to_text(early)),
            (split_id, to_text(early)),
        }


def test_after_a_split_the_next_digest_tells_both_parts_as_developing(
    tmp_path: Path, store_url: str | None
) -> None:
    """The digest history stays consistent: neither part of a split story is new again."""
    now = datetime.now(UTC).replace(microsecond=0)
    first_run, second_run = now - timedelta(hours=3), now

    def stored(entry: GroupInput, when: datetime) -> NewItem:
        return NewItem(
            id=entry.item_id,
            url=f"https://news.example/{entry.item_id}",
            title=entry.title,
            text=entry.title + ".",
            published=when,
            content_hash=entry.item_id,
        )

    config = parse_config(
        f"storage: {{{storage_setting(store_url, str(tmp_path / 'store.db'))}}}\n"
        "llm: {api_key: ''}\n"
        "sources:\n"
        + "".join(f"  - {{name: {n}, url: 'https://{n}.example/feed'}}\n" for n in ("wire", "cnn"))
        + f"digests: [{{name: d, focus: news, deliver: [{{kind: file, directory: "
        f"'{tmp_path / 'out'}'}}]}}]\n",
        env={},
    )
    with Store.open_config(config.storage) as store:
        early = first_run - timedelta(hours=1)
        store.add_items("wire", [stored(entry, early) for entry in SNOWDEN + BANANAS], early)
        # An early, thin run's mistake, told in the first digest as one story.
        store.assign_stories({entry.item_id: "st_early" for entry in SNOWDEN + BANANAS}, {}, early)
        report = Runner(config, store, clock=lambda: first_run).run_once(everything=True)
        [told] = store.digest(report.digests[0]).trends
        assert told.story == "st_early"

        later = second_run - timedelta(minutes=5)
        newcomers = [
            item("s4", "Snowden at SXSW: NSA leaker urges encryption"),
            item("f3", "Chiquita Fyffes banana merger gets shareholder backing"),
        ]
        store.add_items("cnn", [stored(entry, later) for entry in newcomers], later)
        report = Runner(config, store, clock=lambda: second_run).run_once(everything=True)
        trends = {trend.story: trend for trend in store.digest(report.digests[0]).trends}
    assert trends["st_early"].status == "developing"
    # The larger part kept the id; the split-off part was told as part of it, so it is
    # developing too, with the new outlet, not news again.
    assert len(trends) == 2 and "Snowden" in trends.pop("st_early").title
    [(split_id, banana)] = trends.items()
    assert split_id != "st_early" and "Chiquita" in banana.title
    assert banana.status == "developing"
