"""One exception hierarchy: every error trendfinder raises on purpose is a TrendfinderError,
and its class carries the process exit code, so the CLI catches the base class once.

Exit codes: 0 success, 1 the run finished but something failed (a source, a delivery, the
store), 2 usage or configuration error, 75 (sysexits.h EX_TEMPFAIL) another trendfinder
holds the state directory's lock, or another process kept the store locked for longer
than storage.busy_timeout: try again later (cron and systemd timers simply will).

The message of each error is one line for the operator (ConfigError lists its problems).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75


class TrendfinderError(Exception):
    """A failure trendfinder expects and explains; `exit_code` is what the CLI returns."""

    exit_code = EXIT_FAILED


class UsageError(TrendfinderError):
    """The command line asks for something that cannot be done (an unknown name, ...)."""

    exit_code = EXIT_USAGE


class NotFound(UsageError):
    """A name or id given on the command line names nothing."""


class ConfigError(UsageError):
    """The configuration cannot be used; each problem names where it is."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def __str__(self) -> str:
        lines = [f"invalid configuration in {self.source}:"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


class StoreError(TrendfinderError):
    """The store cannot be opened or used; the message names the file."""


class StoreLocked(StoreError):
    """Another process held the store's write lock for longer than `busy_timeout`."""

    exit_code = EXIT_LOCKED


class SourceError(TrendfinderError):
    """Fetching or reading one source failed; the others go on."""


class ModelError(TrendfinderError):
    """The reasoning model gave no usable answer."""
