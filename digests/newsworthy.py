"""Not news: service pieces, listicles, deals and episode lists never become trends.

Judged from titles (pure). Hand-written patterns, because these are editorial formats with
stable wording ("tips, latest odds and best bets", "Ep 135:", "Deals:"), and no shipped
model knows a listicle from a report. An outlet's feed of episodes is judged as a whole: when
most of one source's items are numbered episodes, all of them are an episode list
("Best of 2022: Part 2" included).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from core.items import StoredItem

_KINDS: dict[str, re.Pattern[str]] = {
    # "20 Of The Best TV Shows...", "44 Absolutely Iconic...", "Top 10: Wallpapers", "Best of 2022"
    "a listicle": re.compile(
        r"(?i)^(?:the\s+)?\d+\s+(?:of\s+the\s+)?(?:best|worst|greatest|things|ways|reasons|"
        r"tips|times|photos|pictures|moments|products|gifts|books|films|movies|shows|songs|"
        r"places|questions|signs|facts|absolutely|iconic|incredible|amazing|genius|hilarious|"
        r"funny|cute|perfect|little|useful|essential|great|must)\b"
        r"|^top\s+\d+\b|^best\s+of\b|\bof the best\b"
    ),
    # "Which Golden Girl Are You...", "Tell us: how have you been affected..."
    "a quiz or call-out": re.compile(
        r"(?i)\bwe'?ll (?:tell|reveal|guess)\b|\btell us\b|\bquiz\b|^(?:which|what) .+ are you\b"
    ),
    # "Grand National 2022 tips, latest odds and best bets", "Nutrition Tips for Runners"
    "tips and odds": re.compile(
        r"(?i)\btips\b\s*(?:,|and\b|for\b|to\b|on how\b|:)|\b(?:latest|betting|best) odds\b|"
        r"\bbest bets?\b|\bpredictions?\b.*\b(?:odds|tips)\b|^how to\b|\bhow to (?:watch|buy|"
        r"get tickets|stream|vote|apply|claim)\b"
    ),
    # "Deals: Get Apple's 14-Inch MacBook Pro for Up to $250 Off"
    "a deal": re.compile(
        r"(?i)^deals?\b|\b(?:up to )?[$£€]\d[\d,.]* off\b|\b\d+% off\b|\bon sale\b|"
        r"\bdiscount(?:s|ed)? on\b|\bbest .{0,30}deals\b|\bprime day\b|\bblack friday\b|"
        r"\bcoupons?\b"
    ),
    # "Ep 135: Tom Davis", "Campaign 3, Episode 47", "The race to mine the deep sea – podcast"
    "an episode": re.compile(
        r"(?i)\bep(?:isode)?s?\.?\s*\d+|\bseason \d+,? episodes?\b|[-–—|]\s*podcast\s*$|"
        r"^podcast\b"
    ),
    # "Guardian Morning Briefing - sign up and start the day one step ahead"
    "a promotion": re.compile(
        r"(?i)^sign up\b|\bsign up (?:and|for|now|here|today)\b|\bnewsletter\b|\bsponsored\b"
    ),
}
# A source is an episode list when at least this share of its items are episodes.
_EPISODE_LIST = 0.5


# All kinds in one pattern, one search per title (a busy day has 50,000 of them); the
# named group that matched says which kind.
_ANY = re.compile(
    "|".join(
        f"(?P<k{n}>{pattern.pattern.removeprefix('(?i)')})"
        for n, pattern in enumerate(_KINDS.values())
    ),
    re.IGNORECASE,
)
_KIND_OF_GROUP = {f"k{n}": kind for n, kind in enumerate(_KINDS)}


def kind_of(title: str) -> str | None:
    """What kind of not-news a title announces, or None when it reads as news."""
    found = _ANY.search(title)
    return _KIND_OF_GROUP[found.lastgroup] if found and found.lastgroup else None


def not_news(items: Sequence[StoredItem]) -> dict[str, str]:
    """Item id -> the kind of not-news it is, for the items that are not news."""
    found = {item.id: kind for item in items if (kind := kind_of(item.title))}
    episodes: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for item in items:
        source = item.sources[0] if item.sources else ""
        totals[source] += 1
        if found.get(item.id) == "an episode":
            episodes[source] += 1
    lists = {s for s, n in episodes.items() if n >= 2 and n >= _EPISODE_LIST * totals[s]}
    for item in items:
        if item.sources and item.sources[0] in lists:
            found[item.id] = "an episode list"
    return found


def news(items: Sequence[StoredItem]) -> tuple[StoredItem, ...]:
    """The items that may become trends."""
    excluded = not_news(items)
    return tuple(item for item in items if item.id not in excluded)
