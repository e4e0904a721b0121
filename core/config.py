"""The configuration model: config.yaml parsed with PyYAML and validated with pydantic.

Every error names the path of the offending key (``digests[0].deliver[1].port``) and
what was expected. Secrets never live in the file: string values may use ``${VAR}``
and ``${VAR:-default}``, resolved from the environment at load time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from core.errors import ConfigError, NotFound, UsageError
from core.urls import safe_location

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

CONFIG_ENV = "TRENDFINDER_CONFIG"
DEFAULT_CONFIG_NAME = "config.yaml"
USER_AGENT = "trendfinder/0.1 (+https://github.com/trendfinder/trendfinder)"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$")
_DURATION_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_duration(value: Any) -> Any:
    """Accept 90, "90s", "30m", "6h", "2d", "1w" (a bare number is seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30m, 6h or 2d")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        number, unit = match.groups()
        return timedelta(seconds=float(number) * _DURATION_UNITS[unit or "s"])
    raise ValueError(f"expected a duration such as 30m, 6h or 2d, got {value!r}")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_positive)]


def _parse_seconds(value: Any) -> Any:
    """A timeout in seconds, written as a number (20) or a duration ("20s", "2m")."""
    if isinstance(value, str) and not value.strip().replace(".", "", 1).isdigit():
        return _parse_duration(value).total_seconds()
    return value


