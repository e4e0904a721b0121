"""Shared fixtures: loopback servers (function-scoped, stopped at teardown) and paths."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

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

REPO_ROOT = Path(__file__).resolve().parents[1]


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
