"""Build a digest from a selection: group, score, analyze, and note what it covered.

Two analyzers share the pipeline: the offline one ranks stories by their signals; the
model one packs them into a token budget, asks the model, and keeps only grounded trends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.digest import Digest, DigestStats, TokenUsage, Trend, Window
from digests import changes, feedback, offline, report, timeline
from digests.ask import (
    Asker,
    BadAnswer,
    ContextTooLong,
    ModelAnswer,
    ModelUnavailable,
    Prompt,
    build_prompt,
    messages_for,
    response_format,
)
from digests.boilerplate import strip_all
from digests.newsworthy import news
from digests.pack import Pack, PackSettings, inert, pack, split
from digests.selection import Selection
from digests.signals import ScoredStory, item_text, score_stories, window_stories
from digests.similarity import Rarity, rarity
from digests.tokens import TokenCounter
from digests.validate import GroundedTrend, Validated, digest_items, links, scrub, validate

log = logging.getLogger("trendfinder")
# Tokens kept free besides the counted prompt: chat framing and count error.
_SLACK_TOKENS = 256
_MAX_SHRINKS = 3


@dataclass(frozen=True)
class BuiltDigest:
    digest: Digest
    # item id -> role: "cited" in a trend, "considered", or "left_out" of the model's budget
    covered: dict[str, str]


def digest_id(profile: str, created_at: datetime) -> str:
    return f"{profile}-{created_at:%Y%m%dT%H%M%SZ}"


def scored_stories(selection: Selection) -> list[ScoredStory]:
    stories, _ = _scored(selection)
    return stories


def _scored(selection: Selection) -> tuple[list[ScoredStory], Rarity]:
    """The selection's stories, best first: feed furniture stripped from every text (so the
    model's dump and the summaries never carry it), not-news items left out, the reader's
    votes applied (digests/feedback.py); and the rarity of words across them."""
    items = news(strip_all(selection.items))
    rare = rarity(item_text(item) for item in items)
    stories = window_stories(items, selection.window_from, rare)
    return feedback.rerank(score_stories(stories, selection), selection.preferences), rare


def build_offline(
    selection: Selection,
    now: datetime,
    notes: tuple[str, ...] = (),
    *,
    analyzer: str = offline.ANALYZER,
    usage: TokenUsage | None = None,
) -> BuiltDigest:
    stories, rare = _scored(selection)
    chosen = offline.rank(stories, selection.profile.max_trends)
    trends = tuple(
        Trend(
            rank=position,
            # Feed text, written into the digest as the analyzer's own: no links in it.
            title=scrub(story.window.items[0].title),
            summary=scrub(offline.summary(story, rare)),
            why_it_matters=scrub(
                " ".join(
                    filter(
                        None,
                        [offline.why_it_matters(story), feedback.why(story, selection.preferences)],
                    )
                )
            ),
            status=story.status,
            score=story.score,
            **vars(digest_items(story.window.items)),  # items, more_items, more_outlets
        )
        for position, story in enumerate(chosen, start=1)
    )
    trends = with_history(trends, [story.window.story_id for story in chosen], selection)
    cited = {item.id for story in chosen for item in story.window.items}
    return assemble(selection, now, analyzer, trends, cited, len(stories), notes, usage=usage)


def with_history(
    trends: tuple[Trend, ...], story_ids: Sequence[str], selection: Selection
) -> tuple[Trend, ...]:
    """Trends with their lead story's timeline and coverage map, and for a story reported
    before, what changed since."""
    annotated = timeline.annotate(
        trends,
        story_ids,
        selection.arrivals,
        selection.window_to,
        selection.stream,
        selection.regulars,
        selection.reported,
        timeline.spans_for(selection.profile),
    )
    changed = []
    for trend, story_id in zip(annotated, story_ids, strict=True):
        if (reported := selection.reported_items.get(story_id)) is not None:
            new = [item for item in selection.items if item.story_id == story_id]
            trend = trend.model_copy(update={"changed": changes.what_changed(new, reported)})
        changed.append(trend)
    return tuple(changed)


def prompt_overhead(selection: Selection, asker: Asker, counter: TokenCounter) -> int:
    """Tokens of everything in the request but the dump: instructions, history, schema."""
    prompt = _prompt(selection, "")
    text = "".join(message["content"] for message in messages_for(prompt, asker.caps))
    schema = response_format(asker.caps)
    return counter.count(text) + (counter.count(str(schema)) if schema else 0) + _SLACK_TOKENS


def dump_budget(window: int, selection: Selection, asker: Asker, counter: TokenCounter) -> int:
    """The context window less the output room and the prompt."""
    room = window - asker.output_tokens - prompt_overhead(selection, asker, counter)
    return min(room, asker.llm.max_input_tokens)


def build_with_model(
    selection: Selection,
    now: datetime,
    asker: Asker,
    counter: TokenCounter,
    settings: PackSettings | None = None,
) -> BuiltDigest:
    """The model's digest; ModelUnavailable when the model cannot give one in this run."""
    settings = settings or PackSettings()
    stories = scored_stories(selection)
    budget = dump_budget(asker.context_window, selection, asker, counter)
    for _ in range(_MAX_SHRINKS + 1):
        if budget < 1_000:
            break
        try:
            return _attempt(selection, now, stories, asker, counter, budget, settings)
        except ContextTooLong as error:
            smaller = (
                dump_budget(error.window, selection, asker, counter) if error.window else budget
            )
            budget = min(smaller, int(budget * 0.75))
            log.warning("model context exceeded (%s); packing into %d tokens", error, budget)
    raise ModelUnavailable("the request does not fit the model's context window")


