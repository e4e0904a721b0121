"""`kind: report` profiles: a reflection over a long window (main movements, what is fading,
what to watch), timelines in six-hour bars over the week, in every format."""

from __future__ import annotations

import json
import re
from typing import Any

import sample_digests as samples
from loopback import OpenAIServer
from loopback.openai_server import ChatRequest
from processes import storage_setting
from test_alerts import OUTLETS, Clock, publish

from core.config import Config, parse_config
from core.digest import TopicTrend
from core.store import Store
from daemon.runner import Runner
from digests import blockkit, render


def weekly_report_config(
    tmp_path,
    names: tuple[str, ...],
    llm: dict[str, object] | None = None,
    store_url: str | None = None,
) -> Config:
    """A weekly report over feeds named `names`, delivered as files; through the model
    when `llm` gives its settings."""
    sources = "\n".join(f"  - {{name: {n}, url: 'https://{n}.example/feed'}}" for n in names)
    model = f"llm: {json.dumps(llm)}\n" if llm else ""
    return parse_config(
        f"""
storage: {{{storage_setting(store_url, str(tmp_path / "t.db"))}}}
{model}sources:
{sources}
digests:
  - name: weekly
    kind: report
    lookback: 7d
    focus: Editors looking back on the week.
    deliver:
      - {{kind: file, directory: {tmp_path / "out"}}}
""",
        env={},
    )


def test_a_weekly_report_reflects_on_the_weeks_movements(tmp_path, store_url):
    names = ("wire", "herald", "ledger", "post")
    config = weekly_report_config(tmp_path, names, store_url=store_url)
    clock = Clock()
    with Store.open_config(config.storage) as store:
        runner = Runner(config, store, clock)
        # An old story that went quiet, and one that took off at the end of the week.
        for minutes, outlet in enumerate(names[:3]):
            publish(store, clock, outlet, "Harbour tunnel plan shelved", minutes * 30)
        for minutes, outlet in enumerate(names):
            publish(
                store, clock, outlet, "Zorvath dam breach floods valley", 6 * 24 * 60 + minutes * 20
            )
        runner.group()
        built = runner.digest(config.digests[0])
    assert built is not None
    digest = built.digest
    assert digest.kind == "report"
    assert render.title(digest).startswith("weekly: report to")
    by_title = {trend.title.split(":")[0]: trend for trend in digest.trends}
    rising = by_title["Zorvath dam breach floods valley"].timeline
    faded = by_title["Harbour tunnel plan shelved"].timeline
    assert rising is not None and faded is not None
    assert rising.bucket_hours == 6 and len(rising.buckets) == 28
    assert rising.trajectory in ("new", "rising") and faded.trajectory == "fading"
    main, fading = digest.reflection[0], digest.reflection[1]
    assert main.startswith("Main movements: Zorvath dam breach")
    assert fading.startswith("Fading: Harbour tunnel plan shelved")
    for text in (render.markdown(digest), render.text(digest), render.html(digest)):
        assert render.REVIEW in text and "Fading: Harbour tunnel" in text
    assert "in 7 days" in render.text(digest)


def test_topic_trends_show_in_every_format_with_the_stories_carrying_them():
    topic = TopicTrend(term="outage", stories=4, significance=4.2, items=samples.trend(1).items)
    digest = samples.digest().model_copy(update={"topics": (topic,)})
    for text in (render.markdown(digest), render.text(digest), render.html(digest)):
        assert "outage: in 4 stories (4.2 sd above its baseline)" in text
        assert samples.trend(1).items[0].title in text
    slack = str([message.payload() for message in blockkit.messages(digest, archive=False)])
    assert "outage: in 4 stories" in slack