Seconds = Annotated[float, BeforeValidator(_parse_seconds)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def default_state_dir() -> Path:
    """systemd's StateDirectory when it set one, else the XDG state directory."""
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "trendfinder"


class StorageConfig(_Model):
    path: Path | None = Field(
        default=None, description="SQLite database file; default <state dir>/trendfinder.db"
    )
    url: str | None = Field(
        default=None,
        description="a Postgres store instead of the SQLite file: postgresql://user@host/db "
        "(a password from the environment: PGPASSWORD, ~/.pgpass or a ${VAR} reference)",
    )
    busy_timeout: Duration = Field(
        default=timedelta(seconds=30),
        description="how long a write waits while another process holds the store's lock",
    )

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        if url is not None:
            check_postgres_url(url)
        return url

    @model_validator(mode="after")
    def _one_store(self) -> StorageConfig:
        if self.path is not None and self.url is not None:
            raise ValueError(
                "set storage.path (a SQLite file) or storage.url (a Postgres server), not both"
            )
        return self

    @property
    def database(self) -> Path:
        """The SQLite file (Store.open_config opens whichever store is configured)."""
        if self.url is not None:
            raise UsageError("storage.url names a Postgres store, not a SQLite file")
        return self.path or default_state_dir() / "trendfinder.db"

    @property
    def location(self) -> str:
        """Where the store is, for messages: the SQLite file, or the URL without password."""
        if self.url is not None:
            return safe_location(self.url)
        return str(self.database)

    @property
    def state_dir(self) -> Path:
        """Where lock files and default outputs live (beside the SQLite file)."""
        return self.path.parent if self.path is not None else default_state_dir()


def check_postgres_url(url: str) -> None:
    """ValueError in one line unless `url` is postgresql://[user[:password]@]host[:port]/db
    (parse_config refuses a password written in the file: see _written_password)."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres"}:
        raise ValueError(f"expected a postgresql://user@host/database URL, got {url!r}")
    if not parts.path.strip("/"):
        raise ValueError(f"the URL names no database (postgresql://user@host/database): {url!r}")
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError(f"the URL names no host (postgresql://user@host/database): {url!r}")


class _Source(_Model):
    name: str = Field(min_length=1)
    tags: tuple[str, ...] = ()
    interval: Duration = timedelta(minutes=30)
    weight: float = Field(default=1.0, ge=0)
    enabled: bool = True


class SourceConfig(_Source):
    kind: Literal["feed", "site"] = "feed"
    url: str

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, url: str) -> str:
        if not re.match(r"^(https?|file)://", url, re.IGNORECASE):
            raise ValueError(f"expected an http://, https:// or file:// URL, got {url!r}")
        return url


# Social and aggregator sources ---------------------------------------------------------
# Each names its service's API root in `api_url` (tests point it at a loopback server);
# `url` is what the source watches, so a change of it resets the source's fetch state.


def _web_root(url: str) -> str:
    if not re.match(r"^https?://", url, re.IGNORECASE):
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    return url.rstrip("/")


WebRoot = Annotated[str, AfterValidator(_web_root)]
# Requests per 15-minute window X allows a bearer token per endpoint, by plan (X's
# developer portal, 2025): the timeline of one user, a recent search, a username lookup.
X_TIERS: dict[str, dict[str, int]] = {
    "free": {"timeline": 1, "search": 1, "user": 3},
    "basic": {"timeline": 5, "search": 60, "user": 100},
    "pro": {"timeline": 900, "search": 450, "user": 900},
}
X_WINDOW = timedelta(minutes=15)


def _minutes(span: timedelta) -> str:
    minutes = round(span.total_seconds() / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


class XSource(_Source):
    kind: Literal["x"]
    accounts: tuple[Annotated[str, Field(pattern=r"^@?[A-Za-z0-9_]{1,15}$")], ...] = ()
    query: str | None = Field(default=None, min_length=1, max_length=512)
    bearer_token: str = Field(min_length=1, description="use ${X_BEARER_TOKEN}")
    tier: Literal["free", "basic", "pro"] = "free"
    include_retweets: bool = False
    include_replies: bool = False
    api_url: WebRoot = "https://api.x.com"

    @model_validator(mode="after")
    def _something_to_watch(self) -> XSource:
        if not self.accounts and not self.query:
            raise ValueError("an x source needs `accounts`, a `query`, or both")
        return self

    @property
    def handles(self) -> tuple[str, ...]:
        return tuple(account.lstrip("@") for account in self.accounts)

    @property
    def url(self) -> str:
        watched = [f"@{handle}" for handle in self.handles]
        watched += [f"search {self.query!r}"] if self.query else []
        return f"{self.api_url}/2 ({', '.join(watched)})"

    @property
    def account_period(self) -> timedelta:
        """How often each account can really be polled: a poll (every `interval`, at most
        once per 15-minute window) reads as many timelines as the tier allows per window,
        taking the accounts in turn."""
        per_window = X_TIERS[self.tier]["timeline"]
        polls = -(-len(self.handles) // per_window)  # ceiling: polls to go round once
        return max(self.interval, X_WINDOW) * max(polls, 1)

    @property
    def cadence(self) -> str:
        """`check` and `status`: how often each account is really read on this tier."""
        per_window = X_TIERS[self.tier]["timeline"]
        tier = f"{self.tier} tier: {per_window} timeline request(s) per 15 min"
        watched = []
        if self.handles:
            every = _minutes(self.account_period)
            watched.append(f"each of {len(self.handles)} accounts every {every}")
        if self.query:
            watched.append(f"the search every {_minutes(max(self.interval, X_WINDOW))}")
        return f"{', '.join(watched)} ({tier})"


class HackerNewsSource(_Source):
    kind: Literal["hackernews"]
    stories: Literal["top", "new", "best", "ask", "show"] = "top"
    query: str | None = Field(default=None, min_length=1, description="Algolia search instead")
    min_points: int = Field(default=0, ge=0)
    limit: int = Field(default=30, ge=1, le=500)
    api_url: WebRoot = "https://hacker-news.firebaseio.com"
    search_url: WebRoot = "https://hn.algolia.com"

    @property
    def url(self) -> str:
        if self.query:
            return f"{self.search_url}/api/v1/search_by_date?query={self.query}"
        return f"{self.api_url}/v0/{self.stories}stories.json"


class RedditSource(_Source):
    kind: Literal["reddit"]
    subreddit: str = Field(pattern=r"^(r/)?[A-Za-z0-9_]{2,21}$")
    listing: Literal["hot", "new", "top", "rising"] = "hot"
    period: Literal["hour", "day", "week", "month", "year", "all"] = "day"
    limit: int = Field(default=25, ge=1, le=100)
    min_score: int = 0
    client_id: str | None = Field(default=None, description="OAuth client credentials")
    client_secret: str | None = None
    # Reddit blocks generic User-Agents; it asks for "<platform>:<app id>:<version> (by
    # /u/<username>)". Put your Reddit username in it.
    user_agent: str = Field(
        default="python:trendfinder:0.1 (+https://github.com/trendfinder/trendfinder)",
        min_length=8,
    )
    auth_url: WebRoot = "https://www.reddit.com"

    @model_validator(mode="after")
    def _both_credentials(self) -> RedditSource:
        if (self.client_id is None) != (self.client_secret is None):
            raise ValueError("give both `client_id` and `client_secret`, or neither")
        return self

    api_url: WebRoot = "https://www.reddit.com"
    oauth_url: WebRoot = "https://oauth.reddit.com"

    @property
    def name_only(self) -> str:
        return self.subreddit.removeprefix("r/")

    @property
    def url(self) -> str:
        root = self.oauth_url if self.client_id else self.api_url
        period = f"?t={self.period}" if self.listing == "top" else ""
        return f"{root}/r/{self.name_only}/{self.listing}.json{period}"


class MastodonSource(_Source):
    kind: Literal["mastodon"]
    instance: WebRoot = Field(description="e.g. https://mastodon.social")
    hashtag: str | None = Field(default=None, pattern=r"^#?\w+$")
    account: str | None = Field(default=None, pattern=r"^@?[A-Za-z0-9_.]+(@[\w.-]+)?$")
    limit: int = Field(default=40, ge=1, le=40)

    @model_validator(mode="after")
    def _one_timeline(self) -> MastodonSource:
        if (self.hashtag is None) == (self.account is None):
            raise ValueError("a mastodon source needs exactly one of `hashtag` and `account`")
        return self

    @property
    def url(self) -> str:
        if self.hashtag:
            return f"{self.instance}/api/v1/timelines/tag/{self.hashtag.lstrip('#')}"
        return f"{self.instance}/api/v1/accounts/lookup?acct={(self.account or '').lstrip('@')}"


class BlueskySource(_Source):
    kind: Literal["bluesky"]
    actor: str | None = Field(default=None, min_length=3, description="handle or DID")
    query: str | None = Field(default=None, min_length=1)
    limit: int = Field(default=50, ge=1, le=100)
    api_url: WebRoot = "https://public.api.bsky.app"

    @model_validator(mode="after")
    def _one_feed(self) -> BlueskySource:
        if (self.actor is None) == (self.query is None):
            raise ValueError("a bluesky source needs exactly one of `actor` and `query`")
        return self

    @property
    def url(self) -> str:
        if self.actor:
            return f"{self.api_url}/xrpc/app.bsky.feed.getAuthorFeed?actor={self.actor}"
        return f"{self.api_url}/xrpc/app.bsky.feed.searchPosts?q={self.query}"


SocialSource = XSource | HackerNewsSource | RedditSource | MastodonSource | BlueskySource
_SOCIAL_KINDS = frozenset({"x", "hackernews", "reddit", "mastodon", "bluesky"})


def _source_kind(value: Any) -> str:
    """The union member to validate with: feed and site sources share one model, and an
    unknown kind stays itself, so the error lists the kinds there are."""
    kind = value.get("kind", "feed") if isinstance(value, dict) else getattr(value, "kind", "")
    return "feed" if kind in ("feed", "site") or not isinstance(kind, str) else kind


AnySource = Annotated[
    Annotated[SourceConfig, Tag("feed")]
    | Annotated[XSource, Tag("x")]
    | Annotated[HackerNewsSource, Tag("hackernews")]
    | Annotated[RedditSource, Tag("reddit")]
    | Annotated[MastodonSource, Tag("mastodon")]
    | Annotated[BlueskySource, Tag("bluesky")],
    Discriminator(_source_kind),
]


class CollectConfig(_Model):
    concurrency: int = Field(default=64, ge=1, le=1024)
    per_host: int = Field(default=4, ge=1, le=64)
    timeout: Seconds = Field(default=20.0, gt=0, description="seconds per request, in total")
    connect_timeout: Seconds = Field(default=10.0, gt=0)
    read_timeout: Seconds = Field(default=10.0, gt=0, description="seconds without a byte")
    max_bytes: int = Field(default=10_000_000, ge=1024, description="after decompression")
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_items_per_source: int = Field(default=500, ge=1)
    max_text_chars: int = Field(default=20_000, ge=200)
    parse_processes: int | None = Field(
        default=None, ge=0, description="feed parsing processes (default one per CPU; 0: none)"
    )
    user_agent: str = USER_AGENT
    max_site_articles: int = Field(
        default=20, ge=1, le=1000, description="new articles fetched per site source and poll"
    )
    allow_private_networks: bool = Field(
        default=False, description="let links discovered on site pages reach private addresses"
    )


class FirecrawlConfig(_Model):
    api_key: str | None = None
    api_url: str | None = None
    timeout: Seconds = Field(default=60.0, gt=0)

    @property
    def enabled(self) -> bool:
        return bool(self.api_key or self.api_url)


class Price(_Model):
    """US dollars per million tokens."""

    input: float = Field(ge=0)
    cached_input: float = Field(ge=0)
    output: float = Field(ge=0)


class LLMConfig(_Model):
    model: str = "o1"
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = "medium"
    base_url: str | None = None
    api_key: str | None = Field(default=None, description="default: $OPENAI_API_KEY")
    timeout: Duration = timedelta(minutes=5)
    run_budget: Duration = Field(
        default=timedelta(minutes=15), description="all model calls of one digest, retries included"
    )
    max_output_tokens: int = Field(default=16_000, ge=256)
    max_input_tokens: int = Field(
        default=100_000, ge=2_000, description="most tokens of news one request carries"
    )
    backoff: Duration = Field(default=timedelta(seconds=2), description="first retry delay")
    context_window: int | None = Field(default=None, ge=1000, description="override the table")
    daily_spend_cap: float | None = Field(default=None, ge=0, description="US dollars")
    prices: dict[str, Price] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _empty_key_is_none(self) -> LLMConfig:
        # parse_config fills a missing key from $OPENAI_API_KEY of the environment it is given.
        if self.api_key == "":
            object.__setattr__(self, "api_key", None)
        return self


class FileTarget(_Model):
    kind: Literal["file"]
    name: str | None = None
    directory: Path | None = Field(default=None, description="default: <state dir>/digests")

    @property
    def label(self) -> str:
        return self.name or "file"


class EmailTarget(_Model):
    kind: Literal["email"]
    name: str | None = None
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    sender: str
    to: tuple[str, ...] = Field(min_length=1)
    timeout: Seconds = Field(default=30.0, gt=0)
    ca_file: Path | None = Field(
        default=None, description="PEM certificates to trust (a private CA); default: system"
    )

    @property
    def label(self) -> str:
        return self.name or f"email:{','.join(self.to)}"


class SlackTarget(_Model):
    kind: Literal["slack"]
    name: str | None = None
    webhook_url: str
    timeout: Seconds = Field(default=30.0, gt=0)

    @field_validator("webhook_url")
    @classmethod
    def _https(cls, url: str) -> str:
        if not re.match(r"^https?://", url):
            raise ValueError("expected the https:// URL of a Slack incoming webhook")
        return url

    @property
    def label(self) -> str:
        # The webhook URL is a secret, so it never becomes the label.
        return self.name or "slack"


class _Chat(_Model):
    """What chat and webhook targets share: a name, a timeout, and which digests they get."""

    name: str | None = None
    timeout: Seconds = Field(default=30.0, gt=0)
    min_trends: int = Field(default=0, ge=0, description="skip digests with fewer trends")
    only_alerts: bool = Field(default=False, description="deliver alerts only, not digests")


def _web_url(url: str) -> str:
    if not re.match(r"^https?://", url, re.IGNORECASE):
        raise ValueError("expected an https:// URL")
    return url


WebUrl = Annotated[str, AfterValidator(_web_url)]


class DiscordTarget(_Chat):
    kind: Literal["discord"]
    webhook_url: WebUrl

    @property
    def label(self) -> str:
        return self.name or "discord"  # the webhook URL is a secret


class WebhookTarget(_Chat):
    kind: Literal["webhook"]
    url: WebUrl
    secret: str | None = Field(default=None, min_length=16, description="HMAC-SHA256 key")

    @property
    def label(self) -> str:
        return self.name or "webhook"


class TelegramTarget(_Chat):
    kind: Literal["telegram"]
    bot_token: str = Field(pattern=r"^\d+:[A-Za-z0-9_-]+$", description="use ${TELEGRAM_BOT_TOKEN}")
    chat_id: str = Field(min_length=1, description="numeric id or @channelname")
    api_url: WebUrl = "https://api.telegram.org"

    @field_validator("chat_id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def label(self) -> str:
        return self.name or f"telegram:{self.chat_id}"


class AppriseTarget(_Chat):
    kind: Literal["apprise"]
    urls: tuple[str, ...] = Field(min_length=1, description="Apprise URLs: ntfy://, msteams://")
    format: Literal["text", "markdown"] = "markdown"

    @property
    def label(self) -> str:
        return self.name or "apprise"  # Apprise URLs carry tokens


Target = Annotated[
    FileTarget
    | EmailTarget
    | SlackTarget
    | DiscordTarget
    | WebhookTarget
    | TelegramTarget
    | AppriseTarget,
    Field(discriminator="kind"),
]
_TAGS = frozenset({"file", "email", "slack", "discord", "webhook", "telegram", "apprise"})


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_weekdays(field: str) -> str:
    """Cron's day-of-week numbers (0 or 7 is Sunday) as names.

    APScheduler 3 numbers weekdays from Monday = 0, so passing cron's numbers through
    would move every weekly schedule a day later.
    """
    if not any(char.isdigit() for char in field):
        return field
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        else:
            first_text, _, last_text = span.partition("-")
            first = _weekday_number(first_text)
            last = _weekday_number(last_text) if last_text else (6 if step_text else first)
            if last_text and last == 0:
                last = 7  # "5-7" and "5-0" both end on Sunday
        if step < 1 or first > last:
            raise ValueError(f"invalid day-of-week field {field!r}")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _weekday_number(text: str) -> int:
    name = text.strip().lower()
    if name.isdigit() and 0 <= int(name) <= 7:
        return int(name)
    if name[:3] in _WEEKDAYS:
        return _WEEKDAYS.index(name[:3])
    raise ValueError(f"invalid day of week {text!r}")


def cron_trigger(expression: str, timezone: str = "UTC") -> CronTrigger:
    """A cron schedule: the usual 5 fields, or 6 with seconds first (`*/10 * * * * *`)."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ValueError(f"wrong number of fields; got {len(fields)}")
    second, minute, hour, day, month, day_of_week = fields
    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_cron_weekdays(day_of_week),
        timezone=ZoneInfo(timezone),
    )


