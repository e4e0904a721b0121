"""`kind: report` profiles: a reflection over a long window (main movements, what is fading,
what to watch), timelines in six-hour bars over the week, in every format."""

from __future__ import annotations

import sample_digests as samples
from test_alerts import Clock, publish

from core.config import parse_config
from core.digest import TopicTrend
from core.store import Store
from daemon.runner import Runner
from digests import blockkit, render


def test_a_weekly_report_reflects_on_the_weeks_movements(tmp_path):
    names = ("wire", "herald", "ledger", "post")
    sources = "\n".join(f"  - {{name: {n}, url: 'https://{n}.example/feed'}}" for n in names)
    config = parse_config(f"""
storage: {{path: {tmp_path / "t.db"}}}
sources:
{sources}
digests:
  - name: weekly
    kind: report
    lookback: 7d
    focus: Editors looking back on the week.
    deliver:
      - {{kind: file, directory: {tmp_path / "out"}}}
""")
    clock = Clock()
    with Store.open(config.storage.database) as store:
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
