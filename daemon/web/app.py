"""`trendfinder serve`: the web app over the store (Starlette, Jinja2, plain forms).

Pages read the store opened read-only per request, so they work while the daemon writes;
votes go through the same store with its locking. Every page is readable without
JavaScript; every POST carries a CSRF token; off loopback every page needs the token.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import multiprocessing
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from core.clock import utcnow
from core.config import Config
from core.digest import Coverage, Digest, StoryTimeline
from core.errors import ConfigError, UsageError
from core.history import Arrival
from core.store import Store, StoreError, StoreLocked, StoreMissing
from core.urls import is_web_url
from core.votes import Vote
from daemon.web import config_edit
from daemon.web.signing import VoteLink, load_secret, sign, verify
from digests import feedback, render, timeline
from digests.selection import REPORTED_HORIZON

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("trendfinder")
HERE = Path(__file__).parent
CSRF_COOKIE = "tf_csrf"
LOGIN_COOKIE = "tf_login"
SPEND_DAYS = 30
STATUSES = ("new", "developing", "rising")
# A status filter looks at this many of the best hits to find the page's 50.
STATUS_POOL = 100
# How often the server looks for a changed store, to warm the pages again (seconds; a look
# is three index reads), and how old a preview of a changed store may get unless a reader
# asks for it.
PREVIEW_EVERY = 10.0
REMAKE_EVERY = timedelta(minutes=1)
PREVIEW_STALE = "The store has changed since; a newer preview is being made: reload shortly."
# Pages that a signed link or the login itself authorises.
_OPEN_PATHS = ("/login", "/vote", "/static/", "/favicon.ico")
_SECURITY_HEADERS = {
    # No script, style or frame from anywhere else; the app ships no script at all.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class StoryHistory:
    """A story as the digests chart it: its timeline, coverage map and statuses now."""

    timeline: StoryTimeline | None
    coverage: Coverage | None
    statuses: frozenset[str]  # of STATUSES


@dataclass(frozen=True)
class _Seen:
    """A few stories' store reads as of `now`, for their statuses and timelines."""

    now: datetime
    arrivals: Mapping[str, Sequence[Arrival]]
    stream: Mapping[datetime, int]
    reported: frozenset[str]  # the stories a digest reported within the horizon


def statuses_of(trajectory: str | None, reported: bool) -> frozenset[str]:
    """new / rising: the story's trajectory now; developing: reported within the horizon."""
    found = {trajectory} if trajectory else set()
    return frozenset(found | {"developing"} if reported else found)


@dataclass(frozen=True)
class Preview:
    key: tuple[object, ...]  # Store.preview_key when it was made
    digest: Digest | None  # None: no new items
    made_at: datetime
    regulars: frozenset[str]  # the profile's usual outlets then (a story's blindspots)


class ServeRefused(UsageError):
    """The web app cannot start as configured; the message says what to change."""


def check_binding(config: Config, host: str) -> None:
    if not is_loopback(host) and not config.serve.token:
        raise ServeRefused(
            f"serve: binding {host} (not loopback) needs serve.token in the config, so "
            "that only people with the token can read and vote"
        )
    if not is_loopback(host):
        log.warning(
            "serve: listening on %s over plain HTTP; put a TLS proxy in front, or the token "
            "and the pages cross the network readable",
            host,
        )


