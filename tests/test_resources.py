"""Resource trouble: the state directory read-only, the disk full, the store locked by another
process. Each run says what is wrong and where, exits with the documented code, prints no
traceback, and once the trouble is gone a normal run finds the store intact and catches up.

Read-only and full are made for real even though the tests run as root: a read-only bind
mount and a small tmpfs where mounting is allowed (skipped elsewhere), and everywhere a
read-only directory for a process without root's capabilities, and a file-size limit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re
import resource
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from loopback.openai_server import ChatRequest
from processes import daemon, wait_for
from reliability import Ran, World, model_answer

EXIT_FAILED, EXIT_LOCKED = 1, 75
_PR_CAPBSET_DROP = 24


def without_capabilities() -> None:
    """preexec_fn: drop every capability from the bounding set, so the program exec'd (as
    root, here) gets none: file permissions bind it as they bind any user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in range(64):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows (or not root: nothing to drop)


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@cache
def can_mount(scratch: Path) -> bool:
    scratch.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(scratch)):
        return False
    subprocess.run(["umount", str(scratch)], check=True)
    return True


@contextlib.contextmanager
def mounted(path: Path, *how: tuple[str, ...]) -> Iterator[None]:
    """Mount at `path` with each argument list of `how` in turn; unmounted at the end."""
    if not can_mount(path.parent / ".mount-probe"):
        pytest.skip("mounting is not permitted here")
    for args in how:
        assert _mount(*args), f"mount {' '.join(args)} failed"
    try:
        yield
    finally:
        # Lazily if something still holds a file there: a failed test leaves no mount behind.
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], check=True)


def read_only_mount(path: Path) -> contextlib.AbstractContextManager[None]:
    return mounted(path, ("--bind", str(path), str(path)), ("-o", "remount,bind,ro", str(path)))


def assert_clear_failure(ran: Ran, code: int, *words: str) -> None:
    """Failed with `code`, saying `words` (the path among them), without a traceback."""
    assert ran.returncode == code, ran.stderr
    assert "Traceback" not in ran.stderr, ran.stderr
    for word in words:
        assert word in ran.stderr, ran.stderr


def recovered(world: World) -> None:
    world.recover()
    assert world.violations() == []


# The state directory read-only ----------------------------------------------------------------


@contextlib.contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    directory.chmod(0o555)
    try:
        probe = subprocess.run(["touch", str(directory / "probe")], preexec_fn=without_capabilities)
        if probe.returncode == 0:
            pytest.skip("cannot take away this process's right to write anywhere")
        yield
    finally:
        directory.chmod(0o755)


@pytest.mark.parametrize("way", ["read-only mount", "no write permission"])
def test_a_read_only_state_directory_is_named_and_nothing_is_lost(tmp_path: Path, way: str):
    with World(tmp_path) as world:
        state = tmp_path / "state"
        state.mkdir()
        if way == "read-only mount":
            trouble, preexec = (lambda: read_only_mount(state)), None
        else:
            trouble, preexec = (lambda: unwritable(state)), without_capabilities

        # Before the first run: the store cannot even be created.
        with trouble():
            fresh = world.run("run", "--once", preexec_fn=preexec)
        assert_clear_failure(fresh, EXIT_FAILED, f"{state}/trendfinder.lock", str(state))
        assert not (state / "trendfinder.db").exists()

        # With a store already there, and new stories waiting.
        assert world.run("run", "--once").returncode == 0
        world.publish()
        with trouble():
            later = world.run("run", "--once", preexec_fn=preexec)
            status = world.run("status", preexec_fn=preexec)
        assert_clear_failure(later, EXIT_FAILED, str(state))
        assert_clear_failure(status, EXIT_FAILED, f"{state}/trendfinder.db", "read-only")
        recovered(world)


# The disk full ---------------------------------------------------------------------------------