def _cron(expression: str) -> str:
    try:
        cron_trigger(expression)
    except ValueError as error:
        raise ValueError(
            f"expected a 5-field cron expression (or 6 fields, seconds first), "
            f"got {expression!r}: {error}"
        ) from None
    return expression


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r} (use an IANA name such as Europe/Paris)"
        ) from None
    return name


class StoryBurstRule(_Model):
    """A story gaining outlets fast: at least `outlets` within `window`, and (with `z` above
    0) that many standard deviations above how fast stories usually gain outlets."""

    kind: Literal["story"]
    outlets: int = Field(default=3, ge=2)
    window: Duration = timedelta(hours=2)
    z: float = Field(default=0.0, ge=0)


class TopicTrendRule(_Model):
    """A term or entity across at least `stories` stories, `z` above its running baseline."""

    kind: Literal["topic"]
    stories: int = Field(default=3, ge=2)
    z: float = Field(default=3.0, gt=0)


class KeywordRule(_Model):
    """A story naming any of `match` (case-insensitive words or phrases in its titles or
    text) once `outlets` outlets carry it."""

    kind: Literal["keywords"]
    match: tuple[str, ...] = Field(min_length=1)
    outlets: int = Field(default=1, ge=1)


AlertRule = Annotated[StoryBurstRule | TopicTrendRule | KeywordRule, Field(discriminator="kind")]


