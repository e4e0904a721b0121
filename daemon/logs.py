"""Logging: one line per event on stderr (journald keeps it), text or JSON, secrets redacted.

Two layers keep secrets out: the exact secret values of the loaded config (API keys, SMTP
passwords, webhook URLs) are replaced wherever they appear, and patterns that look like
credentials are masked even when they come from somewhere else (an error from a library).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config import Config

# Anything that looks like a credential is masked before a line is written.
_SECRETS = [
    (re.compile(r"sk-[A-Za-z0-9_-]{8,}"), "sk-***"),
    (re.compile(r"https://hooks\.slack\.com/\S+"), "https://hooks.slack.com/***"),
    (re.compile(r"(/api/webhooks/\d+/)[\w-]+"), r"\1***"),  # Discord webhook tokens
    (re.compile(r"/bot\d+:[\w-]+"), "/bot***"),  # Telegram bot tokens in API URLs
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1***"),
    (re.compile(r"(?i)((?:api[_-]?key|password|token|secret)[\"']?\s*[:=]\s*)\S+"), r"\1***"),
    (re.compile(r"//([^/:@\s]+):([^/@\s]+)@"), r"//\1:***@"),
]
# Shorter values would mask ordinary words; a secret that short is not worth the name.
_MIN_SECRET = 4
_hidden: tuple[str, ...] = ()


def hide_secrets(config: Config) -> None:
    """Never log the secret values of `config`: called on every load and reload."""
    from core.config import (
        AppriseTarget,
        DiscordTarget,
        EmailTarget,
        RedditSource,
        SlackTarget,
        TelegramTarget,
        WebhookTarget,
        XSource,
    )

    values = {config.llm.api_key, config.firecrawl.api_key, config.serve.token, config.serve.secret}
    for profile in config.digests:
        for target in profile.deliver:
            if isinstance(target, EmailTarget):
                values.add(target.password)
            elif isinstance(target, SlackTarget | DiscordTarget):
                values.add(target.webhook_url)
            elif isinstance(target, TelegramTarget):
                values.add(target.bot_token)
            elif isinstance(target, WebhookTarget):
                values |= {target.secret, target.url}
            elif isinstance(target, AppriseTarget):
                values |= set(target.urls)
    for source in config.sources:
        if isinstance(source, XSource):
            values.add(source.bearer_token)
        elif isinstance(source, RedditSource):
            values.add(source.client_secret)
    global _hidden
    known = {value for value in values if value and len(value) >= _MIN_SECRET}
    # Longest first, so a secret containing another is masked whole.
    _hidden = tuple(sorted(known | set(_hidden), key=len, reverse=True))


def redact(text: str) -> str:
    for secret in _hidden:
        text = text.replace(secret, "***")
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _one_line(text: str) -> str:
    return " | ".join(part.strip() for part in text.splitlines() if part.strip())


def _where(trace: TracebackType | None) -> str:
    frames = traceback.extract_tb(trace)
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, self.datefmt)
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            _, error, trace = record.exc_info
            line += f": {type(error).__name__}: {error}{_where(trace)}"
        return redact(_one_line(line))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup(verbose: bool = False, json_format: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter() if json_format else _TextFormatter(datefmt="%Y-%m-%d %H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("trendfinder").setLevel(logging.DEBUG if verbose else logging.INFO)
    # Libraries speak only when something is wrong.
    for noisy in ("httpx", "httpcore", "httpx2", "openai", "apscheduler", "trafilatura", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