def _attempt(
    selection: Selection,
    now: datetime,
    stories: list[ScoredStory],
    asker: Asker,
    counter: TokenCounter,
    budget: int,
    settings: PackSettings,
) -> BuiltDigest:
    profile = selection.profile
    told = {story: changes.reported_lines(r) for story, r in selection.reported_items.items()}
    packs = (
        split(stories, counter, budget, settings, reported=told)
        # A report reads a long window: map-reduce over chunks rather than drop the tail.
        if profile.split_when_too_large or profile.kind == "report"
        else []
    )
    packs = packs or [pack(stories, counter, budget, settings, reported=told)]

    def grounded(answer: ModelAnswer, within: Sequence[Pack]) -> Validated:
        return validate(answer.trends, within, profile.max_trends)

    # A retry gets more output room, as far as the context window leaves it.
    overhead = prompt_overhead(selection, asker, counter)
    retry_room = asker.context_window - overhead - max(chunk.tokens for chunk in packs)

    if len(packs) == 1:
        result = _answer(
            asker, _prompt(selection, packs[0].dump), lambda a: grounded(a, packs), retry_room
        )
    else:
        candidates: list[GroundedTrend] = []
        for chunk in packs:

            def within_chunk(answer: ModelAnswer, chunk: Pack = chunk) -> Validated:
                return grounded(answer, [chunk])

            prompt = _prompt(selection, chunk.dump)
            candidates += _answer(asker, prompt, within_chunk, retry_room).trends
        merge = _prompt(selection, _candidates_dump(candidates), merging=True)
        result = _answer(asker, merge, lambda a: grounded(a, packs), retry_room)
        log.info("digest %s: merged %d chunks in a final call", profile.name, len(packs))
    if result.dropped_ids:
        log.warning(
            "digest %s: dropped %d evidence ids the dump did not hold (%d trends left empty)",
            profile.name,
            result.dropped_ids,
            result.dropped_trends,
        )
    left_out = packs[-1].left_out
    notes: tuple[str, ...] = ()
    if left_out:
        items = sum(story.items for story in left_out)
        notes = (
            f"{len(left_out)} lower-ranked stories ({items} items) did not fit the model's "
            "input budget and were left out.",
        )
        log.info("digest %s: %s", profile.name, notes[0])
    trends = tuple(
        Trend(
            rank=position,
            title=trend.title,
            summary=trend.summary,
            why_it_matters=trend.why_it_matters,
            status=trend.status,
            score=trend.score,
            **vars(links(trend)),  # items, more_items, more_outlets
        )
        for position, trend in enumerate(result.trends, start=1)
    )
    leads = [trend.stories[0].story.window.story_id for trend in result.trends]
    trends = with_history(trends, leads, selection)
    cited = {
        item.id for trend in result.trends for p in trend.stories for item in p.story.window.items
    }
    dropped = {item.id for story in left_out for item in story.window.items}
    return assemble(
        selection,
        now,
        asker.llm.model,
        trends,
        cited,
        len(stories),
        notes,
        left_out=dropped,
        usage=asker.usage,
    )


