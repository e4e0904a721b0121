"""Shared fixtures: loopback servers (function-scoped, stopped at teardown) and paths."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback import (
    FeedServer,
    FirecrawlServer,
    OpenAIServer,
    SelfSignedCert,
    SlackReceiver,
    SMTPServer,
    make_self_signed_cert,
)
from loopback.postgres import PostgresServer, postgres_bin

from core.store import Store

REPO_ROOT = Path(__file__).resolve().parents[1]
# CI sets CI=true: there a test that skips (no browser, no systemd-analyze, no mounting)
# fails the run instead of vanishing into a summary line.
IN_CI = os.environ.get("CI", "").lower() in {"true", "1", "yes"}
_ARTIFACTS = pytest.StashKey[Path]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _fail_a_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_a_skip_in_ci(outcome.get_result())  # a module that skips itself as a whole


def _fail_a_skip_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, and CI=true does not allow a skip: {reason}"


@pytest.fixture(scope="session")
def artifacts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for what a person may want to look at (screenshots), outside the source
    tree; the run prints where it is."""
    path = tmp_path_factory.mktemp("artifacts")
    request.config.stash[_ARTIFACTS] = path
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if (path := terminalreporter.config.stash.get(_ARTIFACTS, None)) is not None:
        terminalreporter.write_line(f"artifacts (screenshots): {path}")


def _shared_data_dir() -> Path | None:
    env = os.environ.get("TRENDFINDER_SHARED_DATA")
    candidates = [Path(env)] if env else []
    # CI and the main checkout have shared/ beside the repo; a git worktree under
    # <root>/wt/<name> has it two levels up.
    candidates += [
        REPO_ROOT.parent / "shared" / "data",
        REPO_ROOT.parent.parent / "shared" / "data",
    ]
    return next((c for c in candidates if c.is_dir()), None)


@pytest.fixture
def shared_data() -> Path:
    """Path to the read-only shared data (feeds/, stories/, extraction/); skips if absent."""
    path = _shared_data_dir()
    if path is None:
        pytest.skip("shared data not found (set TRENDFINDER_SHARED_DATA)")
    return path


@pytest.fixture
def tmp_state(tmp_path: Path) -> Path:
    """An empty directory to use as the daemon's state directory."""
    state = tmp_path / "state"
    state.mkdir()
    return state


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def firecrawl_server() -> Iterator[FirecrawlServer]:
    with FirecrawlServer(api_key="fc-test") as server:
        yield server


@pytest.fixture
def slack_receiver() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


@pytest.fixture
def tls_cert(tmp_path: Path) -> SelfSignedCert:
    """A self-signed cert for localhost/127.0.0.1 written under tmp_path/tls."""
    return make_self_signed_cert(tmp_path / "tls")


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """Plain SMTP, no auth."""
    with SMTPServer() as server:
        yield server


@pytest.fixture
def smtp_tls_server(tls_cert: SelfSignedCert) -> Iterator[SMTPServer]:
    """STARTTLS offered (not required); trust it with ``server.cert.client_context()``."""
    with SMTPServer(starttls=tls_cert) as server:
        yield server


@pytest.fixture
def smtps_server(tls_cert: SelfSignedCert) -> Iterator[SMTPServer]:
    """Implicit TLS (SMTPS, port-465 style)."""
    with SMTPServer(implicit_tls=tls_cert) as server:
        yield server


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """`main()` points the root logger at the stderr pytest captured for that test; put it
    back, so later tests' server threads do not log into a closed capture file."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the session (initdb in a temporary directory,
    127.0.0.1, a free port); clients find its password in PGPASSWORD. Skips (a failure in
    CI) where Debian's postgresql package is not installed."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with PostgresServer(bin_dir) as server, pytest.MonkeyPatch.context() as patch:
        for name, value in server.environment.items():
            patch.setenv(name, value)
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """An empty database of its own for one test, dropped afterwards."""
    url = postgres_server.database()
    yield url
    postgres_server.drop(url)


# Opens the test's store (the same one on every call), with Store.open's keywords.
StoreOpener = Callable[..., Store]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str | None:
    """The test's store on each backend: None for a SQLite file, or the URL of an empty
    Postgres database of the session's cluster, dropped afterwards (a config's
    `storage.url`). With Postgres, the state directory (what a config without
    `storage.path` uses for its files) is tmp_path/state, in the test and its processes."""
    if request.param == "sqlite":
        return None
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def open_store(store_url: str | None, tmp_path: Path) -> StoreOpener:
    """The store tests' store on each backend: a SQLite file, or a Postgres database."""
    if store_url is None:
        return lambda **options: Store.open(tmp_path / "t.db", **options)

    def postgres(**options: Any) -> Store:
        return Store.open_url(store_url, tmp_path, **options)

    return postgres