def file_size_limit(limit: int) -> Callable[[], None]:
    """preexec_fn: no file may grow past `limit` bytes; a write beyond fails with EFBIG
    (SIGXFSZ ignored, as a daemon's would be) the way a full disk fails it with ENOSPC."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_writes_failing_on_a_file_size_limit_fail_the_run_clearly_and_lose_nothing(
    tmp_path: Path,
):
    with World(tmp_path) as world:
        assert world.run("run", "--once").returncode == 0
        database = world.config.storage.database
        # Each limit stops a different write: the first while collecting, the next later.
        for room in (8_192, 65_536):
            world.publish()
            # An empty WAL and a limit past the database's end: the run's first writes go to
            # the WAL from its start, so the limit stops them (how much a cycle writes to the
            # WAL, and whether it reuses an old WAL's space, depends on the schema).
            with sqlite3.connect(database) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            ran = world.run("run", "--once", preexec_fn=file_size_limit(room))
            assert_clear_failure(ran, EXIT_FAILED, str(database))
            print(f"file size limit {room} bytes: {ran.stderr.splitlines()[-1]}")
            recovered(world)


def fill(folder: Path, leave: int) -> Path:
    """Fill the file system holding `folder` until about `leave` bytes are free."""
    filler = folder / "filler"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with filler.open("wb") as stream, contextlib.suppress(OSError):
        stream.write(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_fails_the_run_with_the_path_and_loses_nothing(tmp_path: Path):
    with World(tmp_path) as world:
        state = tmp_path / "state"
        state.mkdir()
        database = world.config.storage.database
        with mounted(state, ("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(state))):
            assert world.run("run", "--once").returncode == 0
            for leave in (0, 24_576):
                world.publish()
                filler = fill(state, leave)
                ran = world.run("run", "--once")
                filler.unlink()
                assert_clear_failure(ran, EXIT_FAILED, str(database), "is full")
                print(f"disk full, {leave} bytes free: {ran.stderr.splitlines()[-1]}")
                recovered(world)


# The store locked by another process ------------------------------------------------------------


# SQLite's busy handler sleeps between tries with usleep(): clock_nanosleep on the realtime
# clock, relative (`/proc/PID/task/TID/syscall` reads "NR 0x0 0x0 ..."); Python's time.sleep
# sleeps on the monotonic clock to an absolute time ("NR 0x1 0x1").
_CLOCK_NANOSLEEP = {"x86_64": 230, "aarch64": 115}


def waiting_on_sqlite(process: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    """Whether a thread of `process` is seen in SQLite's busy wait, and then again after it
    has woken up to retry (its voluntary context switches went up): it has reached the store
    and keeps waiting on the lock. False if it ends (or `timeout` passes) first."""
    number = _CLOCK_NANOSLEEP.get(platform.machine())
    if number is None:
        pytest.skip(f"no clock_nanosleep number known for {platform.machine()}")
    busy_wait = f"{number} 0x0 0x0 "
    first_seen: dict[str, int] = {}  # thread -> its voluntary switches when first seen
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        for task in Path(f"/proc/{process.pid}/task").glob("*"):
            try:
                # The syscall first: a count read after it includes the sleep seen.
                if not (task / "syscall").read_text().startswith(busy_wait):
                    continue
                status = (task / "status").read_text()
            except OSError:
                continue
            switches = int(re.findall(r"^voluntary_ctxt_switches:\s*(\d+)", status, re.M)[0])
            if switches > first_seen.setdefault(task.name, switches):
                return True
        time.sleep(0.001)
    return False


def test_a_store_locked_by_another_process_exits_75_naming_it_and_a_short_lock_is_waited_out(
    tmp_path: Path,
):
    with World(tmp_path, busy_timeout="1s") as world:
        assert world.run("run", "--once").returncode == 0
        world.publish()
        database = world.config.storage.database
        holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            locked = world.run("run", "--once")
            assert_clear_failure(locked, EXIT_LOCKED, str(database), "locked by another process")
            # Released only once the run is seen waiting on it: the run waits and goes on.
            world.busy_timeout = "20s"
            world.config_path.write_text(world._config_text())
            running = world.start("run", "--once")
            waited = waiting_on_sqlite(running.process)
            holder.execute("ROLLBACK")
            ran = world.finish(running)
            assert waited, f"the run never waited on the lock:\n{ran.stderr}"
            assert ran.returncode == 0, ran.stderr
        finally:
            holder.close()
        assert world.violations() == []


def test_a_lock_taken_while_a_digest_is_written_stops_the_run_with_75_and_loses_nothing(
    tmp_path: Path,
):
    with World(tmp_path, busy_timeout="1s") as world:
        holders: list[sqlite3.Connection] = []

        def lock_then_answer(chat: ChatRequest) -> dict[str, Any]:
            # Another process starts a long write while the model thinks.
            if not holders:
                database = world.config.storage.database
                holders.append(
                    sqlite3.connect(database, isolation_level=None, check_same_thread=False)
                )
                holders[0].execute("BEGIN EXCLUSIVE")
            return model_answer(chat)

        world.model.set_default(lock_then_answer)
        try:
            locked = world.run("run", "--once")
        finally:
            for holder in holders:
                holder.close()
        assert_clear_failure(locked, EXIT_LOCKED, "locked by another process")
        world.model.set_default(model_answer)
        recovered(world)


def test_the_daemon_logs_a_locked_store_with_its_path_and_carries_on_when_it_is_free(
    tmp_path: Path,
):
    with World(tmp_path, busy_timeout="1s") as world:
        assert world.run("run", "--once").returncode == 0
        database = world.config.storage.database
        with daemon(world.config_path) as running:
            wait_for(lambda: "trendfinder running" in running.log(), "the daemon's start", running)
            holder = sqlite3.connect(database, isolation_level=None)
            try:
                holder.execute("BEGIN EXCLUSIVE")
                world.publish()
                wait_for(
                    lambda: f"failed: the store at {database} is locked" in running.log(),
                    "a job failing on the lock",
                    running,
                )
            finally:
                holder.close()
            # Free again: the next cycles collect the new round and deliver its digests.
            wait_for(lambda: world.violations() == [], "the invariants after the lock", running)
            running.signal(signal.SIGTERM)
            assert running.process.wait(timeout=30) == 0
        assert "Traceback" not in running.log(), running.log()
