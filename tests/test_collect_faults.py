"""Bad sources over real loopback HTTP: each gets a readable error, the others' items are
stored, and the daemon carries on. One collection cycle runs every fault at once."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loopback import FeedServer, SilentServer, closed_port

from core.config import parse_config
from core.store import Store
from daemon.cli import main
from daemon.runner import Report, Runner

GOOD = """<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{name}</title>
<link>https://{name}.example/</link>{items}</channel></rss>"""
LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>Laughs</title>
<item><title>&lol9;</title><link>https://laughs.example/1</link><description>&lol9;</description></item>
<item><title>Plain story</title><link>https://laughs.example/2</link></item>
</channel></rss>"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{path}">]>
<rss version="2.0"><channel><title>XXE</title>
<item><title>Leak &xxe;</title><link>https://xxe.example/1</link>
<description>Body &xxe;</description></item></channel></rss>"""
SECRET = "TOP-SECRET-FILE-CONTENT"


def rss(name: str, entries: list[tuple[str, str | None, str | None]]) -> str:
    items = "".join(
        f"<item><title>{title}</title>"
        + (f"<link>{link}</link>" if link else "")
        + (f"<guid isPermaLink='false'>{guid}</guid>" if guid else "")
        + "</item>"
        for title, link, guid in entries
    )
    return GOOD.format(name=name, items=items)


def stories(name: str, count: int = 3) -> str:
    return rss(
        name, [(f"{name} story {n}", f"https://{name}.example/{n}", None) for n in range(count)]
    )


@dataclass
class Cycle:
    server: FeedServer
    config_path: Path
    store: Store
    runner: Runner
    first: Report
    second: Report
    hits_after_first: dict[str, int]
    paths: dict[str, str]
    started: datetime

    def state(self, name: str):
        return self.store.source_state(name)

    def items(self, name: str):
        return self.store.pending_items("check", [name], datetime(2000, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def cycle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cycle]:
    folder = tmp_path_factory.mktemp("faults")
    secret = folder / "secret.txt"
    secret.write_text(SECRET)
    with FeedServer() as server, SilentServer() as silent:
        latin = rss("latin", [("Café crème", "https://latin.example/cafe", None)])
        routes = {
            "good-a": server.add("/good-a", stories("gooda")),
            "good-b": server.add("/good-b", stories("goodb"), gzip=True),
            "malformed": server.add(
                "/malformed",
                stories("malformed").replace("story 1", "story 1 & co").replace("</channel>", ""),
            ),
            "html": server.add_html("/html"),
            "empty": server.add_empty("/empty"),
            "bomb": server.add_gzip_bomb("/bomb", inflated_mib=200),
            "huge": server.add_huge("/huge", 3_000_000, chunked=True),
            "huge-declared": server.add_huge("/huge-declared", 3_000_000),
            "trickle": server.add_trickle("/trickle", interval=0.2, max_seconds=20),
            "loop": server.add_redirect("/loop-a", "/loop-b"),
            "redirects": server.add_redirect("/r0", "/r1"),
            "wrong-charset": server.add(
                "/wrong-charset", latin.encode("latin-1"), "application/rss+xml; charset=utf-8"
            ),
            "missing-charset": server.add(
                "/missing-charset",
                latin.replace('encoding="utf-8"', 'encoding="iso-8859-1"').encode("latin-1"),
                "application/xml",
            ),
            "laughs": server.add("/laughs", LAUGHS),
            "xxe": server.add("/xxe", XXE.format(path=secret)),
            "dup-guids": server.add(
                "/dup-guids",
                rss("dup", [(f"Dup {n}", f"https://dup.example/{n}", "same") for n in range(3)]),
            ),
            "no-guids": server.add(
                "/no-guids",
                rss("noguid", [(f"Home {n}", "https://noguid.example/", None) for n in range(3)]),
            ),
            "limited": server.add_status("/limited", 429, retry_after=7200),
            "unavailable": server.add_status(
                "/unavailable", 503, retry_after=datetime.now(UTC) + timedelta(hours=3)
            ),
            "gone": server.add_status("/gone", 410),
            "missing": server.add_status("/missing", 404),
            "dropped": server.add_drop("/dropped", stories("dropped")),
            "json-not-feed": server.add("/json", '{"hello": "world"}', "application/json"),
            "dns": "http://feeds.nowhere.invalid/rss",
            "refused": f"http://127.0.0.1:{closed_port()}/feed",
            "tls": f"https://127.0.0.1:{server.port}/good-a",
            "silent": f"{silent.url}/feed",
        }
        server.add_redirect("/loop-b", "/loop-a")
        for n in range(1, 8):
            server.add_redirect(f"/r{n}", f"/r{n + 1}")
        sources = "\n".join(f"  - {{name: {name}, url: '{url}'}}" for name, url in routes.items())
        config_path = folder / "config.yaml"
        config_path.write_text(
            f"storage: {{path: '{folder / 'store.db'}'}}\n"
            "collect: {timeout: 3, read_timeout: 1, connect_timeout: 2, max_bytes: 1000000}\n"
            f"sources:\n{sources}\n"
        )
        config = parse_config(config_path.read_text())
        with Store.open(folder / "store.db") as store:
            runner = Runner(config, store)
            started = datetime.now(UTC)
            first = runner.collect(due_only=False)
            hits = {path: server.hits(path) for path in ("/gone", "/good-a")}
            second = runner.collect(due_only=False)
            yield Cycle(server, config_path, store, runner, first, second, hits, routes, started)


ERRORS = {
    "html": "got an HTML page, not a feed",
    "empty": "the server sent an empty body",
    "bomb": "larger than 1,000,000 bytes once decompressed",
    "huge": "larger than 1,000,000 bytes",
    "huge-declared": "larger than 1,000,000 bytes",
    "trickle": "gave up after 3 s",
    "loop": "redirect loop",
    "redirects": "more than 5 redirects",
    "limited": "HTTP 429 Too Many Requests; the server asked to wait until",
    "unavailable": "HTTP 503 Service Unavailable; the server asked to wait until",
    "gone": "HTTP 410 Gone: the server says this feed is gone for good",
    "missing": "HTTP 404 Not Found",
    "dropped": "closed the connection before the whole response arrived",
    "json-not-feed": "got JSON, but not a JSON Feed",
    "dns": "cannot resolve host feeds.nowhere.invalid",
    "refused": "connection refused by 127.0.0.1:",
    "tls": "TLS error with 127.0.0.1",
    "silent": "stopped sending data (read timed out)",
}


@pytest.mark.parametrize(("name", "message"), ERRORS.items())
def test_a_bad_source_gets_a_readable_error_and_a_later_retry(cycle, name, message):
    state = cycle.state(name)
    assert message in (state.last_error or ""), state.last_error
    assert state.failures >= 1
    assert state.next_fetch_at is not None and state.next_fetch_at > cycle.started
    assert any(error.startswith(f"source {name}: ") for error in cycle.first.errors)


def test_the_good_sources_are_stored_despite_everything_else(cycle):
    for name, prefix in (("good-a", "gooda"), ("good-b", "goodb")):
        assert cycle.state(name).last_error is None
        assert sorted(item.title for item in cycle.items(name)) == [
            f"{prefix} story {n}" for n in range(3)
        ]


def test_the_process_stays_healthy_and_the_next_cycle_uses_conditional_get(cycle):
    assert cycle.second.sources_unchanged >= 2
    assert cycle.state("good-a").last_status == 304
    assert cycle.server.hits("/good-a") == cycle.hits_after_first["/good-a"] + 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 1_000_000  # KB: < 1 GB


def test_a_410_disables_the_source_visibly_and_it_is_not_fetched_again(cycle):
    assert "410" in (cycle.state("gone").disabled_reason or "")
    assert cycle.server.hits("/gone") == cycle.hits_after_first["/gone"] == 1


def test_retry_after_is_a_lower_bound_on_the_next_attempt(cycle):
    limited = cycle.state("limited")
    assert limited.next_fetch_at and limited.next_fetch_at >= cycle.started + timedelta(hours=2)
    unavailable = cycle.state("unavailable")
    assert unavailable.next_fetch_at and unavailable.next_fetch_at >= cycle.started + timedelta(
        hours=2, minutes=59
    )


def test_malformed_xml_yields_what_it_can(cycle):
    assert cycle.state("malformed").last_error is None
    assert {item.title for item in cycle.items("malformed")} >= {"malformed story 0"}


def test_wrong_or_missing_charset_still_decodes_the_text(cycle):
    for name in ("wrong-charset", "missing-charset"):
        assert [item.title for item in cycle.items(name)] == ["Café crème"]


def test_entity_expansion_is_not_performed(cycle):
    titles = [item.title for item in cycle.items("laughs")]
    assert "Plain story" in titles
    assert all(len(item.title) + len(item.text) < 1000 for item in cycle.items("laughs"))


def test_an_external_entity_never_reads_a_local_file(cycle):
    stored = cycle.items("xxe")
    assert stored and all(SECRET not in item.title and SECRET not in item.text for item in stored)


def test_duplicate_and_missing_guids_still_give_one_item_per_entry(cycle):
    assert sorted(item.title for item in cycle.items("dup-guids")) == ["Dup 0", "Dup 1", "Dup 2"]
    assert sorted(item.title for item in cycle.items("no-guids")) == [
        "Home 0",
        "Home 1",
        "Home 2",
    ]


def test_status_shows_failing_sources_why_and_when_they_are_tried_next(cycle, capsys, tmp_path):
    assert main(["--config", str(cycle.config_path), "status"]) == 0
    shown = capsys.readouterr().out
    assert "dns: cannot resolve host feeds.nowhere.invalid (2 failures; next try 20" in shown
    assert "gone: disabled: HTTP 410 Gone" in shown
    assert "good-a" not in shown
    # A failing source taken out of the config is no longer reported.
    trimmed = tmp_path / "config.yaml"
    trimmed.write_text(cycle.config_path.read_text().replace("  - {name: dns,", "  - {name: x,"))
    assert main(["--config", str(trimmed), "status"]) == 0
    assert "\n  dns: cannot resolve host" not in capsys.readouterr().out