def _prompt(selection: Selection, dump: str, *, merging: bool = False) -> Prompt:
    titles = [trend.title for digest in selection.previous for trend in digest.trends]
    # Topic trends are measured, not read: the model hears of them beside the stories.
    topics = "\n".join(
        f'<topic_trend term="{inert(topic.term)}" stories="{topic.stories}" '
        f'sd_above_baseline="{topic.significance:.1f}"/>'
        for topic in selection.topics
    )
    return build_prompt(
        selection.profile,
        f"{dump}\n\n{topics}" if topics else dump,
        titles,
        (selection.window_from, selection.window_to),
        merging=merging,
    )


def _candidates_dump(candidates: Sequence[GroundedTrend]) -> str:
    """Chunk answers for the final call; their text came from the model reading feed text."""
    blocks = []
    for number, trend in enumerate(candidates, start=1):
        evidence = ",".join(packed.ref for packed in trend.stories)
        sources = sum(packed.story.sources for packed in trend.stories)
        blocks.append(
            f'<candidate id="C{number}" evidence="{evidence}" sources="{sources}" '
            f'score="{trend.score}" status="{trend.status}">\n{inert(trend.title)}\n'
            f"{inert(trend.summary)}\n{inert(trend.why_it_matters)}\n</candidate>"
        )
    return "\n\n".join(blocks) + (
        "\n\nCite the S ids listed in each candidate's evidence attribute, not the C ids."
    )


def _answer(
    asker: Asker, prompt: Prompt, check: Callable[[ModelAnswer], Validated], retry_room: int
) -> Validated:
    """A grounded answer; a bad one is retried once with more output room."""
    rooms = (
        asker.output_tokens,
        max(asker.output_tokens, min(asker.retry_output_tokens, retry_room)),
    )
    for attempt, room in enumerate(rooms):
        try:
            answer = asker.ask(prompt, room)
            result = check(answer)
            if answer.trends and not result.trends:
                raise BadAnswer("no trend cited an id from the dump")
            return result
        except BadAnswer as error:
            if attempt == len(rooms) - 1:
                raise ModelUnavailable(f"{error} (also after a retry with more room)") from None
            log.warning("model answer unusable (%s); retrying once with more room", error)
    raise AssertionError("unreachable")


def assemble(
    selection: Selection,
    now: datetime,
    analyzer: str,
    trends: tuple[Trend, ...],
    cited: set[str],
    stories: int,
    notes: tuple[str, ...],
    *,
    left_out: set[str] | None = None,
    usage: TokenUsage | None = None,
) -> BuiltDigest:
    """The digest and what it covered: every selected item was considered, some cited."""
    dropped = left_out or set()
    usage = usage or TokenUsage()

    def role(item_id: str) -> str:
        if item_id in cited:
            return "cited"
        return "left_out" if item_id in dropped else "considered"

    covered = {item.id: role(item.id) for item in selection.items}
    digest = Digest(
        id=digest_id(selection.profile.name, now),
        profile=selection.profile.name,
        kind=selection.profile.kind,
        created_at=now,
        analyzer=analyzer,
        window=Window(from_=selection.window_from, to=selection.window_to),
        trends=trends,
        topics=selection.topics,
        reflection=(
            report.reflect(trends, selection.topics) if selection.profile.kind == "report" else ()
        ),
        quiet=not trends,
        notes=notes,
        stats=DigestStats(
            items=len(selection.items),
            sources=len({name for item in selection.items for name in item.sources}),
            stories=stories,
            input_tokens=usage.input,
            output_tokens=usage.output,
            cost=usage.cost,
        ),
    )
    return BuiltDigest(digest=digest, covered=covered)