def weekly_through_the_model(tmp_path, server: OpenAIServer, **llm: object) -> Runner:
    """A weekly report over 40 single-outlet stories and one that took off at the week's end,
    with an input budget that holds only a few stories at a time."""
    settings = {"model": "o1", "base_url": server.base_url, "api_key": "sk-test"}
    settings |= {"backoff": 0.01, "run_budget": 20, "max_input_tokens": 2000, **llm}
    config = weekly_report_config(tmp_path, OUTLETS, llm=settings)
    clock = Clock()
    store = Store.open(config.storage.database)
    runner = Runner(config, store, clock)
    for n in range(40):
        title = f"Note{n} " + " ".join(f"w{n}x{k}" for k in range(4))
        publish(store, clock, OUTLETS[n % len(OUTLETS)], title, n * 3 * 60)
    for minutes, outlet in enumerate(OUTLETS[:4]):
        publish(store, clock, outlet, "Zorvath dam breach floods valley", 6 * 24 * 60 + minutes)
    runner.group()
    return runner


def chunk_answer(chat: ChatRequest) -> dict[str, Any]:
    """The map calls name each chunk's first story; the reduce call merges every candidate."""
    if "<candidate" in chat.user_text:
        cited = re.findall(r'evidence="([^"]+)"', chat.user_text)
        trends = [
            {
                "title": "The week in one movement",
                "summary": "Merged from every chunk.",
                "why_it_matters": "It moved.",
                "evidence": [ref for group in cited for ref in group.split(",")],
                "score": 80,
                "status": "developing",
            }
        ]
    else:
        ref, title = re.findall(r"^\[(S\d+)\.1\] [^,]+, [0-9: -]+: (.*)$", chat.user_text, re.M)[0]
        trends = [
            {
                "title": title,
                "summary": "One chunk's story.",
                "why_it_matters": "One chunk.",
                "evidence": [ref],
                "score": 10,
                "status": "new",
            }
        ]
    return {"nothing_notable": False, "trends": trends}


def test_a_report_too_long_for_one_call_is_mapped_over_chunks_then_reduced(tmp_path, openai_server):
    runner = weekly_through_the_model(tmp_path, openai_server)
    openai_server.set_default(chunk_answer)
    built = runner.digest(runner.config.digests[0])
    assert built is not None and built.digest.kind == "report"
    assert built.digest.analyzer == "o1"
    chats = openai_server.chat_requests
    maps = [chat for chat in chats if "<candidate" not in chat.user_text]
    assert len(maps) >= 2 and "<candidate" in chats[-1].user_text
    for chat in chats:  # the real wire format, the period asked for in every call
        assert [m["role"] for m in chat.messages] == ["developer", "user"]
        assert chat.max_completion_tokens and "max_tokens" not in chat.body
        assert chat.json_schema is not None and "report over the whole period" in chat.prompt_text
    # Every chunk's candidate reached the reduce call, and the merged trend cites them all:
    # items that exist in the store, from several outlets and chunks.
    assert chats[-1].user_text.count("<candidate") == len(maps)
    [trend] = built.digest.trends
    stored = {row[0] for row in runner.store.db.execute("SELECT url FROM items")}
    assert trend.items and {item.url for item in trend.items} <= stored
    assert len({item.source for item in trend.items}) >= 2
    assert built.digest.reflection[0].startswith("Main movements:")
    runner.deliver()
    [delivered] = (tmp_path / "out" / "weekly").glob("*.json")
    assert json.loads(delivered.read_text())["trends"][0]["title"] == "The week in one movement"


def test_a_report_whose_model_fails_is_the_offline_statistical_report(tmp_path, openai_server):
    runner = weekly_through_the_model(tmp_path, openai_server, run_budget=1.5, backoff=0.2)
    openai_server.reply_error(500, times=50)
    built = runner.digest(runner.config.digests[0])
    assert built is not None and built.digest.kind == "report"
    assert built.digest.analyzer == "offline (fallback from o1)"
    assert built.digest.reflection[0].startswith("Main movements: Zorvath dam breach")
    runner.deliver()
    [delivered] = (tmp_path / "out" / "weekly").glob("*.json")
    assert json.loads(delivered.read_text())["reflection"] == list(built.digest.reflection)
