"""Logging: one line per event on stderr (journald keeps it), text or JSON, secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys

# Anything that looks like a credential is masked before a line is written.
_SECRETS = [
    (re.compile(r"sk-[A-Za-z0-9_-]{8,}"), "sk-***"),
    (re.compile(r"https://hooks\.slack\.com/\S+"), "https://hooks.slack.com/***"),
    (re.compile(r"(?i)((?:api[_-]?key|password|token|secret)[\"']?\s*[:=]\s*)\S+"), r"\1***"),
    (re.compile(r"//([^/:@\s]+):([^/@\s]+)@"), r"//\1:***@"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


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
        _JsonFormatter()
        if json_format
        else _TextFormatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("trendfinder").setLevel(logging.DEBUG if verbose else logging.INFO)
    # Libraries speak only when something is wrong.
    for noisy in ("httpx", "httpcore", "httpx2", "openai", "apscheduler", "trafilatura", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