def templates() -> Environment:
    environment = Environment(
        # The digest templates are shared with the delivered HTML (digests/render.py).
        loader=ChoiceLoader(
            [PackageLoader("daemon.web", "templates"), PackageLoader("digests", "templates")]
        ),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(render.templates().filters)
    environment.globals.update(render.templates().globals)
    return environment


class App:
    """The routes, over one configuration and its store."""

    def __init__(self, config: Config, config_file: Path | None = None) -> None:
        self.config = config
        self.config_file = config_file  # where `config` was read, for adding sources
        self.secret = load_secret(config.serve.secret, config.storage.state_dir)
        self.env = templates()
        # Compiled at start-up, not by each page's first reader: the pages' templates and
        # the delivered digest's (render.html's own environment).
        for env in (self.env, render.templates()):
            for name in env.list_templates(extensions=["j2"]):
                env.get_template(name)
        self._previews: dict[str, Preview] = {}
        self._editing = threading.Lock()  # one config edit at a time
        self._idle: list[Store] = []  # open read-only stores between requests, newest last
        self._pool = threading.Lock()
        # Set by a page that found a preview stale, for the thread that remakes them; None:
        # no such thread (an app without `keep_previews`), so the page remakes it itself.
        self._stale: threading.Event | None = None
        self._maker: ProcessPoolExecutor | None = None  # the previews' process (`keep_previews`)
        self._stopping = False
        self._warm_pages: tuple[Callable[[Request], Response], ...] = ()  # set by `start`
        self._every = PREVIEW_EVERY  # how often the previews' thread looks (`keep_previews`)

    # Store access: read-only for pages, writable (same locking) for votes.

    @contextmanager
    def reading(self) -> Iterator[Store]:
        """A read-only store kept open between requests and shared by the worker threads,
        one request at a time each: its cache keeps the search index warm (a ranked search
        of a common word read its whole index on every fresh connection), and the ones
        warmed at start-up serve the first requests whichever thread takes them (the last
        returned first, the warmest). Each statement outside a transaction reads the newest
        commit (a WAL snapshot ends with its transaction), and a read-only connection never
        waits for the daemon's lock; a store that failed is closed, not reused."""
        with self._pool:
            store = self._idle.pop() if self._idle else None
        if store is None:
            store = Store.open_config(self.config.storage, read_only=True)
        try:
            yield store
        except BaseException as error:
            store.__exit__(type(error), error, error.__traceback__)  # closes; names the store
            raise
        with self._pool:
            self._idle.append(store)

    def start(self, warm: Sequence[Callable[[Request], Response]]) -> None:
        """Start-up work, done before the server takes connections so that no reader pays
        it: every profile's preview (the selection reads take seconds at a million items;
        made in this process, it imports the digest builder too), and the pages' own
        statements (`warm`, each page rendered once) through the store the first requests
        will take."""
        from daemon import select, status  # noqa: F401 (imported now, not by a first page)

        self._warm_pages = tuple(warm)
        self._refresh([profile.name for profile in self.config.digests])
        if self._stale is not None:  # after start-up's own refresh, never beside it
            threading.Thread(
                target=self._keep, args=(self._stale, self._every), name="previews", daemon=True
            ).start()

    def _refresh(self, names: Sequence[str]) -> None:
        """Make these profiles' previews and warm the store the next requests take: the
        previews in their own process while this one renders the pages once, a search with
        a status filter among them (with the store cold on disk, its first one took 133 ms;
        after a write, each connection's cache starts empty). A store that cannot be read
        yet is logged; its pages say so."""
        maker = self._maker
        making = (
            [(name, maker.submit(_preview_apart, self.config, name)) for name in names]
            if maker is not None
            else []
        )
        try:
            if maker is None:
                for name in names:
                    self._remake(name)
            for page in self._warm_pages:
                page(_warming_request())
            with self.reading() as store:
                newest = store.search(None, limit=1)
            # The longest word of the newest story's title (not a number): the index and
            # the newest items a search reads first.
            words = [word for word in newest[0].title.split() if word.isalpha()] if newest else []
            if words:
                word = max(words, key=len)
                self.stories(_warming_request({"q": word, "status": STATUSES[-1]}))
        except StoreError as error:
            log.warning("serve: could not read the store: %s", error)
        for name, made in making:
            try:
                self._previews[name] = made.result()
            except Exception as error:  # a page makes it, or says why it cannot
                log.warning("serve: preview of %s: %s", name, error)

    @contextmanager
    def writing(self) -> Iterator[Store]:
        with Store.open_config(self.config.storage) as store:
            yield store

    # Rendering and request plumbing.

    def page(self, request: Request, name: str, status: int = 200, **values: Any) -> Response:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_hex(16)
        body = self.env.get_template(name).render(
            csrf=sign(self.secret, "csrf", token),
            profiles=[profile.name for profile in self.config.digests],
            path=request.url.path,
            **values,
        )
        response = HTMLResponse(body, status_code=status)
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
        return response

    def problem(self, request: Request, status: int, message: str) -> Response:
        return self.page(request, "problem.html.j2", status=status, message=message)

    async def form(self, request: Request) -> dict[str, str] | None:
        """The POSTed form when its CSRF token matches this browser's cookie, else None."""
        form = await request.form()
        token = request.cookies.get(CSRF_COOKIE, "")
        sent = str(form.get("csrf", ""))
        if not token or not verify(self.secret, sent, "csrf", token):
            return None
        return {key: str(value) for key, value in form.items()}

    def authorised(self, request: Request) -> bool:
        token = self.config.serve.token
        if not token or request.url.path.startswith(_OPEN_PATHS):
            return True
        bearer = request.headers.get("authorization", "")
        if bearer.startswith("Bearer ") and secrets.compare_digest(bearer[7:], token):
            return True
        login = request.cookies.get(LOGIN_COOKIE, "")
        return bool(login) and verify(self.secret, login, "login", token)

    # Pages.

    def today(self, request: Request) -> Response:
        with self.reading() as store:
            latest = [
                digest
                for profile in self.config.digests
                if (digest := store.last_digest(profile.name)) is not None
            ]
            shown = [(digest, self._trend_stories(store, digest)) for digest in latest]
        return self.page(request, "today.html.j2", shown=shown)

    def _trend_stories(self, store: Store, digest: Any) -> list[tuple[Any, str | None, int]]:
        """Each trend with the story it stands for and the reader's vote on it."""
        rows = []
        for trend in digest.trends:
            ids = store.digest_story_ids(
                digest.profile, digest.id, [item.url for item in trend.items]
            )
            rows.append((trend, ids[0] if ids else None))
        votes = store.vote_values(digest.profile, [sid for _, sid in rows if sid])
        return [(trend, sid, votes.get(sid, 0) if sid else 0) for trend, sid in rows]

    def stories(self, request: Request) -> Response:
        params = request.query_params
        query = params.get("q", "").strip()
        profile_name = params.get("profile", "")
        source = params.get("source", "")
        sources: list[str] | None = None
        if profile_name:
            profile = self._profile(profile_name)
            if profile is None:
                return self.problem(request, 404, f"no digest profile named {profile_name!r}")
            sources = [s.name for s in self.config.sources_for(profile)]
        if source:
            sources = [name for name in (sources or [source]) if name == source]
        tag = params.get("tag", "")
        if tag:
            tagged = [s.name for s in self.config.sources if tag in s.tags]
            sources = [name for name in (sources or tagged) if name in tagged]
        try:
            since = _day(params.get("since", ""))
            until = _day(params.get("until", ""))
        except ValueError:
            return self.problem(request, 400, "dates are written YYYY-MM-DD")
        status = params.get("status", "")
        if status and status not in STATUSES:
            return self.problem(request, 400, f"status is one of {', '.join(STATUSES)}")
        with self.reading() as store:
            hits = store.search(
                query,
                sources=sources,
                since=since,
                until=until + timedelta(days=1) if until else None,
                limit=STATUS_POOL if status else 50,
            )
            if status:
                chosen = [profile_name] if profile_name else None
                statuses = self._statuses(store, [hit.story_id for hit in hits], chosen)
                hits = [hit for hit in hits if status in statuses[hit.story_id]][:50]
        return self.page(
            request,
            "stories.html.j2",
            hits=hits,
            query=query,
            chosen_profile=profile_name,
            source=source,
            tag=tag,
            tags=sorted({tag for s in self.config.sources for tag in s.tags}),
            since=params.get("since", ""),
            until=params.get("until", ""),
            chosen_status=status,
            statuses=STATUSES,
            source_names=[s.name for s in self.config.sources],
        )

    def story(self, request: Request) -> Response:
        story_id = request.path_params["story_id"]
        with self.reading() as store:
            items = store.story_members(story_id)
            votes = {
                profile.name: store.vote_values(profile.name, [story_id]).get(story_id, 0)
                for profile in self.config.digests
            }
            history = self._histories(store, [story_id], None)[story_id] if items else None
        if not items:
            return self.problem(request, 404, "no such story")
        outlets = sorted({name for item in items for name in item.sources})
        return self.page(
            request,
            "story.html.j2",
            story_id=story_id,
            items=items,
            outlets=outlets,
            votes=votes,
            history=history,
            horizon_days=REPORTED_HORIZON.days,
        )

    def _histories(
        self, store: Store, story_ids: list[str], profiles: list[str] | None
    ) -> dict[str, StoryHistory]:
        """Each story's timeline, coverage map and statuses, computed by the digests' own
        timeline code over the same store reads a digest makes (daemon/select.py)."""
        seen = self._seen(store, story_ids, profiles)
        # The profiles' usual outlets as their last previews found them: reading them takes
        # seconds at a million items, too long for a page.
        regulars = {name for preview in self._previews.values() for name in preview.regulars}
        histories = {}
        for story_id in story_ids:
            arrivals = seen.arrivals.get(story_id, ())
            told = story_id in seen.reported
            line = timeline.timeline(arrivals, seen.now, seen.stream, reported=told)
            histories[story_id] = StoryHistory(
                timeline=line,
                coverage=timeline.coverage(arrivals, regulars),
                statuses=statuses_of(line.trajectory if line else None, told),
            )
        return histories

    def _statuses(
        self, store: Store, story_ids: list[str], profiles: list[str] | None
    ) -> dict[str, frozenset[str]]:
        """Each story's statuses, as `_histories` finds them, without the chart and coverage
        a status filter does not show: 16 ms of CPU for 100 stories instead of 40."""
        seen = self._seen(store, story_ids, profiles)
        found = {}
        for story_id in story_ids:
            arrivals = seen.arrivals.get(story_id, ())
            told = story_id in seen.reported
            moving = (
                timeline.trajectory(arrivals, seen.now, seen.stream, reported=told)
                if arrivals
                else None
            )
            found[story_id] = statuses_of(moving, told)
        return found

    def _seen(self, store: Store, story_ids: list[str], profiles: list[str] | None) -> _Seen:
        """What the stories' statuses and timelines are computed from. developing: a digest
        (of `profiles`, None: any) reported the story within the reporting horizon."""
        now = utcnow()
        names = [source.name for source in self.config.sources]
        return _Seen(
            now=now,
            arrivals=store.story_arrivals(story_ids, now - REPORTED_HORIZON),
            stream=store.items_per_hour(names, now - timeline.DIGEST.history, now + timeline.HOUR),
            reported=frozenset(
                store.reported_stories(
                    story_ids,
                    profiles or [profile.name for profile in self.config.digests],
                    now - REPORTED_HORIZON,
                )
            ),
        )

    def sources(self, request: Request) -> Response:
        now = utcnow()
        names = [source.name for source in self.config.sources]
        with self.reading() as store:
            states = {state.name: state for state in store.source_states()}
            recent = store.items_per_source(names, now - timedelta(days=1), now)
            engagement = store.engagement_per_source(names, now - timedelta(days=1))
        rows = [
            (
                source,
                states.get(source.name),
                recent.get(source.name, 0),
                engagement.get(source.name),
            )
            for source in self.config.sources
        ]
        return self.page(
            request,
            "sources.html.j2",
            rows=rows,
            can_add=self.can_add_sources(),
            added=request.query_params.get("added", ""),
        )

    def can_add_sources(self) -> bool:
        return self.config.serve.allow_source_edits and config_edit.writable(self.config_file)

    async def add_source(self, request: Request) -> Response:
        form = await self.form(request)
        if form is None:
            return self.problem(request, 403, "the form expired; reload the page and try again")
        if not self.can_add_sources() or self.config_file is None:
            return self.problem(
                request,
                403,
                "adding sources is off: it needs serve.allow_source_edits and a config file "
                "the server can write",
            )
        url = form.get("url", "").strip()
        if not is_web_url(url):
            # file:// is for the operator's own config, never for a web form.
            return self.problem(request, 400, "a source added here needs an http(s) URL")
        entry: dict[str, object] = {
            "name": form.get("name", "").strip(),
            "kind": "site" if form.get("kind") == "site" else "feed",
            "url": url,
        }
        if tags := [tag.strip() for tag in form.get("tags", "").split(",") if tag.strip()]:
            entry["tags"] = tags
        try:
            with self._editing:
                self.config = config_edit.add_source(self.config_file, entry)
        except ConfigError as error:
            return self.problem(request, 400, "; ".join(error.problems))
        log.info("serve: added source %s to %s", entry["name"], self.config_file)
        return RedirectResponse(f"/sources?added={quote(str(entry['name']))}", status_code=303)

    async def test_source(self, request: Request) -> Response:
        form = await self.form(request)
        if form is None:
            return self.problem(request, 403, "the form expired; reload the page and try again")
        url = form.get("url", "").strip()
        kind = "site" if form.get("kind") == "site" else "feed"
        outcome = await run_in_threadpool(partial(self._fetch, url, kind))
        return self.page(request, "tested.html.j2", url=url, kind=kind, outcome=outcome)

    def _fetch(self, url: str, kind: str) -> Any:
        # What `sources test` does: one fetch and parse, nothing stored.
        from core.items import FetchRequest
        from sources.collect import collect

        request = FetchRequest(name=url, kind=kind, url=url)
        (outcome,) = collect(
            [request], self.config.collect, utcnow(), firecrawl=self.config.firecrawl
        )
        return outcome

    def digests(self, request: Request) -> Response:
        with self.reading() as store:
            summaries = store.digest_summaries(limit=200)
        return self.page(request, "digests.html.j2", summaries=summaries)

    def digest(self, request: Request) -> Response:
        digest_id = request.path_params["digest_id"]
        with self.reading() as store:
            if not store.has_digest(digest_id):
                return self.problem(request, 404, "no such digest")
            digest = store.digest(digest_id)
            trends = self._trend_stories(store, digest)
            summary = next(
                (s for s in store.digest_summaries(digest.profile, 500) if s.id == digest_id),
                None,
            )
        return self.page(request, "digest.html.j2", digest=digest, trends=trends, summary=summary)

    def delivered(self, request: Request) -> Response:
        """A stored digest exactly as the email and the archive deliver it."""
        digest_id = request.path_params["digest_id"]
        with self.reading() as store:
            if not store.has_digest(digest_id):
                return self.problem(request, 404, "no such digest")
            digest = store.digest(digest_id)
        return HTMLResponse(render.html(digest))

    def preview(self, request: Request) -> Response:
        """A dry run of the profile's next digest (offline analyzer): nothing stored or sent,
        and saying when it was made."""
        profile = self._profile(request.path_params["profile"])
        if profile is None:
            return self.problem(request, 404, "no such digest profile")
        shown, stale = self.previewed(profile.name)
        made = f"{shown.made_at:%Y-%m-%d %H:%M:%S} UTC"
        newer = (PREVIEW_STALE,) if stale else ()
        if shown.digest is None:
            message = " ".join((f"{profile.name}: no new items as of {made}; no digest.", *newer))
            return self.problem(request, 200, message)
        notes = (f"Preview as of {made}: not stored, not sent.", *newer)
        return HTMLResponse(render.html(shown.digest.model_copy(update={"notes": notes})))

    def previewed(self, name: str) -> tuple[Preview, bool]:
        """The profile's preview, and whether the store has changed since it was made.

        At a million items reading a selection takes seconds: the server makes each preview
        at start-up and remakes a stale one in its background thread (`keep_previews`), so
        a page serves the one it has; without that thread the page remakes it."""
        with self.reading() as store:
            key = store.preview_key(name)
        cached = self._previews.get(name)
        if cached is not None and cached.key == key:
            return cached, False
        if cached is not None and self._stale is not None:
            self._stale.set()
            return cached, True
        return self._remake(name), False

    def _remake(self, name: str) -> Preview:
        if self._maker is not None:
            made = self._maker.submit(_preview_apart, self.config, name).result()
        else:
            with self.reading() as store:
                made = make_preview(store, self.config, name)
        self._previews[name] = made
        return made

    def keep_previews(self, every: float = PREVIEW_EVERY) -> None:
        """Make the previews in a process of their own and, once `start` is done, from a
        daemon thread of `serve` until `stop`, warm the pages again when a look every
        `every` seconds finds the store changed, and remake stale previews there: at once
        when a page found one stale, else once it is REMAKE_EVERY old. A preview takes
        seconds of CPU at a million items; in this process it would hold the interpreter's
        lock that long against the pages (a search took 120-180 ms instead of 30-45 while
        one was made)."""
        # Niced, so that the pages come first when the cores are busy.
        self._maker = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=os.nice, initargs=(10,)
        )
        self._stale = threading.Event()
        self._every = every

    def stop(self) -> None:
        self._stopping = True
        if self._stale is not None:
            self._stale.set()
        if self._maker is not None:
            self._maker.shutdown(wait=False, cancel_futures=True)

    def _keep(self, stale: threading.Event, every: float) -> None:
        while not self._stopping:
            asked = stale.wait(every)
            stale.clear()
            try:
                with self.reading() as store:
                    changed = [
                        profile.name
                        for profile in self.config.digests
                        if (cached := self._previews.get(profile.name)) is None
                        or cached.key != store.preview_key(profile.name)
                    ]
                # A reader asked for a stale preview: remade now; else at most every
                # REMAKE_EVERY, as a preview takes seconds of CPU and a daemon writes often.
                # The pages are warmed again on every change.
                now = utcnow()
                due = [
                    name
                    for name in changed
                    if asked
                    or (cached := self._previews.get(name)) is None
                    or now - cached.made_at >= REMAKE_EVERY
                ]
                if changed and not self._stopping:
                    self._refresh(due)
            except Exception as error:  # the thread outlives one failed look
                log.warning("serve: previews: %s", error)

    def status(self, request: Request) -> Response:
        from daemon.status import gather

        now = utcnow()
        with self.reading() as store:
            info = gather(self.config, store, now)
            spend = store.spend_per_day(now - timedelta(days=SPEND_DAYS))
        # The store's path is shown; nothing from the config's secrets is in `info`.
        top = max((cost for _, cost in spend), default=0.0)
        bars = [(day, cost, 100 * cost / top if top else 0) for day, cost in spend]
        return self.page(request, "status.html.j2", info=info, bars=bars)

    # Votes.

    async def vote(self, request: Request) -> Response:
        form = await self.form(request)
        if form is None:
            return self.problem(request, 403, "the form expired; reload the page and try again")
        profile, story_id = form.get("profile", ""), form.get("story", "")
        value = _vote_value(form.get("value", ""))
        if self._profile(profile) is None or value is None or not story_id:
            return self.problem(request, 400, "a vote needs a profile, a story and up or down")
        answer = self._record(request, profile, story_id, value)
        if isinstance(answer, Response):
            return answer
        back = form.get("back", "/")
        return RedirectResponse(
            back if back.startswith("/") and not back.startswith("//") else "/", status_code=303
        )

    def _record(self, request: Request, profile: str, story_id: str, value: int) -> bool | Response:
        try:
            with self.writing() as store:
                items = store.story_members(story_id)
                if not items:
                    return self.problem(request, 404, "no such story")
                vote = Vote(
                    profile=profile,
                    story_id=story_id,
                    value=value,
                    sources=tuple(sorted({name for item in items for name in item.sources})),
                    terms=feedback.story_terms([item.title for item in items]),
                    voted_at=utcnow(),
                )
                return store.record_vote(vote)
        except StoreLocked:
            return self.problem(request, 503, "the store is busy; try the vote again shortly")

    def _link(self, values: Any) -> VoteLink | str:
        """The vote a signed link asks for, or why it cannot be used."""
        try:
            link = VoteLink(
                profile=str(values.get("profile", "")),
                story_id=str(values.get("story", "")),
                value=int(values.get("value", "")),
                expires=int(values.get("expires", "")),
            )
        except ValueError:
            return "this vote link is incomplete"
        if not verify(self.secret, str(values.get("sig", "")), *link.parts()):
            return "this vote link is not valid (it was changed or cut short)"
        if link.expires < utcnow().timestamp():
            return "this vote link has expired"
        if self._profile(link.profile) is None or link.value not in (1, -1):
            return "this vote link names nothing that exists"
        return link

    def vote_link(self, request: Request) -> Response:
        """GET of a signed link: only a confirmation, so a link scanner votes nothing."""
        link = self._link(request.query_params)
        if isinstance(link, str):
            return self.problem(request, 400, link)
        with self.reading() as store:
            items = store.story_members(link.story_id, limit=1)
        return self.page(
            request,
            "confirm.html.j2",
            link=link,
            sig=request.query_params.get("sig", ""),
            title=items[0].title if items else link.story_id,
        )

    async def confirm_vote(self, request: Request) -> Response:
        form = await self.form(request)
        if form is None:
            return self.problem(request, 403, "the form expired; open the vote link again")
        link = self._link(form)
        if isinstance(link, str):
            return self.problem(request, 400, link)
        changed = self._record(request, link.profile, link.story_id, link.value)
        if isinstance(changed, Response):
            return changed
        message = "Vote recorded." if changed else "This vote was already recorded."
        return self.page(request, "voted.html.j2", message=message, link=link)

    # Login (when serve.token is set).

    def login_page(self, request: Request) -> Response:
        return self.page(request, "login.html.j2", failed=False)

    async def login(self, request: Request) -> Response:
        form = await self.form(request)
        token = self.config.serve.token or ""
        if form is None or not secrets.compare_digest(form.get("token", ""), token):
            return self.page(request, "login.html.j2", status=403, failed=True)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            LOGIN_COOKIE, sign(self.secret, "login", token), httponly=True, samesite="strict"
        )
        return response

    def _profile(self, name: str) -> Any:
        return next((p for p in self.config.digests if p.name == name), None)