class AlertsConfig(_Model):
    """Alerts between scheduled digests, through the same outbox as digests."""

    rules: tuple[AlertRule, ...] = Field(min_length=1)
    per_hour: int = Field(default=3, ge=1, description="alerts per profile per hour, at most")
    repeat_when: float = Field(
        default=2.0, gt=1, description="a story alerts again once its outlets grow this much"
    )
    deliver: tuple[Target, ...] = Field(
        default=(), description="alert-only targets; the profile's own when empty"
    )


class DigestProfile(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: Literal["digest", "report"] = Field(
        default="digest",
        description="report: a reflection over a long lookback (e.g. weekly): main movements, "
        "what is fading, what to watch",
    )
    focus: str = Field(min_length=1, description="who reads this digest and what they care about")
    sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    schedule: Annotated[str, AfterValidator(_cron)] = "0 7 * * *"
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    max_trends: int = Field(default=8, ge=1, le=100)
    lookback: Duration = timedelta(days=1)
    split_when_too_large: bool = Field(
        default=False, description="ask in chunks and merge, instead of dropping the tail"
    )
    deliver: tuple[Target, ...] = Field(min_length=1)
    alerts: AlertsConfig | None = None

    @property
    def alert_targets(self) -> tuple[Target, ...]:
        if self.alerts is None:
            return ()
        return self.alerts.deliver or self.deliver

    @model_validator(mode="after")
    def _unique_target_labels(self) -> DigestProfile:
        extra = self.alerts.deliver if self.alerts else ()
        labels = [target.label for target in (*self.deliver, *extra)]
        if len(labels) != len(set(labels)):
            raise ValueError("two targets share a name; give each a distinct `name`")
        return self

    @property
    def keeps_archive(self) -> bool:
        """A file target keeps every digest in an archive, which other targets may point to."""
        return any(isinstance(target, FileTarget) for target in self.deliver)


class DeliveryConfig(_Model):
    max_attempts: int = Field(default=8, ge=1)
    backoff: Duration = Field(default=timedelta(minutes=1), description="first retry delay")


class ServeConfig(_Model):
    """`trendfinder serve`, standalone or inside the daemon (enabled)."""

    enabled: bool = Field(default=False, description="run the web app inside the daemon")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    token: str | None = Field(default=None, description="required off loopback; ${VAR} it")
    public_url: str | None = Field(default=None, description="where vote links in digests point")
    secret: str | None = Field(
        default=None, description="signs vote links and forms; default: <state dir>/web-secret"
    )
    allow_source_edits: bool = Field(
        default=False, description="let the web app add sources to a writable config file"
    )


class Config(_Model):
    storage: StorageConfig = StorageConfig()
    collect: CollectConfig = CollectConfig()
    firecrawl: FirecrawlConfig = FirecrawlConfig()
    llm: LLMConfig = LLMConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    serve: ServeConfig = ServeConfig()
    sources: tuple[AnySource, ...] = Field(min_length=1)
    digests: tuple[DigestProfile, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> Config:
        names = [source.name for source in self.sources]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique; repeated: {', '.join(duplicates)}")
        profiles = [profile.name for profile in self.digests]
        if len(profiles) != len(set(profiles)):
            raise ValueError("digest profile names must be unique")
        tags = {tag for source in self.sources for tag in source.tags}
        for profile in self.digests:
            unknown = [name for name in profile.sources if name not in names]
            if unknown:
                raise ValueError(
                    f"digest {profile.name!r} names unknown sources: {', '.join(unknown)}"
                )
            unknown_tags = [tag for tag in profile.tags if tag not in tags]
            if unknown_tags:
                raise ValueError(
                    f"digest {profile.name!r} names tags no source has: {', '.join(unknown_tags)}"
                )
        return self

    def sources_for(self, profile: DigestProfile) -> tuple[AnySource, ...]:
        """The profile's sources: those it names, those carrying its tags, or all of them."""
        if not profile.sources and not profile.tags:
            return self.sources
        return tuple(
            source
            for source in self.sources
            if source.name in profile.sources or set(source.tags) & set(profile.tags)
        )

    def keeps_archive(self, profile: str) -> bool:
        """Whether the profile named `profile` (if it is still configured) keeps an archive."""
        return any(p.keeps_archive for p in self.digests if p.name == profile)

    def profile(self, name: str) -> DigestProfile:
        for profile in self.digests:
            if profile.name == name:
                return profile
        known = ", ".join(p.name for p in self.digests) or "none"
        raise NotFound(f"no digest profile named {name!r} (configured: {known})")


_SECTIONS = frozenset({"storage", "collect", "firecrawl", "llm", "delivery"})
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, path: str, problems: list[str], env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: _interpolate(value, _join(path, str(key)), problems, env)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_interpolate(value, f"{path}[{i}]", problems, env) for i, value in enumerate(node)]
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path or '(top level)'}: environment variable {name} is not set")
            return ""

        return _ENV_REFERENCE.sub(substitute, node)
    return node


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in _TAGS | {"feed", *_SOCIAL_KINDS} and text.endswith("]"):
            # pydantic adds the discriminator value to the path of a tagged union member
            continue
        else:
            text = _join(text, part)
    return text or "(top level)"


