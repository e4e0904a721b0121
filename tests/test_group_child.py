"""Grouping runs in a child process: when that process is killed (OOM killer, SIGKILL), only
that run's grouping fails, with a one-line log; the items stay ungrouped and the next run
groups them."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bench.uci import load_uci, stored_headline
from processes import cli_env

from core.config import parse_config
from core.store import Store
from daemon.runner import Runner


def _grandchildren() -> list[int]:
    """Processes whose parent is a child of this one: the fork server's workers."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    children = {pid for pid, parent in parents.items() if parent == os.getpid()}
    return [pid for pid, parent in parents.items() if parent in children]


def _kill_the_first_grouping_process(stop: threading.Event) -> list[int]:
    killed: list[int] = []

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            if found := _grandchildren():
                os.kill(found[0], signal.SIGKILL)
                killed.append(found[0])
                return
            time.sleep(0.005)

    threading.Thread(target=watch, daemon=True).start()
    return killed


def test_a_killed_grouping_process_leaves_the_items_for_the_next_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    # Real headlines, enough that grouping them takes the child a while.
    items = [stored_headline(labelled.item, now - timedelta(hours=1)) for labelled in load_uci()]
    config = parse_config(
        f"storage: {{path: '{tmp_path / 'store.db'}'}}\n"
        "sources:\n  - {name: wire, url: 'https://wire.example/feed'}\n"
    )
    with Store.open(tmp_path / "store.db") as store:
        store.add_items("wire", items, now - timedelta(minutes=5))
        runner = Runner(config, store, clock=lambda: now, isolated=True)

        stop = threading.Event()
        killed = _kill_the_first_grouping_process(stop)
        with caplog.at_level(logging.ERROR, logger="trendfinder"):
            grouped = runner.group()
        stop.set()
        assert killed, "no grouping process was seen"
        assert grouped == 0
        assert len(store.ungrouped_items(100, 10_000)) == len(items)
        [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert "\n" not in line and "died" in line and f"{len(items)} items wait" in line

        assert runner.group() == len(items)
        assert store.ungrouped_items(100, 10_000) == []


# A long-running role's grouping, in a fresh interpreter: which heavy libraries its own
# process loaded while its child grouped.
_ISOLATED_GROUPING = """
import json, sys
from datetime import UTC, datetime
from pathlib import Path
from core.config import load_config
from core.store import Store
from daemon.runner import Runner
config = load_config(Path(sys.argv[1]))
now = datetime.fromisoformat(sys.argv[2])
with Store.open_config(config.storage) as store:
    grouped = Runner(config, store, clock=lambda: now, isolated=True).group()
heavy = [name for name in ("scipy", "tokenizers", "wordllama") if name in sys.modules]
print(json.dumps({"grouped": grouped, "heavy": heavy}))
"""


def test_a_daemon_that_groups_in_a_child_never_loads_scipy_or_the_model_itself(
    tmp_path: Path,
) -> None:
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    items = [
        stored_headline(labelled.item, now - timedelta(hours=1)) for labelled in load_uci()[:200]
    ]
    config = tmp_path / "config.yaml"
    config.write_text(
        f"storage: {{path: '{tmp_path / 'store.db'}'}}\n"
        "sources:\n  - {name: wire, url: 'https://wire.example/feed'}\n"
    )
    with Store.open(tmp_path / "store.db") as store:
        store.add_items("wire", items, now - timedelta(minutes=5))

    ran = subprocess.run(
        [sys.executable, "-c", _ISOLATED_GROUPING, str(config), now.isoformat()],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"grouped": len(items), "heavy": []}