def make_preview(store: Store, config: Config, name: str) -> Preview:
    """A dry run of the profile's next digest (offline analyzer) over `store`, as of now."""
    from daemon.select import select
    from digests.build import build_offline

    profile = next(profile for profile in config.digests if profile.name == name)
    key = store.preview_key(name)
    now = utcnow()
    selection = select(store, config, profile, now)
    built = build_offline(selection, now, ()).digest if selection.items else None
    return Preview(key, built, now, selection.regulars)


def _preview_apart(config: Config, name: str) -> Preview:
    """make_preview in the previews' process, over a read-only store of its own. Its store
    errors come back as plain StoreErrors with their messages: a subclass with arguments of
    its own (StoreNeedsMigration) would not unpickle in the server."""
    try:
        with Store.open_config(config.storage, read_only=True) as store:
            return make_preview(store, config, name)
    except StoreError as error:
        raise StoreError(str(error)) from None


def _warming_request(query: dict[str, str] | None = None) -> Request:
    """A GET of a page with no cookie or header, as start-up renders each page once."""
    return Request(
        {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "server": ("127.0.0.1", 80),
            "path": "/",
            "root_path": "",
            "query_string": urlencode(query or {}).encode(),
            "headers": [],
        }
    )


def _day(text: str) -> datetime | None:
    return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC) if text else None