def _describe(error: Any) -> str:
    location = _location(tuple(error["loc"]))
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return f"{location}: unknown key"
    if kind == "missing":
        return f"{location}: required key is missing"
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    got = error.get("input")
    if kind not in {"value_error", "union_tag_invalid"} and not isinstance(got, dict | list):
        return f"{location}: {message} (got {got!r})"
    return f"{location}: {message}"


def parse_config(
    text: str,
    source: str = "<config>",
    env: dict[str, str] | None = None,
    base: Path | None = None,
) -> Config:
    """Parse and validate YAML text; raise ConfigError naming every problem.

    Relative paths are taken relative to `base` (the config file's folder), not to
    the working directory, so a service and a shell agree on where things are.
    """
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except DuplicateKey as error:
        raise ConfigError(source, [str(error)]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(source, [f"YAML syntax error at {where}{problem}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, ["the top level must be a mapping of sections"])
    # A section left with only comments under it means "all defaults".
    raw = {key: {} if value is None and key in _SECTIONS else value for key, value in raw.items()}
    problems: list[str] = _written_password(raw)
    environment = dict(os.environ) if env is None else env
    resolved = _interpolate(raw, "", problems, environment)
    if problems:
        raise ConfigError(source, problems)
    try:
        config = Config.model_validate(resolved)
    except ValidationError as error:
        raise ConfigError(source, [_describe(e) for e in error.errors()]) from None
    llm = config.llm
    # `api_key: ''` in the file means "no model" even when the environment has a key.
    key = environment.get("OPENAI_API_KEY")
    if key and llm.api_key is None and "api_key" not in llm.model_fields_set:
        config = config.model_copy(update={"llm": llm.model_copy(update={"api_key": key})})
    config = _anchor_paths(config, base or Path.cwd())
    if missing := _missing_files(config):
        raise ConfigError(source, missing)
    return config


def _written_password(raw: dict[str, Any]) -> list[str]:
    """storage.url's password may come from a ${VAR} reference, never from the file itself
    (checked before interpolation, which would hide the difference)."""
    storage = raw.get("storage")
    url = storage.get("url") if isinstance(storage, dict) else None
    password = urlsplit(url).password if isinstance(url, str) else None
    if password and not _ENV_REFERENCE.fullmatch(password):
        return [
            "storage.url: the password is written in the file; use a ${VAR} reference, "
            "PGPASSWORD or ~/.pgpass"
        ]
    return []


class DuplicateKey(yaml.constructor.ConstructorError):
    """A key given twice in one mapping; YAML would silently keep the last one."""

    def __str__(self) -> str:
        return str(self.problem)


class _UniqueKeyLoader(yaml.CSafeLoader):
    """PyYAML's SafeLoader (its libyaml build: a sixth of the CPU on 300 sources), except
    that a key repeated in a mapping (two `collect:` blocks, at any depth) is an error naming
    its line, instead of the first one being dropped."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges may be overridden
                continue
            key = self.construct_object(key_node, deep=False)
            line = key_node.start_mark.line + 1
            if not isinstance(key, Hashable):
                continue  # SafeLoader itself reports an unhashable key
            if key in first_lines:
                raise DuplicateKey(
                    problem=f"line {line}: duplicate key {key!r} (first given at line "
                    f"{first_lines[key]}); merge the two into one",
                    problem_mark=key_node.start_mark,
                )
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


def _missing_files(config: Config) -> list[str]:
    """Files the config names that are not there: said now, not at the first delivery."""
    return [
        f"digests[{p}].deliver[{t}].ca_file: no such file: {target.ca_file}"
        for p, profile in enumerate(config.digests)
        for t, target in enumerate(profile.deliver)
        if isinstance(target, EmailTarget)
        and target.ca_file is not None
        and not target.ca_file.is_file()
    ]


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $TRENDFINDER_CONFIG, else ./config.yaml."""
    if explicit:
        return Path(explicit)
    if from_env := os.environ.get(CONFIG_ENV):
        return Path(from_env)
    return Path(DEFAULT_CONFIG_NAME)


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            str(path), ["file not found (use --config or TRENDFINDER_CONFIG)"]
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), [f"cannot read: {error}"]) from None
    return parse_config(text, str(path), base=path.resolve().parent)


def _anchor_paths(config: Config, base: Path) -> Config:
    def absolute(path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else base / path

    storage = config.storage
    if storage.path is not None:
        storage = storage.model_copy(update={"path": absolute(storage.path)})

    def anchored(target: Target) -> Target:
        if isinstance(target, EmailTarget) and target.ca_file is not None:
            return target.model_copy(update={"ca_file": absolute(target.ca_file)})
        if not isinstance(target, FileTarget):
            return target
        directory = absolute(target.directory) if target.directory else None
        return target.model_copy(update={"directory": directory or storage.state_dir / "digests"})

    def profile_anchored(profile: DigestProfile) -> DigestProfile:
        update: dict[str, object] = {"deliver": tuple(anchored(t) for t in profile.deliver)}
        if profile.alerts and profile.alerts.deliver:
            alert_targets = tuple(anchored(t) for t in profile.alerts.deliver)
            update["alerts"] = profile.alerts.model_copy(update={"deliver": alert_targets})
        return profile.model_copy(update=update)

    digests = tuple(profile_anchored(profile) for profile in config.digests)
    return config.model_copy(update={"storage": storage, "digests": digests})
