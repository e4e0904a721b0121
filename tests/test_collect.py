"""Collection over real loopback HTTP into a real store: what a user sees across cycles."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import tracemalloc
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import brotli
import pytest
from loopback import FeedServer
from processes import storage_setting

from core.config import CollectConfig, load_config, parse_config
from core.items import FetchRequest
from core.store import Store
from daemon.runner import Runner
from sources.collect import collect
from sources.decompress import DecodeError, decoder
from sources.http import FetchError, FetchLimits, HttpClients, fetch
from sources.workers import FeedParser, ParserDied

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def rss(*entries: tuple[str, str, str], extra: str = "") -> str:
    items = "".join(
        f"<item><title>{title}</title><link>{link}</link><description>{body}</description></item>"
        for title, link, body in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<link>https://site.example/</link>{extra}{items}</channel></rss>"
    )


def storage(tmp_path: Path, store_url: str | None) -> str:
    """The config's storage line: the `store_url` fixture's store, else a SQLite file."""
    return f"storage: {{{storage_setting(store_url, repr(str(tmp_path / 'store.db')))}}}\n"


def open_runner(
    tmp_path: Path, sources: dict[str, str], collect: str = "{}", store_url: str | None = None
) -> Runner:
    listed = "\n".join(f"  - {{name: {name}, url: '{url}'}}" for name, url in sources.items())
    config = parse_config(f"{storage(tmp_path, store_url)}collect: {collect}\nsources:\n{listed}\n")
    return Runner(config, Store.open_config(config.storage))


def test_a_second_cycle_costs_a_304_and_an_unchanged_body_costs_no_parsing(
    tmp_path, feed_server, store_url
):
    url = feed_server.add("/feed", rss(("A", "https://site.example/a", "x")), gzip=True)
    runner = open_runner(tmp_path, {"news": url}, store_url=store_url)
    assert runner.collect(due_only=False).new_items == 1
    second = runner.collect(due_only=False)
    assert (second.sources_unchanged, second.new_items) == (1, 0)
    request = feed_server.requests[-1]
    assert request.headers["if-none-match"] and request.headers["if-modified-since"]
    assert "trendfinder" in request.headers["user-agent"]
    assert runner.store.source_state("news").last_status == 304

    feed_server.ignore_conditional = True
    third = runner.collect(due_only=False)
    assert (third.sources_unchanged, third.new_items) == (1, 0)
    assert runner.store.source_state("news").last_status == 200


def test_an_edited_entry_is_an_update_not_a_new_item(tmp_path, feed_server, store_url):
    url = feed_server.add("/feed", rss(("A", "https://site.example/a", "first")))
    runner = open_runner(tmp_path, {"news": url}, store_url=store_url)
    runner.collect(due_only=False)
    feed_server.add(
        "/feed", rss(("A", "https://site.example/a", "edited"), ("B", "https://site.example/b", ""))
    )
    report = runner.collect(due_only=False)
    assert (report.new_items, report.updated_items) == (1, 1)
    texts = {i.title: i.text for i in runner.store.pending_items("p", ["news"], EPOCH)}
    assert texts == {"A": "edited", "B": ""}


def test_the_same_link_from_two_feeds_is_one_item_seen_by_both(tmp_path, feed_server, store_url):
    one = feed_server.add("/one", rss(("Storm", "https://site.example/storm?utm_source=a", "")))
    two = feed_server.add("/two", rss(("Storm", "https://SITE.example/storm#x", "")))
    runner = open_runner(tmp_path, {"one": one, "two": two}, store_url=store_url)
    assert runner.collect(due_only=False).new_items == 1
    [stored] = runner.store.pending_items("p", ["one", "two"], EPOCH)
    assert stored.sources == ("one", "two")
    # The reader gets the publisher's link of the feed that brought it first (the fetches
    # race), tracking parameters removed: never a rewritten one.
    assert stored.url in {"https://site.example/storm", "https://SITE.example/storm#x"}


def test_a_permanent_redirect_moves_the_source_and_a_temporary_one_does_not(
    tmp_path, feed_server, store_url
):
    feed_server.add("/new", rss(("A", "https://site.example/a", "")))
    moved = feed_server.add_redirect("/old", "/new", 301)
    feed_server.add_redirect("/hop", "/old", 308)
    visiting = feed_server.add_redirect("/temp", "/new", 302)
    runner = open_runner(
        tmp_path, {"moved": feed_server.url_for("/hop"), "visiting": visiting}, store_url=store_url
    )
    report = runner.collect(due_only=False)
    assert report.sources_ok == 2
    assert runner.store.source_state("moved").fetch_url == feed_server.url_for("/new")
    assert runner.store.source_state("visiting").fetch_url == visiting
    assert moved  # the intermediate hop was followed


def test_cache_control_and_rss_ttl_hold_the_next_poll_back(tmp_path, feed_server, store_url):
    cached = feed_server.add(
        "/cached",
        rss(("A", "https://site.example/a", "")),
        headers={"Cache-Control": "max-age=7200"},
    )
    ttl = feed_server.add("/ttl", rss(("B", "https://site.example/b", ""), extra="<ttl>240</ttl>"))
    runner = open_runner(tmp_path, {"cached": cached, "ttl": ttl}, store_url=store_url)
    started = datetime.now(UTC)
    runner.collect(due_only=False)
    cached_next = runner.store.source_state("cached").next_fetch_at
    ttl_next = runner.store.source_state("ttl").next_fetch_at
    assert cached_next and cached_next >= started + timedelta(hours=2)
    assert ttl_next and ttl_next >= started + timedelta(hours=4)
    assert runner.collect().sources_ok == 0  # nothing is due


def test_failures_back_off_and_success_resets_them(tmp_path, feed_server, store_url):
    url = feed_server.add_status("/flaky", 500)
    runner = open_runner(tmp_path, {"flaky": url}, store_url=store_url)
    waits = []
    for _ in range(3):
        before = datetime.now(UTC)
        runner.collect(due_only=False)
        state = runner.store.source_state("flaky")
        assert state.next_fetch_at
        waits.append(state.next_fetch_at - before)
    assert runner.store.source_state("flaky").failures == 3
    assert waits[0] < waits[1] < waits[2]
    feed_server.add("/flaky", rss(("A", "https://site.example/a", "")))
    runner.collect(due_only=False)
    state = runner.store.source_state("flaky")
    assert (state.failures, state.last_error) == (0, None)


def test_a_json_feed_and_a_file_url_are_collected(tmp_path, feed_server):
    json_url = feed_server.add(
        "/feed.json",
        '{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": '
        '[{"id": "1", "url": "https://j.example/1", "title": "Json one", '
        '"date_published": "2026-11-20T10:00:00Z"}]}',
        "application/feed+json",
    )
    local = tmp_path / "local.xml"
    local.write_text(rss(("Local", "https://site.example/local", "")))
    runner = open_runner(tmp_path, {"json": json_url, "local": local.as_uri()})
    assert runner.collect(due_only=False).new_items == 2
    titles = {i.title for i in runner.store.pending_items("p", ["json", "local"], EPOCH)}
    assert titles == {"Json one", "Local"}


def test_sources_of_one_host_are_fetched_at_most_per_host_at_a_time():
    with FeedServer(latency=0.2) as server:
        urls = [
            server.add(f"/f{n}", rss((f"S{n}", f"https://s.example/{n}", ""))) for n in range(8)
        ]
        config = CollectConfig(per_host=2, concurrency=64)
        requests = [FetchRequest(name=f"f{n}", kind="feed", url=url) for n, url in enumerate(urls)]
        outcomes = collect(requests, config, datetime.now(UTC))
        times = sorted(request.at for request in server.requests)
    assert all(outcome.status == "ok" for outcome in outcomes)
    # 8 requests, 2 at a time, 0.2 s each: no third request starts within the first pair.
    assert times[2] - times[0] >= 0.15


def test_a_gzip_bomb_is_stopped_early_with_bounded_memory(feed_server):
    url = feed_server.add_gzip_bomb("/bomb", inflated_mib=200)
    limits = FetchLimits(
        connect_timeout=5, read_timeout=5, total_timeout=20, max_bytes=5_000_000, max_redirects=2
    )

    async def fetch_bomb() -> str:
        async with HttpClients(CollectConfig()) as clients:
            with pytest.raises(FetchError) as raised:
                await fetch(clients, url, limits)
        return str(raised.value)

    tracemalloc.start()
    try:
        message = asyncio.run(fetch_bomb())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "larger than 5,000,000 bytes once decompressed" in message
    assert peak < 30_000_000


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),
        ("br", brotli.compress),
    ],
)
def test_every_accepted_encoding_decodes_in_bounded_pieces(encoding, compress):
    bomb = compress(bytes(50_000_000))
    decode = decoder(encoding)
    pieces = [len(piece) for piece in decode.decode(bomb)] + [
        len(piece) for piece in decode.flush()
    ]
    assert sum(pieces) == 50_000_000
    assert max(pieces) <= 2 * 64 * 1024


def test_corrupt_or_unknown_encodings_are_named():
    with pytest.raises(DecodeError):
        list(decoder("gzip").decode(b"definitely not gzip"))
    with pytest.raises(DecodeError, match="unsupported content encoding 'zstd'"):
        decoder("zstd")


def test_every_real_world_and_spec_example_feed_parses_over_http(shared_data, tmp_path):
    """Served twice over, so the cycle is big enough to parse in worker processes."""
    with FeedServer() as server:
        served = {
            f"{prefix}{folder}/{path}": url
            for folder in ("real-world", "examples")
            for prefix in ("", "again-")
            for path, url in server.add_directory(
                shared_data / "feeds" / folder, f"/{prefix}{folder}"
            ).items()
        }
        assert len(served) == 90
        requests = [FetchRequest(name=name, kind="feed", url=url) for name, url in served.items()]
        now = datetime.now(UTC)
        outcomes = collect(requests, CollectConfig(parse_processes=2), now)
    for outcome in outcomes:
        assert outcome.status == "ok", (outcome.source, outcome.error)
        assert outcome.items, outcome.source
        for item in outcome.items:
            assert item.title.strip(), outcome.source
            assert item.url.startswith(("http://", "https://")), (outcome.source, item.url)
            assert EPOCH < item.published <= now, outcome.source
    dated = [o for o in outcomes if any(i.published != now for i in o.items)]
    real_world = [o for o in outcomes if "real-world" in o.source]
    assert all(o in dated for o in real_world)


def _children() -> set[int]:
    return {
        int(pid)
        for task in Path("/proc/self/task").iterdir()
        for pid in (task / "children").read_text().split()
    }


def test_a_parsing_process_killed_mid_feed_fails_that_feed_only():

    big = rss(*((f"Story {n}", f"https://site.example/{n}", "text " * 400) for n in range(500)))
    small = rss(("One", "https://site.example/one", "text"))
    now = datetime.now(UTC)

    async def run() -> tuple[BaseException | None, int]:
        before = _children()
        parser = FeedParser(CollectConfig(parse_processes=1, max_items_per_source=500), 100)
        try:
            parsing = asyncio.create_task(parser.parse(big.encode(), "http://a/", {}, now, "a"))
            for _ in range(500):  # until the worker process exists
                await asyncio.sleep(0.01)
                if workers := _children() - before:
                    break
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            died = None
            try:
                await parsing
            except ParserDied as error:
                died = error
            after = await parser.parse(small.encode(), "http://b/", {}, now, "b")
            return died, len(after.items)
        finally:
            await parser.aclose()

    died, items = asyncio.run(run())
    assert isinstance(died, ParserDied)
    assert items == 1


def _stopped_worker_scenario(stop_how: str) -> list[str]:
    """Three feeds queued on a parsing process that stops responding (SIGSTOP): the first
    is what it holds; `stop_how` "kill" then kills it, "hang" leaves it to the timeout."""
    feeds = [rss((f"Story {n}", f"https://site.example/{n}", "text")) for n in range(4)]
    now = datetime.now(UTC)

    async def run() -> list[str]:
        before = _children()
        parser = FeedParser(CollectConfig(parse_processes=1), 100, timeout=1.0)
        try:
            await parser.parse(feeds[0].encode(), "http://w/", {}, now, "warm-up")
            (worker,) = _children() - before
            os.kill(worker, signal.SIGSTOP)
            parses = [
                asyncio.create_task(parser.parse(feed.encode(), f"http://{n}/", {}, now, str(n)))
                for n, feed in enumerate(feeds[1:], 1)
            ]
            await asyncio.sleep(0.2)  # all three are queued on the stopped process
            if stop_how == "kill":
                os.kill(worker, signal.SIGKILL)
            results = []
            for parse in parses:
                try:
                    results.append(f"ok {len((await parse).items)}")
                except ParserDied as error:
                    results.append(f"died: {error}")
            return results
        finally:
            await parser.aclose()

    return asyncio.run(asyncio.wait_for(run(), 60))


def test_a_killed_parsing_process_fails_its_feed_and_the_queued_ones_go_to_another():
    first, *queued = _stopped_worker_scenario("kill")
    assert first == "died: the feed parsing process died while reading it"
    assert queued == ["ok 1", "ok 1"]


def test_a_parse_that_hangs_is_stopped_and_the_queued_feeds_go_to_another_process():
    first, *queued = _stopped_worker_scenario("hang")
    assert first == "died: parsing it took longer than 1 s, so it was stopped"
    assert queued == ["ok 1", "ok 1"]


def test_collect_waits_for_a_source_told_to_wait_unless_forced(tmp_path, feed_server, store_url):
    """What `trendfinder collect` does (and `--force` undoes): like `run --once`, a source
    in backoff or asked by its server to come back later is left alone."""
    good = feed_server.add("/good", rss(("A", "https://site.example/a", "x")))
    limited = feed_server.add_status("/limited", 429, retry_after=7200)
    runner = open_runner(tmp_path, {"good": good, "limited": limited}, store_url=store_url)
    first = runner.collect(due_only=False, honour_backoff=True)
    assert (first.sources_ok, first.sources_failed) == (1, 1)
    second = runner.collect(due_only=False, honour_backoff=True)
    assert (second.sources_unchanged, second.sources_failed, second.sources_waiting) == (1, 0, 1)
    assert "1 waiting (backoff or Retry-After)" in second.describe()
    assert feed_server.hits("/limited") == 1
    forced = runner.collect(due_only=False, honour_backoff=False)
    assert (forced.sources_failed, forced.sources_waiting) == (1, 0)
    assert feed_server.hits("/limited") == 2


def test_collect_leaves_grouping_to_the_next_digest_which_sees_the_stories(
    tmp_path, feed_server, capsys, store_url
):
    from daemon import cli

    headline = "Harbour bridge closed after storm damage"
    outlets = {"wire": "https://wire.example/bridge", "herald": "https://herald.example/b"}
    urls = {
        name: feed_server.add(f"/{name}", rss((headline, link, "Ferries run instead.")))
        for name, link in outlets.items()
    }
    listed = "\n".join(f"  - {{name: {name}, url: '{url}'}}" for name, url in urls.items())
    target = f"{{kind: file, directory: '{tmp_path}'}}"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"{storage(tmp_path, store_url)}sources:\n{listed}\n"
        f"digests: [{{name: daily, focus: news, deliver: [{target}]}}]\n"
    )
    storage_config = load_config(config).storage
    assert cli.main(["--config", str(config), "collect"]) == 0
    with Store.open_config(storage_config) as store:
        assert len(store.ungrouped_items()) == 2  # stored, not grouped yet
    capsys.readouterr()
    # A preview groups them first, so it shows one story from both outlets.
    assert cli.main(["--config", str(config), "digest", "--dry-run", "--format", "json"]) == 0
    (trend,) = json.loads(capsys.readouterr().out)["trends"]
    shown = {item["source"] for item in trend["items"]} | set(trend["more_outlets"])
    assert headline in trend["title"] and shown == set(outlets)
    with Store.open_config(storage_config) as store:
        assert store.ungrouped_items() == []


def test_grouping_a_large_collect_in_batches_joins_the_same_stories(
    tmp_path, feed_server, monkeypatch, store_url
):
    from daemon import runner as runner_module

    headline = "Harbour bridge closed after storm damage"
    feeds = {
        f"outlet{n}": feed_server.add(
            f"/{n}", rss((headline, f"https://outlet{n}.example/bridge", "Ferries run instead."))
        )
        for n in range(3)
    }
    feeds["other"] = feed_server.add(
        "/other", rss(("Council approves new library budget", "https://other.example/l", "x"))
    )
    runner = open_runner(tmp_path, feeds, store_url=store_url)
    assert runner.collect(due_only=False).new_items == 4
    monkeypatch.setattr(runner_module, "GROUP_BATCH", 2)  # two batches of two
    assert runner.group() == 4
    items = runner.store.items_by_id([item.id for item in runner.store.grouped_items_since(EPOCH)])
    stories = {item.sources[0]: item.story_id for item in items}
    assert len({stories[f"outlet{n}"] for n in range(3)}) == 1
    assert stories["other"] != stories["outlet0"]