def _vote_value(text: str) -> int | None:
    return {"up": 1, "down": -1, "1": 1, "-1": -1}.get(text)


class _Guard(BaseHTTPMiddleware):
    """Auth, security headers, and store trouble as a page instead of a traceback."""

    def __init__(self, app: Any, web: App) -> None:
        super().__init__(app)
        self.web = web

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if not self.web.authorised(request):
            response: Response = RedirectResponse("/login", status_code=303)
            if request.headers.get("authorization") or request.method != "GET":
                response = self.web.problem(request, 401, "this server needs its token")
        else:
            try:
                response = await call_next(request)
            except StoreMissing as error:
                response = self.web.problem(request, 503, str(error))
            except StoreError as error:
                response = self.web.problem(request, 503, str(error))
        response.headers.update(_SECURITY_HEADERS)
        return response


def create_app(
    config: Config, config_file: Path | None = None, *, keep_previews: bool = False
) -> Starlette:
    """`config_file`: where the config was read (adding sources writes it); `keep_previews`:
    remake stale digest previews in a background thread (the server). The app's start-up
    (`App.start`) runs in its lifespan, which uvicorn finishes before it takes connections."""
    web = App(config, config_file)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        began = time.perf_counter()
        if keep_previews:
            web.keep_previews()
        pages = (web.today, web.stories, web.sources, web.digests, web.status)
        await run_in_threadpool(web.start, pages)
        # What start-up loaded (modules, templates, the store's code) lives as long as the
        # process: frozen, the collector no longer walks it on every full collection, which
        # took 28-81 ms in the middle of a page.
        gc.collect()
        gc.freeze()
        log.info("serve: start-up done in %.1f s", time.perf_counter() - began)
        yield
        web.stop()

    get: Callable[..., Route] = partial(Route, methods=["GET"])
    post: Callable[..., Route] = partial(Route, methods=["POST"])
    routes = [
        get("/", web.today),
        get("/stories", web.stories),
        get("/stories/{story_id:path}", web.story),
        get("/sources", web.sources),
        post("/sources/test", web.test_source),
        post("/sources", web.add_source),
        get("/digests", web.digests),
        get("/digests/preview/{profile}", web.preview),
        get("/digests/{digest_id}/delivered", web.delivered),
        get("/digests/{digest_id}", web.digest),
        get("/status", web.status),
        post("/votes", web.vote),
        get("/vote", web.vote_link),
        post("/vote", web.confirm_vote),
        get("/login", web.login_page),
        post("/login", web.login),
        # Browsers ask for it on every page, the delivered digests' included.
        get("/favicon.ico", lambda request: FileResponse(HERE / "static" / "favicon.svg")),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(_Guard, web=web)], lifespan=lifespan)


def serve(
    config: Config,
    host: str | None = None,
    port: int | None = None,
    config_file: Path | None = None,
) -> None:
    """Run the app under uvicorn until interrupted (`trendfinder serve`)."""
    import uvicorn

    host = host or config.serve.host
    check_binding(config, host)
    uvicorn.run(
        create_app(config, config_file, keep_previews=True),
        host=host,
        port=port or config.serve.port,
        log_level="info",
    )


def serve_in_background(config: Config) -> uvicorn.Server:
    """The web app inside the daemon (serve.enabled): a daemon thread beside the scheduler;
    set the returned server's `should_exit` to stop it."""
    import uvicorn

    check_binding(config, config.serve.host)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, keep_previews=True),
            host=config.serve.host,
            port=config.serve.port,
        )
    )
    # Off the main thread uvicorn leaves the signals to the scheduler.
    threading.Thread(target=server.run, name="serve", daemon=True).start()
    return server
