"""The `trendfinder` command line.

Exit codes: see core.errors (each error class carries its own): 0 success, 1 the run
finished but something failed, 2 usage or configuration error, 75 locked: try again later.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import EXIT_FAILED, EXIT_OK, TrendfinderError, UsageError
from daemon import logs

# Each command imports what it needs when it runs: `--help`, `service print` and `status`
# must not pay for the whole pipeline (openai, scipy, trafilatura) at start-up
# (tests/test_lazy_imports.py).
if TYPE_CHECKING:
    from core.config import CollectConfig, Config
    from core.digest import Digest
    from core.items import FetchOutcome
    from core.store import Store
    from daemon.collecting import Report
    from daemon.runner import Runner

FORMATS = ["md", "text", "html", "json", "slack"]
log = logging.getLogger("trendfinder")


SHIPPED_EXECUTABLE = "/opt/trendfinder/bin/trendfinder"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trendfinder",
        description="Watch feeds and sites, find what matters, and deliver a short ranked digest.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $TRENDFINDER_CONFIG, else ./config.yaml)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument(
        "--log-format", choices=["text", "json"], default="text", help="log line format"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run the daemon (or one cycle with --once)")
    run.add_argument(
        "--once", action="store_true", help="one cycle: collect, digest, deliver, exit"
    )
    run.add_argument("--all", action="store_true", help="with --once: everything, due or not")
    run.add_argument(
        "--stop-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long the current step may take before it is abandoned (30)",
    )
    run.set_defaults(handler=cmd_run)

    worker = commands.add_parser(
        "worker", help="claim and do jobs from a Postgres store (fetch, group, digest, deliver)"
    )
    worker.add_argument(
        "--lease",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how soon a killed worker's jobs return to the pool (60)",
    )
    worker.add_argument(
        "--batch", type=int, default=32, metavar="N", help="fetch jobs claimed at a time (32)"
    )
    worker.set_defaults(handler=cmd_worker)
    scheduler = commands.add_parser(
        "scheduler", help="enqueue due fetches and digests in a Postgres store (safe to run twice)"
    )
    scheduler.set_defaults(handler=cmd_scheduler)

    collect = commands.add_parser("collect", help="collect every source now")
    collect.add_argument("--source", action="append", help="only this source (repeatable)")
    collect.add_argument(
        "--force", action="store_true", help="also sources in backoff or told to wait by 429/503"
    )
    collect.set_defaults(handler=cmd_collect)

    digest = commands.add_parser("digest", help="build digests now, due or not")
    digest.add_argument("--profile", help="only this digest profile")
    digest.add_argument("--dry-run", action="store_true", help="print, store and send nothing")
    digest.add_argument("--format", choices=FORMATS, default="md", help="with --dry-run")
    digest.set_defaults(handler=cmd_digest)

    check = commands.add_parser("check", help="validate the config and show what would run")
    check.set_defaults(handler=cmd_check)

    status = commands.add_parser("status", help="what the daemon did and what is waiting")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)

    sources = commands.add_parser("sources", help="work with sources")
    sources_commands = sources.add_subparsers(
        dest="sources_command", metavar="COMMAND", required=True
    )
    test = sources_commands.add_parser(
        "test", help="fetch one URL, or a configured source by name, and show what it yields"
    )
    test.add_argument("url", help="a feed or page URL, or the name of a configured source")
    test.add_argument("--kind", choices=["feed", "site"], default="feed")
    test.set_defaults(handler=cmd_sources_test, needs_config=False)

    digests = commands.add_parser("digests", help="stored digests")
    digests_commands = digests.add_subparsers(
        dest="digests_command", metavar="COMMAND", required=True
    )
    listing = digests_commands.add_parser("list", help="list stored digests, newest first")
    listing.add_argument("--profile")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(handler=cmd_digests_list)
    show = digests_commands.add_parser("show", help="render one stored digest")
    show.add_argument("id")
    show.add_argument(
        "--format", choices=FORMATS, default="md", help="slack: the Block Kit messages as JSON"
    )
    show.set_defaults(handler=cmd_digests_show)

    deliveries = commands.add_parser("deliveries", help="the outbox: each digest per target")
    deliveries_commands = deliveries.add_subparsers(
        dest="deliveries_command", metavar="COMMAND", required=True
    )
    outbox = deliveries_commands.add_parser("list", help="list deliveries, oldest first")
    outbox.add_argument("--failed", action="store_true", help="only those that gave up")
    outbox.set_defaults(handler=cmd_deliveries_list)
    retry = deliveries_commands.add_parser(
        "retry", help="queue failed deliveries again, with all their attempts, and send them"
    )
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=int, help="the delivery's id (deliveries list)")
    which.add_argument("--all-failed", action="store_true", help="every failed delivery")
    retry.set_defaults(handler=cmd_deliveries_retry)

    alerts = commands.add_parser("alerts", help="alert rules between digests")
    alerts_commands = alerts.add_subparsers(dest="alerts_command", metavar="COMMAND", required=True)
    alerts_test = alerts_commands.add_parser(
        "test", help="dry-run every profile's alert rules on the current store; sends nothing"
    )
    alerts_test.add_argument("--format", choices=FORMATS, default="text")
    alerts_test.set_defaults(handler=cmd_alerts_test)
    service = commands.add_parser("service", help="systemd units and a cron line for this install")
    service_commands = service.add_subparsers(
        dest="service_command", metavar="COMMAND", required=True
    )
    unit = service_commands.add_parser(
        "print", help="print a unit file or the cron line, pointing at this installation"
    )
    unit.add_argument("name", nargs="?", choices=sorted(UNITS), default="trendfinder.service")
    unit.set_defaults(handler=cmd_service_print, needs_config=False)

    serve = commands.add_parser("serve", help="the web app: read, search, vote (127.0.0.1)")
    serve.add_argument("--host", help="address to bind (default: serve.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: serve.port, 8080)")
    serve.set_defaults(handler=cmd_serve)

    demo = commands.add_parser("demo", help="the whole pipeline offline, on bundled sample feeds")
    demo.add_argument("--keep", metavar="DIR", help="keep the demo's store and digests in DIR")
    demo.set_defaults(handler=cmd_demo, needs_config=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(verbose=args.verbose, json_format=args.log_format == "json")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()  # here, so a closed pipe is seen inside this `try`
        return code
    except TrendfinderError as error:
        print(f"trendfinder: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:
        # The reader left (`status --json | head -1`): what it wanted, it has. Python's
        # documented remedy: point stdout at devnull so the flush at exit is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _config(args: argparse.Namespace) -> Config:
    from core.config import config_path, load_config

    config = load_config(config_path(args.config))
    logs.hide_secrets(config)
    return config


@contextmanager
def _runner(args: argparse.Namespace, *, exclusive: bool = False) -> Iterator[Runner]:
    """A runner over the configured store; `exclusive` for commands that do the daemon's
    work (a digest), so they never run beside it or beside each other (`collect` takes the
    same lock over a Collector, which imports less)."""
    from daemon.lock import locked_store
    from daemon.runner import Runner

    config = _config(args)
    if exclusive:
        with locked_store(config.storage, lambda: _store(config)) as store:
            yield Runner(config, store)
    else:
        with _store(config) as store:
            yield Runner(config, store)


def _store(config: Config, *, reading: bool = False) -> Store:
    """The configured store (SQLite, or Postgres with storage.url); `reading` for commands
    that only look: nothing is created, migrated or written (StoreMissing,
    StoreNeedsMigration say why there is nothing to show)."""
    from core.store import Store

    return Store.open_config(config.storage, read_only=reading)


def _progress() -> tuple[Callable[[int], None], Callable[[FetchOutcome], None], Callable[[], None]]:
    """A rich progress bar on a terminal; nothing extra (just log lines) otherwise."""
    if not sys.stderr.isatty():
        return (lambda total: None), (lambda outcome: None), (lambda: None)
    from rich.progress import Progress

    progress = Progress(transient=True)
    task: list[Any] = []

    def start(total: int) -> None:
        progress.start()
        task.append(progress.add_task("collecting", total=total))

    def advance(outcome: FetchOutcome) -> None:
        progress.advance(task[0])

    return start, advance, progress.stop


def _print_report(report: Report) -> None:
    print(report.describe(), file=sys.stderr)
    for error in report.errors:
        print(f"  failed: {error}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from core.clock import utcnow
    from core.config import config_path
    from daemon.lock import locked_store
    from daemon.runner import Runner

    if not args.once:
        from daemon.scheduler import run_forever

        served = _config(args)
        if served.serve.enabled:
            from daemon.web.app import serve_in_background

            serve_in_background(served)
        return run_forever(config_path(args.config), args.stop_timeout)
    config = _config(args)
    with locked_store(config.storage, lambda: _store(config)) as store:
        store.close_unfinished_runs(utcnow())
        runner = Runner(config, store)
        start, advance, stop = _progress()
        try:
            report = runner.run_once(everything=args.all, on_outcome=advance, on_start=start)
        finally:
            stop()
    _print_report(report)
    return EXIT_FAILED if report.failed else EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from core.config import config_path
    from daemon.workers import run_worker

    if args.lease < 3 or args.batch < 1:
        raise UsageError("--lease must be at least 3 seconds and --batch at least 1")
    return run_worker(config_path(args.config), timedelta(seconds=args.lease), args.batch)


def cmd_scheduler(args: argparse.Namespace) -> int:
    from core.config import config_path
    from daemon.workers import run_scheduler

    return run_scheduler(config_path(args.config))


def cmd_collect(args: argparse.Namespace) -> int:
    # Only the collecting side of the daemon: a collect imports no model client, grouping
    # or delivery target (tests/test_lazy_imports.py). Its new items wait ungrouped for the
    # next digest, alert run or daemon cycle, which groups them (Runner.group).
    from daemon.collecting import Collector
    from daemon.lock import locked_store

    config = _config(args)
    with locked_store(config.storage, lambda: _store(config)) as store:
        collector = Collector(config, store)
        start, advance, stop = _progress()
        try:
            report = collector.collect(
                due_only=False,
                honour_backoff=not args.force,
                names=args.source,
                on_outcome=advance,
                on_start=start,
            )
        finally:
            stop()
    _print_report(report)
    return EXIT_FAILED if report.failed else EXIT_OK


def cmd_digest(args: argparse.Namespace) -> int:
    from daemon.runner import DigestFailed

    # A dry run may run beside the daemon (then it previews with the stories as grouped so
    # far); a real one takes the lock. Both group what `collect` left ungrouped first.
    with _runner(args, exclusive=not args.dry_run) as runner:
        profiles = [runner.config.profile(args.profile)] if args.profile else runner.config.digests
        if not profiles:
            raise UsageError("no digest profiles are configured")
        if args.dry_run:
            _group_unless_locked(runner)
        else:
            runner.group()
        failures = []
        for profile in profiles:
            try:
                built = runner.digest(profile, dry_run=args.dry_run)
            except DigestFailed as error:
                print(str(error), file=sys.stderr)
                failures.append(str(error))
                continue
            if built is None:
                print(f"{profile.name}: no new items; no digest", file=sys.stderr)
            elif args.dry_run:
                archive = profile.keeps_archive
                sys.stdout.write(_rendered(built.digest, args.format, archive=archive))
        if args.dry_run:
            return EXIT_FAILED if failures else EXIT_OK
        report = runner.deliver()
        report.errors = failures + report.errors
    _print_report(report)
    return EXIT_FAILED if report.failed else EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from core.config import XSource, config_path
    from core.store import StoreMissing, StoreNeedsMigration
    from daemon.cron import next_fire_time

    config = _config(args)

    try:
        with _store(config, reading=True) as store:
            found = f"schema version {store.schema_version}"
    except StoreMissing:
        found = "not created yet; `trendfinder run` creates it"
    except StoreNeedsMigration as error:
        found = str(error)
    print(f"config ok: {config_path(args.config)}")
    print(f"store: {config.storage.location} ({found})")
    analyzer = f"model {config.llm.model}" if config.llm.api_key else "offline (no OPENAI_API_KEY)"
    print(f"analyzer: {analyzer}")
    extractor = "Firecrawl" if config.firecrawl.enabled else "built-in extractor"
    print(f"sources: {len(config.sources)} (site pages through the {extractor})")
    for source in config.sources:
        state = "" if source.enabled else " [disabled]"
        print(f"  - {source.name} ({source.kind}, every {source.interval}){state}: {source.url}")
        if isinstance(source, XSource):
            print(f"    {source.cadence}")
    print(f"digests: {len(config.digests)}")
    for profile in config.digests:
        targets = ", ".join(target.label for target in profile.deliver)
        print(
            f"  - {profile.name}: '{profile.schedule}' {profile.timezone}, "
            f"{len(config.sources_for(profile))} sources, up to {profile.max_trends} trends, "
            f"to {targets}; next at {next_fire_time(profile):%Y-%m-%d %H:%M %Z}"
        )
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from core.clock import utcnow

    config = _config(args)
    with _store(config, reading=True) as store:
        from daemon.status import gather, render_text

        info = gather(config, store, utcnow())
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(render_text(info))
    return EXIT_OK


def cmd_sources_test(args: argparse.Namespace) -> int:
    from core.clock import utcnow
    from core.config import CollectConfig, SourceConfig
    from core.items import FetchRequest
    from sources.collect import collect

    full = _config(args) if _has_config(args) else None
    config = full.collect if full else CollectConfig()
    named = {source.name: source for source in full.sources} if full else {}
    if source := named.get(args.url):
        # A configured source of any kind, read as a first poll (no cursor).
        social = None if isinstance(source, SourceConfig) else source
        request = FetchRequest(name=source.name, kind=source.kind, url=source.url, social=social)
    else:
        request = FetchRequest(name=args.url, kind=args.kind, url=args.url)
    (outcome,) = collect([request], config, utcnow(), firecrawl=full.firecrawl if full else None)
    if outcome.status == "error":
        print(f"{args.url}: {outcome.error}")
        if request.kind == "feed" and not source:
            _suggest_feeds(args.url, config)
        return EXIT_FAILED
    engagement = {numbers.item_id: numbers for numbers in outcome.engagement}
    if request.kind == "site":
        print(f"{args.url}: {len(outcome.items)} new articles it would collect")
    else:
        print(f"{args.url}: {len(outcome.items)} items")
    for warning in outcome.warnings:
        print(f"  warning: {warning}")
    for item in outcome.items[:20]:
        print(f"- {item.published:%Y-%m-%d %H:%M} {item.title}\n  {item.url}")
        if numbers := engagement.get(item.id):
            print(
                f"  {numbers.likes} likes, {numbers.reposts} reposts, {numbers.comments} comments"
            )
        if request.kind == "site":
            print(f"  {item.text[:160].replace(chr(10), ' ')}")
    return EXIT_OK


def _suggest_feeds(url: str, config: CollectConfig) -> None:
    """A web page given as a feed: say which feeds it advertises, to use instead."""
    from sources.sites import advertised_feeds

    feeds = advertised_feeds(url, config)
    if not feeds:
        return
    print("  this is a web page that advertises a feed; use it as a feed source:")
    for feed in feeds:
        print(f"    {feed.url}" + (f"  ({feed.title})" if feed.title else ""))
    print(f"  in config.yaml:  - {{name: ..., kind: feed, url: {feeds[0].url}}}")
    print("  (or watch the page itself with --kind site)")


def cmd_alerts_test(args: argparse.Namespace) -> int:
    with _runner(args) as runner:
        if not any(profile.alerts for profile in runner.config.digests):
            raise UsageError("no digest profile has `alerts:` rules")
        _group_unless_locked(runner)
        planned = runner.alert(dry_run=True)
    if not planned:
        print("no alert would fire now", file=sys.stderr)
    for alert in planned:
        record = alert.record
        print(
            f"would alert {record.profile} ({record.rule}: {record.subject}) to "
            f"{', '.join(alert.targets)}",
            file=sys.stderr,
        )
        archive = runner.config.keeps_archive(record.profile)
        sys.stdout.write(_rendered(alert.digest, args.format, archive=archive))
    return EXIT_OK


def _group_unless_locked(runner: Runner) -> None:
    """Group the items `collect` stored, so a preview shows them in their stories; unless
    another trendfinder works on the store (it groups before its own digests and alerts),
    when the preview shows the stories as grouped so far."""
    from daemon.lock import AlreadyRunning, StateLock

    storage = runner.config.storage
    if storage.url is not None:
        # On Postgres grouping is serialised by the store's own lock (Runner.group).
        runner.group()
        return
    try:
        lock = StateLock(storage.state_dir)
        lock.acquire()
    except AlreadyRunning:
        log.info("another trendfinder is working on the store; previewing stories as grouped")
        return
    try:
        runner.group()
    finally:
        lock.release()


def _has_config(args: argparse.Namespace) -> bool:
    from core.config import config_path

    return config_path(args.config).exists()


def cmd_digests_list(args: argparse.Namespace) -> int:
    with _store(_config(args), reading=True) as store:
        summaries = store.digest_summaries(args.profile, args.limit)
    if not summaries:
        print("no digests yet")
    for summary in summaries:
        print(
            f"{summary.id}  {summary.created_at:%Y-%m-%d %H:%M}  {summary.trends:>3} trends  "
            f"{summary.analyzer}"
        )
    return EXIT_OK


def _rendered(digest: Digest, format: str, *, archive: bool) -> str:
    from digests import blockkit, render

    if format == "slack":
        messages = blockkit.messages(digest, archive=archive)
        return json.dumps([m.payload() for m in messages], indent=2) + "\n"
    renderers = {
        "md": render.markdown,
        "text": render.text,
        "html": render.html,
        "json": render.json_text,
    }
    return renderers[format](digest)


def cmd_digests_show(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config, reading=True) as store:
        digest = store.digest(args.id)
    archive = config.keeps_archive(digest.profile)
    sys.stdout.write(_rendered(digest, args.format, archive=archive))
    return EXIT_OK


def cmd_deliveries_list(args: argparse.Namespace) -> int:
    with _store(_config(args), reading=True) as store:
        deliveries = store.deliveries("failed" if args.failed else None)
    if not deliveries:
        print("no failed deliveries" if args.failed else "no deliveries yet")
    for delivery in deliveries:
        details = [f"{delivery.attempts} attempts"]
        if delivery.status == "sent" and delivery.sent_at:
            details.append(f"sent {delivery.sent_at:%Y-%m-%d %H:%M} UTC")
        elif delivery.status == "pending":
            details.append(f"next try {delivery.next_attempt_at:%Y-%m-%d %H:%M} UTC")
        if delivery.last_error and delivery.status != "sent":
            details.append(delivery.last_error)
        print(
            f"{delivery.id:>5}  {delivery.status:<7}  {delivery.digest_id} to {delivery.target}: "
            + "; ".join(details)
        )
    return EXIT_OK


def cmd_deliveries_retry(args: argparse.Namespace) -> int:
    with _runner(args) as runner:
        store = runner.store
        if args.all_failed:
            chosen = store.deliveries("failed")
        else:
            chosen = [store.delivery(args.id)]
            if chosen[0].status != "failed":
                raise UsageError(
                    f"delivery {args.id} is {chosen[0].status}, not failed; "
                    "only failed deliveries are retried"
                )
        if not chosen:
            print("no failed deliveries")
            return EXIT_OK
        with store.transaction():
            for delivery in chosen:
                store.requeue_delivery(delivery.id, runner.clock())
        print(f"queued again: {', '.join(str(delivery.id) for delivery in chosen)}")
        report = runner.deliver()
    _print_report(report)
    return EXIT_FAILED if report.failed else EXIT_OK


UNITS = {
    "trendfinder.service": "trendfinder.service",
    "trendfinder-once.service": "trendfinder-once.service",
    "trendfinder.timer": "trendfinder.timer",
    "trendfinder-worker@.service": "trendfinder-worker@.service",
    "trendfinder-scheduler.service": "trendfinder-scheduler.service",
    "cron": "trendfinder.cron",
}


def cmd_service_print(args: argparse.Namespace) -> int:
    from importlib import resources

    text = resources.files("daemon").joinpath(UNITS[args.name]).read_text(encoding="utf-8")
    # The shipped files name /opt/trendfinder; print them for wherever this copy lives.
    here = Path(sys.argv[0]).resolve() if Path(sys.argv[0]).name == "trendfinder" else None
    if here is None and (beside := Path(sys.executable).parent / "trendfinder").exists():
        here = beside
    if here is not None:
        text = text.replace(SHIPPED_EXECUTABLE, str(here))
    for warning in _hidden_from_unit(text, [here or Path(SHIPPED_EXECUTABLE), Path(sys.prefix)]):
        print(f"trendfinder: warning: {warning}", file=sys.stderr)
    sys.stdout.write(text)
    return EXIT_OK


# What systemd hides from a unit with these settings (systemd.exec(5)); the unit cannot
# start a program that lives there.
_HIDDEN_BY = {
    "ProtectHome": ("/home", "/root", "/run/user"),
    "PrivateTmp": ("/tmp", "/var/tmp"),  # noqa: S108 (paths systemd hides, not temp files)
}


def _hidden_from_unit(unit: str, paths: list[Path]) -> list[str]:
    """Why the unit cannot run this installation, if one of `paths` is hidden from it."""
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[:1].isalpha()
    )
    warnings = []
    for setting, hidden in _HIDDEN_BY.items():
        # ProtectHome=read-only still lets the service read and run what is there.
        if settings.get(setting, "no").strip() not in ("yes", "true", "tmpfs"):
            continue
        for path in paths:
            resolved = path.resolve()
            top = next((h for h in hidden if resolved.is_relative_to(h)), None)
            if top is not None:
                warnings.append(
                    f"{resolved} is under {top}, which this unit hides from the service "
                    f"({setting}={settings[setting].strip()}), so it cannot start: install "
                    f"trendfinder outside it (such as {SHIPPED_EXECUTABLE.rsplit('/bin/', 1)[0]}) "
                    "or change the setting"
                )
                break
    return warnings


def cmd_serve(args: argparse.Namespace) -> int:
    from core.config import config_path
    from daemon.web.app import serve

    serve(_config(args), args.host, args.port, config_path(args.config))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from daemon.demo import run_demo

    return run_demo(Path(args.keep) if args.keep else None)
