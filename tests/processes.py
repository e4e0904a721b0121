"""The daemon as a subprocess, and what a test needs around it: its log, a fake systemd."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


class Notifications:
    """A fake $NOTIFY_SOCKET: an abstract-namespace unix datagram socket."""

    def __init__(self) -> None:
        self.name = f"@trendfinder-test-{os.getpid()}-{time.monotonic_ns()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def fields(self) -> list[str]:
        return [line for message in list(self.messages) for line in message.splitlines()]

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


class Daemon:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def log(self) -> str:
        return "\n".join(self.lines)

    def signal(self, number: int) -> None:
        self.process.send_signal(number)


def wait_for(
    condition: Callable[[], object], what: str, daemon: Daemon, timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert daemon.process.poll() is None, (
            f"daemon exited while waiting for {what}:\n{daemon.log()}"
        )
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}; daemon log:\n{daemon.log()}")


def storage_setting(store_url: str | None, file: str = "state/trendfinder.db") -> str:
    """A config's storage place (inside `storage: {...}`): the Postgres database of the
    `store_url` fixture, else the SQLite `file`."""
    return f"url: '{store_url}'" if store_url else f"path: {file}"


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name in ("OPENAI_API_KEY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(name, None)
    return {**env, **extra}


def run_cli(
    config: Path, *args: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """`trendfinder --config CONFIG ARGS...` run to its end in the config's folder."""
    return subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(config), *args],
        cwd=config.parent,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def printed_cron_line() -> str:
    """The crontab line `service print cron` prints, without its comments."""
    printed = subprocess.run(
        [sys.executable, "-m", "daemon", "service", "print", "cron"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    [line] = [line for line in printed.splitlines() if line and not line.startswith("#")]
    return line


@contextmanager
def daemon(config: Path, **env: str) -> Iterator[Daemon]:
    process = subprocess.Popen(
        [sys.executable, "-m", "daemon", "--config", str(config), "run", "--stop-timeout", "10"],
        cwd=config.parent,
        env=cli_env(**env),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    running = Daemon(process)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
